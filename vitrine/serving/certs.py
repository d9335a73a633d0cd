"""A throwaway local certificate authority for TLS between local processes (``vitrine up``).

``ensure_local_tls(directory, ["encoder", "gateway", ...])`` creates, once, a self-signed CA
(EC P-256, 30 days) and one certificate per name, signed by it, for 127.0.0.1/localhost, good
for both ends of a connection (serverAuth and clientAuth): a service presents it when it serves
and when it calls another service (mTLS). Later calls reuse the files while they stay valid.
Files (PEM): ``ca.pem``, ``ca-key.pem``, ``<name>.pem``, ``<name>-key.pem``; keys are 0600 and
every file is written to a temporary name and renamed, so a server watching them (certificate
rotation) never reads half a file. Not for production: there, certificates come from a real CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost")
CA_DAYS = 30
LEAF_DAYS = 30
MIN_LEFT = dt.timedelta(days=1)  # reissue what expires sooner than this


@dataclass(frozen=True)
class CA:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class TLSFiles:
    """A certificate, its key and the CA that verifies the peers (the same local CA)."""

    cert_file: Path
    key_file: Path
    ca_file: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename) with permissions ``mode``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vitrine (local)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def create_ca(directory: str | Path, days: int = CA_DAYS, name: str = "Vitrine local CA") -> CA:
    """A new self-signed CA in ``directory`` (``ca.pem``, ``ca-key.pem``), replacing any old one."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    subject = _name(name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    ca = CA(directory / "ca.pem", directory / "ca-key.pem")
    _write(ca.key_file, _key_pem(key), 0o600)
    _write(ca.cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return ca


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def issue(
    ca: CA,
    directory: str | Path,
    name: str,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = LEAF_DAYS,
) -> tuple[Path, Path]:
    """A certificate for ``name`` signed by ``ca``, valid for ``hosts`` (IP and DNS SANs), for
    serving and for calling (serverAuth + clientAuth): ``(<name>.pem, <name>-key.pem)``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert = x509.load_pem_x509_certificate(Path(ca.cert_file).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(ca.key_file).read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    expires = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(expires)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(_san(hosts), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}-key.pem"
    _write(key_file, _key_pem(key), 0o600)  # the key first: a watcher sees a matching pair last
    _write(cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_file, key_file


def _still_valid(cert_file: Path, key_file: Path, issuer: x509.Certificate | None = None) -> bool:
    """Both files there, the certificate good for a while yet (and issued by ``issuer``)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError):
        return False
    if cert.public_key() != key.public_key():
        return False
    if cert.not_valid_after_utc - _now() < MIN_LEFT or cert.not_valid_before_utc > _now():
        return False
    if issuer is not None:
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            return False
    return True


def _covers(cert_file: Path, hosts: Sequence[str]) -> bool:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    have |= set(san.get_values_for_type(x509.DNSName))
    return all(str(ipaddress.ip_address(h)) in have if _is_ip(h) else h in have for h in hosts)


def _is_ip(h: str) -> bool:
    try:
        ipaddress.ip_address(h)
    except ValueError:
        return False
    return True


def ensure_local_tls(
    directory: str | Path, names: Iterable[str], hosts: Sequence[str] = DEFAULT_HOSTS
) -> dict[str, TLSFiles]:
    """The local CA and one certificate per name in ``directory``: made once, then reused while
    valid (a new CA, when the old one expires, reissues every certificate)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ca = CA(directory / "ca.pem", directory / "ca-key.pem")
    if not _still_valid(ca.cert_file, ca.key_file):
        ca = create_ca(directory)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_file.read_bytes())
    out: dict[str, TLSFiles] = {}
    for name in names:
        cert_file, key_file = directory / f"{name}.pem", directory / f"{name}-key.pem"
        if not (_still_valid(cert_file, key_file, ca_cert) and _covers(cert_file, hosts)):
            cert_file, key_file = issue(ca, directory, name, hosts)
        out[name] = TLSFiles(cert_file, key_file, ca.cert_file)
    return out
