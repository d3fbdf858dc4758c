# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch: pinned here so pip does not pull CUDA wheels; override with TORCH_VERSION=...
TORCH_VERSION ?= 2.13.0
TORCH_SPEC ?= torch==$(TORCH_VERSION)
BIN := $(VENV)/bin
# A Python 3.6 (JetPack 4's) to run the agent under for real, when this machine has one (pyenv or PATH).
PY36 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.6*/bin/python3.6) $(shell command -v python3.6 2>/dev/null))
VENV36 ?= .venv36
# A Python 3.10 (Ubuntu 22.04's, JetPack 6's) to run the host side under for real, when this machine has one.
PY310 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python3.10) $(shell command -v python3.10 2>/dev/null))
VENV310 ?= .venv310
# pyproject.toml's dependencies without torch (its CPU wheel pinned above has no 3.10 build), so the 3.10 test
# covers the commands that need no torch; tests/test_py310.py checks this list against pyproject.toml.
HOST_DEPS_NO_TORCH := numpy>=1.24 onnx>=1.15 onnxruntime>=1.17 rich>=13 pyarrow>=14 scipy>=1.10 paramiko>=3.4 \
	scikit-learn>=1.3 matplotlib>=3.7 tomli>=2 pymoo>=0.6

# The suite runs on this many pytest-xdist workers (a file stays on one worker: its fixtures start once);
# TEST_WORKERS=0 runs it in one process. Each worker's torch/OpenMP pool gets TEST_THREADS threads: with the
# default pool of one thread per core, two workers on two cores oversubscribe, and the spin-waiting pools made
# the suite's torch-heavy files run about twice as long (tests/spaces, hwsearch, predictors: 123 s -> 68 s).
TEST_WORKERS ?= 2
TEST_THREADS ?= 1

.PHONY: demo test install install-test lint clean sshd

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install "$(TORCH_SPEC)"
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -e ".[test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/edgeprof demo

# Best effort: without it the Python 3.6 test skips and says why; vermin still checks agents/.
$(VENV36)/.installed:
	@if [ -n "$(PY36)" ]; then \
	  $(PY36) -m venv $(VENV36) && \
	  $(VENV36)/bin/python -m pip install -q --upgrade "pip<22" && \
	  $(VENV36)/bin/pip install -q "numpy==1.19.5" && \
	  { $(VENV36)/bin/pip install -q "onnxruntime==1.10.0" || echo "note: no onnxruntime for Python 3.6"; } && \
	  touch $@ \
	  || echo "note: could not prepare a Python 3.6 agent environment; its test will skip"; \
	else echo "note: no Python 3.6 on this machine; the real-3.6 agent test will skip"; fi

# Best effort too: without it the real-3.10 host test skips and says why; vermin still checks the host packages.
$(VENV310)/.installed: pyproject.toml
	@if [ -n "$(PY310)" ]; then \
	  $(PY310) -m venv $(VENV310) && \
	  $(VENV310)/bin/python -m pip install -q --upgrade pip && \
	  $(VENV310)/bin/pip install -q $(foreach d,$(HOST_DEPS_NO_TORCH),"$(d)") && \
	  $(VENV310)/bin/pip install -q --no-deps -e . && \
	  touch $@ \
	  || echo "note: could not prepare a Python 3.10 host environment; its test will skip"; \
	else echo "note: no Python 3.10 on this machine; the real-3.10 host test will skip"; fi

# The ssh tests start a real OpenSSH server on loopback; install it when missing and we may (root).
sshd:
	@if ! [ -x /usr/sbin/sshd ] && ! command -v sshd >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null) \
	    || echo "note: could not install openssh-server; the ssh tests will skip"; \
	  else echo "note: sshd is missing (apt-get install openssh-server); the ssh tests will skip"; fi; \
	fi

test: install-test $(VENV36)/.installed $(VENV310)/.installed sshd
	@py36=""; if [ -f $(VENV36)/.installed ]; then py36="$(abspath $(VENV36))/bin/python"; fi; \
	py310=""; if [ -f $(VENV310)/.installed ]; then py310="$(abspath $(VENV310))/bin/python"; fi; \
	workers="-n $(TEST_WORKERS) --dist loadfile"; threads="OMP_NUM_THREADS=$(TEST_THREADS)"; \
	if [ "$(TEST_WORKERS)" = 0 ]; then workers=""; threads=""; fi; \
	echo "EDGEPROF_PY36=$$py36 EDGEPROF_PY310=$$py310 $$threads $(BIN)/python -m pytest $$workers"; \
	env EDGEPROF_PY36="$$py36" EDGEPROF_PY310="$$py310" $$threads $(BIN)/python -m pytest $$workers

lint: install-test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(VENV36) $(VENV310) build *.egg-info
