"""Selecting (``state=``, ``agent=``, ``session=``, ``sandbox_id=``,
``reason=``), ``wait`` and ``runtime_dir_state`` over real sidecars: the
core's Filter, wait and presence check decide, the binding passes the
arguments on and converts the answers."""

from __future__ import annotations

import json
import os
import threading
import warnings
from typing import Any, Dict, Iterator, List

import pytest

import firma_stack
from firma_stack import (
    Appeared,
    MarkerReport,
    Reason,
    RuntimeDirState,
    State,
    Synced,
    WaitOutcome,
)
from firma_stack.testing import SidecarFactory

from _support import firma_cli, ids


@pytest.fixture
def three(firma_runtime_dir: str, firma_sidecar: SidecarFactory) -> Iterator[str]:
    """py-a running (agent a1), py-b unhealthy with a full backlog (a2),
    py-c unhealthy without a socket (a1, session s2)."""
    firma_sidecar("py-a", agent="a1")
    firma_sidecar("py-b", mode="wedged", agent="a2")
    firma_sidecar("py-c", mode="no-socket", agent="a1", session="s2")
    yield firma_runtime_dir


@pytest.mark.parametrize(
    "select, cli, expected",
    [
        ({"state": "running"}, ["--state", "running"], ["py-a"]),
        ({"state": [State.UNHEALTHY]}, ["--state", "unhealthy"], ["py-b", "py-c"]),
        ({"state": ("running", "unhealthy")}, ["--state", "running", "--state", "unhealthy"],
         ["py-a", "py-b", "py-c"]),
        ({"agent": "a1"}, ["--agent", "a1"], ["py-a", "py-c"]),
        ({"agent": "a1", "state": "unhealthy"}, ["--agent", "a1", "--state", "unhealthy"],
         ["py-c"]),
        ({"session": "s2"}, ["--session", "s2"], ["py-c"]),
        ({"sandbox_id": "py-b"}, ["--sandbox-id", "py-b"], ["py-b"]),
        ({"agent": "nobody"}, ["--agent", "nobody"], []),
    ],
)
def test_list_selects_as_the_cli_does(
    three: str, select: Dict[str, Any], cli: List[str], expected: List[str]
) -> None:
    assert ids(firma_stack.list(three, **select)) == expected
    done = firma_cli(three, "sidecar", "status", "--json", *cli)
    assert done.returncode == 0, done.stderr
    assert [e["sandbox_id"] for e in json.loads(done.stdout)] == expected


def test_inspect_selects_by_reason_and_get_by_state(three: str) -> None:
    def names(reports: List[MarkerReport]) -> List[str]:
        return [r.name for r in reports]

    assert names(firma_stack.inspect(three, reason="serving")) == ["py-a"]
    assert names(firma_stack.inspect(three, reason=[Reason.BACKLOG_FULL])) == ["py-b"]
    assert names(firma_stack.inspect(three, agent="a1", state="unhealthy")) == ["py-c"]
    # get: None when there is no marker, and when the selection does not
    # match the one there is.
    assert firma_stack.get(three, "py-a", state="unhealthy") is None
    entry = firma_stack.get(three, "py-a", state=State.RUNNING, agent="a1")
    assert entry is not None and entry.sandbox_id == "py-a"


@pytest.mark.parametrize("select", [{"state": "fine"}, {"state": ["running", "fine"]},
                                    {"reason": "sleepy"}])
def test_an_unknown_name_is_the_cores_invalid_argument(
    firma_runtime_dir: str, select: Dict[str, Any]
) -> None:
    with pytest.raises(firma_stack.InvalidArgumentError) as info:
        firma_stack.inspect(firma_runtime_dir, **select)
    assert info.value.argument == "filter"


def test_watch_passes_only_the_selected_sidecars(three: str) -> None:
    seen: List[str] = []
    with firma_stack.watch(three, agent="a1", collect=False, probe_interval=60) as events:
        for ev in events:
            if isinstance(ev, Synced):
                break
            assert isinstance(ev, Appeared)
            seen.append(ev.sandbox_id)
    assert sorted(seen) == ["py-a", "py-c"]


