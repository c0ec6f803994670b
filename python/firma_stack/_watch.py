"""``watch`` and ``awatch``: the live event stream of a runtime directory.

A thin layer over the core's watcher (``_native._Watcher``): it only turns
the core's events into the typed classes below. Every decision — what
changed, liveness, probing, collection — is the core's, exactly as for
:func:`firma_stack.list`.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import queue
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ClassVar,
    Deque,
    Iterable,
    List,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from ._native import SidecarEntry, _Watcher
from ._state import State

if TYPE_CHECKING:
    # Annotations only (never evaluated): Python 3.9 has no
    # typing.ParamSpec at run time.
    from typing_extensions import ParamSpec

    P = ParamSpec("P")

# Public names are listed (and exported) by the package, firma_stack/__init__.py.

_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
_T = TypeVar("_T")


@dataclass(frozen=True)
class _OfSidecar:
    """What the events about one sidecar share: its id, their first field."""

    sandbox_id: str


@dataclass(frozen=True)
class Appeared(_OfSidecar):
    """A live sidecar found by the initial scan (or a rescan), or a new one."""

    kind: ClassVar[str] = "appeared"
    entry: SidecarEntry
    at: str


@dataclass(frozen=True)
class Synced:
    """The events so far describe the whole directory: the stream is complete
    from here on (once after the initial scan and after each ``Resync``)."""

    kind: ClassVar[str] = "synced"
    at: str


@dataclass(frozen=True)
class Changed(_OfSidecar):
    """A known sidecar changed state (or metadata); ``previous`` is the state
    last reported."""

    kind: ClassVar[str] = "changed"
    entry: SidecarEntry
    previous: State
    at: str


@dataclass(frozen=True)
class Gone(_OfSidecar):
    """A known sidecar left: ``reason`` is ``"collected"`` (this watcher
    removed its stale marker) or ``"removed"`` (by other hands)."""

    kind: ClassVar[str] = "gone"
    reason: str
    at: str


@dataclass(frozen=True)
class Resync:
    """The watcher lost track (or runs degraded, as ``reason`` says) and
    rescans; the events that follow correct the state, then ``Synced``."""

    kind: ClassVar[str] = "resync"
    reason: str
    at: str


#: One event of the stream.
Event = Union[Appeared, Synced, Changed, Gone, Resync]

_Raw = Tuple[str, Optional[str], Optional[SidecarEntry], Optional[str], Optional[str], str]


def _event(raw: _Raw) -> Event:
    kind, sandbox_id, entry, previous, reason, at = raw
    if kind == "appeared" and sandbox_id is not None and entry is not None:
        return Appeared(sandbox_id, entry, at)
    if kind == "changed" and sandbox_id is not None and entry is not None and previous:
        return Changed(sandbox_id, entry, State(previous), at)
    if kind == "gone" and sandbox_id is not None and reason is not None:
        return Gone(sandbox_id, reason, at)
    if kind == "synced":
        return Synced(at)
    if kind == "resync" and reason is not None:
        return Resync(reason, at)
    raise AssertionError(f"unexpected event from the core: {raw!r}")


#: Opens the core's watcher (its initial scan runs then).
_Opener = Callable[[], _Watcher]


class _WatchBase:
    """What the sync and async watchers share: the core's watcher, its
    descriptor and closing it."""

    def __init__(self, open_watcher: _Opener) -> None:
        self._w = open_watcher()

    def _poll(self, timeout: Optional[float]) -> Optional[Event]:
        """The core's next event, waiting at most ``timeout`` seconds
        (``None``: until there is one), as one of the classes above."""
        raw = self._w.next_event(timeout)
        return None if raw is None else _event(raw)

    def fileno(self) -> int:
        """A descriptor that is readable when an event may be ready (for
        ``select``/``selectors``/``loop.add_reader``); only poll it."""
        return self._w.fileno()

    def close(self) -> None:
        """Stops watching and releases every descriptor (idempotent)."""
        self._w.close()

    @property
    def closed(self) -> bool:
        return self._w.closed


class Watch(_WatchBase):
    """A context manager and iterator of :data:`Event` (see :func:`watch`)."""

    def next(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, waiting at most ``timeout`` seconds (``None``:
        until there is one); ``None`` when the timeout passed."""
        return self._poll(timeout)

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> Event:
        if self._w.closed:
            raise StopIteration
        ev = self.next(None)
        assert ev is not None
        return ev

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


