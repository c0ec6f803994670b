"""Type stubs for the native module (checked by ``mypy.stubtest``)."""

import builtins
import os
from typing import Any, Literal, Optional, Tuple, Union, final, type_check_only

from firma_stack._state import Reason, State, Verdict

__all__ = [
    "SidecarEntry",
    "MarkerReport",
    "ErrorInfo",
    "StopOutcome",
    "stop",
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

__version__: str
DEFAULT_TIMEOUT: float
MAX_TIMEOUT: float
ERROR_CODES: tuple[str, ...]

# What the value classes share: to_dict() (the JSON object of every
# surface, as a dict) and equality by value; all but StopOutcome hash. These
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
    @property
    def sandbox_id(self) -> str: ...
    @property
    def agent_id(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def authority_url(self) -> str: ...
    @property
    def policy_bundle_version(self) -> str: ...
    @property
    def pid(self) -> int: ...
    @property
    def started_at(self) -> str: ...
    @property
    def state(self) -> State: ...
    @property
    def listen(self) -> str: ...
    @property
    def uptime_secs(self) -> Optional[int]: ...

@final
class ErrorInfo(_HashableRecord):
    @property
    def code(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def path(self) -> Optional[str]: ...
    @property
    def errno(self) -> Optional[int]: ...

@final
class MarkerReport(_HashableRecord):
    @property
    def name(self) -> str: ...
    @property
    def verdict(self) -> Verdict: ...
    @property
    def state(self) -> Optional[State]: ...
    @property
    def reason(self) -> Reason: ...
    @property
    def detail(self) -> str: ...
    @property
    def entry(self) -> Optional[SidecarEntry]: ...
    @property
    def error(self) -> Optional[ErrorInfo]: ...

def list(
    runtime_dir: Optional[_Path] = None, *, timeout: Optional[float] = None
) -> "builtins.list[SidecarEntry]": ...
def get(
    runtime_dir: Optional[_Path], sandbox_id: str, *, timeout: Optional[float] = None
) -> Optional[SidecarEntry]: ...
def inspect(
    runtime_dir: Optional[_Path] = None, *, timeout: Optional[float] = None
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
    @property
    def sandbox_id(self) -> str: ...
    @property
    def pid(self) -> int: ...
    @property
    def signals(self) -> "builtins.list[str]": ...
    @property
    def exited(self) -> bool: ...
    @property
    def killed(self) -> bool: ...
    @property
    def collected(self) -> bool: ...
    @property
    def waited_ms(self) -> int: ...

def stop(
    runtime_dir: Optional[_Path],
    sandbox_id: str,
    *,
    signal: int = 15,
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
class _Watcher:
    def __new__(
        cls,
        runtime_dir: Optional[_Path] = None,
        *,
        timeout: Optional[float] = None,
        probe_interval: float = 1.0,
        collect: bool = True,
        rescan_interval: float = 30.0,
    ) -> _Watcher: ...
    def next_event(
        self, timeout: Optional[float] = None
    ) -> Optional[
        Tuple[str, Optional[str], Optional[SidecarEntry], Optional[str], Optional[str], str]
    ]: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
