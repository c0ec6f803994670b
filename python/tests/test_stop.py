"""stop(): identity-checked signalling through a pidfd, with real processes
(the scenarios of tests/stop/stop.rs, through the binding)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Type, TypeVar, Union

import pytest

import firma_stack
from firma_stack import (
    IdentityUnverifiableError,
    NotAuthorizedError,
    PidReusedError,
    StopOutcome,
    StopRefusedError,
)
from firma_stack.testing import SidecarFactory, SidecarProcess, write_marker

from _support import User, firma_cli, metadata_toml

Start = SidecarFactory

OUTCOME_KEYS = ["sandbox_id", "pid", "signals", "exited", "killed", "collected", "waited_ms"]


def _start_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def sleeper() -> Iterator["subprocess.Popen[bytes]"]:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def term_ignorer() -> Iterator["subprocess.Popen[bytes]"]:
    """A process that ignores SIGTERM, returned once the kernel shows it."""
    proc = subprocess.Popen(["bash", "-c", "trap '' TERM; exec sleep 60"])
    try:
        deadline = time.monotonic() + 10
        while True:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            ign = int(status.split("SigIgn:")[1].split()[0], 16)
            if ign & (1 << (signal.SIGTERM - 1)) and "Name:\tsleep" in status:
                break
            assert time.monotonic() < deadline, "bash never ignored SIGTERM"
            time.sleep(0.005)
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_serving_sidecar_stops_on_sigterm(firma_runtime_dir: str, firma_sidecar: Start) -> None:
    sc = firma_sidecar("py-serve")
    out = firma_stack.stop(firma_runtime_dir, "py-serve", grace=5.0)
    assert isinstance(out, StopOutcome)
    assert (out.sandbox_id, out.pid, out.signals) == ("py-serve", sc.pid, ["SIGTERM"])
    assert out.exited and not out.killed
    # The example sidecar removed its own marker on SIGTERM.
    assert not out.collected and not os.path.exists(sc.marker_dir)
    assert list(out.to_dict()) == OUTCOME_KEYS
    assert sc.process.wait(10) == 0


@pytest.mark.parametrize("sig", ["TERM", "SIGTERM", "sigterm", "15", signal.SIGTERM, 15])
def test_signal_by_name_or_number_like_the_cli(
    firma_runtime_dir: str, firma_sidecar: Start, sig: Union[int, str]
) -> None:
    sc = firma_sidecar("py-named")
    out = firma_stack.stop(firma_runtime_dir, "py-named", signal=sig, grace=5.0)
    assert out is not None and out.signals == ["SIGTERM"] and out.exited
    assert sc.process.wait(10) == 0


@pytest.mark.parametrize("sig", ["", "TERM ", "SIGNOPE", "+15", "0", -1, 2**40])
def test_a_bad_signal_is_the_cores_invalid_argument(firma_runtime_dir: str, sig: Union[int, str]) -> None:
    # The core's parse_signal decides (and names the value), before any
    # marker is looked at.
    with pytest.raises(firma_stack.InvalidArgumentError) as info:
        firma_stack.stop(firma_runtime_dir, "py-none", signal=sig)
    assert info.value.argument == "signal" and str(sig) in info.value.reason


@pytest.mark.parametrize("grace", [-1.0, float("nan"), 601])
def test_a_bad_grace_speaks_in_seconds(firma_runtime_dir: str, grace: float) -> None:
    with pytest.raises(firma_stack.InvalidArgumentError) as info:
        firma_stack.stop(firma_runtime_dir, "py-none", grace=grace)
    assert info.value.argument == "grace"
    assert info.value.reason == f"{float(grace)!r} s is not in [0, 600.0] seconds"


def test_ignoring_sigterm_is_killed_after_the_grace_with_the_gil_released(
    firma_runtime_dir: str, term_ignorer: "subprocess.Popen[bytes]"
) -> None:
    write_marker(firma_runtime_dir, "py-stubborn", pid=term_ignorer.pid)
    ticks = 0
    running = True

    def count() -> None:
        nonlocal ticks
        while running:
            ticks += 1

    t = threading.Thread(target=count, daemon=True)
    t.start()
    out = firma_stack.stop(firma_runtime_dir, "py-stubborn", grace=0.5)
    running = False
    t.join()
    assert out is not None
    assert out.signals == ["SIGTERM", "SIGKILL"] and out.killed and out.exited
    assert out.collected and out.waited_ms >= 500
    assert ticks > 1000, "another thread did not run while stop waited"
    assert term_ignorer.wait(10) == -signal.SIGKILL


def test_no_kill_leaves_it_running_and_the_marker_kept(
    firma_runtime_dir: str, term_ignorer: "subprocess.Popen[bytes]"
) -> None:
    marker = write_marker(firma_runtime_dir, "py-stays", pid=term_ignorer.pid)
    out = firma_stack.stop(firma_runtime_dir, "py-stays", grace=0.2, kill=False)
    assert out is not None
    assert out.signals == ["SIGTERM"] and not out.exited and not out.collected
    assert _alive(term_ignorer.pid) and os.path.isdir(marker)
    # The same outcome JSON as the CLI's.
    done = firma_cli(firma_runtime_dir, "sidecar", "stop", "py-stays", "--grace-ms", "100",
                     "--no-kill", "--json")
    assert done.returncode == 3, done.stderr
    assert list(json.loads(done.stdout)[0]) == OUTCOME_KEYS


def test_reused_pid_is_refused_and_untouched(
    firma_runtime_dir: str, sleeper: "subprocess.Popen[bytes]"
) -> None:
    write_marker(firma_runtime_dir, "py-reused", pid=sleeper.pid,
                 boot_id=Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
                 pid_start_ticks=_start_ticks(sleeper.pid) + 9)
    for verify in (True, False):
        with pytest.raises(PidReusedError) as info:
            firma_stack.stop(firma_runtime_dir, "py-reused", grace=0.1, verify_identity=verify)
        assert info.value.code == "pid_reused" and info.value.pid == sleeper.pid
    time.sleep(0.05)
    assert _alive(sleeper.pid)


def test_no_identity_is_refused_unless_opted_out(
    firma_runtime_dir: str, raw_marker: Callable[..., Path], sleeper: "subprocess.Popen[bytes]"
) -> None:
    raw_marker("py-bare", metadata_toml("py-bare", sleeper.pid))
    with pytest.raises(IdentityUnverifiableError) as info:
        firma_stack.stop(firma_runtime_dir, "py-bare")
    assert info.value.code == "identity_unverifiable" and info.value.sandbox_id == "py-bare"
    assert _alive(sleeper.pid)
    out = firma_stack.stop(firma_runtime_dir, "py-bare", verify_identity=False, grace=5.0)
    assert out is not None and out.signals == ["SIGTERM"] and out.collected
    assert sleeper.wait(10) == -signal.SIGTERM


def test_dead_and_zombie_are_not_signalled_and_collected(
    firma_runtime_dir: str, raw_marker: Callable[..., Path], dead_pid: int,
    sleeper: "subprocess.Popen[bytes]",
) -> None:
    raw_marker("py-dead", metadata_toml("py-dead", dead_pid))
    write_marker(firma_runtime_dir, "py-zombie", pid=sleeper.pid)
    os.kill(sleeper.pid, signal.SIGKILL)
    os.waitid(os.P_PID, sleeper.pid, os.WEXITED | os.WNOWAIT)
    for sid in ("py-dead", "py-zombie"):
        out = firma_stack.stop(firma_runtime_dir, sid)
        assert out is not None and out.signals == [] and out.exited and out.collected, sid
    assert firma_stack.stop(firma_runtime_dir, "py-dead") is None


def test_pid_1_and_own_pid_are_refused(firma_runtime_dir: str) -> None:
    write_marker(firma_runtime_dir, "py-init", pid=1)
    write_marker(firma_runtime_dir, "py-me", pid=os.getpid())
    for sid in ("py-init", "py-me"):
        with pytest.raises(StopRefusedError) as info:
            firma_stack.stop(firma_runtime_dir, sid)
        assert info.value.code == "refused" and info.value.reason


@pytest.mark.parametrize("grace", [-1.0, float("nan"), 601.0])
def test_bad_grace_is_an_invalid_argument(firma_runtime_dir: str, grace: float) -> None:
    with pytest.raises(firma_stack.InvalidArgumentError) as info:
        firma_stack.stop(firma_runtime_dir, "x", grace=grace)
    assert info.value.argument == "grace"


def test_refusal_classes_codes_and_pickling(firma_runtime_dir: str) -> None:
    import pickle

    expected = {
        IdentityUnverifiableError: "identity_unverifiable",
        PidReusedError: "pid_reused",
        StopRefusedError: "refused",
        firma_stack.PidfdUnavailableError: "pidfd_unavailable",
        firma_stack.NotAuthorizedError: "not_authorized",
        firma_stack.UntrustedDirectoryError: "untrusted_directory",
    }
    for cls, code in expected.items():
        assert issubclass(cls, firma_stack.StackError) and cls.code == code
    write_marker(firma_runtime_dir, "py-pickle", pid=1)
    with pytest.raises(StopRefusedError) as info:
        firma_stack.stop(firma_runtime_dir, "py-pickle")
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is StopRefusedError
    assert (again.sandbox_id, again.pid, again.reason, again.path) == (
        "py-pickle", 1, info.value.reason, info.value.path)


# The trust boundary (docs/design.md, "Trust"; tests/isolation/trust_stop.rs): markers
# that are nobody's claim, or whose owner could not signal the process, and
# a pid recorded in another pid namespace. Each refusal is tried with an
# immediate SIGKILL (what a stop that got through would send at once), with
# and without the opt-out, and must leave the process and the marker alone.


def _real_uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("Uid:")[1].split()[0])


E = TypeVar("E", bound=firma_stack.StackError)


def _refused(cls: Type[E], runtime_dir: str, sid: str, verify: bool) -> E:
    """The refusal of a SIGKILL stop of ``sid``, which must be exactly ``cls``
    and survive pickling with every attribute."""
    with pytest.raises(cls) as info:
        firma_stack.stop(runtime_dir, sid, signal=signal.SIGKILL, grace=0.0,
                         verify_identity=verify)
    e = info.value
    assert type(e) is cls, (verify, e)
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is cls and str(again) == str(e)
    assert vars(again) == vars(e), (vars(again), vars(e))
    return e


def test_a_marker_writable_by_others_is_nobodys_claim_even_with_the_opt_out(
    firma_runtime_dir: str, sleeper: "subprocess.Popen[bytes]"
) -> None:
    marker = write_marker(firma_runtime_dir, "py-open", pid=sleeper.pid)
    os.chmod(marker, 0o777)
    for verify in (True, False):
        e = _refused(NotAuthorizedError, firma_runtime_dir, "py-open", verify)
        assert (e.code, e.sandbox_id, e.pid, e.path) == (
            "not_authorized", "py-open", sleeper.pid, marker)
        assert "nobody's claim" in e.reason and "0777" in e.reason, e.reason
        assert e.reason in e.message
    time.sleep(0.05)
    assert _alive(sleeper.pid) and os.path.isfile(os.path.join(marker, "metadata.toml"))
    # The same marker, no longer writable by others, is root's claim on
    # root's own process: stopped. The refusal above was the mode's alone.
    os.chmod(marker, 0o700)
    out = firma_stack.stop(firma_runtime_dir, "py-open", grace=5.0)
    assert out is not None and out.signals == ["SIGTERM"] and out.collected
    assert sleeper.wait(10) == -signal.SIGTERM


def test_another_pid_namespace_with_no_process_there_signals_nothing(
    firma_runtime_dir: str, raw_marker: Callable[..., Path], sleeper: "subprocess.Popen[bytes]"
) -> None:
    foreign_ns = 4026531000
    assert os.stat("/proc/self/ns/pid").st_ino != foreign_ns
    # The identity of a live process of ours, as if recorded in another pid
    # namespace that has no process: the recorded one is provably gone (this
    # reader sees every process), so nothing is signalled, opt-out or not,
    # and the marker is collected. Our process with that number lives on.
    for verify in (True, False):
        raw_marker(
            "py-foreign-ns", pid=sleeper.pid,
            boot_id=Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
            pid_start_ticks=_start_ticks(sleeper.pid), pid_ns_inode=foreign_ns)
        out = firma_stack.stop(firma_runtime_dir, "py-foreign-ns", signal=signal.SIGKILL,
                               verify_identity=verify)
        assert out is not None and out.signals == [] and out.exited and out.collected, out
    time.sleep(0.05)
    assert _alive(sleeper.pid)


def test_a_marker_owned_by_another_user_cannot_stop_a_root_process(
    firma_runtime_dir: str, sleeper: "subprocess.Popen[bytes]", throwaway_user: User
) -> None:
    assert _real_uid(sleeper.pid) == 0
    marker = write_marker(firma_runtime_dir, "py-not-theirs", pid=sleeper.pid)
    # The user's claim (directory and metadata.toml both its own, writable by
    # no one else) on root's process: the user could not signal it.
    for path in (marker, os.path.join(marker, "metadata.toml")):
        os.chown(path, throwaway_user.uid, throwaway_user.gid)
        assert os.stat(path).st_mode & 0o022 == 0
    for verify in (True, False):
        e = _refused(NotAuthorizedError, firma_runtime_dir, "py-not-theirs", verify)
        assert (e.code, e.sandbox_id, e.pid, e.path) == (
            "not_authorized", "py-not-theirs", sleeper.pid, marker)
        assert f"uid {throwaway_user.uid}" in e.reason and "could not signal" in e.reason, e.reason
    time.sleep(0.05)
    assert _alive(sleeper.pid) and os.path.isfile(os.path.join(marker, "metadata.toml"))
    # Handed back to root, the same marker is root's claim: stopped.
    for path in (marker, os.path.join(marker, "metadata.toml")):
        os.chown(path, 0, 0)
    out = firma_stack.stop(firma_runtime_dir, "py-not-theirs", grace=5.0)
    assert out is not None and out.signals == ["SIGTERM"] and out.collected
    assert sleeper.wait(10) == -signal.SIGTERM
