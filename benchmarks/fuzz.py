"""Fuzz the services with malformed requests: every answer a clear status, no crash, healthy after.

    python benchmarks/fuzz.py                       # tiny models made in a temp dir, 10,000 requests
    python benchmarks/fuzz.py --requests 2000 --seed 3 --concurrency 8
    python benchmarks/fuzz.py --models models       # a real model repository
    python benchmarks/fuzz.py --auth                # the gateway with an API-key file (gateway.auth)
    python benchmarks/fuzz.py --only 1792 --dump out.jsonl      # replay one request, every outcome
    python benchmarks/fuzz.py --skip-rpc index.CreateCollection --categories bad_token,nan_inf

Starts a real stack on 127.0.0.1, port 0, as subprocesses (``vitrine serve``): the encoder (tiny
text/image towers, reranker, captioner and composer published in a temp dir by
``tests/support``, or ``--models DIR``), two index processes (the product collection's shards
split between them) and the gateway. It ingests a few catalog products, then sends
``--requests`` malformed requests, the categories mixed evenly (request ``i`` has category
``i mod 18``) and each one reproducible from ``--seed`` and ``i``, to every RPC of the public
``SearchService`` (weighted 3x) and of the internal ``EncoderService`` and ``IndexService``:

random/truncated/odd images and decompression-bomb headers, empty fields and elements,
huge/negative/extreme integers, NaN/Inf floats and vectors, wrong vector byte lengths and shapes,
batches over the limits, wrong payload sizes and oversized images/messages, unknown enum values,
very long and odd strings, invalid UTF-8 in string fields (raw wire bytes), malformed filters
(deep, wide, empty nodes, wrong types), unknown collection names, garbage protobuf wire bytes,
bad API tokens (missing, garbage, truncated, non-ASCII, huge, wrong scope), odd metadata, and tiny
deadlines or cancellations.

Every answer is classified: OK or a "clear" status (INVALID_ARGUMENT with a message, NOT_FOUND,
UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, OUT_OF_RANGE,
ALREADY_EXISTS; DEADLINE_EXCEEDED/CANCELLED only where the request set a tiny deadline or
cancelled on purpose). Anything else — UNKNOWN, INTERNAL, UNAVAILABLE, an empty
INVALID_ARGUMENT message, a response that does not parse — is "unclear"; an OK answer carrying
NaN/Inf is "bad_output"; a server process that exits is a crash. Batch answers (per-product
statuses) are held to the same rule item by item. Not failures, but counted: "client_lost" (the
grpc.aio client reports INTERNAL "Internal error from Core" of its own when the server ends a
client stream while requests are still being written: the server's status never reaches it) and
"client_rejected" (the client library refused to send the request). With an API-key file, a bad
token sent to the gateway must end UNAUTHENTICATED (PERMISSION_DENIED for a key without the
scope): anything else is "unexpected". Afterwards every process must still run, answer gRPC
health ``""`` SERVING, serve ``/metrics``, and a normal search must find an ingested product.

Prints a table (RPC x category, counts by code), the failures with examples, the servers'
logged errors, the slowest answers (a tiny request that costs seconds is a denial of service
waiting to happen; those over 2 s are counted), then one JSON line. Exit status 1 on any crash, unclear, unexpected or bad output,
or an unhealthy stack.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import io
import json
import math
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from google.protobuf import message_factory  # noqa: E402
from google.protobuf.descriptor import FieldDescriptor as FD  # noqa: E402

from vitrine.v1 import common_pb2, encoder_pb2, gateway_pb2, index_pb2  # noqa: E402

CLEAR = frozenset(
    {
        "OK",
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "OUT_OF_RANGE",
        "ALREADY_EXISTS",
    }
)
CATEGORIES = (
    "random_image",
    "truncated_image",
    "bomb_image",
    "empty_fields",
    "huge_numbers",
    "nan_inf",
    "bad_vectors",
    "oversized_batch",
    "wrong_payload",
    "unknown_enum",
    "long_strings",
    "invalid_utf8",
    "malformed_filter",
    "unknown_collection",
    "garbage_wire",
    "bad_token",
    "bad_metadata",
    "tiny_deadline",
)
SERVICES = {
    "gateway": gateway_pb2.DESCRIPTOR.services_by_name["SearchService"],
    "encoder": encoder_pb2.DESCRIPTOR.services_by_name["EncoderService"],
    "index": index_pb2.DESCRIPTOR.services_by_name["IndexService"],
}
SERVICE_WEIGHT = {"gateway": 3.0, "encoder": 1.0, "index": 1.0}
PRODUCTS = "products"  # the gateway's collection: read-only for the fuzzer
FUZZ_COLLECTION = "fuzzc"  # a collection of its own on each index process, for fuzzed writes
FUZZ_PAYLOAD = 16  # its payload_bytes
FUZZ_DIM = 8
PROTECTED_COLLECTIONS = (PRODUCTS, FUZZ_COLLECTION)
NORMAL_TIMEOUT = 60.0
SLOW_S = 2.0  # answers slower than this are listed (a tiny input that costs seconds is a DoS)


# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict
    log: Path
    proc: subprocess.Popen | None = None
    info: dict = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.info['port']}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Stack:
    """Encoder, two index processes and the gateway as ``vitrine serve`` subprocesses."""

    def __init__(self, models: Path, workdir: Path, keys_file: Path | None = None):
        self.models = models
        self.workdir = workdir
        self.keys_file = keys_file
        self.procs: dict[str, Proc] = {}
        self.auth = False

    def _spawn(self, name: str, args: list[str], env: dict | None = None) -> Proc:
        ready = self.workdir / f"{name}.ready.json"
        ready.unlink(missing_ok=True)
        p = Proc(
            name,
            [
                sys.executable,
                "-m",
                "vitrine.cli",
                *args,
                "--port",
                "0",
                "--metrics-port",
                "0",
                "--ready-file",
                str(ready),
            ],
            {
                **os.environ,
                "VITRINE_LOG_FORMAT": "json",
                "VITRINE_LOG_LEVEL": "info",
                "PYTHONFAULTHANDLER": "1",  # a native crash logs its Python stack
                **(env or {}),
            },
            self.workdir / f"{name}.log",
        )
        p.info["ready_file"] = ready
        log = open(p.log, "ab")  # noqa: SIM115 - owned by the child
        p.proc = subprocess.Popen(p.args, cwd=ROOT, env=p.env, stdout=log, stderr=log)
        log.close()
        self.procs[name] = p
        return p

    def _wait(self, procs: list[Proc], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        for p in procs:
            ready = p.info["ready_file"]
            while not ready.exists():
                if p.proc.poll() is not None:
                    raise RuntimeError(f"{p.name} exited during start-up:\n{self.log_tail(p.name)}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{p.name} not ready after {timeout} s")
                time.sleep(0.05)
            p.info.update(json.loads(ready.read_text()))

    def start(self) -> Stack:
        import shutil

        for name in ("index-a", "index-b"):  # a fresh stack, also in a reused --workdir
            shutil.rmtree(self.workdir / name, ignore_errors=True)
        for log in self.workdir.glob("*.log"):
            log.unlink()
        try:
            enc = self._spawn(
                "encoder",
                ["serve", "encoder", "--models", str(self.models), "--intra-op-threads", "1"],
                {"VITRINE_DECODE_WORKERS": "2"},
            )
            idx = [
                self._spawn(
                    f"index-{s}",
                    ["serve", "index", "--data-dir", str(self.workdir / f"index-{s}")],
                    {"VITRINE_FSYNC": "false", "VITRINE_SEARCH_THREADS": "2"},
                )
                for s in "ab"
            ]
            self._wait([enc, *idx])
            cfg = {
                "index_spec": "Flat",
                "num_shards": 4,
                "default_timeout_s": 10.0,
                "ingest_timeout_s": 60.0,
            }
            if self.keys_file is not None:
                from gateway.config import GatewayConfig

                if "api_keys_file" in {f.name for f in dataclasses.fields(GatewayConfig)}:
                    cfg["api_keys_file"] = str(self.keys_file)
                    self.auth = True
                else:
                    print(
                        "fuzz: this gateway has no api_keys_file setting: running without auth",
                        file=sys.stderr,
                    )
            gw_yaml = self.workdir / "gateway.yaml"
            gw_yaml.write_text(json.dumps(cfg))  # JSON is YAML
            args = ["serve", "gateway", "--config", str(gw_yaml), "--encoder", enc.target]
            for p in idx:
                args += ["--index", p.target]
            self._wait([self._spawn("gateway", args)])
        except BaseException:
            self.stop()
            raise
        return self

    def target(self, name: str) -> str:
        return self.procs[name].target

    def log_tail(self, name: str, chars: int = 3000) -> str:
        try:
            return self.procs[name].log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        for name in ("gateway", "index-b", "index-a", "encoder"):
            p = self.procs.get(name)
            if p and p.alive:
                p.proc.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            if p.proc is None:
                continue
            try:
                p.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait(10)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def make_tiny_models(repo: Path, products) -> None:
    """The tiny test models (tests/support) under the default names the gateway asks for."""
    from tests.support.tiny_models import publish_image, publish_rerank, publish_text

    publish_text(repo, "vitrine-text", dim=16)
    publish_image(repo, "vitrine-image", dim=16, payload_width=8)
    publish_rerank(
        repo,
        "vitrine-rerank",
        payload_width=8,
        text_model="vitrine-text/1",
        image_model="vitrine-image/1",
    )
    try:  # these two export through torch: optional where the training extras are missing
        from tests.support.tiny_caption import publish_caption
        from tests.support.tiny_compose import publish_compose

        publish_caption(repo, products)
        publish_compose(repo, dim=16, text_model="vitrine-text/1", image_model="vitrine-image/1")
    except ImportError as exc:  # pragma: no cover
        print(f"fuzz: no tiny caption/compose models ({exc})", file=sys.stderr)


def make_keys_file(path: Path) -> dict[str, str] | None:
    """An API-key file with an admin key (no rate limit) and two single-scope keys."""
    try:
        from gateway import auth
    except ImportError:
        print(
            "fuzz: --auth: gateway.auth does not exist here: running without auth", file=sys.stderr
        )
        return None
    return {
        "admin": auth.create_key(path, "fuzz-admin", ["admin"], rate_per_s=0),
        "search": auth.create_key(path, "fuzz-search", ["search"], rate_per_s=0),
        "write": auth.create_key(path, "fuzz-write", ["write"], rate_per_s=0),
    }


# --------------------------------------------------------------------------------------------
# What the generators know about the stack
# --------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    photos: list[bytes]
    odd_images: list[tuple[str, bytes]]
    words: list[str]
    seed_ids: list[str]
    models: dict[str, dict]  # role -> {name, dim, max_batch, payload_width, versions}
    product_dim: int
    keys: dict[str, str] | None = None  # admin/search/write keys when the gateway checks them
    limits: dict = field(default_factory=dict)
    bomb_cache: dict = field(default_factory=dict)

    @property
    def auth(self) -> bool:
        return bool(self.keys)

    def md(self) -> tuple:
        return (("authorization", f"Bearer {self.keys['admin']}"),) if self.keys else ()

    def model(self, role: str) -> dict:
        return self.models.get(role) or {
            "name": f"vitrine-{role}",
            "dim": 16,
            "max_batch": 32,
            "payload_width": 8,
            "versions": [],
        }


DEFAULT_LIMITS = {
    "gateway_max_k": 1000,
    "gateway_max_products": 1000,
    "gateway_max_rerank": 200,
    "gateway_text_chars": 2048,
    "encoder_max_rerank": 200,
    "encoder_text_chars": 8192,
    "encoder_image_bytes": 10 * 1024 * 1024,
    "index_max_k": 1024,
    "index_max_queries": 1024,
    "index_max_records": 10_000,
    "index_max_payload": 64 * 1024,
}


def odd_images() -> list[tuple[str, bytes]]:
    """Valid but unusual images (sizes, modes, formats), made with Pillow."""
    from PIL import Image

    out = []

    def save(name, img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        out.append((name, buf.getvalue()))

    rng = random.Random(0)
    noise = bytes(rng.getrandbits(8) for _ in range(64 * 64 * 3))
    rgb = Image.frombytes("RGB", (64, 64), noise)
    save("1x1 png", Image.new("RGB", (1, 1), (255, 0, 0)), "PNG")
    save("1x4000 png", Image.new("L", (1, 4000), 7), "PNG")
    save("4000x1 jpeg", Image.new("RGB", (4000, 1), (0, 9, 200)), "JPEG")
    save("grayscale jpeg", rgb.convert("L"), "JPEG")
    save("cmyk jpeg", rgb.convert("CMYK"), "JPEG")
    save("progressive jpeg", rgb, "JPEG", progressive=True, quality=20)
    save("rgba png", rgb.convert("RGBA"), "PNG")
    save("palette png", rgb.convert("P"), "PNG", transparency=0)
    save("16-bit png", rgb.convert("L").convert("I;16"), "PNG")
    save("1-bit png", rgb.convert("1"), "PNG")
    save("lossless webp", rgb, "WEBP", lossless=True)
    save("animated webp", rgb, "WEBP", save_all=True, append_images=[rgb.rotate(90)])
    save("gif", rgb, "GIF")
    save("bmp", rgb, "BMP")
    save("tiff", rgb, "TIFF")
    save("ico", rgb, "ICO")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    save("exif-rotated jpeg", rgb, "JPEG", exif=exif.tobytes())
    return out


# --------------------------------------------------------------------------------------------
# Protobuf helpers: wire encoding and descriptor walking
# --------------------------------------------------------------------------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(num: int, wire: int) -> bytes:
    return varint((num << 3) | wire)


def ld(num: int, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes, sub-message)."""
    return tag(num, 2) + varint(len(payload)) + payload


