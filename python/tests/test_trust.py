"""docs/design.md, "Trust": in a runtime directory that others may write,
every call that removes, signals or writes raises UntrustedDirectoryError
(nothing changed), and the read-only calls still answer. The checks live
in the core (tests/isolation/trust.rs covers them with real users); this proves the
refusal reaches Python whole: class, code, path, action and reason."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

import firma_stack

from _support import metadata_toml


@pytest.fixture
def untrusted(firma_runtime_dir: str, dead_pid: int) -> Iterator[str]:
    """``firma_runtime_dir`` with a stale marker ``stale`` and a marker
    ``victim`` for a live process of ours, then made writable by everyone
    (mode 0777); back to 0700 at teardown."""
    run = Path(firma_runtime_dir, "run")
    for name, pid in (("stale", dead_pid), ("victim", os.getpid())):
        (run / name).mkdir(parents=True, mode=0o700)
        (run / name / "metadata.toml").write_text(metadata_toml(name, pid))
    os.chmod(firma_runtime_dir, 0o777)
    try:
        yield firma_runtime_dir
    finally:
        os.chmod(firma_runtime_dir, 0o700)


def _refused(call: Callable[[], object], action: str, runtime_dir: str) -> None:
    with pytest.raises(firma_stack.UntrustedDirectoryError) as info:
        call()
    err = info.value
    assert err.code == "untrusted_directory"
    assert err.action == action
    assert err.path == runtime_dir
    assert "mode 0777" in err.reason
    assert str(err).startswith(f"refusing to {action} under {runtime_dir}: ")


def test_untrusted_directory_refuses_gc_stop_create_and_remove(untrusted: str) -> None:
    victim = subprocess.Popen(["sleep", "600"])
    try:
        Path(untrusted, "run", "victim", "metadata.toml").write_text(
            metadata_toml("victim", victim.pid)
        )
        _refused(lambda: firma_stack.gc_stale(untrusted), "collect stale markers", untrusted)
        _refused(
            lambda: firma_stack.stop(untrusted, "victim", grace=0.1),
            "stop a sidecar",
            untrusted,
        )
        assert victim.poll() is None, "stop signalled in an untrusted directory"
        _refused(
            lambda: firma_stack.create_marker(
                untrusted,
                sandbox_id="mine",
                agent_id="a",
                session_id="s",
                authority_url="https://authority.invalid",
                policy_bundle_version="v1",
                pid=os.getpid(),
                started_at="2026-12-01T00:00:00Z",
            ),
            "create a marker",
            untrusted,
        )
        _refused(lambda: firma_stack.remove_marker(untrusted, "stale"), "remove a marker", untrusted)
        assert sorted(os.listdir(Path(untrusted, "run"))) == ["stale", "victim"]

        # Read-only calls answer and remove nothing.
        assert [e.sandbox_id for e in firma_stack.list(untrusted)] == ["victim"]
        assert firma_stack.get(untrusted, "stale") is not None
        assert {r.name for r in firma_stack.inspect(untrusted)} == {"stale", "victim"}
        assert Path(untrusted, "run", "stale", "metadata.toml").exists()
    finally:
        victim.kill()
        victim.wait()


def test_the_same_directory_made_private_is_collected(untrusted: str) -> None:
    os.chmod(untrusted, 0o700)
    assert firma_stack.gc_stale(untrusted) == ["stale"]
