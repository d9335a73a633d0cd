"""``vitrine keys create|list|revoke``: the gateway's API key file (logic in gateway.auth)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitrine.cli.app import app

keys_app = typer.Typer(
    help=(
        "Manage the gateway's API key file (hashed keys; the gateway's api_keys_file). A running "
        "gateway picks up changes within a second or so."
    ),
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

FileOpt = Annotated[Path, typer.Option("--file", dir_okay=False, help="The key file (YAML).")]
IdOpt = Annotated[
    str, typer.Option("--id", help="Key id: letters, digits, '-', '.' (no '_'); shown in logs.")
]


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


@keys_app.command("create")
def create(
    file: FileOpt,
    key_id: IdOpt,
    scopes: Annotated[
        str, typer.Option("--scopes", help="Comma-separated: search, write, admin.")
    ] = "search",
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0, help="Requests per second (0: no limit; default: server's)."),
    ] = None,
    burst: Annotated[
        int | None, typer.Option("--burst", min=1, help="Token bucket size (default: server's).")
    ] = None,
    description: Annotated[str, typer.Option(help="What the key is for.")] = "",
) -> None:
    """Add a key; prints it once on stdout (only its SHA-256 is stored: keep it now)."""
    from gateway.auth import create_key
    from vitrine.serving.config import ConfigError

    wanted = [s.strip() for s in scopes.split(",") if s.strip()]
    try:
        key = create_key(file, key_id, wanted, rate, burst, description)
    except (ConfigError, OSError) as exc:
        _fail(exc)
    typer.echo(key)
    typer.echo(f"key {key_id!r} added to {file} (scopes {', '.join(wanted)})", err=True)


@keys_app.command("list")
def list_(file: FileOpt) -> None:
    """The keys in the file: id, scopes, rate limit, created, description (no hashes)."""
    from gateway.auth import read_keys
    from vitrine.serving.config import ConfigError

    try:
        entries = read_keys(file)
    except (ConfigError, OSError) as exc:
        _fail(exc)
    for e in entries:
        rate = "default" if e.rate_per_s is None else f"{e.rate_per_s:g}/s"
        burst = "" if e.burst is None else f" burst {e.burst}"
        typer.echo(
            "\t".join([e.id, ",".join(e.scopes), rate + burst, e.created, e.description]).rstrip()
        )


@keys_app.command("revoke")
def revoke(file: FileOpt, key_id: IdOpt) -> None:
    """Remove a key from the file."""
    from gateway.auth import revoke_key
    from vitrine.serving.config import ConfigError

    try:
        revoke_key(file, key_id)
    except (ConfigError, OSError) as exc:
        _fail(exc)
    typer.echo(f"key {key_id!r} revoked in {file}", err=True)