def is_repeated(fd) -> bool:
    rep = getattr(fd, "is_repeated", None)  # protobuf >= 6; ``label`` is gone from newer ones
    return bool(rep) if rep is not None else fd.label == FD.LABEL_REPEATED


def is_map(fd) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def msg_class(descriptor):
    return message_factory.GetMessageClass(descriptor)


def fields_where(msg, pred: Callable, depth: int = 0, out=None) -> list:
    """(container message, field descriptor) pairs of the *set* parts of ``msg`` where
    ``pred(fd)``; recurses into set sub-messages, repeated sub-messages and map values."""
    out = [] if out is None else out
    if depth > 8:
        return out
    for fd in msg.DESCRIPTOR.fields:
        unset_message = (
            fd.message_type is not None and not is_repeated(fd) and not msg.HasField(fd.name)
        )
        if pred(fd) and not unset_message:
            out.append((msg, fd))
        if fd.message_type is None:
            continue
        if is_map(fd):
            vfd = fd.message_type.fields_by_name["value"]
            if vfd.message_type is not None:
                for v in getattr(msg, fd.name).values():
                    fields_where(v, pred, depth + 1, out)
        elif is_repeated(fd):
            for v in getattr(msg, fd.name):
                fields_where(v, pred, depth + 1, out)
        elif msg.HasField(fd.name):
            fields_where(getattr(msg, fd.name), pred, depth + 1, out)
    return out


def type_has(descriptor, pred: Callable, seen=None) -> bool:
    """Whether a message type (recursively) has a field where ``pred(fd)``."""
    seen = set() if seen is None else seen
    if descriptor.full_name in seen:
        return False
    seen.add(descriptor.full_name)
    for fd in descriptor.fields:
        if pred(fd):
            return True
        if fd.message_type is not None and type_has(fd.message_type, pred, seen):
            return True
    return False


def string_paths(descriptor, prefix=(), depth=0) -> list[tuple]:
    """Field-number paths to every string field (map keys included), a few levels deep."""
    out = []
    if depth > 4:
        return out
    for fd in descriptor.fields:
        if fd.type == FD.TYPE_STRING:
            out.append((*prefix, fd.number))
        elif fd.message_type is not None:
            out += string_paths(fd.message_type, (*prefix, fd.number), depth + 1)
    return out


def set_scalar(msg, fd, values: list) -> None:
    """Set a scalar field: one value, or the whole list for a repeated one."""
    if is_repeated(fd):
        f = getattr(msg, fd.name)
        del f[:]
        f.extend(values)
    else:
        setattr(msg, fd.name, values[0])


INT_TYPES = {FD.TYPE_INT32, FD.TYPE_INT64, FD.TYPE_SINT32, FD.TYPE_SINT64, FD.TYPE_UINT32}
FLOAT_TYPES = {FD.TYPE_FLOAT, FD.TYPE_DOUBLE}
IMAGE_FIELDS = ("image", "images")
PAYLOAD_FIELDS = ("payload", "query_payload")


def is_image_fd(fd) -> bool:
    return fd.type == FD.TYPE_BYTES and fd.name in IMAGE_FIELDS


def is_tensor_fd(fd) -> bool:
    return fd.message_type is not None and fd.message_type.full_name == "vitrine.v1.Tensor"


def is_vector_fd(fd) -> bool:
    return fd.type == FD.TYPE_BYTES and fd.name == "vector"


def is_filter_fd(fd) -> bool:
    return fd.message_type is not None and fd.message_type.full_name == "vitrine.v1.Filter"


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


@dataclass
class Rpc:
    service: str
    name: str
    path: str
    request: type
    response: type
    client_streaming: bool
    server_streaming: bool


def all_rpcs() -> list[Rpc]:
    out = []
    for service, sd in SERVICES.items():
        for m in sd.methods:
            out.append(
                Rpc(
                    service,
                    m.name,
                    f"/{sd.full_name}/{m.name}",
                    msg_class(m.input_type),
                    msg_class(m.output_type),
                    m.client_streaming,
                    m.server_streaming,
                )
            )
    return out


@dataclass
class Spec:
    idx: int
    rpc: Rpc
    target: str  # process name
    category: str
    variant: str
    payload: bytes | list[bytes]  # serialized request; a list for client streams
    metadata: tuple = ()
    timeout: float = NORMAL_TIMEOUT
    cancel_after: float | None = None
    expect: frozenset | None = None  # codes the answer must be in (beside being clear)
    allow: frozenset = frozenset()  # non-clear codes this request may get on purpose

    @property
    def label(self) -> str:
        return f"{self.rpc.service}.{self.rpc.name}"

    def describe(self) -> str:
        size = (
            sum(len(p) for p in self.payload)
            if isinstance(self.payload, list)
            else len(self.payload)
        )
        return f"{self.label} [{self.category}: {self.variant}] #{self.idx} ({size} B)"


def words(rng, ctx: Ctx, n: int) -> str:
    return " ".join(rng.choice(ctx.words) for _ in range(n))


def fz_id(rng) -> str:
    return f"fz-{rng.getrandbits(40):010x}"


def unit_vector_bytes(rng, dim: int, rows: int = 1) -> bytes:
    out = []
    for _ in range(rows):
        v = [rng.gauss(0, 1) for _ in range(dim)]
        n = math.sqrt(sum(x * x for x in v)) or 1.0
        out.append(struct.pack(f"<{dim}f", *(x / n for x in v)))
    return b"".join(out)


def tensor(rng, rows: int, dim: int) -> common_pb2.Tensor:
    return common_pb2.Tensor(data=unit_vector_bytes(rng, dim, rows), shape=[rows, dim])


def attrs(rng, ctx: Ctx) -> dict:
    from index_service.attributes import attrs_to_pb

    a = {"gender": rng.choice(["Men", "Women", "Unisex"]), "price": rng.choice([9.5, 20, 120.0])}
    if rng.random() < 0.3:
        a["tags"] = [words(rng, ctx, 1), words(rng, ctx, 1)]
    if rng.random() < 0.3:
        a["in_stock"] = rng.random() < 0.5
    return attrs_to_pb(a)


def small_filter(rng) -> common_pb2.Filter:
    from vitrine.filters import all_of, between, eq, is_in, not_

    return rng.choice(
        [
            lambda: eq("gender", "Women"),
            lambda: is_in("baseColour", ["Blue", "Navy Blue"]),
            lambda: all_of(eq("gender", "Men"), not_(eq("baseColour", "Black"))),
            lambda: between("price", gte=1, lt=500),
        ]
    )()


def product(rng, ctx: Ctx, image_p: float = 0.2) -> gateway_pb2.Product:
    p = gateway_pb2.Product(id=fz_id(rng), title=words(rng, ctx, rng.randint(2, 6)))
    for k, v in attrs(rng, ctx).items():
        p.attributes[k].CopyFrom(v)
    if rng.random() < image_p:
        p.image = rng.choice(ctx.photos)
    return p


def record(rng, ctx: Ctx, dim: int = FUZZ_DIM) -> index_pb2.Record:
    r = index_pb2.Record(id=fz_id(rng), vector=unit_vector_bytes(rng, dim))
    for k, v in attrs(rng, ctx).items():
        r.attributes[k].CopyFrom(v)
    if rng.random() < 0.5:
        r.payload = rng.randbytes(FUZZ_PAYLOAD)
    if rng.random() < 0.5:
        r.text = words(rng, ctx, 4)
    return r


def index_target(rng) -> str:
    return rng.choice(["index-a", "index-b"])


