"""Every state, seen through list / get / probe_entry over real sidecars."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

import firma_stack
from firma_stack import SidecarEntry, State
from firma_stack.testing import SidecarProcess, write_marker

from _support import ids

Start = Callable[..., SidecarProcess]


def test_serving_sidecar_is_running(firma_runtime_dir: str, firma_sidecar: Start) -> None:
    sc = firma_sidecar("web-1", agent="planner", session="s-101")

    [entry] = firma_stack.list(firma_runtime_dir)

    assert isinstance(entry, SidecarEntry)
    assert entry.sandbox_id == "web-1"
    assert entry.agent_id == "planner"
    assert entry.session_id == "s-101"
    assert entry.pid == sc.pid
    assert entry.state is State.RUNNING
    assert entry.state == "running"  # type: ignore[comparison-overlap]  # a str enum
    assert entry.listen == os.path.join(sc.marker_dir, "sidecar.sock")
    assert isinstance(entry.uptime_secs, int) and entry.uptime_secs >= 0
    assert firma_stack.get(firma_runtime_dir, "web-1") == entry
    assert firma_stack.probe_entry(sc.marker_dir) == entry


def test_tcp_sidecar_is_running(firma_runtime_dir: str, firma_sidecar: Start) -> None:
    firma_sidecar("tcp-1", tcp="127.0.0.1:0")

    entry = firma_stack.get(firma_runtime_dir, "tcp-1")

    assert entry is not None
    assert entry.state is State.RUNNING
    host, _, port = entry.listen.rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0


@pytest.mark.parametrize("mode", ["wedged", "no-socket"])
def test_sidecar_that_does_not_accept_is_unhealthy(
    firma_runtime_dir: str, firma_sidecar: Start, mode: str
) -> None:
    sc = firma_sidecar(f"sick-{mode}", mode=mode)

    entry = firma_stack.get(firma_runtime_dir, sc.sandbox_id)

    assert entry is not None and entry.state is State.UNHEALTHY
    # Unhealthy is alive: listed, never collected.
    assert ids(firma_stack.list(firma_runtime_dir)) == [sc.sandbox_id]
    assert firma_stack.gc_stale(firma_runtime_dir) == []
    assert Path(sc.marker_dir, "metadata.toml").is_file()


def test_killed_sidecar_is_stopped_while_a_zombie_and_after_reaping(
    firma_runtime_dir: str, firma_sidecar: Start
) -> None:
    sc = firma_sidecar("doomed-3")

    sc.kill(reap=False)  # dead but not reaped: a zombie whose pid still exists
    zombie = firma_stack.get(firma_runtime_dir, "doomed-3")
    sc.process.wait()  # reaped: the pid is gone
    reaped = firma_stack.get(firma_runtime_dir, "doomed-3")

    assert zombie is not None and zombie.state is State.STOPPED
    assert reaped is not None and reaped.state is State.STOPPED
    # get never removes anything.
    assert Path(sc.marker_dir, "metadata.toml").is_file()


def test_marker_of_a_dead_pid_is_stopped(dead_pid: int, firma_runtime_dir: str) -> None:
    write_marker(
        firma_runtime_dir, "gone-1", pid=dead_pid, boot_id="b", pid_start_ticks=1
    )

    entry = firma_stack.get(firma_runtime_dir, "gone-1")

    assert entry is not None and entry.state is State.STOPPED


def test_reused_pid_is_stopped(firma_runtime_dir: str) -> None:
    # This process is alive, but the marker records another start time for
    # its pid: the pid was reused, so the sidecar it named is gone.
    write_marker(
        firma_runtime_dir, "reused-1", pid=os.getpid(), pid_start_ticks=1
    )

    entry = firma_stack.get(firma_runtime_dir, "reused-1")

    assert entry is not None and entry.state is State.STOPPED
    assert firma_stack.gc_stale(firma_runtime_dir) == ["reused-1"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses socket permissions")
def test_socket_without_permission_is_unknown(
    firma_runtime_dir: str, firma_sidecar: Start
) -> None:
    sc = firma_sidecar("locked-1")
    os.chmod(os.path.join(sc.marker_dir, "sidecar.sock"), 0)

    entry = firma_stack.get(firma_runtime_dir, "locked-1")

    assert entry is not None and entry.state is State.UNKNOWN


def test_missing_marker_is_none_and_missing_run_is_empty(firma_runtime_dir: str) -> None:
    assert firma_stack.get(firma_runtime_dir, "nobody") is None
    assert firma_stack.list(firma_runtime_dir) == []
    assert firma_stack.gc_stale(firma_runtime_dir) == []
    assert not os.path.exists(os.path.join(firma_runtime_dir, "run"))


def test_stopped_sidecar_removes_its_marker(firma_runtime_dir: str, firma_sidecar: Start) -> None:
    sc = firma_sidecar("polite-1")
    assert sc.stop() == 0

    assert firma_stack.get(firma_runtime_dir, "polite-1") is None
    assert firma_stack.list(firma_runtime_dir) == []


def test_list_is_sorted_and_sees_every_live_state(
    firma_runtime_dir: str, firma_sidecar: Start
) -> None:
    firma_sidecar("c-serve")
    firma_sidecar("a-wedged", mode="wedged")
    firma_sidecar("b-nosock", mode="no-socket")

    entries = firma_stack.list(firma_runtime_dir)

    assert ids(entries) == ["a-wedged", "b-nosock", "c-serve"]
    assert [e.state for e in entries] == [State.UNHEALTHY, State.UNHEALTHY, State.RUNNING]
