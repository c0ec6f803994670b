"""firma_stack: which agent-sandbox sidecars are alive on this host, whether
they serve, and cleanup of the markers of runs that died.

A thin binding of the Rust core (the same code as the C ABI, the Go package
and the ``firma`` command line), so every surface gives the same answers::

    import firma_stack

    for entry in firma_stack.list():          # default runtime dir
        print(entry.sandbox_id, entry.state)  # State.RUNNING, ...

    entry = firma_stack.get("/run/firma", "sbx-1", timeout=0.5)
    removed = firma_stack.gc_stale()
    outcome = firma_stack.stop("/run/firma", "sbx-1", grace=5.0)  # pidfd-safe

    for report in firma_stack.inspect():      # every marker, read-only
        print(report.name, report.verdict, report.reason, report.detail)

Paths are ``str``, ``bytes`` or any ``os.PathLike``; ``None`` means
:func:`default_runtime_dir`. ``timeout`` is the probe timeout in seconds
(default :data:`DEFAULT_TIMEOUT`, at most :data:`MAX_TIMEOUT`: the core's). The GIL is released while the core reads files and probes
sockets. Errors are :class:`StackError` subclasses with a ``code`` equal to
the C ABI's error code.

Use it as ``import firma_stack`` and call ``firma_stack.list(...)``:
``from firma_stack import *`` leaves out :func:`list` and :func:`inspect`,
which would shadow the builtin ``list`` and the standard module
``inspect`` (both stay attributes of the package).
"""

from __future__ import annotations

# The pure-Python parts first: the native module looks them up when it
# builds states and exceptions.
from ._errors import (
    IdentityMismatchError,
    IdentityUnverifiableError,
    PidfdUnavailableError,
    NotAuthorizedError,
    UntrustedDirectoryError,
    ForkedError,
    PidReusedError,
    StopRefusedError,
    InternalError,
    InvalidArgumentError,
    InvalidSandboxIdError,
    MarkerParseError,
    StackError,
    StackIOError,
)
from ._state import Reason, RuntimeDirState, State, Verdict
from ._native import (
    __version__,
    DEFAULT_TIMEOUT,
    ERROR_CODES,
    MAX_TIMEOUT,
    ErrorInfo,
    MarkerReport,
    SidecarEntry,
    StopOutcome,
    WaitOutcome,
    WaitStatus,
    create_marker,
    default_runtime_dir,
    gc_stale,
    get,
    probe_entry,
    remove_marker,
    runtime_dir_state,
    render_metrics,
    stop,
    wait,
)
# Attributes, left out of __all__ (see above); "as" marks them exported for
# type checkers all the same.
from ._native import inspect as inspect, list as list
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

__all__ = [
    "DEFAULT_TIMEOUT",
    "ERROR_CODES",
    "MAX_TIMEOUT",
    "ErrorInfo",
    "IdentityMismatchError",
    "IdentityUnverifiableError",
    "PidReusedError",
    "PidfdUnavailableError",
    "NotAuthorizedError",
    "UntrustedDirectoryError",
    "ForkedError",
    "StopOutcome",
    "StopRefusedError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidSandboxIdError",
    "MarkerParseError",
    "MarkerReport",
    "Reason",
    "RuntimeDirState",
    "SidecarEntry",
    "StackError",
    "StackIOError",
    "State",
    "Verdict",
    "WaitOutcome",
    "WaitStatus",
    "create_marker",
    "default_runtime_dir",
    "gc_stale",
    "get",
    "probe_entry",
    "remove_marker",
    "runtime_dir_state",
    "render_metrics",
    "stop",
    "wait",
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
