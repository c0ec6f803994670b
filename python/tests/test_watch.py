"""firma_stack.watch / awatch over real sidecars: typed events, the context
manager and iterators, the GIL released while waiting, SIGKILL seen as
Gone (or Changed to STOPPED when read-only), and the same state as list()."""

from __future__ import annotations

import asyncio
import os
import select
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

import firma_stack
from firma_stack import (
    Appeared,
    Changed,
    Event,
    Gone,
    SidecarEntry,
    State,
    Synced,
    Watch,
)
from firma_stack.testing import SidecarFactory, SidecarProcess

Start = SidecarFactory

#: Upper bound proving the stream is event-driven (never a speed claim).
BOUND = 5.0


def take_until(w: Watch, pred: Callable[[Event], bool], seen: List[Event]) -> Event:
    end = time.monotonic() + BOUND
    while True:
        left = end - time.monotonic()
        ev = w.next(max(left, 0.0))
        if ev is None:
            raise AssertionError(f"no matching event within {BOUND} s; got {seen!r}")
        seen.append(ev)
        if pred(ev):
            return ev


def apply(state: Dict[str, SidecarEntry], ev: Event) -> None:
    if isinstance(ev, (Appeared, Changed)):
        state[ev.sandbox_id] = ev.entry
    elif isinstance(ev, Gone):
        del state[ev.sandbox_id]


def strip(entries: Dict[str, SidecarEntry]) -> Dict[str, object]:
    out: Dict[str, object] = {}
    for k, e in entries.items():
        d = e.to_dict()
        d.pop("uptime_secs")
        out[k] = d
    return out


def test_stream_is_typed_and_rebuilds_list(firma_runtime_dir: str, firma_sidecar: Start) -> None:
    a = firma_sidecar("py-a")
    seen: List[Event] = []
    state: Dict[str, SidecarEntry] = {}
    with firma_stack.watch(firma_runtime_dir, probe_interval=0.5) as w:
        first = take_until(w, lambda e: isinstance(e, Synced), seen)
        assert isinstance(first, Synced) and first.kind == "synced"
        appeared = [e for e in seen if isinstance(e, Appeared)]
        assert [e.sandbox_id for e in appeared] == ["py-a"]
        assert appeared[0].entry.pid == a.pid
        assert appeared[0].entry.state is State.RUNNING
        assert appeared[0].at.endswith("Z") and len(appeared[0].at) == 24
        b = firma_sidecar("py-b")
        take_until(w, lambda e: isinstance(e, Appeared) and e.sandbox_id == "py-b", seen)
        b.kill()
        gone = take_until(w, lambda e: isinstance(e, Gone), seen)
        assert isinstance(gone, Gone)
        assert (gone.sandbox_id, gone.reason) == ("py-b", "collected")
        for ev in seen:
            apply(state, ev)
        listed = {e.sandbox_id: e for e in firma_stack.list(firma_runtime_dir)}
        assert strip(state) == strip(listed)
        assert sum(isinstance(e, Synced) for e in seen) == 1
    assert w.closed
    with pytest.raises(ValueError):
        w.fileno()
    assert list(w) == []


def test_read_only_watch_reports_stopped(firma_runtime_dir: str, firma_sidecar: Start) -> None:
    s = firma_sidecar("py-victim")
    seen: List[Event] = []
    with firma_stack.watch(firma_runtime_dir, collect=False) as w:
        take_until(w, lambda e: isinstance(e, Synced), seen)
        s.kill()
        ev = take_until(w, lambda e: isinstance(e, Changed), seen)
        assert isinstance(ev, Changed)
        assert ev.previous is State.RUNNING and ev.entry.state is State.STOPPED
    assert os.path.isdir(os.path.join(firma_runtime_dir, "run", "py-victim"))


def test_fileno_is_readable_when_events_wait(firma_runtime_dir: str, firma_sidecar: Start) -> None:
    firma_sidecar("py-fd")
    with firma_stack.watch(firma_runtime_dir, probe_interval=60) as w:
        r, _, _ = select.select([w], [], [], BOUND)
        assert r == [w], "queued initial events must make fileno() readable"
        while w.next(0) is not None:
            pass
        r, _, _ = select.select([w], [], [], 0)
        assert r == [], "nothing queued: fileno() must not be readable"


