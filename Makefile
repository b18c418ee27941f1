# mirokit: the two README commands.  `make demo` and `make test` create .venv if missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_MINUTES ?= 9.25
# the torch installed into a new .venv when none is importable there: `make demo TORCH="torch --index-url
# https://download.pytorch.org/whl/cu128"` picks a build; SYSTEM_TORCH=1 makes .venv see the system's packages
# (--system-site-packages), so a torch already installed there (e.g. your CUDA build) is used and not replaced
TORCH ?= torch==2.13.0
SYSTEM_TORCH ?=

.PHONY: demo test test-all test-kernels lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(if $(SYSTEM_TORCH),--system-site-packages) $(VENV)
	# torch first, only when none is importable in .venv (with SYSTEM_TORCH=1: the system's torch counts)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[test]"
	# the official MIRO package, only as a numerical reference in tests (--no-deps: keep our torch)
	$(BIN)/pip install -q --no-deps miro-t2i==0.1.4
	touch $(STAMP)

install: $(STAMP)

# the demo's budget counts from here, so that install + demo stay under 10 minutes on a slow machine
demo:
	@start=$$(date +%s); $(MAKE) --no-print-directory install && \
	$(BIN)/mirokit demo --out demo_out --minutes $(DEMO_MINUTES) --started-at $$start

# the browser tests need Debian's chromium (/usr/bin/chromium) and Playwright to drive it: added when that browser
# exists (.ci/run installs it where it can); without it they skip and say why
BROWSER_STAMP := $(VENV)/.browser

$(BROWSER_STAMP): $(STAMP)
	if [ -x /usr/bin/chromium ]; then \
	  ($(BIN)/pip install -q -e ".[browser]" && touch $(BROWSER_STAMP)) || echo "no Playwright: the browser tests skip"; fi

# the linter first (ruff, configured in pyproject.toml): a lint error fails `make test` like a failing test
lint: $(STAMP)
	$(BIN)/ruff check .

test: lint $(BROWSER_STAMP)
	$(BIN)/python -m pytest -q

# test-all: the slow tests too, and 60 seeded crash points per stage instead of 3 (tests/faults)
test-all: lint $(BROWSER_STAMP)
	MIROKIT_CRASH_POINTS=60 $(BIN)/python -m pytest -q -m ""

# the suite on other CPU kernels than this machine's (ATen's default kernels, MKL's SSE4.2 and oneDNN's SSE4.1
# code paths): float tolerances must hold on every machine of our kind, not only on the one that ran them
test-kernels: $(STAMP) $(BROWSER_STAMP)
	ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41 $(BIN)/python -m pytest -q

clean:
	rm -rf demo_out .pytest_cache
