"""Garbage collection: stale markers go, nothing else does (DESIGN §3, §4.1)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, List

import firma_stack
from firma_stack.testing import SidecarProcess, write_marker

from _support import ids

Start = Callable[..., SidecarProcess]


def test_list_collects_the_marker_of_a_killed_sidecar(
    firma_runtime_dir: str, firma_sidecar: Start
) -> None:
    firma_sidecar("alive-1")
    doomed = firma_sidecar("doomed-2")
    doomed.kill()

    assert ids(firma_stack.list(firma_runtime_dir)) == ["alive-1"]
    assert not os.path.exists(doomed.marker_dir)
    assert firma_stack.get(firma_runtime_dir, "doomed-2") is None


def test_gc_stale_returns_the_removed_ids_sorted(
    firma_runtime_dir: str, firma_sidecar: Start, dead_pid: int
) -> None:
    alive = firma_sidecar("alive-1")
    for name in ("z-dead", "m-dead"):
        firma_sidecar(name).kill()
    write_marker(firma_runtime_dir, "a-dead", pid=dead_pid, boot_id="x", pid_start_ticks=1)

    assert firma_stack.gc_stale(firma_runtime_dir) == ["a-dead", "m-dead", "z-dead"]
    assert sorted(os.listdir(Path(firma_runtime_dir, "run"))) == ["alive-1"]
    assert Path(alive.marker_dir, "metadata.toml").is_file()
    assert firma_stack.gc_stale(firma_runtime_dir) == []


def test_concurrent_gc_reports_each_stale_id_once(
    firma_runtime_dir: str, dead_pid: int
) -> None:
    stale = [f"stale-{i:02d}" for i in range(20)]
    for name in stale:
        write_marker(firma_runtime_dir, name, pid=dead_pid, boot_id="x", pid_start_ticks=1)
    results: List[List[str]] = []
    errors: List[BaseException] = []
    barrier = threading.Barrier(4)

    def collect() -> None:
        try:
            barrier.wait()
            results.append(firma_stack.gc_stale(firma_runtime_dir))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=collect) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert errors == []
    assert sorted(i for r in results for i in r) == stale
    assert os.listdir(Path(firma_runtime_dir, "run")) == []


def test_gc_never_touches_live_unparseable_or_foreign_things(
    firma_runtime_dir: str,
    firma_sidecar: Start,
    raw_marker: Callable[..., Path],
    dead_pid: int,
) -> None:
    firma_sidecar("live-1", mode="wedged")
    broken = raw_marker("broken-1", "this is not toml = = =")
    mismatched = raw_marker("mismatch-1", pid=dead_pid, sandbox_id="someone-else")
    # Outside run/: a marker-shaped directory of a dead pid is not ours.
    outside = Path(firma_runtime_dir, "elsewhere", "dead-1")
    outside.mkdir(parents=True)
    (outside / "metadata.toml").write_text("pid = 1\n")

    assert firma_stack.gc_stale(firma_runtime_dir) == []
    assert ids(firma_stack.list(firma_runtime_dir)) == ["live-1"]
    for kept in (broken, mismatched, outside):
        assert (kept / "metadata.toml").is_file()
