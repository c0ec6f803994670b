"""The core's names for a sidecar's state and for what ``inspect`` says of a
marker: its verdict and the reason for it."""

from __future__ import annotations

import enum

__all__ = ["State", "Verdict", "Reason", "RuntimeDirState"]


class _Named(str, enum.Enum):
    """A core name: ``str()`` is the value itself, as in the JSON."""

    def __str__(self) -> str:
        return str(self.value)


class State(_Named):
    """Liveness and health of a sidecar; the values are the JSON names.

    A ``str`` subclass, so ``entry.state == "running"`` holds as well.
    """

    #: The process exists and its endpoint accepted a connection in time.
    RUNNING = "running"
    #: The process exists, but its endpoint is missing, refuses, is saturated
    #: or timed out.
    UNHEALTHY = "unhealthy"
    #: No such process, a zombie, or the pid was reused by another process.
    STOPPED = "stopped"
    #: The process exists but the probe could not be performed.
    UNKNOWN = "unknown"


class Verdict(_Named):
    """What a marker is as far as collection goes (``MarkerReport.verdict``);
    the values are the JSON names."""

    #: Readable and not provably stopped: listed, never removed.
    LIVE = "live"
    #: Readable and provably stopped: ``list`` and ``gc_stale`` remove it.
    STALE = "stale"
    #: Cannot be read or understood: never listed, never removed.
    BROKEN = "broken"


class Reason(_Named):
    """Why a marker has its verdict and state (``MarkerReport.reason``); the
    values are the core's stable snake_case codes."""

    # live
    #: The endpoint accepted a connection in time (running).
    SERVING = "serving"
    #: No socket (or no directory) at the endpoint path (unhealthy).
    ENDPOINT_MISSING = "endpoint_missing"
    #: Nothing listens there: a socket file without a listener, or a TCP
    #: reset (unhealthy).
    CONNECTION_REFUSED = "connection_refused"
    #: A Unix socket whose accept backlog is full (unhealthy).
    BACKLOG_FULL = "backlog_full"
    #: The connect did not finish within the probe timeout (unhealthy).
    TIMEOUT = "timeout"
    #: The endpoint refused us permission (unknown).
    PERMISSION_DENIED = "permission_denied"
    #: The endpoint path is not a socket (unhealthy).
    NOT_A_SOCKET = "not_a_socket"
    #: The network says the TCP address is unreachable (unhealthy).
    UNREACHABLE = "unreachable"
    #: ``connect`` failed in a way that says nothing about the sidecar
    #: (unhealthy).
    CONNECT_ERROR = "connect_error"
    #: The probe could not be made, e.g. out of descriptors (unknown).
    PROBE_UNAVAILABLE = "probe_unavailable"
    #: The process could not be identified from this reader's point of view
    #: and the endpoint does not serve (unknown).
    UNVERIFIABLE = "unverifiable"
    # stale
    #: No such process.
    PROCESS_GONE = "process_gone"
    #: The process is a zombie.
    ZOMBIE = "zombie"
    #: The pid belongs to another process now.
    PID_REUSED = "pid_reused"
    #: The marker was written during another boot.
    OTHER_BOOT = "other_boot"
    # broken
    #: ``metadata.toml`` is missing, not a regular file, too large, not TOML,
    #: or a value is missing or out of range.
    PARSE_ERROR = "parse_error"
    #: ``metadata.toml`` names another sandbox than its directory.
    ID_MISMATCH = "id_mismatch"
    #: Reading the marker failed with an I/O error.
    IO_ERROR = "io_error"
    #: The entry (or its ``metadata.toml``) is a symlink: never followed.
    SYMLINK = "symlink"
    #: The entry is not a directory.
    NOT_A_DIRECTORY = "not_a_directory"
    #: The entry's name is not a valid sandbox id.
    INVALID_NAME = "invalid_name"
    #: The marker directory (or its ``metadata.toml``) is a mount point.
    MOUNT_POINT = "mount_point"
    #: A reserved name (``.tmp-…``, ``.gc-…``, ``.kept-…``) that scans leave in
    #: place: not provably the library's, its maker not provably gone, or set
    #: aside for a person.
    LEFTOVER = "leftover"



class RuntimeDirState(_Named):
    """Whether a runtime directory is there to be read
    (:func:`firma_stack.runtime_dir_state`); the values are the core's
    names."""

    #: A directory that can be listed (its ``run/`` too, when it exists).
    PRESENT = "present"
    #: Nothing at that path: ``list`` answers it as an empty directory.
    MISSING = "missing"
    #: Not a directory, or a directory (or ``run/``) that cannot be listed.
    UNREADABLE = "unreadable"
