# Helionyx — every target is a thin layer over `python -m helionyx` or `python -m release`.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-$(shell cat requirements/dev.txt pyproject.toml 2>/dev/null | sha256sum | cut -c1-12)
ENV ?= dev
PYTEST_ARGS ?=
# pip-compile must not write this machine's index URLs or find-links into a lock.
COMPILE := env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="make lock" \
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	--no-emit-index-url --no-emit-find-links
LOCKS := runtime dev tools mutation

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements/dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*; touch $@

.PHONY: install
install: $(STAMP) ## create .venv with the locked dev tools and the package (editable)

.PHONY: run
run: $(STAMP) ## run the service locally (ENV=dev by default; creates .env.dev from its example)
	@if [ "$(ENV)" = dev ] && [ ! -f .env.dev ]; then \
		install -m 600 .env.dev.example .env.dev; echo "created .env.dev from .env.dev.example"; fi
	$(PY) -m helionyx serve --env $(ENV)

.PHONY: test
test: $(STAMP) ## run the test suite (creates .venv first)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(STAMP) ## every test that needs neither root nor the test node (4 workers)
	$(PY) -m pytest -m "not root and not node" -n 4 $(PYTEST_ARGS)

.PHONY: test-e2e
test-e2e: $(STAMP) ## only the tests that need root or the test node
	$(PY) -m pytest -m "root or node" $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff check + ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: format
format: $(STAMP) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: typecheck
typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy

.PHONY: check
check: lint typecheck test ## every gate: lint, types, tests

.PHONY: lock
lock: $(STAMP) ## recompile the hash-pinned locks from requirements/*.in
	@for name in $(LOCKS); do $(COMPILE) -o requirements/$$name.txt requirements/$$name.in || exit 1; done

.PHONY: lock-check
lock-check: $(STAMP) ## fail when a lock does not regenerate identically from its .in file
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; for name in $(LOCKS); do \
		cp requirements/$$name.txt $$tmp/$$name.txt; \
		$(COMPILE) -o $$tmp/$$name.txt requirements/$$name.in || exit 1; \
		diff -u requirements/$$name.txt $$tmp/$$name.txt || { echo "requirements/$$name.txt is stale: run make lock" >&2; exit 1; }; \
	done; echo "locks are fresh"

# -- releases ----------------------------------------------------------------------------
VERSION ?=
BUMP ?=
STORE ?= dir:dist/releases
FORMAT ?= table
RELEASE := $(PY) -m release

.PHONY: release
release: $(STAMP) ## tag VERSION=X.Y.Z (or BUMP=patch|minor|major) on a clean tree and build it
	@$(RELEASE) release $(if $(VERSION),--version "$(VERSION)") $(if $(BUMP),--bump "$(BUMP)")

.PHONY: artifact
artifact: $(STAMP) ## build the artifact for HEAD into dist/releases (a dev build when untagged)
	@$(RELEASE) artifact

.PHONY: publish
publish: $(STAMP) ## publish VERSION from dist/releases to STORE (dir:PATH or github:OWNER/REPO)
	@$(RELEASE) publish --version "$(VERSION)" --store "$(STORE)"

.PHONY: releases-available
releases-available: $(STAMP) ## list what STORE holds, newest first (FORMAT=json for JSON)
	@$(RELEASE) list --store "$(STORE)" --format "$(FORMAT)"

