# One tool for everything: `make run` and `make test` work on a fresh machine
# (Python 3.11+, a Rust toolchain and make; everything else is installed here).

VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
DATA_DIR ?= ./mt5exec-data
LISTEN ?= 127.0.0.1:50051
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup build run test lint fmt proto bench clean examples ghz

# Virtualenv with the package (editable) and the dev tools.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# The credential vault's tests start a PostgreSQL server of their own, the Redis mirror's a
# redis-server, the deploy files' test runs promtool: installed here where missing and we may
# (root, apt).
setup: $(VENV)/.installed
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null \
		&& [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; \
	fi
	@if ! command -v redis-server >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; \
	fi
	@# promtool checks deploy/prometheus/alerts.yml (tests/e2e/test_deploy.py): Debian's prometheus.
	@if ! command -v promtool >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; \
	fi
	@# strace counts the control calls' fsyncs per thread (tests/e2e/test_bench_control_writes.py).
	@if ! command -v strace >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q strace; \
	fi

# (Re)builds the Rust extension in release mode into the package, and compiles the package's
# bytecode: a worker process starts ~30 % faster when it need not compile its imports.
# test-bindings: the bindings only tests and benchmarks use (_core.RiskChecker); an extension
# built by `pip install .` has none.
build: setup
	$(VENV)/bin/maturin develop --release -q --features test-bindings
	$(PY) -m compileall -q python/mt5exec

# buf (proto lint and breaking-change check) from npm, pinned by tools/package-lock.json, into
# tools/node_modules (not global). npm is required: a missing one fails here, on CI too.
BUF := tools/node_modules/.bin/buf
$(BUF): tools/package.json tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund --loglevel=error
	touch $@

# Sets up and runs the server: simulated broker, embedded DuckDB, nothing else needed.
run: build
	MT5EXEC_SERVER_METRICS_LISTEN=$${MT5EXEC_SERVER_METRICS_LISTEN-127.0.0.1:9464} $(VENV)/bin/mt5exec serve --listen $(LISTEN) --data-dir $(DATA_DIR)

lint: build $(BUF)
	@# proto/: buf's STANDARD lint rules, and no breaking change against the previous commit
	@# (FILE rules: wire, JSON and generated-code names). A clone without a previous commit
	@# (one commit, or shallow) has nothing to compare against.
	$(BUF) lint
	@if git rev-parse -q --verify HEAD~1 >/dev/null; then \
		$(BUF) breaking --against '.git#ref=HEAD~1'; \
	else echo "buf breaking: no previous commit to compare against"; fi
	$(VENV)/bin/ruff check python tests benchmarks scripts
	$(VENV)/bin/ruff format --check python tests benchmarks scripts
	$(VENV)/bin/mypy
	@# The engine's stub against the built extension (run after build).
	$(PY) -m mypy.stubtest mt5exec._core
	cargo fmt --all --check
	cargo clippy --all-targets --all-features -q -- -D warnings
	@# The benchmarks' Go load generator and the Go example, where Go is installed.
	@if command -v go >/dev/null; then \
		test -z "$$(gofmt -l benchmarks/loadgen examples/go)" || { gofmt -l benchmarks/loadgen examples/go; exit 1; }; \
		cd benchmarks/loadgen && go vet ./...; \
	fi

# The examples' dependencies (tests/e2e/test_e2e_examples.py builds and runs them), pinned by
# examples/node/package-lock.json and examples/go/go.sum.
examples/node/node_modules/.package-lock.json: examples/node/package.json examples/node/package-lock.json
	npm ci --prefix examples/node --no-audit --no-fund --loglevel=error
examples: examples/node/node_modules/.package-lock.json
	cd examples/go && go mod download

# ghz, the gRPC load tool users measure us with (benchmarks/ghz_orders.py and its smoke test),
# pinned, into tools/bin.
GHZ := tools/bin/ghz
$(GHZ):
	GOBIN=$(abspath tools/bin) go install github.com/bojand/ghz/cmd/ghz@v0.120.0
ghz: $(GHZ)

# Sets up and runs the whole suite: lint, Rust tests, Python unit and e2e tests.
test: build lint examples ghz
	cargo test -q
	$(VENV)/bin/pytest -q

fmt: setup
	$(VENV)/bin/ruff format python tests benchmarks scripts
	$(VENV)/bin/ruff check --fix python tests benchmarks scripts
	cargo fmt --all

# Regenerates the committed protobuf code from proto/.
proto: setup
	$(PY) scripts/gen_protos.py

bench: build
	$(PY) benchmarks/order_roundtrip.py
	$(PY) benchmarks/order_throughput.py
	$(PY) benchmarks/instance_lifecycle.py
	$(PY) benchmarks/tick_fanout.py
	$(PY) benchmarks/risk_check.py
	$(PY) benchmarks/auth_overhead.py
	$(PY) benchmarks/metrics_overhead.py
	$(PY) benchmarks/redis_mirror.py

clean:
	rm -rf $(VENV) target tools/node_modules tools/bin examples/node/node_modules examples/go/gen python/mt5exec/_core*.so
