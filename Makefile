# The two commands a newcomer needs: `make demo` and `make test`. Each installs what it needs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch is installed first when no torch is present, so that the
# package's open `torch>=…` range does not pull a multi-GB CUDA build.
TORCH_CPU ?= torch==2.13.0

.PHONY: install demo test test-slow test-compat lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The example third-party plugin (contrib/knorm, its own distribution) is installed too, without
# dependencies beyond longctx itself, so that the suite runs the conformance kit on it.
$(VENV)/.installed: $(BIN)/python pyproject.toml contrib/knorm/pyproject.toml
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_CPU)
	$(BIN)/python -m pip install -q -e ".[dev,zh]"
	$(BIN)/python -m pip install -q --no-deps -e contrib/knorm
	@touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python -m longctx.demo

# pytest exits 5 when nothing was collected; that is reported, not treated as a failure.
test: install
	LONGCTX_STRICT_PLUGINS=1 $(BIN)/python -m pytest -m "not slow" -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

test-slow: install
	LONGCTX_STRICT_PLUGINS=1 $(BIN)/python -m pytest -m "slow" -q

# The suite against another transformers release in its own venv, e.g. make test-compat TRANSFORMERS=5.5.0
TRANSFORMERS ?= 5.24.0
test-compat:
	$(PY) -m venv .venv-compat
	.venv-compat/bin/python -m pip install -q --upgrade pip
	@.venv-compat/bin/python -c "import torch" 2>/dev/null || .venv-compat/bin/python -m pip install -q $(TORCH_CPU)
	.venv-compat/bin/python -m pip install -q -e ".[dev,zh]" "transformers==$(TRANSFORMERS)"
	.venv-compat/bin/python -m pip install -q --no-deps -e contrib/knorm
	LONGCTX_STRICT_PLUGINS=1 .venv-compat/bin/python -m pytest -m "not slow" -q

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) .venv-compat build *.egg-info
