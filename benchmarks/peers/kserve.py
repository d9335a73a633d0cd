"""Minimal KServe v2 (Open Inference Protocol) gRPC client for the peer servers (Triton, MLServer).

Runs in the project venv (grpcio + grpcio-tools + protobuf + numpy). ``grpc_predict_v2.proto`` (beside this
file) is compiled with ``grpc_tools.protoc`` on first import into a descriptor set cached under
``<repo>/.cache/kserve_stubs/<key>/`` (git-ignored; keyed by the proto's hash and the
protobuf/grpcio-tools versions), and the message classes and the stub are built from it at
import time in a private descriptor pool, so no generated code is committed and the client can
share a process with tritonclient or mlserver (both register ``inference.*`` in protobuf's
default pool).

Tensors travel as ``raw_input_contents``. A ``BYTES`` tensor is serialised the Triton way: for
every element a 4-byte little-endian length followed by the bytes. Each request is one tensor of
shape ``[n, 1]`` (one string / one encoded image per item); the answer is ``embedding`` FP32
``[n, dim]``, read from ``raw_output_contents`` or, if a server answers that way, from
``contents.fp32_contents``.

Usage::

    client = KServeClient("127.0.0.1:8001")
    await client.wait_ready(60)
    emb = await client.embed_texts("vitrine-text", ["red dress"])
    await client.close()
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_HERE = Path(__file__).resolve().parent
_PROTO = _HERE / "grpc_predict_v2.proto"
_REPO_ROOT = _HERE.parents[1]
_MODULE = "grpc_predict_v2"

TEXT_INPUT = "text"
IMAGE_INPUT = "image"
OUTPUT = "embedding"

_NP_DTYPES = {
    "FP32": np.float32,
    "FP16": np.float16,
    "FP64": np.float64,
    "INT64": np.int64,
    "INT32": np.int32,
    "UINT8": np.uint8,
}
_CONTENTS_FIELDS = {
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT64": "int64_contents",
    "INT32": "int_contents",
}
_MAX_MESSAGE = 256 * 1024 * 1024


def _descriptor_set() -> bytes:
    """``grpc_predict_v2.proto`` compiled by grpc_tools.protoc, cached under .cache/kserve_stubs."""
    from importlib.metadata import version

    import google.protobuf

    key = hashlib.sha256(
        _PROTO.read_bytes()
        + google.protobuf.__version__.encode()
        + version("grpcio-tools").encode()
    ).hexdigest()[:16]
    base = Path(os.environ.get("KSERVE_STUBS_DIR", _REPO_ROOT / ".cache" / "kserve_stubs"))
    out = base / key / f"{_MODULE}.desc"
    if out.exists():
        return out.read_bytes()
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=base))
    try:
        from grpc_tools import protoc

        rc = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{_HERE}",
                f"--descriptor_set_out={tmp / out.name}",
                str(_PROTO),
            ]
        )
        if rc != 0:
            raise RuntimeError(f"grpc_tools.protoc failed on {_PROTO} (exit {rc})")
        try:
            tmp.rename(out.parent)  # atomic; a concurrent importer may have won the race
        except OSError:
            if not out.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out.read_bytes()


def _load_messages() -> SimpleNamespace:
    # A private descriptor pool, not protobuf's default one: tritonclient and mlserver register
    # their own `inference.*` messages there, and a second definition of the same names in the
    # default pool fails ("duplicate symbol") if this client shares a process with either.
    fds = descriptor_pb2.FileDescriptorSet.FromString(_descriptor_set())
    pool = descriptor_pool.DescriptorPool()
    for file_proto in fds.file:
        pool.Add(file_proto)
    classes = message_factory.GetMessages(list(fds.file), pool=pool)
    ns = SimpleNamespace(pool=pool)
    for full_name, cls in classes.items():
        if full_name.count(".") == 1:  # top-level messages; nested ones hang off their parent
            setattr(ns, full_name.split(".", 1)[1], cls)
    return ns


pb2 = _load_messages()
_SERVICE = "/inference.GRPCInferenceService/"


class _Stub:
    """The unary calls of GRPCInferenceService on a grpc.aio channel."""

    def __init__(self, channel: grpc.aio.Channel):
        def call(method: str, req: Any, resp: Any):
            return channel.unary_unary(
                _SERVICE + method,
                request_serializer=req.SerializeToString,
                response_deserializer=resp.FromString,
            )

        self.ServerLive = call("ServerLive", pb2.ServerLiveRequest, pb2.ServerLiveResponse)
        self.ServerReady = call("ServerReady", pb2.ServerReadyRequest, pb2.ServerReadyResponse)
        self.ModelReady = call("ModelReady", pb2.ModelReadyRequest, pb2.ModelReadyResponse)
        self.ModelInfer = call("ModelInfer", pb2.ModelInferRequest, pb2.ModelInferResponse)


def pack_bytes(items: Iterable[bytes]) -> bytes:
    """Serialise a BYTES tensor: per element, a uint32 little-endian length then the bytes."""
    parts: list[bytes] = []
    for item in items:
        parts.append(struct.pack("<I", len(item)))
        parts.append(item)
    return b"".join(parts)


def unpack_bytes(raw: bytes) -> list[bytes]:
    """Inverse of :func:`pack_bytes`."""
    out, off = [], 0
    while off < len(raw):
        (n,) = struct.unpack_from("<I", raw, off)
        off += 4
        out.append(bytes(raw[off : off + n]))
        off += n
    return out


def decode_output(response: Any, name: str = OUTPUT) -> np.ndarray:
    """The named output tensor of a ``ModelInferResponse`` as a numpy array."""
    for idx, out in enumerate(response.outputs):
        if out.name != name:
            continue
        dtype = _NP_DTYPES.get(out.datatype)
        if dtype is None:
            raise ValueError(f"unsupported output datatype {out.datatype!r}")
        shape = tuple(int(d) for d in out.shape)
        if response.raw_output_contents:
            arr = np.frombuffer(response.raw_output_contents[idx], dtype=dtype)
        else:
            field = _CONTENTS_FIELDS.get(out.datatype)
            if field is None:
                raise ValueError(f"no typed contents field for {out.datatype!r}")
            arr = np.asarray(getattr(out.contents, field), dtype=dtype)
        return arr.reshape(shape)
    names = [o.name for o in response.outputs]
    raise KeyError(f"output {name!r} not in response (got {names})")


class KServeClient:
    """Async KServe v2 gRPC client (grpc.aio); one channel per client, created lazily."""

    def __init__(self, target: str, *, timeout: float | None = 60.0):
        self.target = target
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    def _get_stub(self) -> Any:
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(
                self.target,
                options=[
                    ("grpc.max_send_message_length", _MAX_MESSAGE),
                    ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ],
            )
            self._stub = _Stub(self._channel)
        return self._stub

    async def server_ready(self) -> bool:
        resp = await self._get_stub().ServerReady(pb2.ServerReadyRequest(), timeout=5)
        return bool(resp.ready)

    async def model_ready(self, model: str, version: str = "") -> bool:
        resp = await self._get_stub().ModelReady(
            pb2.ModelReadyRequest(name=model, version=version), timeout=5
        )
        return bool(resp.ready)

    async def wait_ready(
        self, timeout: float = 120.0, models: Iterable[str] = ("vitrine-text", "vitrine-image")
    ) -> None:
        """Poll ServerReady and ModelReady for ``models`` until all are ready or ``timeout``."""
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        models = list(models)
        while True:
            try:
                if await self.server_ready() and all([await self.model_ready(m) for m in models]):
                    return
                last = None
            except grpc.aio.AioRpcError as exc:
                last = exc
            if time.monotonic() >= deadline:
                detail = f": {last.code().name} {last.details()}" if last else ""
                raise TimeoutError(f"{self.target} not ready after {timeout:.0f}s{detail}")
            await asyncio.sleep(0.25)

    async def infer_bytes(
        self, model: str, input_name: str, items: list[bytes], output: str = OUTPUT
    ) -> np.ndarray:
        """One request with a BYTES tensor ``[n, 1]`` named ``input_name``; returns ``output``."""
        if not items:
            raise ValueError("empty batch")
        request = pb2.ModelInferRequest(
            model_name=model,
            inputs=[
                pb2.ModelInferRequest.InferInputTensor(
                    name=input_name, datatype="BYTES", shape=[len(items), 1]
                )
            ],
            outputs=[pb2.ModelInferRequest.InferRequestedOutputTensor(name=output)],
            raw_input_contents=[pack_bytes(items)],
        )
        response = await self._get_stub().ModelInfer(request, timeout=self.timeout)
        return decode_output(response, output)

    async def embed_texts(self, model: str, texts: list[str]) -> np.ndarray:
        """Embeddings ``float32 [len(texts), dim]`` for UTF-8 ``texts``."""
        return await self.infer_bytes(model, TEXT_INPUT, [t.encode("utf-8") for t in texts])

    async def embed_images(self, model: str, images: list[bytes]) -> np.ndarray:
        """Embeddings ``float32 [len(images), dim]`` for encoded images (JPEG/PNG/WebP bytes)."""
        return await self.infer_bytes(model, IMAGE_INPUT, [bytes(b) for b in images])

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = None
        self._stub = None

    async def __aenter__(self) -> KServeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
