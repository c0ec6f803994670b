"""DESIGN §4 invariants as seen from Python."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, List

import pytest

import firma_stack
from firma_stack import (
    IdentityMismatchError,
    InvalidSandboxIdError,
    MarkerParseError,
    StackError,
    State,
)
from firma_stack.testing import SidecarProcess, write_marker

from _support import ids, metadata_toml

Start = Callable[..., SidecarProcess]

# "Never hangs" bound: generous, far above any probe timeout used here.
HANG_BOUND_SECS = 30.0


def call_bounded(fn: Callable[[], Any]) -> Any:
    """Runs fn in a thread and fails (instead of hanging the suite) if it has
    not returned within HANG_BOUND_SECS. Returns its result or raises what
    it raised."""
    outcome: List[Any] = []

    def run() -> None:
        try:
            outcome.append(("ok", fn()))
        except BaseException as e:  # re-raised in the caller
            outcome.append(("err", e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(HANG_BOUND_SECS)
    assert outcome, f"call did not return within {HANG_BOUND_SECS} s"
    kind, value = outcome[0]
    if kind == "err":
        raise value
    return value


# §4.1 is covered by test_gc.py (live, unparseable, mismatched, outside run/).


# §4.2 Never follow a symlink.
def test_symlinked_marker_directory_is_neither_listed_nor_removed(
    firma_runtime_dir: str, dead_pid: int, tmp_path: Path
) -> None:
    # A perfectly stale marker, but outside run/ and reached only by a link.
    target = write_marker(
        str(tmp_path), "target-1", pid=dead_pid, boot_id="x", pid_start_ticks=1
    )
    run = Path(firma_runtime_dir, "run")
    run.mkdir(parents=True)
    link = run / "linked-1"
    link.symlink_to(target)

    assert firma_stack.list(firma_runtime_dir) == []
    assert firma_stack.gc_stale(firma_runtime_dir) == []
    with pytest.raises(MarkerParseError, match="symlink"):
        firma_stack.get(firma_runtime_dir, "linked-1")
    assert link.is_symlink()
    assert Path(target, "metadata.toml").is_file()


def test_symlinked_metadata_is_a_parse_error_and_kept(
    firma_runtime_dir: str, raw_marker: Callable[..., Path], tmp_path: Path, dead_pid: int
) -> None:
    real = tmp_path / "real.toml"
    real.write_text(metadata_toml("sneaky-1", dead_pid))
    marker = raw_marker("sneaky-1", "placeholder")
    (marker / "metadata.toml").unlink()
    (marker / "metadata.toml").symlink_to(real)

    with pytest.raises(MarkerParseError) as info:
        firma_stack.get(firma_runtime_dir, "sneaky-1")
    assert info.value.path == str(marker / "metadata.toml") or info.value.path == str(marker)
    assert firma_stack.list(firma_runtime_dir) == []
    assert firma_stack.gc_stale(firma_runtime_dir) == []
    assert (marker / "metadata.toml").is_symlink() and real.is_file()


# §4.3 Never block; reads are bounded.
def test_fifo_named_metadata_does_not_hang(
    firma_runtime_dir: str, raw_marker: Callable[..., Path]
) -> None:
    marker = raw_marker("fifo-1", "placeholder")
    (marker / "metadata.toml").unlink()
    os.mkfifo(marker / "metadata.toml")

    with pytest.raises(MarkerParseError):
        call_bounded(lambda: firma_stack.get(firma_runtime_dir, "fifo-1"))
    with pytest.raises(MarkerParseError):
        call_bounded(lambda: firma_stack.probe_entry(marker))
    assert call_bounded(lambda: firma_stack.list(firma_runtime_dir)) == []
    assert (marker / "metadata.toml").exists()


def test_huge_metadata_is_a_parse_error(
    firma_runtime_dir: str, raw_marker: Callable[..., Path]
) -> None:
    # Valid TOML, only too big: the read is bounded, not the syntax.
    padding = "# " + "x" * (128 * 1024) + "\n"
    raw_marker("huge-1", metadata_toml("huge-1", 1) + padding)

    with pytest.raises(MarkerParseError):
        firma_stack.get(firma_runtime_dir, "huge-1")
    assert firma_stack.list(firma_runtime_dir) == []


def test_wedged_tcp_endpoint_costs_at_most_about_the_timeout(
    firma_runtime_dir: str, firma_sidecar: Start
) -> None:
    firma_sidecar("stuck-tcp", mode="wedged", tcp="127.0.0.1:0")

    entry = call_bounded(lambda: firma_stack.get(firma_runtime_dir, "stuck-tcp", timeout=0.5))

    assert entry.state is State.UNHEALTHY


# §4.4 Never signal or probe the wrong process.
@pytest.mark.parametrize("pid", [0, -1, 2**31, -(2**31), 2**64])
def test_out_of_range_pid_is_a_parse_error(
    firma_runtime_dir: str, raw_marker: Callable[..., Path], pid: int
) -> None:
    marker = raw_marker("badpid-1", pid=pid)

    with pytest.raises(MarkerParseError) as info:
        firma_stack.get(firma_runtime_dir, "badpid-1")
    assert info.value.code == "marker_parse"
    # Skipped by list, and never deleted.
    assert firma_stack.list(firma_runtime_dir) == []
    assert firma_stack.gc_stale(firma_runtime_dir) == []
    assert (marker / "metadata.toml").is_file()


def test_largest_pid_is_accepted(firma_runtime_dir: str, raw_marker: Callable[..., Path]) -> None:
    raw_marker("maxpid-1", pid=2**31 - 1)

    entry = firma_stack.get(firma_runtime_dir, "maxpid-1")

    # No such process on any real system: stopped, not an error.
    assert entry is not None and entry.pid == 2**31 - 1 and entry.state is State.STOPPED


# §4.6 Sandbox ids given by callers.
BAD_IDS = [
    "",
    ".hidden",
    "..",
    "../etc",
    "a/b",
    "/abs",
    "a b",
    "tab\there",
    "nul\x00byte",
    "é",
    "x" * 256,
    "\udcff",  # a lone surrogate (os.fsdecode of a non-UTF-8 byte)
]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_invalid_sandbox_id_raises(firma_runtime_dir: str, bad: str) -> None:
    for call in (
        lambda: firma_stack.get(firma_runtime_dir, bad),
        lambda: firma_stack.remove_marker(firma_runtime_dir, bad),
        lambda: write_marker(firma_runtime_dir, bad),
    ):
        with pytest.raises(InvalidSandboxIdError) as info:
            call()
        err = info.value
        assert isinstance(err, ValueError) and isinstance(err, StackError)
        assert err.code == "invalid_argument"
        assert err.reason
    assert not os.path.exists(os.path.join(firma_runtime_dir, "run", bad.replace("\x00", "")))


def test_longest_valid_id_is_fine(firma_runtime_dir: str) -> None:
    longest = "a" * 255
    write_marker(firma_runtime_dir, longest)

    entry = firma_stack.get(firma_runtime_dir, longest)

    assert entry is not None and entry.sandbox_id == longest


# Identity: the metadata must name its own directory.
def test_identity_mismatch(
    firma_runtime_dir: str, raw_marker: Callable[..., Path], dead_pid: int
) -> None:
    marker = raw_marker("dir-name", pid=dead_pid, sandbox_id="other-name")

    with pytest.raises(IdentityMismatchError) as info:
        firma_stack.get(firma_runtime_dir, "dir-name")
    err = info.value
    assert err.code == "identity_mismatch"
    assert (err.directory, err.metadata) == ("dir-name", "other-name")
    assert err.path == str(marker / "metadata.toml")
    # Skipped and kept, even though its pid is dead.
    assert firma_stack.list(firma_runtime_dir) == []
    assert (marker / "metadata.toml").is_file()


# §4.5 Concurrency: many listers, no failures, each stale id removed once.
def test_concurrent_listing_and_collecting_never_fails(
    firma_runtime_dir: str, firma_sidecar: Start, dead_pid: int
) -> None:
    firma_sidecar("live-1")
    stale = [f"stale-{i}" for i in range(10)]
    for name in stale:
        write_marker(firma_runtime_dir, name, pid=dead_pid, boot_id="x", pid_start_ticks=1)
    listed: List[List[str]] = []
    removed: List[str] = []
    errors: List[BaseException] = []
    start = threading.Barrier(6)

    def lister() -> None:
        try:
            start.wait()
            listed.append(ids(firma_stack.list(firma_runtime_dir)))
        except BaseException as e:
            errors.append(e)

    def collector() -> None:
        try:
            start.wait()
            removed.extend(firma_stack.gc_stale(firma_runtime_dir))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=f) for f in (lister, collector) * 3]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_BOUND_SECS)
    assert time.monotonic() - began < HANG_BOUND_SECS

    assert errors == []
    assert listed == [["live-1"]] * 3
    assert sorted(removed) == sorted(set(removed))  # nobody reports an id twice
    assert os.listdir(Path(firma_runtime_dir, "run")) == ["live-1"]
