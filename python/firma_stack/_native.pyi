"""Type stubs for the native module (checked by ``mypy.stubtest``)."""

import builtins
import os
from typing import Any, Final, Iterable, Literal, Optional, Tuple, Union, final, type_check_only

from firma_stack._state import Reason, RuntimeDirState, State, Verdict

__all__ = [
    "SidecarEntry",
    "MarkerReport",
    "ErrorInfo",
    "StopOutcome",
    "stop",
    "WaitOutcome",
    "WaitStatus",
    "wait",
    "runtime_dir_state",
    "render_metrics",
    "list",
    "inspect",
    "get",
    "gc_stale",
    "probe_entry",
    "default_runtime_dir",
    "create_marker",
    "remove_marker",
    "_panic_for_test",
    "_exception_class",
    "_marker_report_from_json",
    "_error_info_from_json",
    "_run_example_sidecar",
    "__version__",
    "_Watcher",
    "DEFAULT_TIMEOUT",
    "MAX_TIMEOUT",
    "ERROR_CODES",
]

_Path = Union[str, bytes, os.PathLike[str], os.PathLike[bytes]]
#: One name or several (a State or Reason member is a str).
_Names = Union[str, Iterable[str]]

__version__: str
DEFAULT_TIMEOUT: float
MAX_TIMEOUT: float
ERROR_CODES: tuple[str, ...]

# The value classes are frozen: their attributes are read-only properties at
# run time, Final here (mypy refuses an assignment; stubtest checks each).
#
# What the value classes share: to_dict() (the JSON object of every
# surface, as a dict) and equality by value; all but StopOutcome, WaitOutcome and WaitStatus hash. These
# bases exist in the stubs only (stubtest checks each method on each class).
@type_check_only
class _Record:
    def to_dict(self) -> dict[str, Any]: ...
    def __eq__(self, other: object) -> bool: ...

@type_check_only
class _HashableRecord(_Record):
    def __hash__(self) -> int: ...


@final
class SidecarEntry(_HashableRecord):
    def __new__(
        cls,
        sandbox_id: str,
        agent_id: str,
        session_id: str,
        authority_url: str,
        policy_bundle_version: str,
        pid: int,
        started_at: str,
        state: Union[State, str],
        listen: str,
        uptime_secs: Optional[int] = None,
    ) -> SidecarEntry: ...
    sandbox_id: Final[str]
    agent_id: Final[str]
    session_id: Final[str]
    authority_url: Final[str]
    policy_bundle_version: Final[str]
    pid: Final[int]
    started_at: Final[str]
    state: Final[State]
    listen: Final[str]
    uptime_secs: Final[Optional[int]]

@final
class ErrorInfo(_HashableRecord):
    code: Final[str]
    message: Final[str]
    path: Final[Optional[str]]
    errno: Final[Optional[int]]

@final
class MarkerReport(_HashableRecord):
    name: Final[str]
    verdict: Final[Verdict]
    state: Final[Optional[State]]
    reason: Final[Reason]
    detail: Final[str]
    entry: Final[Optional[SidecarEntry]]
    error: Final[Optional[ErrorInfo]]

def list(
    runtime_dir: Optional[_Path] = None,
    *,
    timeout: Optional[float] = None,
    state: Optional[_Names] = None,
    agent: Optional[str] = None,
    session: Optional[str] = None,
    sandbox_id: Optional[_Names] = None,
) -> "builtins.list[SidecarEntry]": ...
def get(
    runtime_dir: Optional[_Path],
    sandbox_id: str,
    *,
    timeout: Optional[float] = None,
    state: Optional[_Names] = None,
    agent: Optional[str] = None,
    session: Optional[str] = None,
) -> Optional[SidecarEntry]: ...
def inspect(
    runtime_dir: Optional[_Path] = None,
    *,
    timeout: Optional[float] = None,
    state: Optional[_Names] = None,
    agent: Optional[str] = None,
    session: Optional[str] = None,
    sandbox_id: Optional[_Names] = None,
    reason: Optional[_Names] = None,
) -> "builtins.list[MarkerReport]": ...
def gc_stale(runtime_dir: Optional[_Path] = None) -> "builtins.list[str]": ...
def probe_entry(marker_dir: _Path, *, timeout: Optional[float] = None) -> SidecarEntry: ...
def default_runtime_dir() -> str: ...
def create_marker(
    runtime_dir: Optional[_Path],
    *,
    sandbox_id: str,
    agent_id: str,
    session_id: str,
    authority_url: str,
    policy_bundle_version: str,
    pid: int,
    started_at: str,
    listen: Optional[str] = None,
    boot_id: Optional[str] = None,
    pid_start_ticks: Optional[int] = None,
) -> str: ...
def remove_marker(runtime_dir: Optional[_Path], sandbox_id: str) -> bool: ...
def _panic_for_test() -> None: ...
def _exception_class(code: str) -> type: ...
def _marker_report_from_json(text: str) -> MarkerReport: ...
def _error_info_from_json(text: str) -> ErrorInfo: ...
def _run_example_sidecar(argv: "builtins.list[str]") -> int: ...

@final
class StopOutcome(_Record):
    sandbox_id: Final[str]
    pid: Final[int]
    signals: Final["builtins.list[str]"]
    exited: Final[bool]
    killed: Final[bool]
    collected: Final[bool]
    waited_ms: Final[int]

def stop(
    runtime_dir: Optional[_Path],
    sandbox_id: str,
    *,
    signal: Union[int, str] = 15,
    grace: float = 10.0,
    kill: bool = True,
    verify_identity: bool = True,
) -> Optional[StopOutcome]: ...
def render_metrics(
    runtime_dir: Optional[_Path] = None,
    *,
    format: Literal["text", "openmetrics"] = "text",
    timeout: Optional[float] = None,
    collect: bool = True,
) -> str: ...

@final
class WaitStatus(_Record):
    sandbox_id: Final[str]
    state: Final[Optional[State]]
    met: Final[bool]

@final
class WaitOutcome(_Record):
    condition: Final[str]
    met: Final[bool]
    waited_ms: Final[int]
    sidecars: Final["builtins.list[WaitStatus]"]

def wait(
    sandbox_ids: _Names,
    *,
    for_: str = "running",
    timeout: float = 30.0,
    runtime_dir: Optional[_Path] = None,
    probe_interval: float = 1.0,
    probe_timeout: Optional[float] = None,
) -> WaitOutcome: ...
def runtime_dir_state(runtime_dir: Optional[_Path] = None) -> RuntimeDirState: ...

@final
class _Watcher:
    def __new__(
        cls,
        runtime_dir: Optional[_Path] = None,
        *,
        timeout: Optional[float] = None,
        probe_interval: float = 1.0,
        collect: bool = True,
        rescan_interval: float = 30.0,
        state: Optional[_Names] = None,
        agent: Optional[str] = None,
        session: Optional[str] = None,
        sandbox_id: Optional[_Names] = None,
    ) -> _Watcher: ...
    def next_event(
        self, timeout: Optional[float] = None
    ) -> Optional[
        Tuple[str, Optional[str], Optional[SidecarEntry], Optional[str], Optional[str], str]
    ]: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...
    closed: Final[bool]
