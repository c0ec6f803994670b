"""pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:

``firma_runtime_dir``
    A fresh, short runtime directory (``str``) under the temp dir, removed
    afterwards. Short on purpose: a Unix socket path must fit 108 bytes.

``firma_sidecar``
    A factory ``firma_sidecar(sandbox_id, *, mode="serve", tcp=None, ...)``
    that starts a real example sidecar in ``firma_runtime_dir`` (see
    :func:`firma_stack.testing.start_sidecar`), waits until it is ready and
    returns its :class:`~firma_stack.testing.SidecarProcess`. Every sidecar
    it started is stopped and reaped at teardown. Its type, for annotating
    a test's argument, is :class:`firma_stack.testing.SidecarFactory`.
    No checkout is needed:
    the sidecar is the package's own (``python -m firma_stack.example_sidecar``)
    unless ``$FIRMA_EXAMPLE_SIDECAR`` names a binary.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any, Iterator, List

import pytest

from .testing import SidecarFactory, SidecarProcess, start_sidecar

__all__ = ["firma_runtime_dir", "firma_sidecar"]


@pytest.fixture
def firma_runtime_dir() -> Iterator[str]:
    """A fresh, empty runtime directory (``str``) for one test, removed
    afterwards. Its path is short (``/tmp/firma-XXXXXXXX``) so the sockets of
    sidecars under ``run/`` fit the 108-byte limit of a Unix socket path."""
    path = tempfile.mkdtemp(prefix="firma-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def firma_sidecar(firma_runtime_dir: str) -> Iterator[SidecarFactory]:
    """A factory ``firma_sidecar(sandbox_id, *, mode="serve", tcp=None,
    agent=None, session=None)`` that starts a real example sidecar in
    ``firma_runtime_dir``, waits until a probe sees its final state and
    returns its :class:`~firma_stack.testing.SidecarProcess` (annotate it
    :class:`~firma_stack.testing.SidecarFactory`). Every sidecar it started
    is stopped (SIGTERM, then SIGKILL) and reaped at teardown.
    The sidecar is the package's own (``python -m
    firma_stack.example_sidecar``) unless ``$FIRMA_EXAMPLE_SIDECAR`` names a
    binary."""
    started: List[SidecarProcess] = []

    def start(sandbox_id: str, **kwargs: Any) -> SidecarProcess:
        sidecar = start_sidecar(firma_runtime_dir, sandbox_id, **kwargs)
        started.append(sidecar)
        return sidecar

    try:
        yield start
    finally:
        for sidecar in reversed(started):
            sidecar.stop()
