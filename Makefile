# Vitrine — `make demo` and `make test` are all a fresh machine needs (Python 3.11 + make).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint format protos protos-check train eval up serve-encoder bench-peers bench-encoder bench-index bench-gateway bench-rerank bench-caption bench-cache eval-captions eval-hybrid eval-compose fuzz clean help

help:
	@echo "make demo   - set up, build the towers on the demo catalog, run the services, ingest, query"
	@echo "make test   - set up and run the whole test suite (lint, stale-stub check, pytest)"
	@echo "make protos - regenerate the gRPC stubs in vitrine/v1 from protos/"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vitrine demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PY) scripts/gen_protos.py --check
	$(BIN)/pytest -m "not gpu" -q

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow and not gpu" -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd protos && ../$(BIN)/buf lint

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

protos: $(STAMP)
	$(PY) scripts/gen_protos.py

protos-check: $(STAMP)
	$(PY) scripts/gen_protos.py --check

# Full-catalog training and evaluation (docs/quality.md).
CATALOG ?= ../shared/data/fashion-products
MODELS  ?= models
train: $(STAMP)
	$(BIN)/vitrine train --catalog $(CATALOG) --out $(MODELS)

eval: $(STAMP)
	$(BIN)/vitrine eval --models $(MODELS) --catalog $(CATALOG) --json

up: $(STAMP)
	$(BIN)/vitrine up --models $(MODELS)

serve-encoder: $(STAMP)
	$(BIN)/vitrine serve encoder --models $(MODELS)

# Benchmarks (docs/benchmarks.md). Peers (Triton, MLServer) live in their own venv.
bench-peers:
	bash benchmarks/peers/setup.sh

bench-encoder: $(STAMP) bench-peers
	$(PY) benchmarks/encoder_bench.py --models $(MODELS) --catalog $(CATALOG)

bench-index: $(STAMP) bench-peers
	$(PY) benchmarks/index_bench.py --sizes 10000,100000

bench-gateway: $(STAMP)
	$(PY) benchmarks/gateway_bench.py --models $(MODELS) --catalog $(CATALOG)

bench-rerank: $(STAMP)
	$(PY) benchmarks/rerank_bench.py --models $(MODELS) --catalog $(CATALOG)

bench-caption: $(STAMP)
	$(PY) benchmarks/caption_bench.py --models $(MODELS) --catalog $(CATALOG)

bench-cache: $(STAMP)
	$(PY) benchmarks/embed_cache_bench.py --models $(MODELS) --catalog $(CATALOG)

eval-captions: $(STAMP)
	$(BIN)/vitrine eval-captions --models $(MODELS) --catalog $(CATALOG) --json

eval-hybrid: $(STAMP)
	$(PY) benchmarks/hybrid_eval.py --models $(MODELS) --catalog $(CATALOG)

eval-compose: $(STAMP)
	$(PY) benchmarks/compose_eval.py --models $(MODELS) --catalog $(CATALOG)

# Malformed requests against a local stack (tiny models): every answer a clear status, no crash.
fuzz: $(STAMP)
	$(PY) benchmarks/fuzz.py

clean:
	rm -rf $(VENV) .venv-peers .cache runs .pytest_cache .ruff_cache
