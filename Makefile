# wardgate: the two commands a fresh machine needs are `make dev` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
SAM     = $(BIN)/sam
REGION ?= us-east-1

.PHONY: dev test unit services lint validate build bench clean

$(BIN)/.installed: pyproject.toml layers/wardgate/requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (the Lambda runtime's version)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python -m wardgate.tls  # certifi's CAs as a hashed directory, as the layer ships them
	touch $@

venv: $(BIN)/.installed

## Run wardgate locally: moto in-process, a development OIDC issuer, a demo upstream.
dev: venv
	@bash scripts/services postgres mariadb  # demo-sql, demo-pg: the local PostgreSQL; demo-mysql: the local MariaDB
	@bash scripts/mysql-test-auth  # demo-mysql's login (wardgate_native) on the local MariaDB, and its TLS
	$(BIN)/wardgate dev

## The whole suite: lint, type-check, template validation, unit and integration tests.
test: venv services lint validate build
	$(BIN)/pytest -q

unit: venv services
	$(BIN)/pytest -q

## What the tests need from the machine (PostgreSQL, MariaDB, their test role and database,
## Chromium): checked, and installed, started or created only when missing.
services:
	@bash scripts/services
	@bash scripts/pg-test-auth  # password (SCRAM, md5) and TLS logins for the TCP gateway's tests
	@bash scripts/mysql-test-auth  # password (native, ed25519) and TLS logins for the MySQL gateway's tests

lint: venv
	$(BIN)/ruff check layers functions tests benchmarks fuzz
	$(BIN)/ruff format --check layers functions tests benchmarks fuzz
	$(BIN)/mypy
	for handler in functions/*/app.py; do $(BIN)/mypy $$handler || exit 1; done

validate: venv
	$(SAM) validate --lint --region $(REGION)

build: venv
	$(SAM) build --region $(REGION) --parallel

## The TCP gateway's image (wardgate serve-tcp on Fargate, linux/arm64): docker buildx or podman.
## Building on x86_64 runs the arm64 install step under QEMU (binfmt_misc) emulation.
.PHONY: image
IMAGE ?= wardgate-tcp:$(shell git describe --always --dirty 2>/dev/null || echo dev)
image:
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
		set -x; docker buildx build --platform linux/arm64 --load -t $(IMAGE) . ; \
	elif command -v podman >/dev/null 2>&1 && podman info >/dev/null 2>&1; then \
		set -x; podman build --platform linux/arm64 -t $(IMAGE) . ; \
	else \
		echo "make image: no container engine is running (docker: 'docker info' fails, or podman missing)."; \
		echo "Start the Docker daemon or install podman; the install step alone is checked by tests/test_tcp_image.py."; \
		exit 1; \
	fi

## The replay page's terminal player: asciinema-player from the npm registry at the version pinned in
## the script (its tarball's integrity checked), vendored into wardgate/auditing/web/static/ and
## committed, so no build and no Lambda needs npm (docs/auditors.md#the-player).
.PHONY: player
player:
	bash scripts/vendor-asciinema-player

## Every benchmark; each rewrites its own section of docs/benchmarks.md.
bench: venv
	$(BIN)/python benchmarks/overhead.py --write
	$(BIN)/python benchmarks/cold_start.py --write
	$(BIN)/python benchmarks/policy_decisions.py --write
	$(BIN)/python benchmarks/verify.py --write  # recordings verify over 100,000 chained events (~30 s)
	$(BIN)/python benchmarks/policy_replay.py --write  # policy replay over 100,000 recorded operations (~1 min)
	$(BIN)/python benchmarks/sql_classification.py --write
	$(BIN)/python benchmarks/masking.py --write  # Presidio column: $(BIN)/pip install presidio-analyzer
	$(BIN)/python benchmarks/revocation.py --write
	$(BIN)/python benchmarks/approval_latency.py --write  # approve click -> agent's result, local
	$(BIN)/python benchmarks/sql_overhead.py --write  # needs PostgreSQL on 127.0.0.1:5432 (make services)
	$(BIN)/python benchmarks/pg_overhead.py --write  # TCP gateway: pgbench, PostgreSQL + PgBouncer (~4 min)
	$(BIN)/python benchmarks/mysql_overhead.py --write  # TCP gateway: sysbench, MariaDB (make services; ~2 min)
	$(BIN)/python benchmarks/ssh_overhead.py --write  # TCP gateway: ssh true and scp of 100 MB, direct vs wardgate (make services; ~3 min)
	$(BIN)/python benchmarks/kube_overhead.py --write  # Kubernetes: 100 pods listed with the Python client, direct vs the Lambda path and the listener (~3 min)
	$(BIN)/python benchmarks/load.py --write  # 20,000 requests, 100 clients, wardgate dev (~15 min, then ~3 min of checks)
	$(BIN)/python benchmarks/recordings_query.py --write  # a named question over 1,000,000 recorded operations (~4 min)
	$(BIN)/python benchmarks/summary.py --write  # every target's latest figure, at the top of docs/benchmarks.md

## Coverage-guided fuzzing (atheris) of the parsers that take agent input, FUZZ_SECONDS each,
## FUZZ_JOBS at a time; corpora and findings in fuzz/.work/ (fuzz/README.md). CI runs them briefly.
.PHONY: fuzz
FUZZ_SECONDS ?= 300
FUZZ_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_TARGETS ?= http_path sql_parser k8s_request shell_parser dataapi_request scim_filter policy_yaml pg_codec pg_values
fuzz: venv
	@mkdir -p fuzz/.work/logs
	@printf '%s\n' $(FUZZ_TARGETS) | xargs -P $(FUZZ_JOBS) -I{} sh -c '\
		$(BIN)/python fuzz/{}.py -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(FUZZ_FLAGS) \
			> fuzz/.work/logs/{}.log 2>&1 \
		&& echo "fuzz/{}: no crash in $(FUZZ_SECONDS) s" \
		|| { echo "fuzz/{}: CRASH, see fuzz/.work/logs/{}.log and fuzz/.work/artifacts/"; exit 1; }'

clean:
	rm -rf $(VENV) .aws-sam .wardgate .pytest_cache .mypy_cache .ruff_cache