def test_wait_for_running_and_for_gone(firma_runtime_dir: str, firma_sidecar: SidecarFactory) -> None:
    firma_sidecar("py-up")
    out = firma_stack.wait("py-up", for_="running", timeout=10, runtime_dir=firma_runtime_dir)
    assert isinstance(out, WaitOutcome)
    assert out.met and out.condition == "running"
    (status,) = out.sidecars
    assert (status.sandbox_id, status.state, status.met) == ("py-up", State.RUNNING, True)

    # gone: seen on the watch stream when the sidecar exits.
    leaving = firma_sidecar("py-leaving")
    timer = threading.Timer(0.3, leaving.stop)
    timer.start()
    try:
        out = firma_stack.wait(["py-leaving"], for_="gone", timeout=30,
                               runtime_dir=firma_runtime_dir)
    finally:
        timer.join()
    assert out.met and out.sidecars[0].state is None


def test_a_timeout_is_an_outcome_as_the_cli_reports_it(
    firma_runtime_dir: str, firma_sidecar: SidecarFactory
) -> None:
    firma_sidecar("py-up")
    out = firma_stack.wait(["py-up", "py-never"], for_="running", timeout=0,
                           runtime_dir=firma_runtime_dir)
    assert not out.met
    assert [(s.sandbox_id, s.state, s.met) for s in out.sidecars] == [
        ("py-up", State.RUNNING, True), ("py-never", None, False)]
    done = firma_cli(firma_runtime_dir, "sidecar", "wait", "py-up", "py-never",
                     "--for", "running", "--timeout", "0", "--json")
    assert done.returncode == 7, done.stderr
    cli = json.loads(done.stdout)
    mine = out.to_dict()
    assert list(mine) == list(cli)
    cli.pop("waited_ms"), mine.pop("waited_ms")
    assert mine == cli


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"for_": "up"}, "for_"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": 86401.0}, "timeout"),
        ({"probe_interval": 0}, "probe_interval"),
        ({"probe_timeout": 0}, "timeout"),
    ],
)
def test_wait_arguments_are_checked(
    firma_runtime_dir: str, kwargs: Dict[str, Any], argument: str
) -> None:
    with pytest.raises(firma_stack.InvalidArgumentError) as info:
        firma_stack.wait("py-x", runtime_dir=firma_runtime_dir, **kwargs)
    assert info.value.argument == argument
    assert " ms" not in info.value.reason


def test_wait_ids_are_the_cores_to_check(firma_runtime_dir: str) -> None:
    with pytest.raises(firma_stack.InvalidSandboxIdError):
        firma_stack.wait(["../etc"], timeout=0, runtime_dir=firma_runtime_dir)
    with pytest.raises(firma_stack.InvalidArgumentError, match="no sandbox id"):
        firma_stack.wait([], timeout=0, runtime_dir=firma_runtime_dir)


def test_a_wrong_directory_is_told_apart_but_never_raised_or_warned(
    firma_runtime_dir: str,
) -> None:
    # docs/design.md, "Operations": a missing runtime directory is an
    # empty answer on every surface; runtime_dir_state, beside list, is
    # how a caller tells a mistyped path from an idle host.
    typo = os.path.join(firma_runtime_dir, "typo")
    a_file = os.path.join(firma_runtime_dir, "a-file")
    open(a_file, "w").close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert firma_stack.list(typo) == []
        assert firma_stack.inspect(typo) == []
    assert firma_stack.runtime_dir_state(firma_runtime_dir) is RuntimeDirState.PRESENT
    assert firma_stack.runtime_dir_state(typo) is RuntimeDirState.MISSING
    assert firma_stack.runtime_dir_state(a_file) is RuntimeDirState.UNREADABLE
    assert firma_stack.runtime_dir_state(typo) == "missing"


def test_runtime_dir_state_defaults_to_the_default_runtime_dir(
    firma_runtime_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIRMA_STATE_DIR", os.path.join(firma_runtime_dir, "nope"))
    assert firma_stack.runtime_dir_state() is RuntimeDirState.MISSING
