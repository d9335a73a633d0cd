"""The vitrine.v1 gRPC API: stubs are fresh, protos lint clean, messages round-trip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
GEN_SCRIPT = REPO_ROOT / "scripts" / "gen_protos.py"
PROTO_DIR = REPO_ROOT / "protos"

# The project is not necessarily pip-installed; make `vitrine.v1` importable from the checkout.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def _find_buf() -> str | None:
    """`buf` from the running venv's bin dir (buf-bin), else from PATH."""
    exe = "buf.exe" if os.name == "nt" else "buf"
    candidate = Path(sys.executable).parent / exe
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("buf")


def test_generated_stubs_are_up_to_date() -> None:
    proc = subprocess.run(
        [sys.executable, str(GEN_SCRIPT), "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        "stale vitrine/v1 stubs; run `python scripts/gen_protos.py`\n" + proc.stdout + proc.stderr
    )


def test_buf_lint(tmp_path: Path) -> None:
    buf = _find_buf()
    if buf is None:
        pytest.skip("buf not found next to sys.executable or on PATH (pip install buf-bin)")
    env = {**os.environ, "BUF_CACHE_DIR": str(tmp_path / "buf-cache")}
    proc = subprocess.run(
        [buf, "lint"],
        cwd=PROTO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"buf lint failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
    )


def test_tensor_round_trip() -> None:
    from vitrine.v1 import common_pb2

    rng = np.random.default_rng(0)
    arr = rng.standard_normal((3, 5)).astype(np.float32)
    msg = common_pb2.Tensor(data=arr.astype("<f4").tobytes(), shape=arr.shape)
    back = common_pb2.Tensor.FromString(msg.SerializeToString())
    assert back == msg
    assert list(back.shape) == [3, 5]
    decoded = np.frombuffer(back.data, dtype="<f4").reshape(tuple(back.shape))
    np.testing.assert_array_equal(decoded, arr)


def test_nested_filter_round_trip() -> None:
    from vitrine.v1 import common_pb2 as c

    flt = c.Filter(
        all_of=c.Filter.And(
            filters=[
                c.Filter(
                    equals=c.Filter.Equals(
                        field="brand", value=c.AttributeValue(string_value="acme")
                    )
                ),
                c.Filter(
                    any_of=c.Filter.Or(
                        filters=[
                            c.Filter(
                                is_in=c.Filter.In(
                                    field="color",
                                    values=[
                                        c.AttributeValue(string_value="red"),
                                        c.AttributeValue(string_value="blue"),
                                    ],
                                )
                            ),
                            c.Filter(range=c.Filter.Range(field="price", gte=10.0, lt=99.5)),
                        ]
                    )
                ),
                c.Filter(
                    negation=c.Filter.Not(
                        filter=c.Filter(
                            equals=c.Filter.Equals(
                                field="in_stock", value=c.AttributeValue(bool_value=False)
                            )
                        )
                    )
                ),
                c.Filter(
                    equals=c.Filter.Equals(
                        field="tags",
                        value=c.AttributeValue(list_value=c.StringList(values=["sale", "new"])),
                    )
                ),
            ]
        )
    )
    back = c.Filter.FromString(flt.SerializeToString())
    assert back == flt
    assert back.WhichOneof("expr") == "all_of"
    rng = back.all_of.filters[1].any_of.filters[1].range
    assert rng.HasField("gte") and rng.HasField("lt")
    assert not rng.HasField("gt") and not rng.HasField("lte")
    assert (rng.gte, rng.lt) == (10.0, 99.5)
    assert back.all_of.filters[2].negation.filter.equals.value.WhichOneof("kind") == "bool_value"


SERVICES = {
    "encoder_pb2": "EncoderService",
    "index_pb2": "IndexService",
    "gateway_pb2": "SearchService",
}


@pytest.mark.parametrize(("module", "service"), sorted(SERVICES.items()))
def test_rpc_messages_follow_naming(module: str, service: str) -> None:
    """Each RPC takes <Rpc>Request and returns <Rpc>Response (buf's RPC_*_STANDARD_NAME).

    buf also accepts <Service><Rpc>Request/Response; IndexService.Search uses that form
    because SearchService.Search already owns SearchRequest/SearchResponse in vitrine.v1.
    """
    import importlib

    mod = importlib.import_module(f"vitrine.v1.{module}")
    svc = mod.DESCRIPTOR.services_by_name[service]
    assert svc.full_name == f"vitrine.v1.{service}"
    assert svc.methods, f"{service} has no RPCs"
    seen: set[str] = set()
    for method in svc.methods:
        for kind, msg in (("Request", method.input_type), ("Response", method.output_type)):
            allowed = {f"{method.name}{kind}", f"{service}{method.name}{kind}"}
            assert msg.name in allowed, f"{service}.{method.name}: {kind.lower()} is {msg.name}"
            assert msg.full_name == f"vitrine.v1.{msg.name}"
            assert msg.full_name not in seen, f"{msg.full_name} used by more than one RPC"
            seen.add(msg.full_name)


def test_expected_rpcs_present() -> None:
    from vitrine.v1 import encoder_pb2, gateway_pb2, index_pb2

    def rpcs(mod, name: str) -> set[str]:
        return {m.name for m in mod.DESCRIPTOR.services_by_name[name].methods}

    assert rpcs(encoder_pb2, "EncoderService") == {
        "EmbedText",
        "EmbedImages",
        "GetModelInfo",
        "LoadModel",
        "UnloadModel",
        "Rerank",
        "Generate",
        "Compose",
    }
    assert rpcs(index_pb2, "IndexService") == {
        "CreateCollection",
        "ListCollections",
        "DescribeCollection",
        "DropCollection",
        "Upsert",
        "Delete",
        "Get",
        "Count",
        "GetStats",
        "Search",
        "Facets",
    }
    assert rpcs(gateway_pb2, "SearchService") == {
        "Search",
        "UpsertProducts",
        "IngestProducts",
        "DeleteProducts",
        "Describe",
        "GetFacets",
    }
    ingest = gateway_pb2.DESCRIPTOR.services_by_name["SearchService"].methods_by_name[
        "IngestProducts"
    ]
    assert ingest.client_streaming and not ingest.server_streaming


def test_grpc_stubs_import() -> None:
    from vitrine.v1 import encoder_pb2_grpc, gateway_pb2_grpc, index_pb2_grpc

    assert hasattr(encoder_pb2_grpc, "EncoderServiceStub")
    assert hasattr(index_pb2_grpc, "add_IndexServiceServicer_to_server")
    assert hasattr(gateway_pb2_grpc, "SearchServiceServicer")
