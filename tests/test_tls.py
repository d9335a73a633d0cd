"""TLS on the listeners, mTLS between services, rotation without restart, the local CA.

Real index servers on 127.0.0.1 port 0, real gRPC handshakes; certificates from the throwaway
local CA (vitrine.serving.certs).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import stat

import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway.config import GatewayConfig
from index_service.client import IndexClient
from index_service.config import IndexConfig
from index_service.server import IndexServer
from tests.support.servers import ServerThread
from vitrine.cli import connect
from vitrine.serving import errors
from vitrine.serving.certs import CA, create_ca, ensure_local_tls, issue
from vitrine.serving.client import SyncClientBase
from vitrine.serving.config import ConfigError, load_config
from vitrine.serving.grpc_app import _write_ready_file
from vitrine.serving.tls import ClientTLS

DIM = 8


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """The local CA with certs for a server and a client, and a second CA with a rogue client."""
    base = tmp_path_factory.mktemp("pki")
    files = ensure_local_tls(base / "tls", ["index", "client"])
    other_ca = create_ca(base / "other")
    rogue = issue(other_ca, base / "other", "rogue")
    return {**files, "other_ca": other_ca, "rogue": rogue}


def _index_config(tmp_path, tls_files, **kw) -> IndexConfig:
    base = dict(
        data_dir=str(tmp_path / "data"),
        port=0,
        metrics_port=-1,
        log_format="text",
        search_threads=1,
        fsync=False,
        tls_cert_file=str(tls_files.cert_file),
        tls_key_file=str(tls_files.key_file),
        tls_ca_file=str(tls_files.ca_file),
        health_port=0,
    )
    base.update(kw)
    return IndexConfig(**base)


@pytest.fixture(scope="module")
def server(tmp_path_factory, pki):
    cfg = _index_config(tmp_path_factory.mktemp("index"), pki["index"])
    with ServerThread(IndexServer(cfg)) as s:
        yield s


def good_tls(pki) -> ClientTLS:
    c = pki["client"]
    return ClientTLS(c.ca_file, c.cert_file, c.key_file)


def test_mtls_client_with_a_ca_signed_certificate_works(server, pki):
    rng = np.random.default_rng(0)
    with IndexClient(server.target, tls=good_tls(pki)) as ix:
        # Wait for the handshake (retried by the channel): once, on a loaded machine, a first
        # handshake was closed by the server ("Endpoint closing") and this call failed.
        ix.wait_ready(10)
        ix.create_collection("mtls", DIM)
        assert ix.upsert("mtls", ["a", "b"], rng.standard_normal((2, DIM))) == 2
        assert ix.count("mtls") == 2


@pytest.mark.parametrize(
    "who",
    ["plaintext", "tls without a client cert", "cert from another CA", "server not trusted"],
)
def test_clients_without_a_valid_certificate_are_refused(server, pki, who):
    c, rogue_cert, rogue_key = pki["client"], *pki["rogue"]
    tls = {
        "plaintext": None,
        "tls without a client cert": ClientTLS(c.ca_file),
        "cert from another CA": ClientTLS(c.ca_file, rogue_cert, rogue_key),
        "server not trusted": ClientTLS(pki["other_ca"].cert_file, c.cert_file, c.key_file),
    }[who]
    with IndexClient(server.target, tls=tls, timeout=5) as ix:
        with pytest.raises(errors.Unavailable):  # refused at the handshake
            ix.create_collection(f"refused-{who.replace(' ', '-')}", DIM)
        with pytest.raises(errors.Unavailable):
            ix.upsert("mtls", ["intruder"], np.ones((1, DIM), np.float32))
    with IndexClient(server.target, tls=good_tls(pki)) as ix:
        assert all(not c.name.startswith("refused") for c in ix.list_collections())
        assert not ix.get("mtls", ["intruder"]).records  # nothing was written


def test_plaintext_health_port_shares_the_health_states(server, pki):
    app = server.server.app
    assert app.health_port and app.health_port != app.port
    with grpc.insecure_channel(f"127.0.0.1:{app.health_port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for svc in ("", "liveness", "vitrine.v1.IndexService"):
            resp = stub.Check(health_pb2.HealthCheckRequest(service=svc), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
    # One truth: a state set on the servicer shows on the health port.
    server.call(app.health.set("probe", health_pb2.HealthCheckResponse.NOT_SERVING))
    with grpc.insecure_channel(f"127.0.0.1:{app.health_port}") as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="probe"), timeout=5
        )
        assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING
    with grpc.insecure_channel(server.target) as ch:  # the main port speaks TLS only
        with pytest.raises(grpc.RpcError) as exc:
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


def test_ready_file_names_the_health_port_and_tls(server, tmp_path):
    path = tmp_path / "ready.json"
    _write_ready_file(str(path), server.server.app)
    info = json.loads(path.read_text())
    assert info["tls"] is True
    assert info["health_port"] == server.server.health_port
    assert info["port"] == server.server.port


def _presented_serial(port: int, tls_files) -> int:
    """The serial number of the certificate the server presents in a new handshake."""
    ctx = ssl.create_default_context(cafile=str(tls_files.ca_file))
    ctx.load_cert_chain(tls_files.cert_file, tls_files.key_file)
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls_sock,
    ):
        return x509.load_der_x509_certificate(tls_sock.getpeercert(binary_form=True)).serial_number


def _serial(path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def test_rotated_certificate_is_served_without_a_restart(tmp_path, pki):
    tls_dir = tmp_path / "tls"
    shutil.copytree(pki["index"].ca_file.parent, tls_dir)
    files = ensure_local_tls(tls_dir, ["index"])["index"]
    cfg = _index_config(tmp_path, files, health_port=-1)
    with ServerThread(IndexServer(cfg)) as s:
        first = _serial(files.cert_file)
        assert _presented_serial(s.server.port, pki["client"]) == first
        with IndexClient(s.target, tls=good_tls(pki)) as old:
            old.create_collection("rot", DIM)
            # Rotate: a new certificate and key written over the files (rename, as issue() does).
            ca = CA(files.ca_file, files.ca_file.with_name("ca-key.pem"))
            issue(ca, tls_dir, "index")
            second = _serial(files.cert_file)
            assert second != first
            assert _presented_serial(s.server.port, pki["client"]) == second
            assert s.server.app.tls_reloader.reloads == 1
            with IndexClient(s.target, tls=good_tls(pki)) as new:  # a new channel: new cert
                assert new.count("rot") == 0
            assert old.count("rot") == 0  # the open connection keeps working
            # A broken file is skipped: the previous certificate stays in service.
            files.cert_file.write_text("not a certificate")
            assert _presented_serial(s.server.port, pki["client"]) == second
            with IndexClient(s.target, tls=good_tls(pki)) as new:
                assert new.count("rot") == 0


def _load(cls=IndexConfig, **overrides):
    return load_config(cls, overrides=overrides, env={})


def test_config_validation(pki, tmp_path):
    idx, cli = pki["index"], pki["client"]
    tls = dict(
        tls_cert_file=str(idx.cert_file),
        tls_key_file=str(idx.key_file),
        tls_ca_file=str(idx.ca_file),
    )
    with pytest.raises(ConfigError, match=r"tls_cert_file: host 0\.0\.0\.0 is not a loopback"):
        _load(host="0.0.0.0")
    assert _load(host="0.0.0.0", plaintext=True).client_tls() is None  # explicit plaintext
    for host in ("127.0.0.1", "::1", "localhost"):
        assert not _load(host=host).tls_enabled  # loopback: plaintext by default
    cfg = _load(host="0.0.0.0", **tls)
    assert cfg.client_tls() == ClientTLS(
        tls["tls_ca_file"], tls["tls_cert_file"], tls["tls_key_file"]
    )  # it calls other services with its own certificate
    with pytest.raises(ConfigError, match="tls_key_file"):
        _load(tls_cert_file=str(idx.cert_file))
    with pytest.raises(ConfigError, match="tls_cert_file"):
        _load(tls_key_file=str(idx.key_file))
    with pytest.raises(ConfigError, match=r"tls_cert_file: .* is not a file"):
        _load(**{**tls, "tls_cert_file": str(tmp_path / "missing.pem")})
    with pytest.raises(ConfigError, match="tls_ca_file: needed"):
        _load(**{**tls, "tls_ca_file": ""})
    with pytest.raises(ConfigError, match="cannot load a certificate and its key"):
        _load(**{**tls, "tls_key_file": str(cli.key_file)})  # key of another certificate
    with pytest.raises(ConfigError, match="plaintext"):
        _load(**tls, plaintext=True)
    with pytest.raises(ConfigError, match="health_port"):
        _load(health_port=70000)
    # The gateway asks public callers for no certificate (API keys), so needs no CA to serve.
    gw = _load(GatewayConfig, tls_cert_file=str(idx.cert_file), tls_key_file=str(idx.key_file))
    assert gw.tls_enabled and not gw.tls_client_auth
    env = {"VITRINE_TLS_CERT_FILE": str(idx.cert_file), "VITRINE_TLS_KEY_FILE": str(idx.key_file)}
    with pytest.raises(ConfigError, match="tls_ca_file"):
        load_config(IndexConfig, env=env)


def test_local_ca_files(pki, tmp_path):
    files = pki["index"]
    for f in (files.key_file, files.ca_file.with_name("ca-key.pem")):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    cert.verify_directly_issued_by(ca)
    # Reused while valid; a new name gets a certificate from the same CA.
    again = ensure_local_tls(files.ca_file.parent, ["index", "extra"])
    assert again["index"].cert_file.read_bytes() == files.cert_file.read_bytes()
    extra = x509.load_pem_x509_certificate(again["extra"].cert_file.read_bytes())
    extra.verify_directly_issued_by(ca)
    # A certificate not from the CA in the directory is replaced.
    tls_dir = tmp_path / "tls"
    shutil.copytree(files.ca_file.parent, tls_dir)
    shutil.copy(pki["rogue"][0], tls_dir / "index.pem")
    shutil.copy(pki["rogue"][1], tls_dir / "index-key.pem")
    fixed = ensure_local_tls(tls_dir, ["index"])["index"]
    x509.load_pem_x509_certificate(fixed.cert_file.read_bytes()).verify_directly_issued_by(ca)


class _HealthClient(SyncClientBase):
    stub_class = health_pb2_grpc.HealthStub


def test_api_key_is_sent_as_a_bearer_token(pki):
    """Every call of a client made with ``api_key`` carries ``authorization: Bearer <key>``."""
    seen: list[dict] = []

    class Recorder(health.HealthServicer):
        def Check(self, request, context):
            seen.append(dict(context.invocation_metadata()))
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    from concurrent.futures import ThreadPoolExecutor

    srv = grpc.server(ThreadPoolExecutor(2))
    health_pb2_grpc.add_HealthServicer_to_server(Recorder(), srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        with _HealthClient(f"127.0.0.1:{port}", api_key="vk_test.secret") as c:
            c._call("Check", health_pb2.HealthCheckRequest())
        with _HealthClient(f"127.0.0.1:{port}") as c:
            c._call("Check", health_pb2.HealthCheckRequest())
    finally:
        srv.stop(0)
    assert seen[0]["authorization"] == "Bearer vk_test.secret"
    assert "authorization" not in seen[1]


def test_cli_finds_a_local_stack_tls(monkeypatch, tmp_path, pki):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    tls = good_tls(pki)
    path = connect.register_stack("127.0.0.1:50999", os.getpid(), tls)
    assert path is not None and path.parent == tmp_path / "vitrine" / "stacks"
    assert connect.client_tls("127.0.0.1:50999") == ClientTLS(
        str(tls.ca_file), str(tls.cert_file), str(tls.key_file)
    )
    assert connect.client_tls("localhost:50999") is not None
    assert connect.client_tls("10.1.2.3:50999") is None  # not this machine's stack
    assert connect.client_tls("127.0.0.1:50998") is None
    explicit = connect.client_tls("127.0.0.1:50999", ca_file="/x/ca.pem")
    assert explicit == ClientTLS("/x/ca.pem")  # options win
    with pytest.raises(ValueError, match="go together"):
        connect.client_tls("127.0.0.1:1", cert_file="/x/c.pem")
    connect.unregister_stack(path)
    assert connect.client_tls("127.0.0.1:50999") is None
    connect.register_stack("127.0.0.1:50999", 2**22 + 12345, tls)  # a process that is gone
    assert connect.client_tls("127.0.0.1:50999") is None
