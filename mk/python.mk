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
# `make wheel`: zig as maturin's linker (glibc 2.17 symbols, manylinux2014)
# and auditwheel to check the result, pinned, in the same venv.
PY_WHEEL_TOOLS := ziglang==0.17.1 auditwheel==6.8.2
PY_WHEEL_TOOLS_STAMP := $(VENV)/.firma-wheel-tools
# Rust targets to build wheels for. aarch64-unknown-linux-gnu works the same
# way once `rustup target add aarch64-unknown-linux-gnu` has run (zig links
# for it; this machine's CI has only the host's standard library).
PY_WHEEL_TARGETS ?= x86_64-unknown-linux-gnu
PY_DIST_DIR := target/wheels/dist

TEST_LEGS += test-python test-wheel

.PHONY: python test-python wheel test-wheel

$(PY_TOOLS_STAMP): mk/python.mk
	@if [ ! -x $(VENV_PY) ]; then echo "python: creating $(VENV)"; python3 -m venv $(VENV); fi
	$(PY_PIP) install $(PY_TOOLS)
	echo "$(PY_TOOLS)" > $@

$(PY_WHEEL_TOOLS_STAMP): $(PY_TOOLS_STAMP)
	$(PY_PIP) install $(PY_WHEEL_TOOLS)
	echo "$(PY_WHEEL_TOOLS)" > $@

## wheel: the portable abi3 wheels (manylinux2014, glibc >= 2.17) for
## PY_WHEEL_TARGETS and the sdist, in target/wheels/dist, checked with
## auditwheel and objdump -T.
wheel: $(PY_WHEEL_TOOLS_STAMP)
	VENV="$(VENV)" PY_WHEEL_TARGETS="$(PY_WHEEL_TARGETS)" OUT="$(PY_DIST_DIR)" bash packaging/wheel.sh

## test-wheel: `make wheel`, then its wheel in a fresh venv outside the
## repository with no Rust toolchain on PATH: the package's smoke test
## (the pytest plugin's fixtures with real sidecars).
test-wheel: wheel
	PY_TEST_TOOLS="$(filter pytest==%,$(PY_TOOLS))" WHEEL_DIR="$(PY_DIST_DIR)" bash packaging/wheel-test.sh

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
