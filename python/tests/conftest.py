"""Shared fixtures for the firma_stack suite.

Everything is a real fixture. The ``firma_runtime_dir`` and ``firma_sidecar``
fixtures come from the package's own pytest plugin, loaded through its
``pytest11`` entry point; core fixtures (dead pids, hand-written and
malformed markers) come from firma-testkit, see ``_support.core_fixture``.
"""

from __future__ import annotations

import os

import pytest

from _support import EXAMPLE_SIDECAR, FIRMA, TESTKIT


def pytest_configure(config: pytest.Config) -> None:
    for exe in (FIRMA, EXAMPLE_SIDECAR, TESTKIT):
        if not os.access(exe, os.X_OK):
            raise pytest.UsageError(f"{exe} is missing: run `make build` first")
    # The harness helpers find the sidecar through this variable wherever
    # pytest runs from.
    os.environ.setdefault("FIRMA_EXAMPLE_SIDECAR", str(EXAMPLE_SIDECAR))
