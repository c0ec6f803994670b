"""SidecarEntry: immutability, equality, repr, and to_dict() == the CLI/C JSON."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any, Callable, List, Tuple

import pytest

import firma_stack
from firma_stack import SidecarEntry, State
from firma_stack.testing import SidecarFactory, SidecarProcess

from _support import ENTRY_KEYS, firma_json

Start = SidecarFactory


def stable(read_py: Callable[[], Any], read_cli: Callable[[], Any]) -> Tuple[Any, Any]:
    """Reads Python, then the CLI, then Python again until both Python reads
    agree (uptime_secs ticks once a second): the CLI read in between then saw
    the same state. Bounded by attempts, not by time."""
    for _ in range(5):
        before = read_py()
        cli = read_cli()
        after = read_py()
        if before == after:
            return before, cli
    raise AssertionError("results kept changing between reads")


def test_to_dict_equals_cli_status_json(firma_runtime_dir: str, firma_sidecar: Start) -> None:
    firma_sidecar("a-serve", agent="planner", session="s-1")
    firma_sidecar("b-wedged", mode="wedged")
    firma_sidecar("c-nosock", mode="no-socket")
    firma_sidecar("d-tcp", tcp="127.0.0.1:0")

    ours, cli = stable(
        lambda: [e.to_dict() for e in firma_stack.list(firma_runtime_dir)],
        lambda: firma_json(firma_runtime_dir, "sidecar", "status"),
    )

    assert ours == cli
    assert [d["sandbox_id"] for d in ours] == ["a-serve", "b-wedged", "c-nosock", "d-tcp"]
    for d in ours:
        assert list(d) == ENTRY_KEYS  # same keys, same order
        assert json.loads(json.dumps(d)) == d  # JSON-serializable as is
        assert type(d["state"]) is str and type(d["pid"]) is int


def test_to_dict_equals_cli_get_json_for_a_stopped_sidecar(
    firma_runtime_dir: str, firma_sidecar: Start
) -> None:
    firma_sidecar("doomed-1").kill()

    ours, cli = stable(
        lambda: firma_stack.get(firma_runtime_dir, "doomed-1").to_dict(),  # type: ignore[union-attr]
        lambda: firma_json(firma_runtime_dir, "sidecar", "get", "doomed-1"),
    )

    assert ours == cli
    assert ours["state"] == "stopped"


def test_entry_is_immutable_hashable_and_comparable(
    firma_runtime_dir: str, firma_sidecar: Start
) -> None:
    firma_sidecar("web-1")
    entry = firma_stack.get(firma_runtime_dir, "web-1")
    assert entry is not None

    with pytest.raises(AttributeError):
        entry.pid = 1  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        entry.extra = 1  # type: ignore[attr-defined]
    same = SidecarEntry(**entry.to_dict())
    assert same == entry and hash(same) == hash(entry)
    assert len({entry, same}) == 1
    other = SidecarEntry(**{**entry.to_dict(), "state": State.STOPPED})
    assert other != entry
    assert entry != entry.to_dict()


def test_repr_shows_every_field() -> None:
    entry = SidecarEntry(
        "sb-1", "ag", "se", "https://a.invalid", "sha256:x", 42,
        "2026-01-02T03:04:05Z", "running", "/tmp/x.sock", None,
    )

    text = repr(entry)

    assert text.startswith("SidecarEntry(sandbox_id='sb-1', ")
    assert "pid=42" in text and "state=State.RUNNING" in text and "uptime_secs=None" in text
    assert eval(text, {"SidecarEntry": SidecarEntry, "State": State}) == entry


def test_constructor_rejects_unknown_state() -> None:
    with pytest.raises(ValueError):
        SidecarEntry("a", "b", "c", "d", "e", 1, "t", "dancing", "/x")


def test_entry_pickles_and_copies(firma_runtime_dir: str, firma_sidecar: Start) -> None:
    firma_sidecar("web-1")
    entry = firma_stack.get(firma_runtime_dir, "web-1")

    assert pickle.loads(pickle.dumps(entry)) == entry
    assert copy.deepcopy(entry) == entry


def test_state_is_a_str_enum() -> None:
    assert [s.value for s in State] == ["running", "unhealthy", "stopped", "unknown"]
    assert State("stopped") is State.STOPPED
    assert isinstance(State.RUNNING, str)
    assert State.RUNNING == "running"  # type: ignore[comparison-overlap]  # a str enum
    assert str(State.UNKNOWN) == "unknown"
    assert json.dumps(State.RUNNING) == '"running"'


def test_typed_attributes(firma_runtime_dir: str, firma_sidecar: Start) -> None:
    firma_sidecar("web-1")
    [entry] = firma_stack.list(firma_runtime_dir)
    values: List[Any] = [getattr(entry, k) for k in ENTRY_KEYS]
    types = [type(v) for v in values]

    assert types == [str, str, str, str, str, int, str, State, str, int]
