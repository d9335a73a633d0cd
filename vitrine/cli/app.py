"""The ``vitrine`` root command, its global options, and option types shared by commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from vitrine.logs import configure_logging

app = typer.Typer(
    name="vitrine",
    help=(
        "Vitrine: multimodal product search. Train, evaluate and export the models; run the "
        "services; ingest, search and describe products."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


CatalogOpt = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        help="Catalog directory (catalog.csv + images/). Default: the embedded demo catalog.",
    ),
]
ModelsOpt = Annotated[Path, typer.Option("--models", help="Model repository directory.")]
DEFAULT_MODELS = Path(os.environ.get("VITRINE_MODELS", "models"))
RepoOut = Annotated[Path, typer.Option("--out", help="Model repository to publish into.")]
PrefixOpt = Annotated[str, typer.Option(help="Model name prefix: <name>-text, <name>-image.")]
VersionOpt = Annotated[
    int | None, typer.Option(min=1, help="Version to publish (default: the next free one).")
]


GatewayOpt = Annotated[
    str, typer.Option("--gateway", envvar="VITRINE_GATEWAY", help="Gateway address.")
]
# Connection options of the commands calling the gateway (vitrine.cli.connect). Without TLS files
# a loopback --gateway that is a running `vitrine up` stack is called with that stack's CA.
CaFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        envvar="VITRINE_CA_FILE",
        dir_okay=False,
        help="CA bundle verifying the gateway (TLS). Default: a local `vitrine up` stack's CA.",
    ),
]
CertFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--cert-file", envvar="VITRINE_CERT_FILE", dir_okay=False, help="Client certificate."
    ),
]
KeyFileOpt = Annotated[
    Path | None,
    typer.Option("--key-file", envvar="VITRINE_KEY_FILE", dir_okay=False, help="Client key."),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="VITRINE_API_KEY",
        help="API key, sent as 'authorization: Bearer <key>'.",
    ),
]


@app.callback()
def _main(
    log_level: Annotated[
        str, typer.Option(envvar="VITRINE_LOG_LEVEL", help="Log level.")
    ] = "warning",
    log_format: Annotated[
        str, typer.Option(envvar="VITRINE_LOG_FORMAT", help="json or text.")
    ] = "json",
) -> None:
    configure_logging(log_level, log_format)