def base_request(rng, rpc: Rpc, ctx: Ctx):
    """A valid (or nearly valid) request of ``rpc``: what the categories then break. For a
    client stream, a list of messages."""
    s, n = rpc.service, rpc.name
    text_m, image_m = ctx.model("text"), ctx.model("image")
    if s == "gateway":
        if n == "Search":
            r = gateway_pb2.SearchRequest(k=rng.randint(1, 30))
            kind = rng.random()
            if kind < 0.5:
                r.text = words(rng, ctx, rng.randint(1, 4))
            elif kind < 0.8:
                r.image = rng.choice(ctx.photos)
            else:
                r.text = words(rng, ctx, 2)
                r.image = rng.choice(ctx.photos)
                if rng.random() < 0.5:
                    r.weights.text_weight, r.weights.image_weight = 0.3, 0.7
            if rng.random() < 0.3:
                r.filter.CopyFrom(small_filter(rng))
            if rng.random() < 0.3:
                r.page_size = rng.randint(1, 10)
            r.include_attributes = rng.random() < 0.5
            r.rerank = rng.choice([0, 1, 2])
            if r.image and rng.random() < 0.3:
                r.describe_query = True
            if r.text and not r.image and rng.random() < 0.5:
                r.retrieval_mode = rng.choice([1, 2, 3])
            return r
        if n == "UpsertProducts":
            return gateway_pb2.UpsertProductsRequest(
                products=[product(rng, ctx) for _ in range(rng.randint(1, 3))],
                fill_missing=rng.random() < 0.2,
            )
        if n == "IngestProducts":
            return [
                gateway_pb2.IngestProductsRequest(
                    products=[product(rng, ctx, 0.1) for _ in range(rng.randint(1, 2))]
                )
                for _ in range(rng.randint(1, 3))
            ]
        if n == "DeleteProducts":
            return gateway_pb2.DeleteProductsRequest(
                ids=[fz_id(rng) for _ in range(rng.randint(1, 3))]
            )
        if n == "Describe":
            return gateway_pb2.DescribeRequest(image=rng.choice(ctx.photos), beam=rng.randint(0, 2))
        if n == "GetFacets":
            return facets_request(rng, gateway_pb2.GetFacetsRequest())
    if s == "encoder":
        if n == "EmbedText":
            return encoder_pb2.EmbedTextRequest(
                model=text_m["name"], texts=[words(rng, ctx, 3) for _ in range(rng.randint(1, 4))]
            )
        if n == "EmbedImages":
            return encoder_pb2.EmbedImagesRequest(
                model=image_m["name"],
                images=[rng.choice(ctx.photos) for _ in range(rng.randint(1, 2))],
                include_payloads=bool(image_m.get("payload_width")) and rng.random() < 0.5,
            )
        if n == "GetModelInfo":
            return encoder_pb2.GetModelInfoRequest(
                model=rng.choice(["", text_m["name"], image_m["name"]])
            )
        if n == "LoadModel":  # version 0 of a loaded model: "already loaded"
            return encoder_pb2.LoadModelRequest(model=rng.choice([text_m["name"], image_m["name"]]))
        if n == "UnloadModel":  # never a loaded model (see safe())
            return encoder_pb2.UnloadModelRequest(model="fz-no-model", version=rng.randint(0, 3))
        if n == "Rerank":
            m = ctx.model("rerank")
            width = m.get("payload_width") or 8
            r = encoder_pb2.RerankRequest(model=m["name"])
            if rng.random() < 0.6:
                r.query_text = words(rng, ctx, 3)
            else:
                r.query_payload = rng.randbytes(2 * width)
            if rng.random() < 0.2:
                r.query_text = words(rng, ctx, 2)
                r.text_weight, r.image_weight = 0.5, 0.5
            for _ in range(rng.randint(1, 5)):
                r.candidates.add(
                    payload=rng.randbytes(2 * width),
                    title=words(rng, ctx, 4),
                    retrieval_score=rng.uniform(-1, 1),
                )
            return r
        if n == "Generate":
            return encoder_pb2.GenerateRequest(
                model=ctx.model("caption")["name"],
                images=[rng.choice(ctx.photos)],
                beam=rng.randint(0, 2),
            )
        if n == "Compose":
            m = ctx.model("compose")
            rows = rng.randint(1, 3)
            return encoder_pb2.ComposeRequest(
                model=m["name"],
                image_embeddings=tensor(rng, rows, m["dim"]),
                text_embeddings=tensor(rng, rows, m["dim"]),
            )
    if s == "index":
        coll = rng.choice([PRODUCTS, FUZZ_COLLECTION])
        if n == "CreateCollection":  # an existing name: valid settings end ALREADY_EXISTS
            return index_pb2.CreateCollectionRequest(
                name=FUZZ_COLLECTION,
                dim=FUZZ_DIM,
                metric=index_pb2.METRIC_INNER_PRODUCT,
                index_spec=rng.choice(["Flat", "HNSW16", "IVF4,Flat", ""]),
                num_shards=rng.randint(0, 4),
                payload_bytes=rng.choice([0, FUZZ_PAYLOAD]),
            )
        if n == "ListCollections":
            return index_pb2.ListCollectionsRequest()
        if n == "DescribeCollection":
            return index_pb2.DescribeCollectionRequest(name=coll)
        if n == "DropCollection":  # never an existing one (see safe())
            return index_pb2.DropCollectionRequest(name="fz-no-collection")
        if n == "Upsert":
            return index_pb2.UpsertRequest(
                collection=FUZZ_COLLECTION,
                records=[record(rng, ctx) for _ in range(rng.randint(1, 3))],
            )
        if n == "Delete":
            return index_pb2.DeleteRequest(
                collection=FUZZ_COLLECTION, ids=[fz_id(rng) for _ in range(rng.randint(1, 3))]
            )
        if n == "Get":
            ids = [fz_id(rng), *rng.sample(ctx.seed_ids, min(2, len(ctx.seed_ids)))]
            return index_pb2.GetRequest(
                collection=coll,
                ids=ids,
                include_vectors=rng.random() < 0.5,
                include_payloads=rng.random() < 0.5,
            )
        if n == "Count":
            return index_pb2.CountRequest(collection=coll)
        if n == "GetStats":
            return index_pb2.GetStatsRequest(collection=coll)
        if n == "Facets":
            return facets_request(rng, index_pb2.IndexServiceFacetsRequest(collection=coll))
        if n == "Search":
            dim = ctx.product_dim if coll == PRODUCTS else FUZZ_DIM
            r = index_pb2.IndexServiceSearchRequest(collection=coll, k=rng.randint(1, 20))
            if rng.random() < 0.7:
                r.queries.CopyFrom(tensor(rng, rng.randint(1, 2), dim))
            else:
                r.text_queries.extend(words(rng, ctx, 2) for _ in range(rng.randint(1, 2)))
            if rng.random() < 0.3:
                r.filter.CopyFrom(small_filter(rng))
            r.include_attributes = rng.random() < 0.5
            r.include_payloads = rng.random() < 0.3
            return r
    msg = rpc.request()  # an RPC added since this was written: its empty request
    return [msg] if rpc.client_streaming else msg


def facets_request(rng, r):
    """A plausible facets request (gateway's or index's: the same fields) filled in ``r``."""
    r.limit = rng.randint(0, 50)
    if rng.random() < 0.5:
        r.fields.extend(rng.sample(["gender", "baseColour", "title", "price", "x"], 2))
    if rng.random() < 0.3:
        r.filter.CopyFrom(small_filter(rng))
    return r


def safe(rpc: Rpc, msgs: list, ctx: Ctx) -> None:
    """Keep the fuzzer from destroying the state the health check needs (in place)."""
    s, n = rpc.service, rpc.name
    seeds = set(ctx.seed_ids)
    for m in msgs:
        if s == "gateway" and n in ("UpsertProducts", "IngestProducts"):
            for p in m.products:
                if p.id in seeds:
                    p.id = "fz-" + p.id
        elif s == "gateway" and n == "DeleteProducts":
            kept = [i for i in m.ids if i not in seeds]
            del m.ids[:]
            m.ids.extend(kept)
        elif s == "encoder" and n == "UnloadModel":
            loaded = {m2["name"]: m2.get("versions", []) for m2 in ctx.models.values()}
            if m.model in loaded and (m.version == 0 or m.version in loaded[m.model]):
                m.version = 987654
        elif s == "encoder" and n == "LoadModel":
            pass  # loading is harmless (already loaded, or NOT_FOUND)
        elif s == "index" and n == "DropCollection":
            if m.name in PROTECTED_COLLECTIONS:
                m.name = "fz-no-collection"
        elif s == "index" and n in ("Upsert", "Delete"):
            if m.collection == PRODUCTS:
                m.collection = FUZZ_COLLECTION
        elif (
            s == "index"
            and n == "CreateCollection"
            and m.name not in PROTECTED_COLLECTIONS
            and m.num_shards > 2
        ):  # new collections come only from the unknown_collection category: keep them small
            m.num_shards = 2


# --------------------------------------------------------------------------------------------
# Malformed values
# --------------------------------------------------------------------------------------------

MAGIC = [
    b"\xff\xd8\xff\xe0",
    b"\x89PNG\r\n\x1a\n",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"%PDF-1.7\n",
    b"<svg xmlns='http://www.w3.org/2000/svg'>",
    b"PK\x03\x04",
    b"\x1f\x8b\x08",
    b"\x00\x00\x01\x00",
]
INVALID_UTF8 = [
    b"\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xc0\xaf",
    b"abc\x80def",
    b"\xe2\x82",
    b"\xfe\xfe\xff\xff",
]
ODD_STRINGS = [
    "",
    " ",
    "\t\n\r",
    "\x00",
    "a\x00b",
    "🙂" * 50,
    "\u202e\u200b\ufeff",
    "../../../../etc/passwd",
    "%s%n%x%d",
    "' OR 1=1 --",
    "${jndi:ldap://x}",
    "ﾟ･✿ヾ╲(｡◕‿◕｡)╱✿･ﾟ",
    "\U0010ffff",
    "vitrine-text/1",
    "products",
    "NaN",
    "-1",
]
SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 3.4e38, -3.4e38, 1e-45, -0.0, 1e308, -1e308]
INT32_EXTREMES = [-1, -(2**31), 2**31 - 1, 2**31 - 2, 10**9, -(10**9), 65537, 1025, 1001]
INT64_EXTREMES = [-1, -(2**63), 2**63 - 1, 2**40, -(2**40), 2**31]


def long_string(rng) -> str:
    n = rng.choice([3000, 10_000, 10_000, 100_000, 100_000, 100_000, 1_000_000])
    return rng.choice(["a", "é", "🙂", "ab ", "\u0301", "x\x00"]) * (n // 2)


def odd_string(rng) -> str:
    return long_string(rng) if rng.random() < 0.5 else rng.choice(ODD_STRINGS)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, idat: bytes, mode: int = 2, depth: int = 8) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width & 0xFFFFFFFF, height & 0xFFFFFFFF, depth, mode, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def jpeg_header(width: int, height: int) -> bytes:
    sof = struct.pack(">BHHB", 8, height & 0xFFFF, width & 0xFFFF, 3)
    sof += b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return (
        b"\xff\xd8"
        + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + b"\xff\xc0"
        + struct.pack(">H", len(sof) + 2)
        + sof
        + b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
        + b"\x00" * 64
        + b"\xff\xd9"
    )


def webp_vp8x(width: int, height: int) -> bytes:
    w, h = (width - 1) & 0xFFFFFF, (height - 1) & 0xFFFFFF
    vp8x = b"\x00\x00\x00\x00" + w.to_bytes(3, "little") + h.to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def bomb(rng, ctx: Ctx) -> tuple[str, bytes]:
    """An image whose header declares far more pixels than it carries (or than allowed)."""
    kind = rng.randrange(8)
    w, h = rng.choice(
        [(100_000, 100_000), (65_535, 65_535), (1, 2**31 - 1), (2**31 - 1, 1), (0, 0), (7000, 7000)]
    )
    if kind == 0:
        return f"png {w}x{h} tiny idat", png(w, h, zlib.compress(b"\x00" * 64))
    if kind == 1:
        return f"png {w}x{h} no idat", png(w, h, b"")[:-12]
    if kind == 2:
        return f"jpeg sof {w & 0xFFFF}x{h & 0xFFFF}", jpeg_header(w, h)
    if kind == 3:
        return f"webp vp8x {w}x{h}", webp_vp8x(min(w, 2**24), min(h, 2**24))
    if kind == 4:
        return f"gif {w & 0xFFFF}x{h & 0xFFFF}", (
            b"GIF89a" + struct.pack("<HH", w & 0xFFFF, h & 0xFFFF) + b"\x00\x00\x00;"
        )
    if kind == 5:  # a real zlib bomb: 8000x8000 grayscale zeros in ~60 KB (64 M pixels)
        if "zbomb" not in ctx.bomb_cache:
            row = b"\x00" + b"\x00" * 8000
            c = zlib.compressobj(9)
            data = b"".join(c.compress(row) for _ in range(8000)) + c.flush()
            ctx.bomb_cache["zbomb"] = png(8000, 8000, data, mode=0)
        return "png zlib bomb 8000x8000", ctx.bomb_cache["zbomb"]
    if kind == 6:  # inside the pixel limit but a big decode: 5000x5000 grayscale zeros
        if "zbig" not in ctx.bomb_cache:
            row = b"\x00" + b"\x00" * 5000
            c = zlib.compressobj(9)
            data = b"".join(c.compress(row) for _ in range(5000)) + c.flush()
            ctx.bomb_cache["zbig"] = png(5000, 5000, data, mode=0)
        return "png 5000x5000 zeros (25 M pixels)", ctx.bomb_cache["zbig"]
    return f"bmp {w}x{-h}", (
        b"BM"
        + struct.pack("<IHHI", 54, 0, 0, 54)
        + struct.pack("<IiiHHIIiiII", 40, w & 0x7FFFFFFF, -h, 1, 24, 0, 0, 0, 0, 0, 0)
    )


def random_image(rng, ctx: Ctx) -> tuple[str, bytes]:
    k = rng.randrange(7)
    n = int(math.exp(rng.uniform(0, math.log(65536))))
    if k == 0:
        return f"{n} random bytes", rng.randbytes(n)
    if k == 1:
        m = rng.choice(MAGIC)
        return f"magic {m[:4]!r} + {n} random bytes", m + rng.randbytes(n)
    if k == 2:
        return f"{n} zero bytes", b"\x00" * n
    if k == 3:
        return "text", b"not an image at all"
    if k == 4:
        return "invalid utf-8 bytes", rng.choice(INVALID_UTF8) * rng.randint(1, 50)
    if k == 5:
        return "one byte", bytes([rng.randrange(256)])
    return f"{n} random bytes with a jpeg end", rng.randbytes(n) + b"\xff\xd9"


