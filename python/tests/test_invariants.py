"""Invariants (docs/design.md, "Invariants") as seen from Python: the exceptions this binding
raises for refused ids, the attributes of an identity mismatch, and many
threads at once. The invariants themselves (symlinks, FIFOs, pid ranges,
huge files, ...) are checked on every surface by tests/conformance."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import List

import pytest

import firma_stack
from firma_stack import IdentityMismatchError, InvalidSandboxIdError, StackError
from firma_stack.testing import write_marker

from _support import core_fixture, ids

# "Never hangs" bound: generous, far above any probe timeout used here.
HANG_BOUND_SECS = 30.0


# invariant 6 Sandbox ids given by callers.
# The grammar is checked on every surface by tests/conformance; here: that
# each call of this binding (get, the writer, remove) maps a refused id to
# InvalidSandboxIdError, including strings only Python can make.
BAD_IDS = [
    "",
    "../etc",
    "nul\x00byte",
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


# Identity: the metadata must name its own directory.
def test_identity_mismatch_carries_both_names() -> None:
    with core_fixture("scenarios/identity-mismatch-and-empty-dir.json") as kit:
        run = kit.placeholders["run"]
        with pytest.raises(IdentityMismatchError) as info:
            firma_stack.get(kit.placeholders["runtime"], "renamed")
    err = info.value
    assert err.code == "identity_mismatch"
    assert (err.directory, err.metadata) == ("renamed", "original")
    # The marker directory, as the upstream module names it.
    assert err.path == os.path.join(run, "renamed")


# invariant 5 Concurrency: many listers, no failures, each stale id removed once.
def test_concurrent_listing_and_collecting_never_fails() -> None:
    with core_fixture("fixtures/live-and-stale.json") as kit:
        listing_and_collecting(kit.placeholders["runtime"])


def listing_and_collecting(firma_runtime_dir: str) -> None:
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
    assert listed == [["live"]] * 3
    assert sorted(removed) == sorted(set(removed))  # nobody reports an id twice
    assert os.listdir(Path(firma_runtime_dir, "run")) == ["live"]
