"""TLS for the gRPC listeners and channels: settings checks, server and channel credentials.

Server side (:func:`server_credentials`): the certificate and key come from files
(``tls_cert_file``, ``tls_key_file``) and, with ``tls_client_auth``, clients must present a
certificate signed by ``tls_ca_file`` (mTLS). The credentials are gRPC's *dynamic* SSL
credentials: gRPC core asks :class:`CertificateReloader` before each new handshake, and it
answers a new configuration when one of the files changed (mtime, size or inode), so a rotated
certificate is served to new connections without a restart (connections already open keep
theirs). A half-written or mismatched pair is skipped (logged once) and the previous one stays.

Client side (:class:`ClientTLS`, :func:`channel`, :func:`aio_channel`): the CA bundle that
verifies the server and, for mTLS, this side's certificate and key, read when the channel is
made (a client picks up a rotated client certificate with its next channel).

Plaintext: :func:`check_settings` lets a listener without TLS start only on a loopback host
(127.0.0.0/8, ::1, localhost) unless ``plaintext`` is set explicitly.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    from vitrine.serving.config import ServerConfig

log = logging.getLogger("vitrine.tls")


@dataclass(frozen=True)
class ClientTLS:
    """How a client reaches a TLS server: the CA bundle verifying it ("" = the system's roots)
    and, where the server requires client certificates, this client's certificate and key.

    ``server_name`` overrides the name the server's certificate is checked against (by default
    the target's host)."""

    ca_file: str | Path = ""
    cert_file: str | Path = ""
    key_file: str | Path = ""
    server_name: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("ClientTLS: cert_file and key_file go together")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file) if self.ca_file else None,
            private_key=_read(self.key_file) if self.key_file else None,
            certificate_chain=_read(self.cert_file) if self.cert_file else None,
        )

    def options(self) -> list[tuple[str, Any]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def _read(path: str | Path) -> bytes:
    return Path(path).read_bytes()


def channel(
    target: str, tls: ClientTLS | None = None, options: list[tuple[str, Any]] | None = None
) -> grpc.Channel:
    """A blocking channel: TLS (mTLS with a client certificate) when ``tls`` is given."""
    options = list(options or [])
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, tls.credentials(), options=options + tls.options())


def aio_channel(
    target: str, tls: ClientTLS | None = None, options: list[tuple[str, Any]] | None = None
) -> grpc.aio.Channel:
    """A ``grpc.aio`` channel: TLS (mTLS with a client certificate) when ``tls`` is given."""
    options = list(options or [])
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, tls.credentials(), options=options + tls.options())


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _load_pair(cert_file: str, key_file: str, ca_file: str = "") -> None:
    """Raise ``ssl.SSLError``/``OSError`` unless the files load and the key matches the cert."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)


def check_settings(cfg: ServerConfig) -> None:
    """The TLS part of :meth:`ServerConfig.validate` (raises ``ConfigError``)."""
    from vitrine.serving.config import ConfigError

    if not -1 <= cfg.health_port <= 65535:
        raise ConfigError(f"health_port: {cfg.health_port} is not a TCP port (or -1)")
    if bool(cfg.tls_cert_file) != bool(cfg.tls_key_file):
        missing = "tls_key_file" if cfg.tls_cert_file else "tls_cert_file"
        raise ConfigError(f"{missing}: tls_cert_file and tls_key_file go together")
    if cfg.tls_cert_file and cfg.plaintext:
        raise ConfigError("plaintext: cannot be true when tls_cert_file is set")
    if cfg.tls_ca_file and not cfg.tls_cert_file:
        raise ConfigError("tls_ca_file: set, but TLS is off (no tls_cert_file/tls_key_file)")
    if not cfg.tls_cert_file:
        if not cfg.plaintext and not is_loopback(cfg.host):
            raise ConfigError(
                f"tls_cert_file: host {cfg.host} is not a loopback address: give "
                "tls_cert_file/tls_key_file (and tls_ca_file), or set plaintext: true to serve "
                "without TLS"
            )
        return
    for name in ("tls_cert_file", "tls_key_file", "tls_ca_file"):
        path = getattr(cfg, name)
        if path and not Path(path).is_file():
            raise ConfigError(f"{name}: {path} is not a file")
    if cfg.tls_client_auth and not cfg.tls_ca_file:
        raise ConfigError(
            "tls_ca_file: needed to verify client certificates (tls_client_auth is on)"
        )
    try:
        _load_pair(cfg.tls_cert_file, cfg.tls_key_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"tls_cert_file/tls_key_file: cannot load a certificate and its key: {exc}"
        ) from exc
    if cfg.tls_ca_file:
        try:
            _load_pair(cfg.tls_cert_file, cfg.tls_key_file, cfg.tls_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"tls_ca_file: cannot load {cfg.tls_ca_file}: {exc}") from exc


class CertificateReloader:
    """The certificate-configuration fetcher of :func:`grpc.dynamic_ssl_server_credentials`.

    Called by gRPC core (any thread) before new handshakes: ``None`` while the files are
    unchanged, else a fresh ``grpc.ServerCertificateConfiguration`` read from them.
    """

    def __init__(self, cert_file: str, key_file: str, ca_file: str = ""):
        self.cert_file, self.key_file, self.ca_file = cert_file, key_file, ca_file
        self._lock = threading.Lock()
        self._stamp = self._read_stamp()
        self._failed_stamp: tuple | None = None
        self.reloads = 0

    def _paths(self) -> list[str]:
        return [p for p in (self.cert_file, self.key_file, self.ca_file) if p]

    def _read_stamp(self) -> tuple:
        return tuple((st.st_mtime_ns, st.st_size, st.st_ino) for st in map(os.stat, self._paths()))

    def load(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(_read(self.key_file), _read(self.cert_file))],
            root_certificates=_read(self.ca_file) if self.ca_file else None,
        )

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            try:
                stamp = self._read_stamp()
            except OSError:  # a file being replaced right now: keep the current configuration
                return None
            if stamp == self._stamp or stamp == self._failed_stamp:
                return None
            try:
                _load_pair(self.cert_file, self.key_file, self.ca_file)
                config = self.load()
            except (ssl.SSLError, OSError) as exc:
                self._failed_stamp = stamp  # log once per change; retried when files change
                log.warning(
                    "tls certificate files changed but do not load; keeping the previous ones",
                    extra={"cert_file": self.cert_file, "error": str(exc)},
                )
                return None
            self._stamp = stamp
            self.reloads += 1
            log.info("tls certificate reloaded", extra={"cert_file": self.cert_file})
            return config


def server_credentials(cfg: ServerConfig) -> tuple[grpc.ServerCredentials, CertificateReloader]:
    """Dynamic SSL server credentials for ``cfg`` (requires ``tls_cert_file``); see module doc."""
    reloader = CertificateReloader(cfg.tls_cert_file, cfg.tls_key_file, cfg.tls_ca_file)
    creds = grpc.dynamic_ssl_server_credentials(
        reloader.load(),
        reloader,
        require_client_authentication=cfg.tls_client_auth,
    )
    return creds, reloader
