"""Service configuration from defaults, an optional YAML file, ``VITRINE_*`` env and flags.

Precedence (last wins): dataclass defaults < YAML file < environment < command-line flags. Every
service declares its settings as a dataclass deriving from :class:`ServerConfig`; values are
coerced to the field's type and the whole config is validated before the server starts, so a typo
fails at start-up with the setting's name instead of at the first request.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from vitrine.serving.tls import ClientTLS
from vitrine.serving.tls import check_settings as check_tls_settings

ENV_PREFIX = "VITRINE_"
C = TypeVar("C", bound="ServerConfig")


class ConfigError(ValueError):
    """A setting is unknown, has the wrong type or an invalid value."""


@dataclasses.dataclass
class ServerConfig:
    """Settings every gRPC service has."""

    host: str = "127.0.0.1"
    port: int = 0  # 0 = pick a free port (read back from the server)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = -1  # -1 = no metrics HTTP server, 0 = pick a free port
    grace_s: float = 10.0  # time in-flight RPCs get to finish after SIGTERM
    max_message_mb: int = 64  # largest gRPC message accepted or sent
    log_level: str = "info"
    log_format: str = "json"
    # Close each client connection after this long (0: never), so clients spread over
    # replicas added since they connected (they re-resolve the name and reconnect).
    max_connection_age_s: float = 0.0
    event_loop: str = "uvloop"  # uvloop (libuv, faster per call) or asyncio (the standard loop)
    # TLS (vitrine.serving.tls). With a certificate and key the listener speaks TLS only; the
    # files are watched, so a rotated certificate is served to new connections without a restart.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # CA bundle that verifies peers: client certificates here, server certificates when this
    # service calls others (which it does with its own certificate: mTLS).
    tls_ca_file: str = ""
    tls_client_auth: bool = True  # with TLS: accept only clients with a cert from tls_ca_file
    # Without TLS a listener starts only on a loopback host (127.0.0.1, ::1, localhost), unless
    # plaintext is set: serving plaintext on a reachable address has to be asked for.
    plaintext: bool = False
    # Plaintext port carrying only grpc.health.v1 (the same health states), for probes that
    # cannot speak TLS (Kubernetes gRPC probes); -1 = none, 0 = pick a free port.
    health_port: int = -1

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: {self.port} is not a TCP port")
        if not -1 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port: {self.metrics_port} is not a TCP port (or -1)")
        if self.grace_s < 0:
            raise ConfigError("grace_s: must be >= 0")
        if self.max_connection_age_s < 0:
            raise ConfigError("max_connection_age_s: must be >= 0 (0: never)")
        if self.max_message_mb < 1:
            raise ConfigError("max_message_mb: must be >= 1")
        if self.event_loop not in ("uvloop", "asyncio"):
            raise ConfigError("event_loop: must be 'uvloop' or 'asyncio'")
        if self.log_format not in ("json", "text"):
            raise ConfigError("log_format: must be 'json' or 'text'")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError("log_level: must be debug, info, warning or error")
        check_tls_settings(self)

    @property
    def tls_enabled(self) -> bool:
        """Whether the listener speaks TLS."""
        return bool(self.tls_cert_file)

    def client_tls(self) -> ClientTLS | None:
        """How this service calls others: with TLS on, its own certificate and key, verifying
        the servers with ``tls_ca_file``; plaintext otherwise."""
        if not self.tls_enabled:
            return None
        return ClientTLS(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)


def _coerce(name: str, raw: Any, typ: Any) -> Any:
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if raw is None or (isinstance(raw, str) and raw.lower() in ("", "none", "null")):
            return None
        return _coerce(name, raw, args[0])
    if origin is list:
        (item,) = typing.get_args(typ)
        if isinstance(raw, str):
            raw = [p.strip() for p in raw.split(",") if p.strip()]
        if not isinstance(raw, list | tuple):
            raise ConfigError(f"{name}: expected a list, got {raw!r}")
        return [_coerce(name, r, item) for r in raw]
    try:
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            s = str(raw).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if typ is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        if typ is float:
            return float(raw)
        if typ is str:
            return str(raw)
        if typ is Path:
            return Path(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: cannot read {raw!r} as {typ.__name__}") from exc
    raise ConfigError(f"{name}: unsupported setting type {typ!r}")  # pragma: no cover


def load_config(
    cls: type[C],
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> C:
    """Build and validate a ``cls`` from defaults, YAML file, ``VITRINE_<FIELD>`` env and flags.

    ``overrides`` holds command-line values; ``None`` values mean "not given" and are skipped.
    """
    env = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    if config_file is None and env.get(ENV_PREFIX + "CONFIG"):
        config_file = env[ENV_PREFIX + "CONFIG"]
    if config_file:
        path = Path(config_file)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path}: expected a mapping of settings")
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(f"config file {path}: unknown settings {unknown}")
        values.update(data)
    for name in fields:
        key = ENV_PREFIX + name.upper()
        if key in env:
            values[name] = env[key]
    for name, value in (overrides or {}).items():
        if name not in fields:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = value
    coerced = {name: _coerce(name, raw, hints[name]) for name, raw in values.items()}
    cfg = cls(**coerced)
    cfg.validate()
    return cfg
