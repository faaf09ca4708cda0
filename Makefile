# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv when absent and install what they need (once per pyproject change).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
ROWS   ?= 1000000

.PHONY: demo test setup clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing Sluice and its dependencies into $(VENV) (torch pinned to the CPU build 2.13.0)"
	$(PY) -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test,examples]"
	@rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(VENV)/bin/sluice demo --rows $(ROWS)

test: $(STAMP)
	@bash .ci/chromium.sh >/dev/null 2>&1 || echo "Debian's chromium is not installed (needs root): the web UI's browser tests will skip"
	$(PY) -m pytest -q -p no:cacheprovider tests

bench: $(STAMP)
	$(PY) benchmarks/pipeline_steps.py

clean:
	rm -rf .sluice serving data test-output
