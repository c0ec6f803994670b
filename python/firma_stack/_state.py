"""The state of a sidecar (DESIGN §3)."""

from __future__ import annotations

import enum

__all__ = ["State"]


class State(str, enum.Enum):
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

    def __str__(self) -> str:
        return self.value
