#!/usr/bin/env bash
# Create / update the peers' venv (.venv-peers at the repository root) from requirements.txt.
# Idempotent: a stamp inside the venv records the requirements' hash; pip runs only when the
# venv is new or requirements.txt changed. Env: PYTHON (default python3.11), VENV (default
# <repo>/.venv-peers).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3.11}"
venv="${VENV:-$repo/.venv-peers}"
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv with $python"
    "$python" -m venv "$venv"
fi
# Keep the venv out of git without touching the repository's .gitignore.
[ -f "$venv/.gitignore" ] || echo '*' > "$venv/.gitignore"

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "$venv is up to date"
    exit 0
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$req"
"$venv/bin/python" -m pip check
# Versions from package metadata: importing pytriton (tritonclient) and mlserver in one process
# fails (both register protobuf `inference.*` messages), and neither server needs that.
"$venv/bin/python" - <<'PY'
from importlib.metadata import version
names = ["nvidia-pytriton", "mlserver", "onnxruntime", "tokenizers", "pillow", "numpy", "uvloop"]
print("peers venv:", ", ".join(f"{n} {version(n)}" for n in names))
PY
"$venv/bin/python" -c "import pytriton.triton, onnxruntime, tokenizers, PIL"
"$venv/bin/python" -c "import mlserver, mlserver.grpc.dataplane_pb2"
echo "$want" > "$stamp"