class _Worker:
    """One thread that runs an :class:`AsyncWatch`'s calls into the core in
    order (creating the watcher — the initial scan —, its steps, closing
    it) and hands each result to the event loop. It ends after
    :meth:`stop` (the watcher closed), so no thread outlives a watcher."""

    def __init__(self) -> None:
        self._jobs: "queue.SimpleQueue[Optional[_Job]]" = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="firma-awatch", daemon=True)
        self._started = False
        self._stopped = False

    def submit(self, fn: Callable[[], _T]) -> "asyncio.Future[_T]":
        if self._stopped:
            raise ValueError("the watcher is closed")
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[_T]" = loop.create_future()
        self._jobs.put(_Job(loop, fut, fn))
        if not self._started:
            self._started = True
            self._thread.start()
        return fut

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._jobs.put(None)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job.run()


class _Job:
    def __init__(self, loop: asyncio.AbstractEventLoop, fut: "asyncio.Future[Any]",
                 fn: Callable[[], Any]) -> None:
        self.loop, self.fut, self.fn = loop, fut, fn

    def run(self) -> None:
        try:
            result = self.fn()
        except BaseException as e:  # handed to the awaiting task
            self._post(_fail, e)
        else:
            self._post(_succeed, result)

    def _post(self, how: Callable[["asyncio.Future[Any]", Any], None], value: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(how, self.fut, value)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass


def _succeed(fut: "asyncio.Future[Any]", value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _fail(fut: "asyncio.Future[Any]", exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


#: Events taken from the core per hand-off to the loop, at most.
_BATCH = 256


class AsyncWatch:
    """An async context manager and async iterator of :data:`Event` (see
    :func:`awatch`).

    Nothing that can take long runs on the event loop's thread: creating
    the watcher (the initial scan), each step of it (a probe round, a
    rescan) and closing it run on one worker thread of this watcher, in
    order; the loop only waits — on the watcher's descriptor with
    ``loop.add_reader`` while nothing is due — and hands out the events.
    The worker thread ends when the watcher is closed. Cancelling a
    pending :meth:`next` loses nothing: an event already taken from the
    core is returned by the next call."""

    def __init__(self, open_watcher: _Opener) -> None:
        self._create: Optional[_Opener] = open_watcher
        self._w: Optional[_Watcher] = None
        self._fd = -1
        self._worker = _Worker()
        # The call into the core under way, kept across cancellations.
        self._step: "Optional[asyncio.Future[Any]]" = None
        self._ready: Deque[_Raw] = collections.deque()
        # The wait on the descriptor under way, ended by closing.
        self._waiter: "Optional[asyncio.Future[None]]" = None
        # One next() at a time (made on first use, inside the loop).
        self._turn: Optional[asyncio.Lock] = None
        self._closed = False

    async def _call(self, fn: Callable[[], _T]) -> _T:
        """``fn()`` on the worker thread; if the caller is cancelled, the
        call goes on and its outcome is the next ``_call``'s (``fn`` of
        that one is then not run: callers pass the same kind of call)."""
        if self._step is None:
            self._step = self._worker.submit(fn)
        step = self._step
        try:
            result: _T = await asyncio.shield(step)
        except asyncio.CancelledError:
            if step.done() and not step.cancelled():
                self._step = None if step.exception() is not None else step
            raise
        except BaseException:
            self._step = None
            raise
        self._step = None
        return result

    async def _start(self) -> _Watcher:
        if self._closed:
            raise ValueError("the watcher is closed")
        if self._w is None:
            create = self._create
            assert create is not None
            self._w = await self._call(create)
            self._create = None
            self._fd = self._w.fileno()
        return self._w

    async def next(self) -> Event:
        """The next event, waiting without blocking the event loop.
        ``ValueError`` once the watcher is closed (also when that happens
        while waiting). Concurrent calls take turns."""
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            return await self._next()

    async def _next(self) -> Event:
        w = await self._start()
        loop = asyncio.get_running_loop()
        while True:
            if self._ready:
                return _event(self._ready.popleft())
            if self._closed:
                raise ValueError("the watcher is closed")

            def take(w: _Watcher = w) -> List[_Raw]:
                # Never waits: the events queued, or the work that is due.
                batch: List[_Raw] = []
                while len(batch) < _BATCH:
                    raw = w.next_event(0.0)
                    if raw is None:
                        break
                    batch.append(raw)
                return batch

            batch = await self._call(take)
            if batch:
                self._ready.extend(batch)
                continue
            # Nothing due: wait for the descriptor (readable when a step
            # may have something), on the loop, doing nothing else.
            ready: asyncio.Future[None] = loop.create_future()

            def wake(f: asyncio.Future[None] = ready) -> None:
                if not f.done():
                    f.set_result(None)

            self._waiter = ready
            loop.add_reader(self._fd, wake)
            try:
                await ready
            finally:
                self._stop_waiting(ready)

    def _stop_waiting(self, waiter: "Optional[asyncio.Future[None]]") -> None:
        """Ends the wait on the descriptor (before the descriptor is
        closed: a reader left on a closed descriptor would never fire)."""
        if waiter is not None and self._waiter is waiter:
            self._waiter = None
            waiter.get_loop().remove_reader(self._fd)
            if not waiter.done():
                waiter.set_result(None)

    def fileno(self) -> int:
        """The watcher's descriptor (readable when an event may be ready);
        only poll it. Known once the watcher started (the first
        :meth:`next`, or ``async with``)."""
        if self._w is None or self._closed:
            raise ValueError("the watcher is not started" if not self._closed else
                             "the watcher is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Stops watching and releases every descriptor (idempotent): on
        the worker thread, after the step under way; then the thread ends."""
        if self._closed:
            return
        self._closed = True
        self._stop_waiting(self._waiter)  # a pending next() raises, see below
        w = self._w
        if w is None:
            self._worker.stop()
            return
        try:
            done = self._worker.submit(w.close)
        except ValueError:
            return
        self._worker.stop()
        await asyncio.shield(done)

    def close(self) -> None:
        """Stops watching without awaiting (blocks for the step under way,
        if any); prefer :meth:`aclose`. Call it on the loop's thread, or
        with no loop running."""
        self._closed = True
        self._stop_waiting(self._waiter)
        if self._w is not None:
            self._w.close()
        self._worker.stop()

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> Event:
        if self._closed:
            raise StopAsyncIteration
        try:
            return await self.next()
        except ValueError:
            if self._closed:  # closed while waiting: the iteration ends
                raise StopAsyncIteration from None
            raise

    async def __aenter__(self) -> AsyncWatch:
        await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()


_Names = Union[str, Iterable[str]]


def _options(
    runtime_dir: Optional[_Path] = None,
    *,
    probe_interval: float = 1.0,
    collect: bool = True,
    timeout: Optional[float] = None,
    rescan_interval: float = 30.0,
    state: Optional[_Names] = None,
    agent: Optional[str] = None,
    session: Optional[str] = None,
    sandbox_id: Optional[_Names] = None,
) -> _Opener:
    """The options of :func:`watch` and :func:`awatch`, as the call that
    opens the core's watcher with them."""
    return functools.partial(
        _Watcher,
        runtime_dir,
        timeout=timeout,
        probe_interval=probe_interval,
        collect=collect,
        rescan_interval=rescan_interval,
        state=state,
        agent=agent,
        session=session,
        sandbox_id=sandbox_id,
    )


_W = TypeVar("_W")


def _taking_options(
    options: "Callable[P, _Opener]", make: Callable[[_Opener], _W], name: str, doc: str
) -> "Callable[P, _W]":
    """A function with the arguments of ``options`` that returns ``make``
    of the watcher they open: ``watch`` and ``awatch``, one list of options."""

    @functools.wraps(options)  # help() and inspect.signature() show the options
    def taking(*args: "P.args", **kwargs: "P.kwargs") -> _W:
        return make(options(*args, **kwargs))

    taking.__name__ = taking.__qualname__ = name
    taking.__doc__ = doc
    return taking


watch = _taking_options(_options, Watch, "watch", """Watches ``runtime_dir`` (default:
:func:`default_runtime_dir`): ``Appeared`` for every live sidecar, one
``Synced``, then ``Changed``, ``Gone``, ``Appeared`` as they happen.
``probe_interval`` (seconds) is how often live endpoints are probed
again; ``collect=False`` is read-only (a stopped sidecar is then
``Changed`` to ``STOPPED``); ``timeout`` is the probe timeout. ``state``,
``agent``, ``session`` and ``sandbox_id`` select sidecars as for
:func:`list`: the core's filter passes the events of those it matches, and
a ``Changed`` that takes one out of the selection once. The GIL is
released while waiting::

    with firma_stack.watch(probe_interval=1.0) as events:
        for ev in events:
            ...
""")

awatch = _taking_options(_options, AsyncWatch, "awatch", """:func:`watch` for asyncio::

    async with firma_stack.awatch() as events:
        async for ev in events:
            ...

The watcher starts (its initial scan, and the errors of bad options)
at ``async with`` or the first ``next()``, on a worker thread of its
own: no call on the event loop's thread waits for the core.
""")
