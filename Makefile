# mirokit: the two README commands.  `make demo` and `make test` create .venv if missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_MINUTES ?= 9.25

.PHONY: demo test test-all test-kernels install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first: the pinned CPU wheel when no torch is importable (GPU users keep theirs)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	# the official MIRO package, only as a numerical reference in tests (--no-deps: keep our torch)
	$(BIN)/pip install -q --no-deps miro-t2i==0.1.4
	touch $(STAMP)

install: $(STAMP)

# the demo's budget counts from here, so that install + demo stay under 10 minutes on a slow machine
demo:
	@start=$$(date +%s); $(MAKE) --no-print-directory install && \
	$(BIN)/mirokit demo --out demo_out --minutes $(DEMO_MINUTES) --started-at $$start

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

# the suite on other CPU kernels than this machine's (ATen's default kernels, MKL's SSE4.2 and oneDNN's SSE4.1
# code paths): float tolerances must hold on every machine of our kind, not only on the one that ran them
test-kernels: $(STAMP)
	ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41 $(BIN)/python -m pytest -q

clean:
	rm -rf demo_out .pytest_cache
