"""Type stubs for the native module (checked by ``mypy.stubtest``)."""

import builtins
import os
from typing import Any, Optional, Tuple, Union, final

from firma_stack._state import State

__all__ = [
    "SidecarEntry",
    "list",
    "get",
    "gc_stale",
    "probe_entry",
    "default_runtime_dir",
    "create_marker",
    "remove_marker",
    "_panic_for_test",
    "_Watcher",
    "DEFAULT_TIMEOUT",
    "MAX_TIMEOUT",
]

_Path = Union[str, bytes, os.PathLike[str], os.PathLike[bytes]]

DEFAULT_TIMEOUT: float
MAX_TIMEOUT: float

@final
class SidecarEntry:
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
    def to_dict(self) -> dict[str, Any]: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

def list(
    runtime_dir: Optional[_Path] = None, *, timeout: Optional[float] = None
) -> "builtins.list[SidecarEntry]": ...
def get(
    runtime_dir: Optional[_Path], sandbox_id: str, *, timeout: Optional[float] = None
) -> Optional[SidecarEntry]: ...
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
