# Vitrine — `make demo` and `make test` are all a fresh machine needs (Python 3.11 + make).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-tools test-fast lint format protos protos-check train eval up serve-encoder bench-peers bench-encoder bench-index bench-gateway bench-rerank bench-caption bench-cache eval-captions eval-hybrid eval-compose fuzz bench-replication clean help

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

# Debian's promtool, etcd and chromium + chromedriver, where missing (the tests that need them
# skip with a reason where they cannot be installed).
test-tools:
	@scripts/install_test_tools.sh

test: $(STAMP) test-tools
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

.PHONY: bench-http
bench-http: $(STAMP)
	$(PY) benchmarks/http_bench.py --models $(MODELS) --catalog $(CATALOG)

eval-captions: $(STAMP)
	$(BIN)/vitrine eval-captions --models $(MODELS) --catalog $(CATALOG) --json

eval-hybrid: $(STAMP)
	$(PY) benchmarks/hybrid_eval.py --models $(MODELS) --catalog $(CATALOG)

eval-compose: $(STAMP)
	$(PY) benchmarks/compose_eval.py --models $(MODELS) --catalog $(CATALOG)

# Malformed requests against a local stack (tiny models): every answer a clear status, no crash.
fuzz: $(STAMP)
	$(PY) benchmarks/fuzz.py

# R = 1 vs R = 2 search/upsert and failover time over 10 trials (needs Debian's etcd-server).
bench-replication: $(STAMP)
	$(PY) benchmarks/replication_bench.py --n 20000 --dim 256 --duration 8 --trials 10

clean:
	rm -rf $(VENV) .venv-peers .venv-checkov .cache runs .pytest_cache .ruff_cache

# Monitoring (docs/operations.md): regenerate the PrometheusRule and the Grafana dashboard of
# deploy/monitoring/ from their sources, check the rules and run their unit tests (promtool);
# `make prometheus` runs Prometheus against `make up` / `vitrine up` on this machine.
.PHONY: monitoring prometheus
monitoring: $(STAMP)
	$(PY) deploy/monitoring/generate.py
	promtool check rules deploy/monitoring/vitrine-rules.yml
	promtool test rules deploy/monitoring/tests/*.yml

prometheus:
	prometheus --config.file=deploy/monitoring/prometheus-local.yml \
	  --storage.tsdb.path=.cache/prometheus --web.listen-address=127.0.0.1:9090

# checkov, the static analysis of deploy/ in tests/test_deploy.py, lives in its own venv: its pins
# (cachetools<6, packaging<24, networkx<2.7) conflict with the services' (cachetools==8.0.0).
CHECKOV_VENV  ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
.PHONY: checkov
checkov: $(CHECKOV_STAMP)
$(CHECKOV_STAMP): deploy/requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	echo '*' > $(CHECKOV_VENV)/.gitignore
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r deploy/requirements-checkov.txt
	touch $@
test: $(CHECKOV_STAMP)
export CHECKOV_BIN := $(abspath $(CHECKOV_VENV))/bin/checkov