def test_gil_is_released_while_waiting(firma_runtime_dir: str) -> None:
    count = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal count
        while not stop.is_set():
            count += 1

    with firma_stack.watch(firma_runtime_dir, probe_interval=60) as w:
        assert isinstance(w.next(BOUND), Synced)
        t = threading.Thread(target=spin, daemon=True)
        t.start()
        time.sleep(0.05)
        before = count
        assert w.next(0.5) is None
        during = count - before
        stop.set()
        t.join()
    # Held GIL: the spinner would only run at switch intervals around the
    # wait; released, it counts freely for the whole 0.5 s.
    assert during > 10_000, during


def waiting_until_closed(w: Watch) -> Tuple[threading.Thread, List[BaseException]]:
    """A thread blocked in ``w.next(None)``, and the ``ValueError`` it ends
    with once ``w`` is closed underneath it."""
    errors: List[BaseException] = []

    def blocked() -> None:
        try:
            w.next(None)
        except ValueError as e:
            errors.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    return t, errors


def test_close_from_another_thread_while_waiting(firma_runtime_dir: str) -> None:
    w = firma_stack.watch(firma_runtime_dir, probe_interval=60)
    assert isinstance(w.next(BOUND), Synced)
    t, errors = waiting_until_closed(w)
    time.sleep(0.3)
    w.close()
    t.join(BOUND)
    assert not t.is_alive(), "close() must end a blocked next()"
    assert len(errors) == 1


def test_a_next_keeps_its_timeout_while_another_thread_waits(firma_runtime_dir: str) -> None:
    # One thread waits for events that never come; another's next(0) calls
    # must not queue behind its wait (they used to, for a 0.2 s slice each
    # at best, for ever at worst: the waiting thread took the lock back
    # first, slice after slice). The bound only proves they do not wait:
    # it is no speed claim.
    w = firma_stack.watch(firma_runtime_dir, probe_interval=60)
    assert isinstance(w.next(BOUND), Synced)
    took: List[float] = []

    def twenty_short_ones() -> None:
        start = time.monotonic()
        for _ in range(20):
            assert w.next(0) is None
        took.append(time.monotonic() - start)

    waiter, closed = waiting_until_closed(w)
    time.sleep(0.3)
    short = threading.Thread(target=twenty_short_ones)
    short.start()
    short.join(BOUND)
    stuck = short.is_alive()
    w.close()
    waiter.join(BOUND)
    short.join(BOUND)
    assert not stuck, f"20 calls of next(0) still waiting after {BOUND} s"
    assert took and took[0] < 1.0, f"next(0) waited behind another thread's next: {took}"
    assert not waiter.is_alive() and len(closed) == 1


@pytest.mark.parametrize("option", ["probe_interval", "rescan_interval", "timeout"])
@pytest.mark.parametrize("value", [0, 1e-12, -1.0, float("nan"), float("inf"), 1e9])
def test_bad_options_raise_invalid_argument_in_seconds(
    firma_runtime_dir: str, option: str, value: float
) -> None:
    # Every duration argument is in seconds, and so is its error: never
    # the milliseconds of the C ABI.
    options: Dict[str, Any] = {option: value}
    with pytest.raises(firma_stack.InvalidArgumentError) as info:
        firma_stack.watch(firma_runtime_dir, **options)
    assert info.value.argument == option
    assert info.value.reason.startswith(f"{float(value)!r} s is not in (0, ")
    assert info.value.reason.endswith(" seconds") and " ms" not in info.value.reason


