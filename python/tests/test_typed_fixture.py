"""A user's test annotates the plugin's fixtures with exported types, and
``mypy --strict`` (run over this directory by ``make test-python``) checks
the calls: the factory is a typed :class:`~firma_stack.testing.SidecarFactory`,
not ``Callable[..., Any]``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import firma_stack
from firma_stack import State
from firma_stack.testing import SidecarFactory, SidecarProcess


def test_the_sidecar_factory_is_typed(
    firma_runtime_dir: str, firma_sidecar: SidecarFactory
) -> None:
    sidecar: SidecarProcess = firma_sidecar("py-typed", mode="no-socket", agent="a1")
    entry = firma_stack.get(firma_runtime_dir, sidecar.sandbox_id)
    assert entry is not None
    assert (entry.state, entry.agent_id, entry.pid) == (State.UNHEALTHY, "a1", sidecar.pid)
    if TYPE_CHECKING:
        # Never run. mypy must see each mistake: with a factory typed
        # loosely the ignores would be unused, which --strict reports.
        firma_sidecar(42)  # type: ignore[arg-type]
        firma_sidecar("py-typed", mode=1)  # type: ignore[arg-type]
        firma_sidecar("py-typed", colour="red")  # type: ignore[call-arg]
