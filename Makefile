# placement-operator developer entry points. Everything a fresh machine needs is installed
# by these targets: a virtualenv, the control-plane binaries (built once into a cache outside
# the repo) and Prometheus from Debian's packages.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help demo crd docs venv tools control-plane-tools image-tools image cluster cluster-down kubectl-path test unit integration chart chart-snapshots image-check lint format clean decision-quality bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

venv: $(STAMP) ## create the virtualenv with the package and dev tools

tools: control-plane-tools ## build kube-apiserver, etcd, kwok, helm, KEDA, Kueue into the cache; install Prometheus
	$(PY) -m placement.localenv.tools build

control-plane-tools: $(STAMP) ## only what the demo needs: the control plane, helm and Prometheus
	$(PY) -m placement.localenv.tools build --only kubernetes --only etcd --only kwok --only helm --only prometheus

# buildah builds the Dockerfile without a Docker engine (chroot isolation); debootstrap makes a
# Python base from Debian's packages where the registry's python image cannot be pulled.
IMAGE_TOOLS := buildah debootstrap
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

image-tools: ## install buildah and debootstrap from Debian's packages when missing
	@missing=""; for tool in $(IMAGE_TOOLS); do \
		PATH="$$PATH:/usr/sbin:/sbin" command -v $$tool >/dev/null || missing="$$missing $$tool"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing from Debian"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

image: image-tools ## build the image from Dockerfile with buildah (docker build works the same)
	sh hack/build-image.sh placement-operator:$$(sh hack/version.sh)

# The engines started beside the control plane; `make cluster ENGINES=` starts neither.
ENGINES ?= keda,kueue

cluster: tools ## start a local control plane, Prometheus, KEDA and Kueue on 127.0.0.1
	$(PY) -m placement.localenv up --engines "$(ENGINES)"

cluster-down: $(STAMP) ## stop what `make cluster` started
	$(PY) -m placement.localenv down

kubectl-path: $(STAMP) ## print the path of the built kubectl
	@$(PY) -m placement.localenv.tools paths | awk '$$1=="kubectl"{print $$2}'

test: tools image-tools ## every test: unit, and integration on a real control plane and Prometheus
	$(PY) -m pytest

unit: $(STAMP) ## the pure-core tests only (no cluster)
	$(PY) -m pytest tests/unit

integration: tools ## the integration tests only
	$(PY) -m pytest tests/integration

crd: $(STAMP) ## regenerate crds/ (and the chart's copy) from operator/placement/core/api.py
	$(PY) -m placement.runtime.cli crd > crds/workloadplacements.placement.runplacement.io.yaml
	cp crds/workloadplacements.placement.runplacement.io.yaml charts/placement-operator/files/crds/

docs: $(STAMP) ## re-render docs/reference.md's generated tables (CRD fields, reasons, metrics, values, CLI)
	$(PY) hack/reference_docs.py

chart: tools ## the chart tests: helm lint, snapshot, rendered objects (no cluster)
	$(PY) -m pytest tests/chart

chart-snapshots: tools ## re-render tests/chart/snapshots/ after an intended chart change
	UPDATE_SNAPSHOTS=1 $(PY) -m pytest tests/chart -k snapshot -q

image-check: tools image-tools ## the image: hadolint, its install steps, built with buildah and run
	$(PY) -m pytest tests/packaging

lint: $(STAMP) ## ruff (complexity included), mypy, the layers' import contract, radon
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/ruff format --check operator tests bench
	$(VENV)/bin/mypy
	$(PY) -m tests.layers
	@# Nothing rated D (cyclomatic complexity 21) or worse.
	@! $(VENV)/bin/radon cc -s -n D operator | grep .

format: $(STAMP) ## apply ruff's formatting and fixes
	$(VENV)/bin/ruff format operator tests bench
	$(VENV)/bin/ruff check --fix operator tests bench

clean: cluster-down ## remove the virtualenv and local state (the tool cache stays)
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache

demo: control-plane-tools ## the operator deciding examples/ on a local cluster; DEMO_FLAGS=--keep keeps it up
	$(PY) -m placement.localenv.demo $(DEMO_FLAGS)

decision-quality: $(STAMP) ## replay public traces and changing-load scenarios: JSON lines, table, targets
	$(PY) bench/decision_quality.py --table --check

BENCH_PLACEMENTS ?= 10,100,1000

bench: tools ## scale benchmark: batched vs per-placement queries at BENCH_PLACEMENTS (about 15 min)
	rm -f bench/results/scale.jsonl
	$(PY) bench/scale.py --placements $(BENCH_PLACEMENTS) --output bench/results/scale.jsonl \
		--plot bench/results/scale.png