def test_awatch_keeps_the_loop_running_and_leaves_no_thread(
    firma_runtime_dir: str, firma_sidecar: Start
) -> None:
    async def main() -> List[Event]:
        seen: List[Event] = []
        threads_before = threading.active_count()
        async with firma_stack.awatch(firma_runtime_dir) as events:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            tick = asyncio.create_task(ticker())
            started: Optional[SidecarProcess] = None
            killed = False

            async def start_later() -> None:
                # The iterator waits on the watcher's fd meanwhile: the
                # ticker must keep running through that wait.
                nonlocal started
                await asyncio.sleep(0.2)
                started = firma_sidecar("py-async")

            later: Optional["asyncio.Task[None]"] = None

            async def drive() -> None:
                nonlocal later, killed
                async for ev in events:
                    seen.append(ev)
                    if isinstance(ev, Synced):
                        later = asyncio.create_task(start_later())
                    elif isinstance(ev, Appeared) and ev.sandbox_id == "py-async":
                        assert started is not None
                        started.kill()
                        killed = True
                    elif isinstance(ev, Gone):
                        return

            await asyncio.wait_for(drive(), BOUND)
            tick.cancel()
            assert killed
            assert ticks > 5, "the event loop kept running while waiting"
        assert events.closed
        # Its worker thread ends with it.
        end = time.monotonic() + BOUND
        while threading.active_count() > threads_before and time.monotonic() < end:
            await asyncio.sleep(0.01)
        assert threading.active_count() == threads_before, "a thread outlived the watcher"
        return seen

    seen = asyncio.run(main())
    gone = [e for e in seen if isinstance(e, Gone)]
    assert [(g.sandbox_id, g.reason) for g in gone] == [("py-async", "collected")]


def test_cli_json_stream_matches_the_python_stream(
    firma_runtime_dir: str, firma_sidecar: Start
) -> None:
    """The same scenario seen by ``firma sidecar watch --json`` and by
    ``firma_stack.watch`` (both read-only, so neither collects first) gives
    the same events, field for field, apart from ``at``."""
    import json
    import subprocess

    from _support import FIRMA

    def key(d: Dict[str, object]) -> Dict[str, object]:
        d = dict(d)
        d.pop("at")
        if isinstance(d.get("entry"), dict):
            entry = dict(d["entry"])  # type: ignore[call-overload]
            entry.pop("uptime_secs")
            d["entry"] = entry
        return d

    def as_dict(ev: Event) -> Dict[str, object]:
        d: Dict[str, object] = {"event": ev.kind}
        if isinstance(ev, (Appeared, Changed, Gone)):
            d["sandbox_id"] = ev.sandbox_id
        if isinstance(ev, (Appeared, Changed)):
            d["entry"] = ev.entry.to_dict()
        if isinstance(ev, Changed):
            d["previous"] = str(ev.previous)
        if isinstance(ev, Gone):
            d["reason"] = ev.reason
        if hasattr(ev, "at"):
            d["at"] = ev.at
        return d

    # no-socket sidecars: their state does not depend on when a watcher
    # looks (a serving one may be seen just before its socket exists).
    firma_sidecar("x-first", mode="no-socket")
    cli = subprocess.Popen(
        [str(FIRMA), "--runtime-dir", firma_runtime_dir, "sidecar", "watch", "--json", "--no-gc"],
        stdout=subprocess.PIPE,
        text=True,
    )
    # The CLI's lines through a queue, so a missing line fails the test in
    # BOUND seconds instead of blocking a readline forever.
    import queue
    import threading as _threading

    lines: "queue.Queue[str]" = queue.Queue()
    assert cli.stdout is not None
    out = cli.stdout

    def pump() -> None:
        for line in out:
            lines.put(line)

    _threading.Thread(target=pump, daemon=True).start()

    def next_line() -> Dict[str, object]:
        try:
            return json.loads(lines.get(timeout=BOUND))  # type: ignore[no-any-return]
        except queue.Empty:
            raise AssertionError(f"firma sidecar watch printed no event within {BOUND} s") from None

    try:
        py_events: List[Event] = []
        with firma_stack.watch(firma_runtime_dir, collect=False) as w:
            cli_lines: List[Dict[str, object]] = []

            def cli_until(kind: str) -> None:
                # Each step waits for both watchers to see it before the
                # next one acts: two independent watchers may otherwise
                # legitimately see a marker removed before its exit.
                while not cli_lines or cli_lines[-1]["event"] != kind:
                    cli_lines.append(next_line())

            take_until(w, lambda e: isinstance(e, Synced), py_events)
            cli_until("synced")
            second = firma_sidecar("x-second", mode="no-socket")
            take_until(w, lambda e: isinstance(e, Appeared) and e.sandbox_id == "x-second", py_events)
            cli_until("appeared")
            second.kill(reap=False)
            take_until(w, lambda e: isinstance(e, Changed) and e.entry.state is State.STOPPED, py_events)
            cli_until("changed")
            firma_stack.remove_marker(firma_runtime_dir, "x-second")
            take_until(w, lambda e: isinstance(e, Gone), py_events)
            cli_until("gone")
        assert [key(d) for d in cli_lines] == [key(as_dict(e)) for e in py_events]
    finally:
        cli.terminate()
        code = cli.wait(BOUND)
        if cli.stdout is not None:
            cli.stdout.close()
    assert code == 0, "firma sidecar watch exits 0 on SIGTERM"


