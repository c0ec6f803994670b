"""firma_stack: which agent-sandbox sidecars are alive on this host, whether
they serve, and cleanup of the markers of runs that died.

A thin binding of the Rust core (the same code as the C ABI, the Go package
and the ``firma`` command line), so every surface gives the same answers::

    import firma_stack

    for entry in firma_stack.list():          # default runtime dir
        print(entry.sandbox_id, entry.state)  # State.RUNNING, ...

    entry = firma_stack.get("/run/firma", "sbx-1", timeout=0.5)
    removed = firma_stack.gc_stale()

Paths are ``str``, ``bytes`` or any ``os.PathLike``; ``None`` means
:func:`default_runtime_dir`. ``timeout`` is the probe timeout in seconds
(default 0.2). The GIL is released while the core reads files and probes
sockets. Errors are :class:`StackError` subclasses with a ``code`` equal to
the C ABI's error code.
"""

from __future__ import annotations

# The pure-Python parts first: the native module looks them up when it
# builds states and exceptions.
from ._errors import (
    IdentityMismatchError,
    InternalError,
    InvalidArgumentError,
    InvalidSandboxIdError,
    MarkerParseError,
    StackError,
    StackIOError,
)
from ._state import State
from ._native import (
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    SidecarEntry,
    create_marker,
    default_runtime_dir,
    gc_stale,
    get,
    list,
    probe_entry,
    remove_marker,
)
from ._watch import (
    Appeared,
    AsyncWatch,
    Changed,
    Event,
    Gone,
    Resync,
    Synced,
    Watch,
    awatch,
    watch,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_TIMEOUT",
    "IdentityMismatchError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidSandboxIdError",
    "MarkerParseError",
    "SidecarEntry",
    "StackError",
    "StackIOError",
    "State",
    "create_marker",
    "default_runtime_dir",
    "gc_stale",
    "get",
    "list",
    "probe_entry",
    "remove_marker",
    "Appeared",
    "AsyncWatch",
    "Changed",
    "Event",
    "Gone",
    "Resync",
    "Synced",
    "Watch",
    "awatch",
    "watch",
]