.PHONY: twine-check
twine-check: $(STAMP) ## twine check --strict on every wheel in dist/releases
	@$(PY) -m twine check --strict dist/releases/*/helionyx-*.whl

.PHONY: reproducible
reproducible: $(STAMP) ## build REF (default HEAD) in two clones; fail unless byte-identical
	@$(RELEASE) reproduce --ref "$(or $(REF),HEAD)"

.PHONY: release-guard
release-guard: $(STAMP) ## refuse to publish TAG unless it is on origin/main and in CHANGELOG.md
	@$(RELEASE) guard --tag "$(TAG)"

.PHONY: verify
verify: $(STAMP) ## download VERSION from STORE into dist/cache and check every checksum
	@$(RELEASE) verify --version "$(VERSION)" --store "$(STORE)"

# -- deploying to a host -----------------------------------------------------------------
ENV_FILE ?=
TO ?=
FOLLOW ?=
FORCE ?=
MIGRATE ?=
WAIT ?=
APPLY ?=
REASON ?=
LINES ?= 100
TESTNODE := $(PYTHON) deployment/testnode/testnode.py

.PHONY: setup-host
setup-host: $(STAMP) ## prepare ENV on its host: user, dirs, /etc/helionyx/ENV.env (0600), unit
	@$(RELEASE) setup-host --env "$(ENV)" $(if $(ENV_FILE),--env-file "$(ENV_FILE)")

.PHONY: deploy
deploy: $(STAMP) ## deploy VERSION (version, tag or SHA) from STORE to ENV, health-gated
	@$(RELEASE) deploy --env "$(ENV)" --version "$(VERSION)" --store "$(STORE)" $(if $(MIGRATE),--migrate) $(if $(WAIT),--wait "$(WAIT)") $(if $(FORCE),--force --reason "$(REASON)") $(if $(APPLY),--apply-units)

.PHONY: promote
promote: $(STAMP) ## deploy to TO exactly the release FROM serves (verified again, never rebuilt)
	@$(RELEASE) promote --from "$(FROM)" --to "$(TO)" --store "$(STORE)" $(if $(MIGRATE),--migrate) $(if $(WAIT),--wait "$(WAIT)") $(if $(FORCE),--force --reason "$(REASON)") $(if $(APPLY),--apply-units)

.PHONY: plan
plan: $(STAMP) ## what deploying VERSION to ENV would do: commits, dependencies, read model, rollback (FORMAT=json)
	@$(RELEASE) plan --env "$(ENV)" --version "$(VERSION)" --store "$(STORE)" --format "$(FORMAT)"

.PHONY: rollback
rollback: $(STAMP) ## point ENV back at the previous good release (or TO=version|sha)
	@$(RELEASE) rollback --env "$(ENV)" $(if $(TO),--to "$(TO)") $(if $(FORCE),--force --reason "$(REASON)") $(if $(WAIT),--wait "$(WAIT)") $(if $(APPLY),--apply-units)

.PHONY: status
status: $(STAMP) ## what ENV runs, who deployed it, health, releases; without ENV every env on one screen (FORMAT=json)
	@# ENV's default (dev) does not count here: without ENV on the command line, every env.
	@$(RELEASE) status $(if $(filter file,$(origin ENV)),,--env "$(ENV)") --format "$(FORMAT)"

.PHONY: releases
releases: $(STAMP) ## releases on ENV's host, marked current/previous/failed (FORMAT=json)
	@$(RELEASE) releases --env "$(ENV)" --format "$(FORMAT)"

.PHONY: logs
logs: $(STAMP) ## ENV's journal (LINES=100; FOLLOW=1 to follow)
	@$(RELEASE) logs --env "$(ENV)" --lines "$(LINES)" $(if $(FOLLOW),--follow)

.PHONY: restart
restart: $(STAMP) ## restart ENV's service and hold it to the health gate
	@$(RELEASE) restart --env "$(ENV)" $(if $(WAIT),--wait "$(WAIT)") $(if $(APPLY),--apply-units)

.PHONY: stop
stop: $(STAMP) ## stop ENV's service
	@$(RELEASE) stop --env "$(ENV)"

.PHONY: backup
backup: $(STAMP) ## back ENV's data up on its host while it runs (PULL=1: copy it to dist/backups)
	@$(RELEASE) backup --env "$(ENV)" $(if $(PULL),--pull dist/backups)

.PHONY: backups
backups: $(STAMP) ## list ENV's backups on its host (FORMAT=json)
	@$(RELEASE) backups --env "$(ENV)" --format "$(FORMAT)"

.PHONY: restore
restore: $(STAMP) ## restore FROM=ID (or FROM=ENV/ID, another env's) into ENV: verify, swap, rebuild
	@$(RELEASE) restore --env "$(ENV)" --from "$(FROM)"

.PHONY: unlock
unlock: $(STAMP) ## clear ENV's deploy lock once its holder is gone (FORCE=1 for another machine's)
	@$(RELEASE) unlock --env "$(ENV)" $(if $(FORCE),--force)

.PHONY: testnode-up
testnode-up: ## boot the throwaway systemd+OpenSSH test node (root; idempotent; SUITE=trixie: Debian 13)
	@$(TESTNODE) $(if $(SUITE),--suite "$(SUITE)") up

.PHONY: testnode-down
testnode-down: ## shut the test node down (its root filesystem stays cached)
	@$(TESTNODE) down

.PHONY: testnode-env
testnode-env: ## print DEPLOY_* settings for the test node: eval "$(make -s testnode-env)"
	@$(TESTNODE) env

# -- the demo ----------------------------------------------------------------------------
.PHONY: demo
demo: $(STAMP) ## the whole pipeline on a throwaway node on this machine (root; ~2 min first time)
	@$(PY) -m benchmarks.demo

.PHONY: demo-clean
demo-clean: $(STAMP) ## shut the demo's node down and remove its scratch clone
	@$(PY) -m benchmarks.demo clean

# -- benchmarks --------------------------------------------------------------------------
.PHONY: bench
bench: $(STAMP) ## deploy benchmark on the test node vs the in-place way (root; prints a table)
	@# Byte-compiled first: start-up is timed as an operator sees it, also where
	@# PYTHONDONTWRITEBYTECODE is set (it is on the machine the figures come from).
	@$(PY) -m compileall -q release benchmarks >/dev/null
	@$(PY) -m benchmarks.deploy_bench

MUTATION_VENV := .venv-mutation
MUTATION_STAMP := $(MUTATION_VENV)/.installed-$(shell cat requirements/dev.txt requirements/mutation.txt 2>/dev/null | sha256sum | cut -c1-12)

$(MUTATION_STAMP): requirements/dev.txt requirements/mutation.txt pyproject.toml
	@test -x $(MUTATION_VENV)/bin/python || $(PYTHON) -m venv $(MUTATION_VENV)
	$(MUTATION_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements/dev.txt -r requirements/mutation.txt
	$(MUTATION_VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(MUTATION_VENV)/.installed-*; touch $@

.PHONY: mutation
mutation: $(MUTATION_STAMP) ## mutation scores of the rule modules (retention, lock, checksums, …); about 10 min
	@$(MUTATION_VENV)/bin/python -m benchmarks.mutation

.PHONY: mutation-show
mutation-show: ## the change a surviving mutant made: make mutation-show M=<name from survivors.txt>
	@cd var/mutation/tree && ../../../$(MUTATION_VENV)/bin/mutmut show $(M)

.PHONY: bench-github
bench-github: $(STAMP) ## API requests and time for one version and the list, 300 releases on the GitHub stand-in
	@$(PY) -m benchmarks.github_bench

.PHONY: bench-service
bench-service: $(STAMP) ## ingests/s and p50/p99 for 1 and 8 writers against a real service, fsync on and off
	@$(PY) -m benchmarks.service_bench
