"""Shared fixtures for the firma_stack suite.

Everything is a real fixture. The ``firma_runtime_dir`` and ``firma_sidecar``
fixtures come from the package's own pytest plugin, loaded through its
``pytest11`` entry point; core fixtures (dead pids, hand-written and
malformed markers) come from firma-testkit, see ``_support.core_fixture``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from _support import EXAMPLE_SIDECAR, FIRMA, TESTKIT, metadata_toml


def pytest_configure(config: pytest.Config) -> None:
    for exe in (FIRMA, EXAMPLE_SIDECAR, TESTKIT):
        if not os.access(exe, os.X_OK):
            raise pytest.UsageError(f"{exe} is missing: run `make build` first")
    # The harness helpers find the sidecar through this variable wherever
    # pytest runs from.
    os.environ.setdefault("FIRMA_EXAMPLE_SIDECAR", str(EXAMPLE_SIDECAR))


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def raw_marker(firma_runtime_dir: str) -> Callable[..., Path]:
    """Writes ``run/<dir_name>/metadata.toml`` by hand: ``text`` as given, or
    a valid marker for ``pid`` with ``extra`` keys (``_support.metadata_toml``).
    For binding tests that need a marker for a process they own; the core's
    behaviour on hand-written markers is the conformance suite's."""

    def write(dir_name: str, text: Optional[str] = None, *, pid: int = 1, **extra: Any) -> Path:
        marker = Path(firma_runtime_dir, "run", dir_name)
        marker.mkdir(parents=True, mode=0o700)
        sandbox_id = extra.pop("sandbox_id", dir_name)
        body = metadata_toml(sandbox_id, pid, **extra) if text is None else text
        (marker / "metadata.toml").write_text(body)
        return marker

    return write