# fork() in a process with a thread waiting in next(): Python warns that
# such a fork may deadlock; proving that the watcher does not is the point.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_child_gets_forked_error_and_parent_keeps_its_stream(
    firma_runtime_dir: str,
) -> None:
    from firma_stack.testing import write_marker

    w = firma_stack.watch(firma_runtime_dir, probe_interval=60)
    assert isinstance(w.next(BOUND), Synced)
    got: List[Optional[Event]] = []

    def parent_waits() -> None:
        # Inside next() (the binding's lock held, in the old design) at the fork.
        got.append(w.next(3 * BOUND))

    waiter = threading.Thread(target=parent_waits)
    waiter.start()
    time.sleep(0.3)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        code = 10
        try:
            began = time.monotonic()
            try:
                w.next(0.5)
                code = 1  # no error: it read the parent's descriptors
            except firma_stack.ForkedError as e:
                ok = (
                    e.code == "forked"
                    and e.owner_pid == os.getppid()
                    and e.pid == os.getpid()
                    and "fork" in str(e)
                )
                code = 0 if ok and time.monotonic() - began < 1.0 else 2
            w.close()  # the child's copies only, without waiting for a lock
            if not w.closed:
                code = 3
        finally:
            os._exit(code)
    end = time.monotonic() + 10
    status = None
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise AssertionError("the fork() child hung in next() (killed after 10 s)")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (
        f"the fork() child failed: exit status {status:#x} (1: no error, 2: wrong error)"
    )

    # The parent's stream goes on: its waiting thread gets the next event.
    write_marker(firma_runtime_dir, "py-after-fork")
    waiter.join(3 * BOUND)
    assert not waiter.is_alive()
    assert len(got) == 1 and isinstance(got[0], Appeared), got
    assert got[0].sandbox_id == "py-after-fork"
    w.close()


def test_a_failed_next_is_not_the_end_of_the_stream(
    firma_runtime_dir: str, firma_sidecar: Start
) -> None:
    # run/ replaced by a symlink for half a second: next() raises meanwhile
    # (every scan refuses the symlink); once run/ is back, a sidecar
    # started afterwards is delivered by the same watcher.
    run = os.path.join(firma_runtime_dir, "run")
    real = run + ".real"
    os.makedirs(run, mode=0o700, exist_ok=True)
    w = firma_stack.watch(firma_runtime_dir, probe_interval=0.1)
    assert isinstance(w.next(BOUND), Synced)
    os.rename(run, real)
    os.symlink(real, run)
    failures: List[firma_stack.StackError] = []
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        try:
            w.next(0.05)
        except firma_stack.StackError as e:
            failures.append(e)
    os.remove(run)
    os.rename(real, run)
    assert failures, "no failure while run/ was a symlink: the test proves nothing"
    assert not w.closed
    firma_sidecar("py-after-swap")
    seen: List[Event] = []
    take_until(w, lambda e: isinstance(e, Appeared) and e.sandbox_id == "py-after-swap", seen)
    w.close()


def test_aclose_ends_a_pending_next(firma_runtime_dir: str) -> None:
    async def main() -> None:
        events = firma_stack.awatch(firma_runtime_dir, probe_interval=60)
        async with events:
            assert isinstance(await events.next(), Synced)
            pending = asyncio.create_task(events.next())
            iterating = asyncio.create_task(_drain(events))
            await asyncio.sleep(0.2)  # both wait on the descriptor
            assert not pending.done() and not iterating.done()
            await events.aclose()
            with pytest.raises(ValueError, match="closed"):
                await asyncio.wait_for(pending, BOUND)
            assert await asyncio.wait_for(iterating, BOUND) == 0

    async def _drain(events: firma_stack.AsyncWatch) -> int:
        n = 0
        async for _ in events:
            n += 1
        return n

    asyncio.run(main())
