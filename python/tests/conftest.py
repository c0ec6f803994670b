"""Shared fixtures for the firma_stack suite.

Everything is a real fixture. The ``firma_runtime_dir`` and ``firma_sidecar``
fixtures come from the package's own pytest plugin, loaded through its
``pytest11`` entry point; core fixtures (dead pids, hand-written and
malformed markers) come from firma-testkit, see ``_support.core_fixture``.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import pytest

from _support import EXAMPLE_SIDECAR, FIRMA, TESTKIT, User, metadata_toml


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


_user_serial = itertools.count()


def _retry(argv: List[str]) -> "subprocess.CompletedProcess[str]":
    """Runs argv, retried while another useradd/userdel (other tests, other
    checkouts) holds the password file's lock."""
    for _ in range(99):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return done
        time.sleep(0.05)
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@pytest.fixture
def throwaway_user() -> Iterator[User]:
    """A real user made for one test (``useradd --system --no-create-home
    --user-group``) and deleted with ``userdel`` afterwards: an owner other
    than root for files and processes. Root only; fails (never skips) when
    not root, like the core's trust tests."""
    assert os.geteuid() == 0, "throwaway_user needs root (useradd)"
    name = f"fpy{os.getpid() % 100000}{next(_user_serial)}"
    done = _retry(["useradd", "--system", "--no-create-home", "--user-group",
                   "--shell", "/usr/sbin/nologin", name])
    assert done.returncode == 0, f"useradd {name}: {done.stderr}"
    try:
        ids = [int(subprocess.run(["id", flag, name], capture_output=True, text=True,
                                  check=True).stdout) for flag in ("-u", "-g")]
        yield User(name, ids[0], ids[1])
    finally:
        done = _retry(["userdel", name])
        assert done.returncode == 0, f"userdel {name}: {done.stderr}"
