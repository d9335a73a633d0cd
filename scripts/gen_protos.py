#!/usr/bin/env python
"""Regenerate (or check) the Python gRPC stubs of the vitrine.v1 API.

Sources: protos/vitrine/v1/*.proto (package ``vitrine.v1``, include root ``protos/``).
Output:  vitrine/v1/{name}_pb2.py, {name}_pb2.pyi, {name}_pb2_grpc.py, importable as
``vitrine.v1.encoder_pb2`` etc. (the generated code imports ``from vitrine.v1 import ...``).

Usage (from anywhere, with the dev venv active):

    python scripts/gen_protos.py          # regenerate vitrine/v1/ in place
    python scripts/gen_protos.py --check  # exit 1 if committed stubs are stale

Generation always happens in a temporary directory with ``grpc_tools.protoc`` run as a
subprocess from the repository root, with sorted repository-relative inputs, so the output
depends only on the .proto files and the pinned grpcio-tools version.
``vitrine/v1/__init__.py`` is hand-written and never compared or overwritten.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"
PACKAGE_REL = Path("vitrine") / "v1"
OUT_DIR = REPO_ROOT / PACKAGE_REL
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
INIT_TEXT = '"""Generated gRPC/protobuf stubs for the vitrine.v1 API (see protos/)."""\n'


def is_generated_name(name: str) -> bool:
    """True for file names that this script owns in vitrine/v1/."""
    return name.endswith(GENERATED_SUFFIXES)


def proto_files() -> list[str]:
    """The .proto inputs, relative to the include root, sorted."""
    files = sorted(
        p.relative_to(PROTO_ROOT).as_posix() for p in (PROTO_ROOT / PACKAGE_REL).glob("*.proto")
    )
    if not files:
        raise SystemExit(f"no .proto files found under {PROTO_ROOT / PACKAGE_REL}")
    return files


def generate(dest: Path) -> dict[str, Path]:
    """Run protoc into ``dest``; return {file name: path} of the generated stubs."""
    if importlib.util.find_spec("grpc_tools") is None:
        raise SystemExit("grpcio-tools is not installed (pip install -e '.[dev]')")
    # `python -m grpc_tools.protoc` adds its bundled google/protobuf/*.proto include itself.
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT.relative_to(REPO_ROOT).as_posix()}",
        f"--python_out={dest}",
        f"--pyi_out={dest}",
        f"--grpc_python_out={dest}",
        *(f"protos/{f}" for f in proto_files()),
    ]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"protoc failed with exit code {proc.returncode}")
    gen_dir = dest / PACKAGE_REL
    produced = {p.name: p for p in sorted(gen_dir.iterdir()) if is_generated_name(p.name)}
    unexpected = sorted(
        p.relative_to(dest).as_posix()
        for p in dest.rglob("*")
        if p.is_file() and p.parent != gen_dir
    )
    if unexpected:
        raise SystemExit(f"protoc wrote files outside {PACKAGE_REL}: {unexpected}")
    return produced


def committed() -> dict[str, Path]:
    """The generated-looking files currently in vitrine/v1/."""
    if not OUT_DIR.is_dir():
        return {}
    return {
        p.name: p for p in sorted(OUT_DIR.iterdir()) if p.is_file() and is_generated_name(p.name)
    }


def check(fresh: dict[str, Path]) -> int:
    """Compare fresh stubs with vitrine/v1/ byte for byte; print problems; return exit code."""
    current = committed()
    rel = PACKAGE_REL.as_posix()
    stale = [
        n for n in fresh if n in current and not filecmp.cmp(fresh[n], current[n], shallow=False)
    ]
    missing = [n for n in fresh if n not in current]
    extra = [n for n in current if n not in fresh]
    for label, names in (("stale", stale), ("missing", missing), ("extra", extra)):
        for name in names:
            print(f"{label}: {rel}/{name}")
    if stale or missing or extra:
        print("protobuf stubs are out of date; run: python scripts/gen_protos.py", file=sys.stderr)
        return 1
    print(f"{rel}: {len(fresh)} generated files up to date")
    return 0


def write(fresh: dict[str, Path]) -> int:
    """Copy fresh stubs into vitrine/v1/, removing generated files with no source."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    init = OUT_DIR / "__init__.py"
    if not init.exists():
        init.write_text(INIT_TEXT, encoding="utf-8")
    for name, path in committed().items():
        if name not in fresh:
            path.unlink()
            print(f"removed {PACKAGE_REL.as_posix()}/{name}")
    changed = 0
    for name, src in fresh.items():
        dst = OUT_DIR / name
        if dst.exists() and filecmp.cmp(src, dst, shallow=False):
            continue
        shutil.copyfile(src, dst)
        changed += 1
        print(f"wrote {PACKAGE_REL.as_posix()}/{name}")
    print(f"{len(fresh)} generated files, {changed} changed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if vitrine/v1/ stubs are stale, missing or extra",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vitrine-protos-") as tmp:
        fresh = generate(Path(tmp))
        return check(fresh) if args.check else write(fresh)


if __name__ == "__main__":
    sys.exit(main())
