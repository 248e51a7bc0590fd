# swarmd developer entry points. `make help` lists the targets (from their `## ` comments).
# Every target is idempotent: run it again and it does only what is still missing.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Stamp written after a successful install; redone when pyproject.toml changes.
DEV_STAMP := $(VENV)/.swarmd-dev-installed

IMAGE ?= swarmd-busybox:latest
PYTEST_ARGS ?=

# One-host demo cluster (`make up` / `make down`).
STATE_DIR := ./.swarmd
SOCK := $(STATE_DIR)/swarmd.sock
REMOTE_API ?= 127.0.0.1:4242
JOIN_API ?= 127.0.0.1:4243
SWARMCTL := $(BIN)/swarmctl -s $(SOCK)

export GRPC_VERBOSITY ?= ERROR

.PHONY: help dev proto check-proto fmt lint check docker image test test-unit test-e2e sim up down \
	status bench bench-workload bench-raft bench-rolling clean

help: ## Show this help
	@echo "Usage: make TARGET   (fresh Debian 12 as root: 'make up' or 'make test')"
	awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

# ---------------------------------------------------------------------------------------------
# Environment

dev: $(DEV_STAMP) ## Create .venv and install swarmd editable with the dev extra (uv, else pip)

$(DEV_STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then
		echo "[dev] creating $(VENV) with $$($(PYTHON) --version)"
		$(PYTHON) -m venv $(VENV)
	fi
	# uv ignores pip.conf (which may name local mirrors that do not exist) and is ~15x faster.
	if [ ! -x $(BIN)/uv ]; then
		$(BIN)/pip install -q --disable-pip-version-check uv || echo "[dev] could not install uv"
	fi
	if [ -x $(BIN)/uv ] && VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install -q --python $(PY) -e '.[dev]'; then
		echo "[dev] installed with uv"
	else
		echo "[dev] uv unavailable or failed; falling back to pip"
		$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	fi
	touch $@

# ---------------------------------------------------------------------------------------------
# Code generation and static checks

# protoc OUTDIR: generate into OUTDIR/swarmd/api (mypy-protobuf's chatter shown only on failure).
define protoc
	out="$$(PATH="$(abspath $(BIN)):$$PATH" $(PY) -m grpc_tools.protoc -I proto \
		--python_out=$(1) --grpc_python_out=$(1) --mypy_out=$(1) --mypy_grpc_out=$(1) \
		proto/swarmd/api/*.proto 2>&1)" || { echo "$$out" >&2; exit 1; }
endef

proto: dev ## Regenerate swarmd/api/* from proto/swarmd/api/*.proto
	@test -f swarmd/api/__init__.py || { echo "swarmd/api/__init__.py is missing"; exit 1; }
	# Only generated files go; __init__.py stays. Removing first drops files of deleted protos.
	rm -f swarmd/api/*_pb2.py swarmd/api/*_pb2.pyi swarmd/api/*_pb2_grpc.py swarmd/api/*_pb2_grpc.pyi
	$(call protoc,.)
	echo "[proto] generated $$(ls swarmd/api/*_pb2*.py* | wc -l) files in swarmd/api"

check-proto: dev ## Fail when swarmd/api differs from what `make proto` generates
	@tmp="$$(mktemp -d)"
	trap 'rm -rf "$$tmp"' EXIT
	mkdir -p "$$tmp/swarmd/api"
	$(call protoc,"$$tmp")
	# Compare generated files both ways: changed, missing and stale ones all count as drift.
	status=0
	for f in "$$tmp"/swarmd/api/*_pb2*; do
		rel="swarmd/api/$$(basename "$$f")"
		if ! cmp -s "$$f" "$$rel"; then
			echo "[check-proto] drift: $$rel"; diff -u "$$rel" "$$f" | head -n 20 || true; status=1
		fi
	done
	for f in swarmd/api/*_pb2*; do
		[ -e "$$tmp/$$f" ] || { echo "[check-proto] stale generated file: $$f"; status=1; }
	done
	if [ "$$status" -ne 0 ]; then
		echo "[check-proto] swarmd/api is out of date: run 'make proto' and commit the result"
		exit 1
	fi
	# Committed state too, when a commit exists: catches generated files left uncommitted.
	if git rev-parse -q --verify HEAD >/dev/null 2>&1; then
		git diff --exit-code --stat -- swarmd/api
	fi
	echo "[check-proto] swarmd/api is up to date"

fmt: dev ## Format the code and apply safe ruff fixes
	@$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: dev ## ruff check, ruff format --check, mypy --strict, lint-imports (runs all, then fails)
	@failed=()
	step() { echo "== $$*"; "$$@" || failed+=("$$1 $$2"); }
	step $(BIN)/ruff check .
	step $(BIN)/ruff format --check .
	step $(BIN)/mypy --strict swarmd swarmctl
	step $(BIN)/lint-imports
	if [ "$${#failed[@]}" -ne 0 ]; then
		printf '[lint] FAILED: %s\n' "$${failed[@]}"; exit 1
	fi
	echo "[lint] all clean"

check: lint check-proto ## All static checks: lint + check-proto (what CI runs before `make test`)

# ---------------------------------------------------------------------------------------------
# Docker Engine and the local test image (no registry here: the image is built from busybox)

docker: ## Install and start a Docker Engine when missing (root, Debian)
	@scripts/docker-up.sh

image: docker ## Build the local test image swarmd-busybox:latest when absent
	@scripts/build-image.sh $(IMAGE)

# ---------------------------------------------------------------------------------------------
# Tests

test: dev docker image ## Run the whole test suite (unit, component, cluster, e2e with Docker)
	@$(BIN)/pytest -q $(PYTEST_ARGS) tests

test-unit: dev ## Run the tests that need no Docker Engine
	@$(BIN)/pytest -q -m 'not docker' $(PYTEST_ARGS) tests

test-e2e: dev docker image ## Run only the end-to-end tests against the real Docker Engine
	@$(BIN)/pytest -q $(PYTEST_ARGS) tests/e2e

SEEDS ?= 10000
sim: dev ## Long deterministic Raft simulation (SEEDS=10000)
	@SIM_SEEDS=$(SEEDS) $(BIN)/pytest -q $(PYTEST_ARGS) tests/raft/test_sim.py

# ---------------------------------------------------------------------------------------------
# One-host cluster

up: dev docker image ## Start a one-host swarmd cluster in ./.swarmd with a demo service
	@mkdir -p $(STATE_DIR)
	if [ -f $(STATE_DIR)/swarmd.pid ] && kill -0 "$$(cat $(STATE_DIR)/swarmd.pid)" 2>/dev/null; then
		echo "[up] swarmd already running (pid $$(cat $(STATE_DIR)/swarmd.pid))"
	else
		echo "[up] starting swarmd (log: $(STATE_DIR)/swarmd.log)"
		setsid $(BIN)/swarmd -d $(STATE_DIR) --listen-control-api $(SOCK) \
			--listen-remote-api $(REMOTE_API) --listen-join-api $(JOIN_API) \
			--hostname "$$(hostname)" >>$(STATE_DIR)/swarmd.log 2>&1 </dev/null &
		echo $$! >$(STATE_DIR)/swarmd.pid
	fi
	pid="$$(cat $(STATE_DIR)/swarmd.pid)"
	for _ in $$(seq 1 120); do
		if $(SWARMCTL) node ls >/dev/null 2>&1; then break; fi
		if ! kill -0 "$$pid" 2>/dev/null; then
			echo "[up] swarmd exited; last log lines:"; tail -n 30 $(STATE_DIR)/swarmd.log; exit 1
		fi
		sleep 0.5
	done
	if ! $(SWARMCTL) node ls >/dev/null 2>&1; then
		echo "[up] swarmd did not answer on $(SOCK) within 60 s; see $(STATE_DIR)/swarmd.log"; exit 1
	fi
	if ! $(SWARMCTL) service inspect demo >/dev/null 2>&1; then
		echo "[up] creating service demo (2 replicas of $(IMAGE))"
		$(SWARMCTL) service create --name demo --image $(IMAGE) --replicas 2 \
			--command sleep --args 1000000 >/dev/null
	fi
	echo; echo "== swarmctl node ls"; $(SWARMCTL) node ls
	echo; echo "== swarmctl service ls"; $(SWARMCTL) service ls
	echo
	echo "swarmd is running (pid $$pid, log $(STATE_DIR)/swarmd.log). Try:"
	echo "  export SWARM_SOCKET=$(abspath $(SOCK)) PATH=$(abspath $(BIN)):\$$PATH"
	echo "  swarmctl node ls; swarmctl service ls; swarmctl task ls"
	echo "  swarmctl service update demo --replicas 3"
	echo "  swarmctl cluster inspect default     # join tokens"
	echo "Stop it and remove its containers and state with: make down"

status: ## Show nodes, services and tasks of the `make up` cluster
	@$(SWARMCTL) node ls; echo; $(SWARMCTL) service ls; echo; $(SWARMCTL) task ls

down: ## Stop the `make up` cluster, remove its containers and ./.swarmd
	@# The node id (CN of its certificate) says which containers are this cluster's.
	node_id="$$($(PY) -c 'import sys; from cryptography import x509; from cryptography.x509.oid import NameOID as N; c = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read()); print(c.subject.get_attributes_for_oid(N.COMMON_NAME)[0].value)' $(STATE_DIR)/certificates/swarm-node.crt 2>/dev/null || true)"
	if [ -f $(STATE_DIR)/swarmd.pid ]; then
		pid="$$(cat $(STATE_DIR)/swarmd.pid)"
		if kill -0 "$$pid" 2>/dev/null; then
			echo "[down] stopping swarmd (pid $$pid)"
			kill -TERM "$$pid"
			for _ in $$(seq 1 60); do kill -0 "$$pid" 2>/dev/null || break; sleep 0.5; done
			if kill -0 "$$pid" 2>/dev/null; then
				echo "[down] swarmd ignored SIGTERM for 30 s; sending SIGKILL"; kill -KILL "$$pid" || true
			fi
		fi
	fi
	if [ -n "$$node_id" ] && docker info >/dev/null 2>&1; then
		ids="$$(docker ps -aq --filter label=swarmd.node.id=$$node_id)"
		if [ -n "$$ids" ]; then
			echo "[down] removing $$(wc -w <<<"$$ids") swarmd containers"
			xargs docker rm -f <<<"$$ids" >/dev/null
		fi
	fi
	rm -rf $(STATE_DIR)
	echo "[down] done"

# ---------------------------------------------------------------------------------------------
# Benchmarks

bench: dev docker image ## Control-plane benchmark: swarmd vs Docker Swarm (writes .bench/*.json)
	@$(PY) bench/control_plane.py $(BENCH_ARGS)

bench-workload: dev docker image ## Workload benchmark: swarmd vs Docker Swarm vs raw Docker
	@$(PY) -m bench.workload $(BENCH_ARGS)

bench-raft: dev docker image ## Raft failover, commit throughput and snapshot benchmark
	@$(PY) -m bench.raft $(BENCH_ARGS)

bench-rolling: dev docker image ## Rolling update benchmark: swarmd vs Docker Swarm
	@$(PY) -m bench.rolling $(BENCH_ARGS)

clean: ## Remove caches and build output (keeps .venv)
	@rm -rf .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist *.egg-info
	find . -path ./.venv -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf
