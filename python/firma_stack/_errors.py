"""The exceptions raised by firma_stack, rooted at :class:`StackError`.

The native module picks the class for each core error variant (one class per
variant, see ``python/src/exceptions.rs``) and fills the attributes; these
classes only hold them. Every class has a ``code`` equal to the error code of
the C ABI (``invalid_argument``, ``io``, ``marker_parse``,
``identity_mismatch``, ``internal``, and the refusals of :func:`stop`:
``identity_unverifiable``, ``pid_reused``, ``refused``, ``pidfd_unavailable``,
``not_authorized``; ``untrusted_directory`` for a runtime directory that
fails the trust checks; and ``forked`` for a watcher used in a ``fork()``
child).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Dict, Optional, Tuple

__all__ = [
    "StackError",
    "InvalidArgumentError",
    "InvalidSandboxIdError",
    "StackIOError",
    "MarkerParseError",
    "IdentityMismatchError",
    "InternalError",
    "IdentityUnverifiableError",
    "PidReusedError",
    "StopRefusedError",
    "PidfdUnavailableError",
    "NotAuthorizedError",
    "UntrustedDirectoryError",
    "ForkedError",
]


def _rebuild(cls: type, message: str, kwargs: Dict[str, Any]) -> StackError:
    exc: StackError = cls(message, **kwargs)
    return exc


class StackError(Exception):
    """Base of every firma_stack error.

    ``message`` is the core's message, which names the path or id involved;
    ``path`` the path the error is about (a ``str``), or ``None``.
    """

    code: ClassVar[str] = "internal"
    # The keyword arguments of ``__init__``: each sets the attribute of its
    # name, which is read back to rebuild the exception (pickling).
    _fields: ClassVar[Tuple[str, ...]] = ("path",)
    # The attributes a missing keyword argument leaves at a value (every
    # other field is required).
    _defaults: ClassVar[Dict[str, Any]] = {"path": None}

    message: str
    path: Optional[str]

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self._hold(fields)

    def _hold(self, fields: Dict[str, Any]) -> None:
        """Sets the attributes of :attr:`_fields` from ``fields`` (the
        keyword arguments), the absent ones from :attr:`_defaults`."""
        unknown = sorted(set(fields) - set(self._fields))
        missing = [n for n in self._fields if n not in fields and n not in self._defaults]
        if unknown or missing:
            raise TypeError(
                f"{type(self).__name__}(): unexpected keyword arguments {unknown}, "
                f"missing {missing}"
            )
        for name, value in {**self._defaults, **fields}.items():
            setattr(self, name, value)

    def __str__(self) -> str:
        return self.message

    def _kwargs(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in self._fields}

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self._kwargs()))


class InvalidArgumentError(StackError, ValueError):
    """An argument is unusable (for example a timeout out of range, or a pid
    handed to the writer). Also a :class:`ValueError`."""

    code: ClassVar[str] = "invalid_argument"
    _fields: ClassVar[Tuple[str, ...]] = ("argument", "reason")

    argument: str
    reason: str


class InvalidSandboxIdError(InvalidArgumentError):
    """A sandbox id breaks the grammar: non-empty, at most 255 bytes, only
    ``[A-Za-z0-9._-]``, not starting with ``.``. Also a :class:`ValueError`."""

    _fields: ClassVar[Tuple[str, ...]] = ("sandbox_id", "reason")
    _defaults: ClassVar[Dict[str, Any]] = {"path": None, "argument": "sandbox_id"}

    sandbox_id: str


class StackIOError(StackError, OSError):
    """A system call failed. Also an :class:`OSError`: ``errno`` (``None``
    when the failure carries no OS error number), ``strerror`` and
    ``filename`` (the same as ``path``) are set as usual; ``action`` says what
    was being done (``"open"``, ``"list"``, ``"probe"``…)."""

    code: ClassVar[str] = "io"
    _fields: ClassVar[Tuple[str, ...]] = ("path", "errno", "action", "detail")

    action: str
    detail: str

    def __init__(
        self,
        message: str,
        *,
        path: Optional[str],
        errno: Optional[int],
        action: str,
        detail: str,
    ) -> None:
        strerror = os.strerror(errno) if errno is not None else detail
        # OSError's own initialiser sets errno, strerror and filename.
        OSError.__init__(self, errno, strerror, path)
        self.message = message
        self._hold({"path": path, "errno": errno, "action": action, "detail": detail})


class MarkerParseError(StackError):
    """A marker's ``metadata.toml`` cannot be understood: not a regular file,
    a symlink, too large, not UTF-8, invalid TOML, a missing key or a value
    out of range (such as pid 0)."""

    code: ClassVar[str] = "marker_parse"
    _fields: ClassVar[Tuple[str, ...]] = ("path", "reason")

    path: str
    reason: str


class IdentityMismatchError(StackError):
    """A marker's ``metadata.toml`` names another sandbox (``metadata``) than
    its directory (``directory``)."""

    code: ClassVar[str] = "identity_mismatch"
    _fields: ClassVar[Tuple[str, ...]] = ("path", "directory", "metadata")

    path: str
    directory: str
    metadata: str


class InternalError(StackError):
    """A bug in firma_stack (for example a panic caught at the boundary).
    ``core_code`` is set when the core reported an error kind this binding
    does not know."""

    code: ClassVar[str] = "internal"
    _fields: ClassVar[Tuple[str, ...]] = ("core_code",)
    _defaults: ClassVar[Dict[str, Any]] = {"path": None, "core_code": None}

    core_code: Optional[str]


class _StopRefusal(StackError):
    """What every refusal of :func:`stop` carries: the marker's ``path``,
    its ``sandbox_id`` and its ``pid``. Not raised itself."""

    _fields: ClassVar[Tuple[str, ...]] = ("path", "sandbox_id", "pid")

    path: str
    sandbox_id: str
    pid: int


class _ReasonedStopRefusal(_StopRefusal):
    """A refusal of :func:`stop` that also says why (``reason``)."""

    _fields: ClassVar[Tuple[str, ...]] = _StopRefusal._fields + ("reason",)

    reason: str


class IdentityUnverifiableError(_ReasonedStopRefusal):
    """:func:`stop` refused: the process's identity cannot be proved (the
    marker records no ``boot_id``/``pid_start_ticks``, or comes from another
    pid namespace). Nothing was signalled. ``verify_identity=False`` is the
    unsafe opt-out."""

    code: ClassVar[str] = "identity_unverifiable"


class PidReusedError(_StopRefusal):
    """:func:`stop` refused: the marker's pid belongs to another process now
    (its start time differs). That process was not touched."""

    code: ClassVar[str] = "pid_reused"


class StopRefusedError(_ReasonedStopRefusal):
    """:func:`stop` refused a pid it never signals: 1, the caller's own, or
    one above the kernel's ``pid_max``. ``reason`` says which."""

    code: ClassVar[str] = "refused"


class PidfdUnavailableError(_StopRefusal):
    """:func:`stop` cannot use pidfds (Linux 5.3 or later is required) and
    never falls back to signalling by bare pid; nothing was signalled.
    ``errno`` is the system call's error number."""

    code: ClassVar[str] = "pidfd_unavailable"
    _fields: ClassVar[Tuple[str, ...]] = _StopRefusal._fields + ("errno",)

    errno: Optional[int]


class NotAuthorizedError(_ReasonedStopRefusal):
    """:func:`stop` refused: the marker's owner (bounded by the owner of the
    runtime directory) could not signal that process, the marker is nobody's
    claim (writable by others, owners that disagree), or the process is a
    kernel thread or an ancestor of the caller. ``reason`` says which.
    Nothing was signalled; ``verify_identity=False`` does not override it."""

    code: ClassVar[str] = "not_authorized"


class UntrustedDirectoryError(StackError):
    """The runtime directory or its ``run/`` fails the trust checks
    (writable by others, a stranger's symlink, owners that disagree) for a
    call that removes, signals or writes. Nothing was changed. ``action``
    names what was refused, ``reason`` why."""

    code: ClassVar[str] = "untrusted_directory"
    _fields: ClassVar[Tuple[str, ...]] = ("path", "action", "reason")

    action: str
    reason: str


class ForkedError(StackError):
    """A watcher was used from a process other than the one that created it
    (a ``fork()`` child, which shares the watcher's descriptors with its
    parent). The call touched none of them and took no lock, so the
    parent's stream is unaffected. Open a new watcher in the child;
    ``close()`` there only closes the child's copies. ``owner_pid`` is the
    process that created the watcher, ``pid`` the caller."""

    code: ClassVar[str] = "forked"
    _fields: ClassVar[Tuple[str, ...]] = ("owner_pid", "pid")

    owner_pid: int
    pid: int
