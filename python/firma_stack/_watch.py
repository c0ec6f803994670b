"""``watch`` and ``awatch``: the live event stream of a runtime directory.

A thin layer over the core's watcher (``_native._Watcher``): it only turns
the core's events into the typed classes below. Every decision — what
changed, liveness, probing, collection — is the core's, exactly as for
:func:`firma_stack.list`.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Optional, Tuple, Type, Union

from ._native import SidecarEntry, _Watcher
from ._state import State

# Public names are listed (and exported) by the package, firma_stack/__init__.py.

_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


@dataclass(frozen=True)
class Appeared:
    """A live sidecar found by the initial scan (or a rescan), or a new one."""

    kind: ClassVar[str] = "appeared"
    sandbox_id: str
    entry: SidecarEntry
    at: str


@dataclass(frozen=True)
class Synced:
    """The events so far describe the whole directory: the stream is complete
    from here on (once after the initial scan and after each ``Resync``)."""

    kind: ClassVar[str] = "synced"
    at: str


@dataclass(frozen=True)
class Changed:
    """A known sidecar changed state (or metadata); ``previous`` is the state
    last reported."""

    kind: ClassVar[str] = "changed"
    sandbox_id: str
    entry: SidecarEntry
    previous: State
    at: str


@dataclass(frozen=True)
class Gone:
    """A known sidecar left: ``reason`` is ``"collected"`` (this watcher
    removed its stale marker) or ``"removed"`` (by other hands)."""

    kind: ClassVar[str] = "gone"
    sandbox_id: str
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


class _WatchBase:
    """What the sync and async watchers share: the core's watcher, its
    descriptor and closing it."""

    def __init__(
        self,
        runtime_dir: Optional[_Path] = None,
        *,
        probe_interval: float = 1.0,
        collect: bool = True,
        timeout: Optional[float] = None,
        rescan_interval: float = 30.0,
    ) -> None:
        self._w = _Watcher(
            runtime_dir,
            timeout=timeout,
            probe_interval=probe_interval,
            collect=collect,
            rescan_interval=rescan_interval,
        )

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


class AsyncWatch(_WatchBase):
    """An async context manager and async iterator of :data:`Event` (see
    :func:`awatch`). It waits on the watcher's descriptor with
    ``loop.add_reader``: no thread per watcher."""

    async def next(self) -> Event:
        """The next event, waiting without blocking the event loop (the
        watcher's own work — a probe round — runs on the loop's thread and
        lasts at most about one probe timeout)."""
        loop = asyncio.get_running_loop()
        while True:
            ev = self._poll(0.0)
            if ev is not None:
                return ev
            fd = self._w.fileno()
            ready: asyncio.Future[None] = loop.create_future()

            def wake(f: asyncio.Future[None] = ready) -> None:
                if not f.done():
                    f.set_result(None)

            loop.add_reader(fd, wake)
            try:
                await ready
            finally:
                loop.remove_reader(fd)

    async def aclose(self) -> None:
        """Stops watching and releases every descriptor (idempotent)."""
        self.close()

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> Event:
        if self._w.closed:
            raise StopAsyncIteration
        return await self.next()

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


def watch(
    runtime_dir: Optional[_Path] = None,
    *,
    probe_interval: float = 1.0,
    collect: bool = True,
    timeout: Optional[float] = None,
    rescan_interval: float = 30.0,
) -> Watch:
    """Watches ``runtime_dir`` (default: :func:`default_runtime_dir`):
    ``Appeared`` for every live sidecar, one ``Synced``, then ``Changed``,
    ``Gone``, ``Appeared`` as they happen. ``probe_interval`` (seconds) is
    how often live endpoints are probed again; ``collect=False`` is
    read-only (a stopped sidecar is then ``Changed`` to ``STOPPED``);
    ``timeout`` is the probe timeout. The GIL is released while waiting::

        with firma_stack.watch(probe_interval=1.0) as events:
            for ev in events:
                ...
    """
    return Watch(
        runtime_dir,
        probe_interval=probe_interval,
        collect=collect,
        timeout=timeout,
        rescan_interval=rescan_interval,
    )


def awatch(
    runtime_dir: Optional[_Path] = None,
    *,
    probe_interval: float = 1.0,
    collect: bool = True,
    timeout: Optional[float] = None,
    rescan_interval: float = 30.0,
) -> AsyncWatch:
    """:func:`watch` for asyncio::

    async with firma_stack.awatch() as events:
        async for ev in events:
            ...
    """
    return AsyncWatch(
        runtime_dir,
        probe_interval=probe_interval,
        collect=collect,
        timeout=timeout,
        rescan_interval=rescan_interval,
    )
