"""How CLI commands reach a gateway: TLS files and API key from options, or a local stack's.

A running :class:`~vitrine.cli.stack.LocalStack` (``vitrine up``, ``make demo``) registers its
gateway in ``$XDG_RUNTIME_DIR/vitrine/stacks/`` (else ``~/.cache/vitrine/stacks/``): one
``gateway-<port>.json`` naming the CA and client certificate to use, removed when the stack
stops. ``vitrine search/ingest/describe`` without ``--ca-file/--cert-file/--key-file`` look there
when ``--gateway`` is a loopback address, so they reach a local TLS stack with no options.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vitrine.serving.tls import ClientTLS, is_loopback


def stacks_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or str(Path.home() / ".cache")
    return Path(base) / "vitrine" / "stacks"


def _split(target: str) -> tuple[str, int] | None:
    host, _, port = target.rpartition(":")
    try:
        return host, int(port)
    except ValueError:
        return None


def register_stack(gateway: str, pid: int, tls: ClientTLS | None) -> Path | None:
    """Record a running local stack's gateway and how to call it; the file's path (None: could
    not write it — the CLI then needs explicit TLS options)."""
    parts = _split(gateway)
    if parts is None:
        return None
    entry = {
        "gateway": gateway,
        "pid": pid,
        "tls": None
        if tls is None
        else {k: str(getattr(tls, k)) for k in ("ca_file", "cert_file", "key_file")},
    }
    path = stacks_dir() / f"gateway-{parts[1]}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entry), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        return None
    return path


def unregister_stack(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def local_stack_tls(gateway: str) -> ClientTLS | None:
    """The TLS settings of the running local stack whose gateway is ``gateway`` (None: no such
    stack, or it runs plaintext)."""
    parts = _split(gateway)
    if parts is None or not is_loopback(parts[0]):
        return None
    path = stacks_dir() / f"gateway-{parts[1]}.json"
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not _alive(int(entry.get("pid", 0))) or not entry.get("tls"):
        return None
    return ClientTLS(**entry["tls"])


def client_tls(
    gateway: str,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> ClientTLS | None:
    """TLS from the options when any is given, else the local stack's (if ``gateway`` is one)."""
    if ca_file or cert_file or key_file:
        if bool(cert_file) != bool(key_file):
            raise ValueError("--cert-file and --key-file go together")
        return ClientTLS(ca_file or "", cert_file or "", key_file or "")
    return local_stack_tls(gateway)


def gateway_client(
    gateway: str,
    *,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    api_key: str | None = None,
    timeout: float | None = 30.0,
):
    """A :class:`gateway.client.SearchClient` for the CLI's connection options."""
    from gateway.client import SearchClient

    tls = client_tls(gateway, ca_file, cert_file, key_file)
    return SearchClient(gateway, timeout=timeout, tls=tls, api_key=api_key or None)