def truncated_image(rng, ctx: Ctx) -> tuple[str, bytes]:
    photo = rng.choice(ctx.photos)
    k = rng.randrange(6)
    if k == 0:
        cut = rng.randrange(len(photo))
        return f"photo cut at {cut}/{len(photo)}", photo[:cut]
    if k == 1:
        cut = rng.choice([2, 4, 10, 20, 100, 300])
        return f"first {cut} bytes of a photo", photo[:cut]
    if k == 2:
        b = bytearray(photo)
        for _ in range(rng.randint(1, 40)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return "photo with flipped bytes", bytes(b)
    if k == 3:
        return "photo without its end marker", photo[:-2]
    if k == 4:
        good = png(4, 4, zlib.compress(b"\x00" + b"\x00" * 12))
        b = bytearray(good)
        b[29] ^= 0xFF  # the IHDR CRC
        return "png with a bad crc", bytes(b)
    name, data = rng.choice(ctx.odd_images)
    return f"odd but valid: {name}", data


def special_float_bytes(rng, n: int) -> bytes:
    vals = [rng.choice([math.nan, math.inf, -math.inf, 3.4e38]) for _ in range(n)]
    return struct.pack(f"<{n}f", *vals)


def deep_filter_wire(rng, depth: int) -> bytes:
    """A Filter nested ``depth`` levels (Not / And / Or), built as wire bytes."""
    inner = ld(1, ld(1, b"gender") + ld(2, ld(1, b"Men")))  # equals {field, value.string}
    for _ in range(depth):
        k = rng.randrange(3)
        if k == 0:
            inner = ld(6, ld(1, inner))  # negation { filter }
        elif k == 1:
            inner = ld(4, ld(1, inner))  # all_of { filters }
        else:
            inner = ld(5, ld(1, inner))  # any_of { filters }
    return inner


def malformed_filter(rng) -> tuple[str, object]:
    """A bad filter: a Filter message, or wire bytes for a deep one."""
    F = common_pb2.Filter
    V = common_pb2.AttributeValue
    k = rng.randrange(16)
    if k == 0:
        d = rng.choice([30, 64, 99, 101, 150, 1000, 5000])
        return f"nested {d} deep", deep_filter_wire(rng, d)
    if k == 1:
        n = rng.choice([1000, 5000, 20_000])
        f = F()
        for i in range(n):
            f.all_of.filters.add().equals.CopyFrom(
                F.Equals(field="gender", value=V(string_value=str(i)))
            )
        return f"all_of with {n} children", f
    if k == 2:
        f = F()
        f.all_of.filters.add()
        f.all_of.filters.add()
        return "all_of of empty filters", f
    if k == 3:
        f = F()
        f.negation.SetInParent()
        return "negation of nothing", f
    if k == 4:
        return "equals without a field or value", F(equals=F.Equals())
    if k == 5:
        return "equals without a value", F(equals=F.Equals(field="gender"))
    if k == 6:
        return "equals with an empty AttributeValue", F(equals=F.Equals(field="gender", value=V()))
    if k == 7:
        return "is_in with no values", F(is_in=F.In(field="gender"))
    if k == 8:
        n = rng.choice([10_000, 100_000])
        return f"is_in with {n} values", F(
            is_in=F.In(field="gender", values=[V(string_value=str(i)) for i in range(n)])
        )
    if k == 9:
        return "range without bounds", F(range=F.Range(field="price"))
    if k == 10:
        return "range gt > lt", F(range=F.Range(field="price", gt=100, lt=1))
    if k == 11:
        return "range on a string attribute", F(range=F.Range(field="gender", gte=1))
    if k == 12:
        return "equals a list value", F(
            equals=F.Equals(field="gender", value=V(list_value=common_pb2.StringList(values=["a"])))
        )
    if k == 13:
        return "equals price to a string", F(
            equals=F.Equals(field="price", value=V(string_value="x"))
        )
    if k == 14:
        return "range with NaN bounds", F(
            range=F.Range(field="price", gte=math.nan, lte=rng.choice([math.inf, math.nan]))
        )
    name = odd_string(rng)
    return f"odd field name ({len(name)} chars)", F(
        equals=F.Equals(field=name, value=V(bool_value=True))
    )


# --------------------------------------------------------------------------------------------
# Categories: each turns a base request into a malformed one
# --------------------------------------------------------------------------------------------


class NotApplicable(Exception):
    pass


def _one(rng, msgs: list):
    return rng.choice(msgs)


def _targets(msgs: list, pred) -> list:
    out = []
    for m in msgs:
        out += fields_where(m, pred)
    return out


def _set_bytes(rng, targets, make) -> str:
    msg, fd = rng.choice(targets)
    variant, data = make()
    if is_repeated(fd):
        f = getattr(msg, fd.name)
        if len(f) and rng.random() < 0.7:
            f[rng.randrange(len(f))] = data
        else:
            f.append(data)
    else:
        setattr(msg, fd.name, data)
    return f"{fd.name}: {variant}"


def cat_image(make):
    def apply(rng, rpc, msgs, ctx):
        targets = _targets(msgs, is_image_fd)
        if not targets:
            raise NotApplicable
        return _set_bytes(rng, targets, lambda: make(rng, ctx))

    return apply


def cat_empty_fields(rng, rpc, msgs, ctx):
    k = rng.randrange(4)
    if k == 0:
        for m in msgs:
            m.Clear()
        return "empty message"
    if k == 1:
        names = []
        for m in msgs:
            for fd, _ in m.ListFields():
                if rng.random() < 0.6:
                    m.ClearField(fd.name)
                    names.append(fd.name)
        return f"cleared {sorted(set(names))}"
    if k == 2:
        done = []
        for m in msgs:
            for fd in m.DESCRIPTOR.fields:
                if not is_repeated(fd) or is_map(fd):
                    continue
                f = getattr(m, fd.name)
                if fd.message_type is not None:
                    f.add()
                elif fd.type == FD.TYPE_STRING:
                    f.append("")
                elif fd.type == FD.TYPE_BYTES:
                    f.append(b"")
                else:
                    continue
                done.append(fd.name)
        if not done:
            for m in msgs:
                m.Clear()
            return "empty message"
        return f"an empty element in {sorted(set(done))}"
    targets = _targets(msgs, lambda fd: fd.type == FD.TYPE_STRING and not is_repeated(fd))
    for msg, fd in targets:
        setattr(msg, fd.name, rng.choice(["", " ", "\t\n"]))
    return "blank strings"


def cat_huge_numbers(rng, rpc, msgs, ctx):
    targets = _targets(msgs, lambda fd: fd.type in INT_TYPES)
    if rpc.service == "gateway" and rpc.name == "Search" and rng.random() < 0.3:
        m = msgs[0]
        o = rng.choice([-1, 2**70, 10**12, "x", None, 1.5])
        tok = json.dumps({"o": o, "q": "0" * 16, "r": rng.choice([0, -5, 2**40])})
        m.page_token = base64.urlsafe_b64encode(tok.encode()).decode().rstrip("=")
        m.page_size = rng.choice([0, 1, 2**31 - 1])
        return f"crafted page_token offset {o!r}"
    if not targets:
        raise NotApplicable
    names = []
    for msg, fd in rng.sample(targets, min(len(targets), rng.randint(1, 3))):
        pool = INT64_EXTREMES if fd.type in (FD.TYPE_INT64, FD.TYPE_SINT64) else INT32_EXTREMES
        if fd.type == FD.TYPE_UINT32:
            pool = [2**32 - 1, 2**31]
        if is_repeated(fd):
            vals = (
                [rng.choice(pool) for _ in range(rng.randint(1, 4))]
                if rng.random() < 0.8
                else list(range(20_000))
            )
        else:
            vals = [rng.choice(pool)]
        set_scalar(msg, fd, vals)
        names.append(f"{fd.name}={vals[0] if len(vals) == 1 else f'[{len(vals)} values]'}")
    return ", ".join(names)


def cat_nan_inf(rng, rpc, msgs, ctx):
    done = []
    floats = _targets(msgs, lambda fd: fd.type in FLOAT_TYPES)
    tensors = _targets(msgs, is_tensor_fd)
    vectors = _targets(msgs, is_vector_fd)
    for msg, fd in rng.sample(floats, min(len(floats), rng.randint(1, 3))):
        v = rng.choice(SPECIAL_FLOATS)
        set_scalar(msg, fd, [v] * (rng.randint(1, 3) if is_repeated(fd) else 1))
        done.append(f"{fd.name}={v}")
    for msg, fd in tensors:
        t = getattr(msg, fd.name)
        t.data = (
            special_float_bytes(rng, len(t.data) // 4) if t.data else struct.pack("<f", math.nan)
        )
        done.append(f"{fd.name} with NaN/Inf")
    for msg, _fd in vectors:
        msg.vector = special_float_bytes(rng, max(1, len(msg.vector) // 4))
        done.append("vector with NaN/Inf")
    if not done and rpc.request.DESCRIPTOR.fields_by_name.get("filter") is not None:
        F = common_pb2.Filter
        msgs[0].filter.CopyFrom(F(range=F.Range(field="price", gte=math.nan, lt=math.inf)))
        done.append("filter range NaN")
    attr_maps = [(m, fd) for m, fd in _targets(msgs, is_map) if fd.name == "attributes"] or []
    for msg, _fd in attr_maps[:2]:
        msg.attributes["price"].double_value = rng.choice([math.nan, math.inf, -math.inf])
        done.append("attribute price NaN/Inf")
    if not done:
        raise NotApplicable
    return ", ".join(done)


def cat_bad_vectors(rng, rpc, msgs, ctx):
    tensors = _targets(msgs, is_tensor_fd)
    vectors = _targets(msgs, is_vector_fd)
    if not tensors and not vectors:
        raise NotApplicable
    if tensors and (not vectors or rng.random() < 0.5):
        msg, fd = rng.choice(tensors)
        t = getattr(msg, fd.name)
        rows, dim = ([*list(t.shape), 1, 1])[:2] if t.shape else (1, 4)
        k = rng.randrange(10)
        variants = {
            0: ("data not a multiple of 4", t.data + b"\x00", None),
            1: ("one float short", t.data[:-4], None),
            2: ("dim + 1", unit_vector_bytes(rng, dim + 1, rows), [rows, dim + 1]),
            3: ("dim - 1", unit_vector_bytes(rng, max(dim - 1, 1), rows), [rows, max(dim - 1, 1)]),
            4: ("negative shape", t.data, [-rows, -dim]),
            5: ("scalar shape", b"\x00\x00\x80\x3f", []),
            6: ("3-d shape", t.data, [rows, 1, dim]),
            7: ("zero rows", b"", [0, dim]),
            8: ("overflowing shape, no data", b"", [2**62, 2**62, 0]),
            9: ("huge shape, little data", t.data, [2**31, dim]),
        }
        name, data, shape = variants[k]
        t.data = data
        if shape is not None:
            del t.shape[:]
            t.shape.extend(shape)
        return f"{fd.name}: {name}"
    msg, fd = rng.choice(vectors)
    v = msg.vector
    n = len(v) // 4
    k = rng.randrange(5)
    name, data = [
        ("3 bytes", b"\x00\x00\x80"),
        ("not a multiple of 4", v + b"\x01"),
        ("dim + 1", v + b"\x00\x00\x80\x3f"),
        ("dim - 1", v[:-4]),
        ("empty", b""),
    ][k]
    msg.vector = data
    return f"vector ({n} dims): {name}"


def cat_oversized(rng, rpc, msgs, ctx):
    L, s, n = ctx.limits, rpc.service, rpc.name
    m = msgs[0]
    over = rng.choice([1, 2, 50])
    if s == "gateway" and n in ("UpsertProducts", "IngestProducts"):
        count = L["gateway_max_products"] + over
        m.ClearField("products")
        for i in range(count):
            m.products.add(id=f"fz-big-{i}", title="red shirt")
        if n == "IngestProducts" and rng.random() < 0.3:
            msgs[:] = [gateway_pb2.IngestProductsRequest() for _ in range(5000)]
            return "5000 empty batches in the stream"
        return f"{count} products in one request"
    if s == "gateway" and n == "DeleteProducts":
        count = rng.choice([10_000, 50_000])
        m.ClearField("ids")
        m.ids.extend(f"fz-del-{i}" for i in range(count))
        return f"{count} ids"
    if s == "gateway" and n == "Search":
        k = rng.randrange(3)
        if k == 0:
            m.rerank_candidates = L["gateway_max_rerank"] + over
            return f"rerank_candidates={m.rerank_candidates}"
        if k == 1:
            m.k = L["gateway_max_k"] + over
            return f"k={m.k}"
        m.text = "shirt " * (L["gateway_text_chars"] // 6 + over)
        m.ClearField("image")
        return f"text of {len(m.text)} chars"
    if s == "encoder" and n in ("EmbedText", "EmbedImages", "Generate", "Compose"):
        role = {"EmbedText": "text", "EmbedImages": "image", "Generate": "caption"}.get(
            n, "compose"
        )
        count = ctx.model(role)["max_batch"] + over
        if n == "EmbedText":
            m.ClearField("texts")
            m.texts.extend(["red shirt"] * count)
        elif n == "Compose":
            dim = ctx.model("compose")["dim"]
            m.image_embeddings.CopyFrom(tensor(rng, count, dim))
            m.text_embeddings.CopyFrom(tensor(rng, count, dim))
        else:
            m.ClearField("images")
            m.images.extend([ctx.odd_images[0][1]] * count)
        return f"{count} items (max_batch {count - over})"
    if s == "encoder" and n == "Rerank":
        count = L["encoder_max_rerank"] + over * 10
        c = encoder_pb2.RerankCandidate()
        c.CopyFrom(m.candidates[0])
        m.ClearField("candidates")
        for _ in range(count):
            m.candidates.add().CopyFrom(c)
        return f"{count} candidates"
    if s == "index" and n == "Upsert":
        count = L["index_max_records"] + over
        m.ClearField("records")
        for i in range(count):
            m.records.add(id=f"fz-{i}", vector=b"\x00\x00\x80\x3f" * FUZZ_DIM)
        return f"{count} records"
    if s == "index" and n in ("Delete", "Get"):
        count = rng.choice([10_000, 100_000])
        m.ClearField("ids")
        m.ids.extend(f"fz-{i}" for i in range(count))
        return f"{count} ids"
    if s == "index" and n == "Search":
        count = L["index_max_queries"] + over
        if rng.random() < 0.5:
            dim = ctx.product_dim if m.collection == PRODUCTS else FUZZ_DIM
            m.ClearField("text_queries")
            m.queries.CopyFrom(tensor(rng, count, dim))
            return f"{count} query rows"
        m.ClearField("queries")
        m.ClearField("text_queries")
        m.text_queries.extend(["shirt"] * count)
        return f"{count} text queries"
    if s == "index" and n == "CreateCollection":
        m.ClearField("local_shards")
        m.local_shards.extend(range(100_000))
        return "100000 local_shards"
    raise NotApplicable


def cat_wrong_payload(rng, rpc, msgs, ctx):
    L = ctx.limits
    s, n = rpc.service, rpc.name
    m = msgs[0]
    if rng.random() < 0.01:  # a message over the servers' 64 MiB limit
        for msg, fd in _targets(msgs, lambda fd: fd.type in (FD.TYPE_BYTES, FD.TYPE_STRING))[:1]:
            big = b"\x00" * (65 * 1024 * 1024)
            val = big if fd.type == FD.TYPE_BYTES else "a" * len(big)
            set_scalar(msg, fd, [val])
            return f"{fd.name}: a 65 MiB message"
    if s == "encoder" and n == "Rerank":
        width = ctx.model("rerank").get("payload_width") or 8
        sizes = [0, 1, 2 * width - 1, 2 * width + 1, 2 * width + 2, 4 * width, 100_000]
        size = rng.choice(sizes)
        if rng.random() < 0.5:
            m.query_payload = rng.randbytes(size)
            m.query_text = "" if rng.random() < 0.5 else m.query_text
            return f"query_payload of {size} bytes (width {width})"
        i = rng.randrange(len(m.candidates))
        m.candidates[i].payload = rng.randbytes(size)
        return f"candidates[{i}].payload of {size} bytes"
    if s == "index" and n == "Upsert":
        size = rng.choice([1, FUZZ_PAYLOAD - 1, FUZZ_PAYLOAD + 1, L["index_max_payload"] + 1, 3])
        m.records[0].payload = rng.randbytes(size)
        return f"records[0].payload of {size} bytes (collection wants {FUZZ_PAYLOAD})"
    targets = _targets(msgs, is_image_fd)
    if targets:
        photo = rng.choice(ctx.photos)
        if rng.random() < 0.25:  # over the encoder's max_image_bytes
            size = L["encoder_image_bytes"] + rng.choice([1, 1000])
            return _set_bytes(
                rng,
                targets,
                lambda: (f"{size} bytes (a photo padded)", photo + b"\x00" * (size - len(photo))),
            )
        size = rng.choice([1000, 100_000, 1_000_000])
        return _set_bytes(
            rng, targets, lambda: (f"a photo + {size} bytes of junk", photo + rng.randbytes(size))
        )
    if s == "index" and n == "CreateCollection":
        m.payload_bytes = rng.choice([-1, 1, 2**31 - 1])
        return f"payload_bytes={m.payload_bytes}"
    raise NotApplicable


def cat_unknown_enum(rng, rpc, msgs, ctx):
    targets = _targets(msgs, lambda fd: fd.type == FD.TYPE_ENUM)
    if not targets:
        raise NotApplicable
    names = []
    for msg, fd in rng.sample(targets, min(len(targets), rng.randint(1, 2))):
        v = rng.choice([-1, 4, 7, 99, 2**31 - 1, -(2**31)])
        set_scalar(msg, fd, [v])
        names.append(f"{fd.name}={v}")
    return ", ".join(names)


def cat_long_strings(rng, rpc, msgs, ctx):
    targets = _targets(msgs, lambda fd: fd.type == FD.TYPE_STRING)
    maps = [(m, fd) for m, fd in _targets(msgs, is_map) if fd.name == "attributes"]
    if maps and rng.random() < 0.3:
        msg, _ = rng.choice(maps)
        if rng.random() < 0.5:
            key = odd_string(rng)
            msg.attributes[key].string_value = odd_string(rng)
            return f"attribute key of {len(key)} chars"
        for i in range(20_000):
            msg.attributes[f"a{i}"].string_value = "x"
        return "20000 attributes"
    if not targets:
        raise NotApplicable
    names = []
    for msg, fd in rng.sample(targets, min(len(targets), rng.randint(1, 2))):
        v = odd_string(rng)
        if is_repeated(fd):
            f = getattr(msg, fd.name)
            if len(f):
                f[rng.randrange(len(f))] = v
            else:
                f.append(v)
        else:
            setattr(msg, fd.name, v)
        names.append(f"{fd.name}: {len(v)} chars {v[:12]!r}")
    return ", ".join(names)


def cat_invalid_utf8(rng, rpc, msgs, ctx):
    """Appends a string field holding invalid UTF-8 (wire bytes) to the valid request."""
    paths = string_paths(rpc.request.DESCRIPTOR)
    if not paths:
        raise NotApplicable
    path = rng.choice(paths)
    bad = rng.choice(INVALID_UTF8)
    if rng.random() < 0.3:
        bad = b"ok " + bad + b" ok"
    payload = ld(path[-1], bad)
    for num in reversed(path[:-1]):
        payload = ld(num, payload)
    return f"field path {list(path)} = {bad!r}", payload


def cat_malformed_filter(rng, rpc, msgs, ctx):
    if rpc.request.DESCRIPTOR.fields_by_name.get("filter") is None:
        raise NotApplicable
    name, f = malformed_filter(rng)
    m = msgs[0]
    if isinstance(f, bytes):
        m.ClearField("filter")
        return name, ld(m.DESCRIPTOR.fields_by_name["filter"].number, f)
    m.filter.CopyFrom(f)
    return name


BAD_COLLECTIONS = [
    "",
    "nope",
    "products2",
    "PRODUCTS",
    "../products",
    "products/../products",
    "products\x00",
    ".hidden",
    "-dash",
    "a" * 64,
    "a" * 65,
    "a" * 5000,
    "prodüct",
    "🙂",
    " products",
    "fz-new",
]


def cat_unknown_collection(rng, rpc, msgs, ctx):
    fds = [
        fd
        for fd in rpc.request.DESCRIPTOR.fields
        if fd.type == FD.TYPE_STRING and fd.name in ("collection", "name")
    ]
    if rpc.service != "index" or not fds:
        raise NotApplicable
    fd = fds[0]
    name = rng.choice(BAD_COLLECTIONS)
    if name == "fz-new":
        name = f"fz-{rng.getrandbits(24):06x}"
    setattr(msgs[0], fd.name, name)
    return f"{fd.name}={name[:20]!r}{'...' if len(name) > 20 else ''}"


def cat_garbage_wire(rng, rpc, msgs, ctx):
    valid = msgs[0].SerializeToString()
    k = rng.randrange(10)
    if k == 0:
        n = rng.randint(1, 4096)
        return f"{n} random bytes", rng.randbytes(n)
    if k == 1 and valid:
        b = bytearray(valid)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return "valid request with flipped bytes", bytes(b)
    if k == 2 and len(valid) > 1:
        cut = rng.randrange(1, len(valid))
        return f"valid request cut at {cut}/{len(valid)}", valid[:cut]
    if k == 3:
        return "varint overflow", valid + tag(rng.randint(1, 9), 0) + b"\xff" * 11
    if k == 4:
        return "length beyond the end", valid + tag(rng.randint(1, 9), 2) + varint(2**31) + b"ab"
    if k == 5:
        return "unmatched end-group", valid + tag(rng.randint(1, 9), 4)
    if k == 6:
        return "wrong wire type for known fields", b"".join(
            tag(fd.number, rng.choice([0, 1, 5])) + b"\x01" * 8
            for fd in rpc.request.DESCRIPTOR.fields
        )
    if k == 7:
        return "unknown huge field numbers", valid + ld(536_870_911, b"x") + tag(
            19_000, 0
        ) + b"\x01"
    if k == 8:
        return "empty message", b""
    return "nested garbage", valid + ld(1, ld(1, ld(1, rng.randbytes(32))))


def token_variants(ctx: Ctx) -> list[tuple[str, tuple, str]]:
    """(name, metadata, kind): kind "strict" must be refused as unauthenticated, "scope" as
    permission denied (only with keys), "huge" may also be refused as too large, "lenient" any."""
    good = ctx.keys["admin"] if ctx.keys else "vk_fuzz-admin_" + "A" * 43
    out = [
        ("no authorization", (), "strict"),
        ("empty bearer", (("authorization", "Bearer"),), "strict"),
        ("bearer and spaces", (("authorization", "Bearer    "),), "strict"),
        ("basic auth", (("authorization", "Basic dXNlcjpwYXNz"),), "strict"),
        ("garbage token", (("authorization", "Bearer garbage"),), "strict"),
        ("no scheme", (("authorization", good),), "strict"),
        ("prefix only", (("authorization", "Bearer vk_"),), "strict"),
        ("unknown key id", (("authorization", "Bearer vk_nobody_" + "A" * 43),), "strict"),
        ("truncated key", (("authorization", f"Bearer {good[:-1]}"),), "strict"),
        ("half a key", (("authorization", f"Bearer {good[: len(good) // 2]}"),), "strict"),
        ("key plus a char", (("authorization", f"Bearer {good}x"),), "strict"),
        ("wrong secret", (("authorization", f"Bearer {good[:-5]}AAAAA"),), "strict"),
        ("key id with a dot", (("authorization", "Bearer vk_fuzz.admin_xyz"),), "strict"),
        (
            "percent-encoded unicode",
            (("authorization", "Bearer %D0%BA%D0%BB%D1%8E%D1%87"),),
            "strict",
        ),
        ("escaped unicode", (("authorization", "Bearer \\u043a\\u043b\\u044e\\u0447"),), "strict"),
        ("unicode as binary metadata", (("authorization-bin", "ключ🙂".encode()),), "strict"),
        ("garbage x-api-key", (("x-api-key", "garbage"),), "strict"),
        ("8 KiB token", (("authorization", "Bearer " + "A" * 8000),), "huge"),
        ("15 KiB token", (("authorization", "Bearer " + "A" * 15_000),), "huge"),
        ("64 KiB token", (("authorization", "Bearer " + "A" * 65_536),), "huge"),
        ("1 MiB token", (("authorization", "Bearer " + "A" * 2**20),), "huge"),
        (
            "garbage then the key",
            (("authorization", "Bearer x"), ("authorization", f"Bearer {good}")),
            "lenient",
        ),
        ("lower-case bearer", (("authorization", f"bearer {good}"),), "lenient"),
    ]
    if ctx.keys:
        out += [
            ("search-only key", (("authorization", f"Bearer {ctx.keys['search']}"),), "scope"),
            ("write-only key", (("authorization", f"Bearer {ctx.keys['write']}"),), "scope"),
        ]
    return out


def bad_metadata(rng, ctx: Ctx) -> tuple[str, tuple]:
    k = rng.randrange(8)
    if k == 0:
        return "100 unknown headers", tuple((f"x-fuzz-{i}", "v" * 60) for i in range(100))
    if k == 1:
        return "300 unknown headers", tuple((f"x-fuzz-{i}", "v" * 60) for i in range(300))
    if k == 2:
        return "binary header of random bytes", (
            ("x-fuzz-bin", rng.randbytes(rng.randint(0, 4000))),
        )
    if k == 3:
        return "reserved-looking grpc- header", (("grpc-fuzz", "1"), ("grpc-timeout-x", "1S"))
    if k == 4:
        return "duplicate keys", tuple(("x-dup", str(i)) for i in range(50))
    if k == 5:
        return "20 KiB header", (("x-fuzz", "a" * 20_000),)
    if k == 6:
        return "odd printable values", (("x-fuzz", "\"'`;{}[]<>\\ ~|"), ("user-agent-x", "%00%ff"))
    return "empty value", (("x-fuzz", ""),)


# --------------------------------------------------------------------------------------------
# Spec generation
# --------------------------------------------------------------------------------------------


APPLIES = {
    "random_image": lambda d, r: type_has(d, is_image_fd),
    "truncated_image": lambda d, r: type_has(d, is_image_fd),
    "bomb_image": lambda d, r: type_has(d, is_image_fd),
    "nan_inf": lambda d, r: type_has(
        d, lambda fd: fd.type in FLOAT_TYPES or is_tensor_fd(fd) or is_vector_fd(fd)
    ),
    "bad_vectors": lambda d, r: type_has(d, lambda fd: is_tensor_fd(fd) or is_vector_fd(fd)),
    "huge_numbers": lambda d, r: type_has(d, lambda fd: fd.type in INT_TYPES),
    "unknown_enum": lambda d, r: type_has(d, lambda fd: fd.type == FD.TYPE_ENUM),
    "oversized_batch": lambda d, r: (
        any(is_repeated(fd) and not is_map(fd) for fd in d.fields)
        and (r.service, r.name) not in {("encoder", "GetModelInfo")}
    ),
    "wrong_payload": lambda d, r: (
        (r.service, r.name)
        in {("encoder", "Rerank"), ("index", "Upsert"), ("index", "CreateCollection")}
        or type_has(d, is_image_fd)
    ),
    "long_strings": lambda d, r: type_has(d, lambda fd: fd.type == FD.TYPE_STRING),
    "invalid_utf8": lambda d, r: bool(string_paths(d)),
    "malformed_filter": lambda d, r: "filter" in d.fields_by_name,
    "unknown_collection": lambda d, r: (
        r.service == "index" and any(fd.name in ("collection", "name") for fd in d.fields)
    ),
}
APPLIERS = {
    "random_image": cat_image(random_image),
    "truncated_image": cat_image(truncated_image),
    "bomb_image": cat_image(bomb),
    "empty_fields": cat_empty_fields,
    "huge_numbers": cat_huge_numbers,
    "nan_inf": cat_nan_inf,
    "bad_vectors": cat_bad_vectors,
    "oversized_batch": cat_oversized,
    "wrong_payload": cat_wrong_payload,
    "unknown_enum": cat_unknown_enum,
    "long_strings": cat_long_strings,
    "invalid_utf8": cat_invalid_utf8,
    "malformed_filter": cat_malformed_filter,
    "unknown_collection": cat_unknown_collection,
    "garbage_wire": cat_garbage_wire,
}


class Generator:
    """Spec ``i`` from ``random.Random(f"{seed}:{i}")``: reproducible, made on demand."""

    def __init__(
        self,
        ctx: Ctx,
        seed: int,
        skip: tuple[str, ...] = (),
        categories: tuple[str, ...] = CATEGORIES,
    ):
        self.ctx = ctx
        self.seed = seed
        self.categories = tuple(categories)
        self.rpcs = [
            r for r in all_rpcs() if not r.server_streaming and f"{r.service}.{r.name}" not in skip
        ]
        self.by_category = {
            c: [r for r in self.rpcs if c not in APPLIES or APPLIES[c](r.request.DESCRIPTOR, r)]
            for c in self.categories
        }
        # A category no RPC left takes is dropped (e.g. the image ones with --skip-rpc).
        self.categories = tuple(c for c in self.categories if self.by_category[c])
        if not self.categories:
            raise ValueError("no RPC takes any of the chosen categories")

    def pick(self, rng, category: str) -> Rpc:
        rpcs = self.by_category[category]
        return rng.choices(rpcs, weights=[SERVICE_WEIGHT[r.service] for r in rpcs])[0]

    def spec(self, i: int) -> Spec:
        category = self.categories[i % len(self.categories)]
        rng = random.Random(f"{self.seed}:{i}")
        for _ in range(20):
            rpc = self.pick(rng, category)
            try:
                return self._build(i, rng, rpc, category)
            except NotApplicable:
                continue
        raise RuntimeError(f"no RPC takes category {category}")  # pragma: no cover

    def _build(self, i: int, rng, rpc: Rpc, category: str) -> Spec:
        ctx = self.ctx
        base = base_request(rng, rpc, ctx)
        msgs = base if isinstance(base, list) else [base]
        safe(rpc, msgs, ctx)
        target = index_target(rng) if rpc.service == "index" else rpc.service
        md = ctx.md() if rpc.service == "gateway" else ()
        spec = Spec(i, rpc, target, category, "", b"", md)
        extra = b""
        if category in APPLIERS:
            out = APPLIERS[category](rng, rpc, msgs, ctx)
            if isinstance(out, tuple):  # (variant, wire bytes to send or append)
                spec.variant, extra = out
                if category == "garbage_wire":
                    spec.payload = [extra] if rpc.client_streaming else extra
                    return spec
            else:
                spec.variant = out
        elif category == "bad_token":
            name, md, kind = rng.choice(token_variants(ctx))
            spec.variant, spec.metadata = name, md
            if ctx.auth and rpc.service == "gateway":
                spec.expect = {
                    "strict": frozenset({"UNAUTHENTICATED"}),
                    "huge": frozenset({"UNAUTHENTICATED", "RESOURCE_EXHAUSTED"}),
                    "scope": None,
                    "lenient": None,
                }[kind]
                if kind == "scope":
                    from gateway.auth_interceptor import METHOD_SCOPES

                    key = name.split("-")[0]  # "search" or "write"
                    need = METHOD_SCOPES.get(rpc.name, "admin")
                    spec.expect = frozenset(
                        {"PERMISSION_DENIED"} if need != key else CLEAR - {"UNAUTHENTICATED"}
                    )
        elif category == "bad_metadata":
            name, extra_md = bad_metadata(rng, ctx)
            spec.variant, spec.metadata = name, spec.metadata + extra_md
        elif category == "tiny_deadline":
            if rng.random() < 0.6:
                spec.timeout = rng.choice([1e-5, 1e-4, 1e-3, 5e-3, 0.02, 0.1])
                spec.variant = f"deadline {spec.timeout * 1000:g} ms"
                # grpc.aio may end a client stream that runs out of time "Locally cancelled".
                spec.allow = frozenset({"DEADLINE_EXCEEDED", "CANCELLED"})
            else:
                spec.cancel_after = rng.choice([0.0, 0.001, 0.005, 0.02])
                spec.variant = f"cancelled after {spec.cancel_after * 1000:g} ms"
                spec.allow = frozenset({"CANCELLED", "DEADLINE_EXCEEDED"})
        safe(rpc, msgs, ctx)
        payloads = [m.SerializeToString() + extra for m in msgs]
        if category == "invalid_utf8" and len(payloads) > 1:
            payloads = [m.SerializeToString() for m in msgs]
            payloads[rng.randrange(len(payloads))] += extra
        spec.payload = payloads if rpc.client_streaming else payloads[0]
        return spec


# --------------------------------------------------------------------------------------------
# Sending and classifying
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    spec: Spec
    code: str
    message: str
    seconds: float
    verdict: str  # clear | unclear | unexpected | bad_output | client_rejected | client_lost
    why: str = ""
    items: list = field(default_factory=list)  # (code, message) of a batch answer's items


def _nonfinite(resp) -> str:
    """Names a NaN/Inf in an OK answer (scores, embeddings), else ""."""
    for r in getattr(resp, "results", ()):
        for x in ("score", "retrieval_score"):
            if hasattr(r, x) and not math.isfinite(getattr(r, x)):
                return f"results.{x}={getattr(r, x)}"
        for h in getattr(r, "hits", ()):
            if not math.isfinite(h.score):
                return f"hits.score={h.score}"
    for x in ("scores", "match_scores"):
        vals = getattr(resp, x, None)
        if vals is not None and any(not math.isfinite(v) for v in vals):
            return f"{x} not finite"
    emb = getattr(resp, "embeddings", None)
    if emb is not None and emb.data:
        n = len(emb.data) // 4
        if any(not math.isfinite(v) for v in struct.unpack(f"<{n}f", emb.data[: 4 * n])):
            return "embeddings not finite"
    return ""


def field_names(descriptor, seen=None) -> set[str]:
    seen = set() if seen is None else seen
    if descriptor.full_name in seen:
        return set()
    seen.add(descriptor.full_name)
    out = set()
    for fd in descriptor.fields:
        out.add(fd.name)
        if fd.message_type is not None:
            out |= field_names(fd.message_type, seen)
    return out


FAILED = ("unclear", "unexpected", "bad_output")  # verdicts that fail the run
CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}
CLIENT_LOST = "Internal error from Core"


def item_statuses(resp) -> list[tuple[str, str]]:
    """(code name, message) of every per-item status of a batch answer (ItemStatus lists)."""
    out = []
    for name in ("statuses", "failures"):
        for st in getattr(resp, name, ()):
            if hasattr(st, "code") and hasattr(st, "message"):
                out.append((CODE_NAMES.get(st.code, f"CODE_{st.code}"), st.message))
    return out


def classify(spec: Spec, code: str, message: str, response: bytes | None) -> tuple[str, str, list]:
    """(verdict, why, item statuses): see the module docstring. A batch answer's items are
    held to the same rule as the answer (each a clear code, INVALID_ARGUMENT with a message)."""
    if code == "CLIENT_REJECTED":
        return "client_rejected", message, []
    if code == "INTERNAL" and message == CLIENT_LOST and spec.rpc.client_streaming:
        # grpc.aio's client gives this status of its own when the server ends a client stream
        # while requests are still being written: the server's status is lost, not wrong.
        return "client_lost", "the client lost the server's status (grpc.aio)", []
    if code not in CLEAR and code not in spec.allow:
        return "unclear", f"status {code}", []
    if code == "INVALID_ARGUMENT" and not message.strip():
        return "unclear", "INVALID_ARGUMENT without a message", []
    if spec.expect is not None and code not in spec.expect:
        return "unexpected", f"expected {sorted(spec.expect)}", []
    items: list = []
    if code == "OK" and response is not None:
        try:
            resp = spec.rpc.response.FromString(response)
        except Exception as exc:
            return "unclear", f"OK answer does not parse: {exc}", []
        items = item_statuses(resp)
        for c, m in items:
            if c not in CLEAR:
                return "unclear", f"an item answered {c}: {m[:200]}", items
            if c == "INVALID_ARGUMENT" and not m.strip():
                return "unclear", "an item answered INVALID_ARGUMENT without a message", items
        bad = _nonfinite(resp)
        if bad:
            return "bad_output", bad, items
    return "clear", "", items


class Sender:
    def __init__(self, targets: dict[str, str]):
        opts = [
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", 256 * 1024 * 1024),
            ("grpc.max_metadata_size", 1024 * 1024),
        ]
        self.channels = {n: grpc.aio.insecure_channel(t, options=opts) for n, t in targets.items()}

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close()

    async def send(self, spec: Spec) -> tuple[str, str, bytes | None]:
        ch = self.channels[spec.target]
        call = None
        try:
            if spec.rpc.client_streaming:
                call = ch.stream_unary(spec.rpc.path)(
                    iter(spec.payload), metadata=spec.metadata, timeout=spec.timeout
                )
            else:
                call = ch.unary_unary(spec.rpc.path)(
                    spec.payload, metadata=spec.metadata, timeout=spec.timeout
                )
            if spec.cancel_after is not None:
                await asyncio.sleep(spec.cancel_after)
                call.cancel()
            response = await call
            return "OK", "", response
        except asyncio.CancelledError:
            if spec.cancel_after is not None:
                return "CANCELLED", "cancelled by the client", None
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # grpc.aio raises CancelledError from a client-streaming call that the server
            # ended while requests were still being written: ask the call for its status.
            try:
                code = await asyncio.wait_for(call.code(), 5)
                details = await asyncio.wait_for(call.details(), 5)
                return code.name, details or "", None
            except Exception as exc:
                return "CLIENT_REJECTED", f"call cancelled locally ({exc!r})", None
        except grpc.aio.AioRpcError as exc:
            return exc.code().name, exc.details() or "", None
        except Exception as exc:
            return "CLIENT_REJECTED", f"{type(exc).__name__}: {exc}"[:300], None


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    crashes: list[dict] = field(default_factory=list)
    health: dict = field(default_factory=dict)
    server_errors: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    auth: bool = False
    seed: int = 0
    planned: int = 0

    def count(self, verdict: str) -> int:
        return sum(o.verdict == verdict for o in self.outcomes)

    @property
    def healthy(self) -> bool:
        return bool(self.health) and all(self.health.values())

    @property
    def failed(self) -> bool:
        return bool(
            self.crashes
            or self.count("unclear")
            or self.count("unexpected")
            or self.count("bad_output")
            or not self.healthy
        )

    def examples(self, verdicts=FAILED, limit: int = 40):
        seen, out = set(), []
        for o in self.outcomes:
            if o.verdict not in verdicts:
                continue
            key = (o.spec.label, o.code, o.spec.category)
            if key in seen:
                continue
            seen.add(key)
            out.append(
                {
                    "rpc": o.spec.label,
                    "category": o.spec.category,
                    "variant": o.spec.variant[:120],
                    "request": o.spec.idx,
                    "verdict": o.verdict,
                    "code": o.code,
                    "message": o.message[:240],
                    "why": o.why,
                }
            )
            if len(out) >= limit:
                break
        return out

    def summary(self) -> dict:
        by_code = Counter(o.code for o in self.outcomes)
        item_codes = Counter(c for o in self.outcomes for c, _ in o.items)
        slow = sorted((o for o in self.outcomes if o.seconds > SLOW_S), key=lambda o: -o.seconds)
        by_category: dict[str, Counter] = defaultdict(Counter)
        for o in self.outcomes:
            by_category[o.spec.category][o.code] += 1
        unnamed = [
            o
            for o in self.outcomes
            if o.code == "INVALID_ARGUMENT"
            and o.message
            and not any(
                n in o.message for n in ("request", *field_names(o.spec.rpc.request.DESCRIPTOR))
            )
        ]
        return {
            "benchmark": "fuzz",
            "requests": len(self.outcomes),
            "planned": self.planned,
            "seed": self.seed,
            "auth": self.auth,
            "crashes": len(self.crashes),
            "unclear": self.count("unclear"),
            "unexpected": self.count("unexpected"),
            "bad_output": self.count("bad_output"),
            "client_rejected": self.count("client_rejected"),
            "client_lost_status": self.count("client_lost"),
            "invalid_argument_without_field_name": len(unnamed),
            "by_code": dict(by_code.most_common()),
            "item_codes": dict(item_codes.most_common()),
            "slow_requests": len(slow),
            "slowest": [f"{o.seconds:.1f}s {o.code} {o.spec.describe()[:160]}" for o in slow[:5]],
            "by_category": {c: dict(v.most_common()) for c, v in sorted(by_category.items())},
            "healthy_after": self.healthy,
            "health": self.health,
            "server_tracebacks": len(self.server_errors),
            "seconds": round(self.seconds, 1),
            "examples": self.examples(limit=12),
            "crash_details": [
                {k: v for k, v in c.items() if k != "log_tail"} for c in self.crashes
            ],
        }


async def run_requests(
    stack: Stack, gen: Generator, indices, concurrency: int, report: Report, progress=None
) -> None:
    sender = Sender({name: p.target for name, p in stack.procs.items()})
    inflight: dict[int, Spec] = {}
    recent: deque = deque(maxlen=64)  # (spec, code) of the latest answers
    stop = asyncio.Event()
    counter = iter(indices)

    async def watch():
        while not stop.is_set():
            for name, p in stack.procs.items():
                if not p.alive and not any(c["process"] == name for c in report.crashes):
                    report.crashes.append(
                        {
                            "process": name,
                            "returncode": p.proc.returncode,
                            "in_flight": [s.describe() for s in inflight.values()],
                            "last_answered_by_it": [
                                f"{s.describe()} -> {code}"
                                for s, code in recent
                                if s.target == name
                            ][-8:],
                            "log_tail": stack.log_tail(name),
                        }
                    )
                    stop.set()
            await asyncio.sleep(0.2)

    async def worker():
        for i in counter:
            if stop.is_set():
                return
            spec = gen.spec(i)
            inflight[i] = spec
            t0 = time.perf_counter()
            code, message, response = await sender.send(spec)
            inflight.pop(i, None)
            recent.append((spec, code))
            verdict, why, items = classify(spec, code, message, response)
            report.outcomes.append(
                Outcome(spec, code, message, time.perf_counter() - t0, verdict, why, items)
            )
            if progress:
                progress()

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        stop.set()
        await watcher
        await sender.close()


async def seed_stack(stack: Stack, ctx: Ctx, catalog_products) -> None:
    """Ingest catalog products through the gateway; create the fuzzer's own collection."""
    from gateway.client import product as product_pb
    from vitrine.v1 import gateway_pb2_grpc, index_pb2_grpc

    async with grpc.aio.insecure_channel(stack.target("gateway")) as ch:
        stub = gateway_pb2_grpc.SearchServiceStub(ch)
        batch = [
            product_pb(p.id, p.title, dict(p.attributes), p.image_path.read_bytes())
            for p in catalog_products
        ]
        resp = await stub.IngestProducts(
            iter([gateway_pb2.IngestProductsRequest(products=batch)]),
            metadata=ctx.md(),
            timeout=300,
        )
        if resp.failed:
            raise RuntimeError(f"seed ingest failed: {resp.failures[:3]}")
    for name in ("index-a", "index-b"):
        async with grpc.aio.insecure_channel(stack.target(name)) as ch:
            stub = index_pb2_grpc.IndexServiceStub(ch)
            await stub.CreateCollection(
                index_pb2.CreateCollectionRequest(
                    name=FUZZ_COLLECTION,
                    dim=FUZZ_DIM,
                    metric=index_pb2.METRIC_INNER_PRODUCT,
                    index_spec="Flat",
                    num_shards=2,
                    payload_bytes=FUZZ_PAYLOAD,
                ),
                timeout=60,
            )
            info = await stub.DescribeCollection(
                index_pb2.DescribeCollectionRequest(name=PRODUCTS), timeout=30
            )
            ctx.product_dim = info.collection.dim


async def model_roles(target: str) -> dict[str, dict]:
    from vitrine.v1 import encoder_pb2_grpc

    async with grpc.aio.insecure_channel(target) as ch:
        resp = await encoder_pb2_grpc.EncoderServiceStub(ch).GetModelInfo(
            encoder_pb2.GetModelInfoRequest(), timeout=30
        )
    roles = {
        encoder_pb2.MODALITY_TEXT: "text",
        encoder_pb2.MODALITY_IMAGE: "image",
        encoder_pb2.MODALITY_RERANK: "rerank",
        encoder_pb2.MODALITY_CAPTION: "caption",
        encoder_pb2.MODALITY_COMPOSE: "compose",
    }
    out: dict[str, dict] = {}
    names: dict[str, list[int]] = defaultdict(list)
    for m in resp.models:
        names[m.name].append(m.version)
    preferred = {"text": "vitrine-text", "image": "vitrine-image"}

    def order(m):
        return (m.name != preferred.get(roles.get(m.modality, "")), -m.version)

    for m in sorted(resp.models, key=order):
        role = roles.get(m.modality)
        if role is None or role in out:
            continue
        out[role] = {
            "name": m.name,
            "dim": m.dim or 16,
            "max_batch": m.max_batch_size or 32,
            "payload_width": m.rerank.payload_width if role == "rerank" else 0,
            "versions": names[m.name],
        }
    image = next((m for m in resp.models if out.get("image", {}).get("name") == m.name), None)
    if image is not None and "payload" in image.outputs:
        out["image"]["payload_width"] = out.get("rerank", {}).get("payload_width", 8)
    return out


async def health_after(stack: Stack, ctx: Ctx, probes) -> dict:
    """Every process alive, health "" SERVING, /metrics answering, a normal search working."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from vitrine.v1 import gateway_pb2_grpc

    out = {}
    for name, p in stack.procs.items():
        out[f"{name}_alive"] = p.alive
        if not p.alive:
            continue
        try:
            async with grpc.aio.insecure_channel(p.target) as ch:
                r = await health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=10
                )
            out[f"{name}_serving"] = r.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            out[f"{name}_serving"] = False
        try:
            url = f"http://127.0.0.1:{p.info['metrics_port']}/metrics"
            body = await asyncio.to_thread(
                lambda u=url: urllib.request.urlopen(u, timeout=10).read()
            )
            out[f"{name}_metrics"] = b"vitrine_" in body or b"grpc_" in body
        except OSError:
            out[f"{name}_metrics"] = False
    if not stack.procs["gateway"].alive:
        return out
    async with grpc.aio.insecure_channel(stack.target("gateway")) as ch:
        stub = gateway_pb2_grpc.SearchServiceStub(ch)
        found = 0
        try:
            for p in probes:
                r = await stub.Search(
                    gateway_pb2.SearchRequest(
                        image=p.image_path.read_bytes(),
                        k=10,
                        rerank=gateway_pb2.RERANK_MODE_OFF,
                        retrieval_mode=gateway_pb2.RETRIEVAL_MODE_VECTOR,
                    ),
                    metadata=ctx.md(),
                    timeout=30,
                )
                found += any(
                    x.product_id == p.id and abs(x.retrieval_score - 1) < 1e-3 for x in r.results
                )
            out["search_finds_ingested"] = found == len(probes)
            r = await stub.Search(
                gateway_pb2.SearchRequest(text=probes[0].title, k=5), metadata=ctx.md(), timeout=30
            )
            out["text_search_answers"] = len(r.results) > 0
        except grpc.RpcError as exc:
            out["search_finds_ingested"] = False
            out["search_error"] = f"{exc.code().name}: {exc.details()}"  # type: ignore[union-attr]
    return out


def server_tracebacks(stack: Stack, limit: int = 30) -> list[dict]:
    """Error lines with tracebacks from the servers' JSON logs, one per distinct last line."""
    out, seen = [], set()
    for name, p in stack.procs.items():
        try:
            lines = p.log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if '"level": "error"' not in line and "Traceback" not in line:
                continue
            try:
                rec = json.loads(line)
                msg, exc = rec.get("msg", ""), rec.get("exc", "")
            except ValueError:
                msg, exc = line[:300], ""
            last = exc.strip().splitlines()[-1] if exc.strip() else msg
            key = (name, msg[:80], last[:200])
            if key in seen:
                continue
            seen.add(key)
            out.append({"process": name, "msg": msg[:300], "error": last[:400], "traceback": exc})
            if len(out) >= limit:
                return out
    return out


def build_ctx(catalog, keys: dict | None) -> Ctx:
    products = sorted(catalog.products, key=lambda p: p.id)
    photos = [p.image_path.read_bytes() for p in products[:12]]
    vocab = sorted({w for p in products[:200] for w in p.title.split()})
    return Ctx(
        photos=photos,
        odd_images=odd_images(),
        words=vocab or ["shirt"],
        seed_ids=[],
        models={},
        product_dim=16,
        keys=keys,
        limits=dict(DEFAULT_LIMITS),
    )


class FuzzSession:
    """A started, seeded stack to fuzz (a context manager): the engine behind :func:`fuzz`, and
    what tests drive directly (one stack, several :meth:`run` calls)."""

    def __init__(
        self,
        models: Path | None = None,
        workdir: Path | None = None,
        auth: bool = False,
        keys_file: Path | None = None,
        api_key: str | None = None,
        seed_products: int = 24,
    ):
        self.models = models
        self.workdir = workdir
        self.auth = auth
        self.keys_file = keys_file
        self.api_key = api_key
        self.seed_products = seed_products
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.stack: Stack | None = None
        self.ctx: Ctx | None = None
        self.probes: list = []

    def __enter__(self) -> FuzzSession:
        from vitrine.catalog import load_catalog

        catalog = load_catalog()
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="vitrine-fuzz-")
            self.workdir = Path(self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        keys, keys_file = None, self.keys_file
        if keys_file is not None:
            if not self.api_key:
                raise SystemExit(
                    "--keys-file needs --api-key (a key of that file with every scope)"
                )
            keys = {"admin": self.api_key, "search": self.api_key, "write": self.api_key}
        elif self.auth:
            keys_file = self.workdir / "api-keys.yaml"
            keys_file.unlink(missing_ok=True)
            keys = make_keys_file(keys_file)
            if keys is None:
                keys_file = None
        models = self.models.resolve() if self.models is not None else None  # children: cwd ROOT
        if models is None:
            models = self.workdir / "models"
            if not models.exists():
                make_tiny_models(models, catalog.products)
        self.ctx = ctx = build_ctx(catalog, keys)
        self.probes = sorted(catalog.products, key=lambda p: p.id)[: self.seed_products]
        self.stack = Stack(models, self.workdir, keys_file)
        try:
            self.stack.start()
            if not self.stack.auth:
                ctx.keys = None
            ctx.models = asyncio.run(model_roles(self.stack.target("encoder")))
            ctx.seed_ids = [p.id for p in self.probes]
            asyncio.run(seed_stack(self.stack, ctx, self.probes))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.stack is not None:
            self.stack.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def run(
        self,
        indices,
        seed: int = 0,
        concurrency: int = 8,
        skip: tuple[str, ...] = (),
        categories: tuple[str, ...] = CATEGORIES,
        quiet: bool = True,
        health: bool = True,
    ) -> Report:
        """Send the requests numbered ``indices``; then (``health``) check the stack."""
        stack, ctx = self.stack, self.ctx
        indices = list(indices)
        report = Report(seed=seed, auth=stack.auth, planned=len(indices))
        gen = Generator(ctx, seed, skip, categories)
        bar = None
        if not quiet:
            from rich.console import Console
            from rich.progress import Progress

            bar = Progress(transient=True, console=Console(stderr=True))
            task = bar.add_task("fuzz", total=len(indices))
            bar.start()
        t0 = time.perf_counter()
        try:
            asyncio.run(
                run_requests(
                    stack,
                    gen,
                    indices,
                    concurrency,
                    report,
                    (lambda: bar.advance(task)) if bar else None,
                )
            )
        finally:
            if bar:
                bar.stop()
        report.seconds = time.perf_counter() - t0
        if health:
            report.health = asyncio.run(health_after(stack, ctx, self.probes[:3]))
        report.server_errors = server_tracebacks(stack)
        for c in report.crashes:
            c["log_tail"] = stack.log_tail(c["process"], 50_000)
            fatal = c["log_tail"].rfind("Fatal Python error")
            if fatal >= 0:
                c["log_tail"] = c["log_tail"][fatal:]
                current = c["log_tail"].find("Current thread")
                lines = c["log_tail"][max(current, 0) :].splitlines()
                c["native_crash_in"] = [x.strip() for x in lines if "File " in x][:4]
        return report


def fuzz(
    requests: int = 10_000,
    seed: int = 0,
    concurrency: int = 8,
    models: Path | None = None,
    workdir: Path | None = None,
    auth: bool = False,
    keys_file: Path | None = None,
    api_key: str | None = None,
    seed_products: int = 24,
    quiet: bool = False,
    skip: tuple[str, ...] = (),
    only: list[int] | None = None,
    categories: tuple[str, ...] = CATEGORIES,
) -> Report:
    """Start a stack, send ``requests`` malformed requests, check its health; the report."""
    with FuzzSession(models, workdir, auth, keys_file, api_key, seed_products) as session:
        return session.run(
            only if only else range(requests), seed, concurrency, skip, categories, quiet
        )


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

SHORT = {
    "OK": "OK",
    "INVALID_ARGUMENT": "INV",
    "NOT_FOUND": "NF",
    "UNAUTHENTICATED": "UNAUTH",
    "PERMISSION_DENIED": "PERM",
    "RESOURCE_EXHAUSTED": "EXH",
    "FAILED_PRECONDITION": "FPRE",
    "OUT_OF_RANGE": "OOR",
    "ALREADY_EXISTS": "AEX",
    "DEADLINE_EXCEEDED": "DEADL",
    "CANCELLED": "CANC",
}


def print_report(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    cells: dict[tuple[str, str], Counter] = defaultdict(Counter)
    bad: dict[tuple[str, str], int] = Counter()
    for o in report.outcomes:
        cells[(o.spec.label, o.spec.category)][o.code] += 1
        if o.verdict in FAILED:
            bad[(o.spec.label, o.spec.category)] += 1
    t = Table(
        title=f"Fuzz: {len(report.outcomes)} malformed requests, seed {report.seed}"
        f"{', auth on' if report.auth else ''} (codes: "
        + ", ".join(f"{v}={k}" for k, v in SHORT.items() if k != v)
        + ")"
    )
    for col, just in (("rpc", "left"), ("category", "left"), ("n", "right"), ("answers", "left")):
        t.add_column(col, justify=just)
    t.add_column("failed", justify="right")
    for (rpc, cat), codes in sorted(cells.items()):
        t.add_row(
            rpc,
            cat,
            str(sum(codes.values())),
            " ".join(f"{SHORT.get(c, c)}:{n}" for c, n in codes.most_common()),
            str(bad[(rpc, cat)]) if bad[(rpc, cat)] else "",
        )
    console.print(t)
    if report.crashes:
        console.print("[bold red]crashes:[/]")
        for c in report.crashes:
            print(f"  {c['process']} exited with {c['returncode']}; in flight:")
            for s in c["in_flight"]:
                print(f"    {s}")
            print("  its last answers before it died:")
            for s in c["last_answered_by_it"]:
                print(f"    {s}")
            tail = c["log_tail"]
            current = tail.find("Current thread")
            print(tail[current : current + 2000] if current >= 0 else tail[-2000:])
    sys.stdout.flush()
    ex = report.examples((*FAILED, "client_lost", "client_rejected"), limit=80)
    if ex:
        print("failed answers (one per rpc/code/category):")
        for e in ex:
            print(
                f"  {e['verdict']} {e['rpc']} [{e['category']}: {e['variant'][:80]}] "
                f"#{e['request']} -> {e['code']}: {e['message'][:160]!r}"
                + (f" ({e['why'][:160]})" if e["why"] and not e["why"].startswith("status") else "")
            )
    if report.server_errors:
        print("server errors logged (distinct; --tracebacks prints them whole):")
        for e in report.server_errors:
            print(f"  {e['process']}: {e['msg'][:100]} | {e['error'][:200]}")
    slow = sorted(report.outcomes, key=lambda o: -o.seconds)[:5]
    print("slowest:")
    for o in slow:
        print(f"  {o.seconds:.2f} s {o.code} {o.spec.describe()[:140]}")
    print(f"health after: {report.health}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--models", type=Path, default=None, help="a model repository (default: tiny)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep models, data, logs here")
    ap.add_argument("--auth", action="store_true", help="give the gateway a fresh API-key file")
    ap.add_argument("--keys-file", type=Path, default=None, help="the gateway's API-key file")
    ap.add_argument("--api-key", default=None, help="a key of --keys-file with every scope")
    ap.add_argument(
        "--tracebacks", action="store_true", help="print the servers' tracebacks in full"
    )
    ap.add_argument(
        "--skip-rpc",
        action="append",
        default=[],
        metavar="SERVICE.RPC",
        help="leave an RPC out (e.g. index.CreateCollection while it has a known crash)",
    )
    ap.add_argument(
        "--categories",
        default="",
        metavar="A,B,...",
        help=f"only these categories (default: all of {', '.join(CATEGORIES)})",
    )
    ap.add_argument(
        "--dump", type=Path, default=None, help="write every request's outcome here (JSON lines)"
    )
    ap.add_argument(
        "--only",
        default="",
        metavar="I,J,...",
        help="send only these request numbers (same --seed): replays a failure",
    )
    args = ap.parse_args(argv)
    unknown = [c for c in args.categories.split(",") if c and c not in CATEGORIES]
    if unknown:
        ap.error(f"--categories: unknown {unknown}")
    report = fuzz(
        args.requests,
        args.seed,
        args.concurrency,
        args.models,
        args.workdir,
        args.auth,
        args.keys_file,
        args.api_key,
        skip=tuple(args.skip_rpc),
        only=[int(x) for x in args.only.split(",") if x.strip()] or None,
        categories=tuple(c for c in args.categories.split(",") if c) or CATEGORIES,
    )
    print_report(report)
    if args.dump:
        with open(args.dump, "w", encoding="utf-8") as f:
            for o in sorted(report.outcomes, key=lambda o: o.spec.idx):
                row = {
                    "i": o.spec.idx,
                    "rpc": o.spec.label,
                    "target": o.spec.target,
                    "category": o.spec.category,
                    "variant": o.spec.variant,
                    "code": o.code,
                    "message": o.message[:500],
                    "verdict": o.verdict,
                    "why": o.why,
                    "seconds": round(o.seconds, 4),
                }
                f.write(json.dumps(row) + "\n")
    if args.tracebacks:
        for e in report.server_errors:
            print(f"--- {e['process']}: {e['msg']}\n{e['traceback']}", file=sys.stderr)
    out = report.summary()
    out["config"] = {
        "requests": args.requests,
        "seed": args.seed,
        "concurrency": args.concurrency,
        "models": str(args.models) if args.models else "tiny",
        "skip_rpc": args.skip_rpc,
        "only": args.only,
    }
    print(json.dumps(out))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
