# Python surface: the firma_stack package (PyO3 + maturin) in python/.
#
# `make python` creates .venv at the repository root if absent, installs the
# pinned build/test tools into it, builds the abi3 wheel from this checkout
# and installs it, so `.venv/bin/python -c "import firma_stack"` works.
# `make test-python` runs the pytest suite, the stub check (stubtest) and
# mypy --strict over the package and its tests.

VENV ?= .venv
VENV_PY := $(VENV)/bin/python
PY_WHEEL_DIR := target/wheels/firma_stack
PY_PIP := $(VENV_PY) -m pip --disable-pip-version-check --quiet
# Pinned tool versions; changing them (or this file) re-runs the install.
PY_TOOLS := maturin==1.16.0 pytest==9.0.3 mypy==1.19.1
PY_TOOLS_STAMP := $(VENV)/.firma-python-tools

TEST_LEGS += test-python

.PHONY: python test-python

$(PY_TOOLS_STAMP): mk/python.mk
	@if [ ! -x $(VENV_PY) ]; then echo "python: creating $(VENV)"; python3 -m venv $(VENV); fi
	$(PY_PIP) install $(PY_TOOLS)
	echo "$(PY_TOOLS)" > $@

## python: build the wheel from this checkout and install it into .venv.
python: $(PY_TOOLS_STAMP)
	rm -rf $(PY_WHEEL_DIR)
	$(VENV)/bin/maturin build --release --locked -i $(VENV_PY) \
		-m python/Cargo.toml -o $(PY_WHEEL_DIR)
	$(PY_PIP) install --force-reinstall --no-deps $(PY_WHEEL_DIR)/*.whl
	cd / && $(abspath $(VENV_PY)) -c "import firma_stack; print('python: firma_stack', firma_stack.__version__, 'installed in $(VENV)')"

## test-python: pytest over real sidecars (needs the release binaries of
## build-rust and build-testkit), then stubtest and mypy --strict.
test-python: build-rust build-testkit python
	rc=0; $(VENV_PY) -m pytest -c python/pyproject.toml --rootdir python python/tests || rc=$$?; \
	if [ $$rc -ne 0 ]; then \
		echo "test-python: pytest failed with exit code $$rc (5 = no tests collected)" >&2; exit 1; \
	fi
	$(VENV_PY) -m mypy.stubtest firma_stack._native --mypy-config-file python/pyproject.toml
	$(VENV_PY) -m mypy --config-file python/pyproject.toml python/firma_stack python/tests
