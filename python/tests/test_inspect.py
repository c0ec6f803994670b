"""``firma_stack.inspect`` as the binding's own: the typed conversion of each
report, ``to_dict()`` against the C ABI's JSON for the same directory, value
semantics, the timeout policy taken from the core, the GIL, errors, and the
completeness of the error-code and reason mappings.

Which reason each kind of marker gets is the core's behaviour, covered by the
core's tests and the conformance suite.
"""

from __future__ import annotations

import copy
import ctypes
import errno
import json
import math
import pickle
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

import firma_stack
from firma_stack import (
    ErrorInfo,
    InvalidArgumentError,
    MarkerReport,
    Reason,
    SidecarEntry,
    StackError,
    StackIOError,
    State,
    Verdict,
)
from firma_stack import _errors, _native
from firma_stack.testing import SidecarFactory, SidecarProcess

from _support import REPO, RELEASE
from test_gil import BASELINE_SECS, assert_other_threads_run_during

Start = SidecarFactory
RawMarker = Callable[..., Path]



REPORT_KEYS = ["name", "verdict", "state", "reason", "detail", "entry", "error"]
ERROR_KEYS = ["code", "message", "path", "errno"]


# ---- the C ABI, for cross-checks -------------------------------------------


class _CAbi:
    """The release shared library through ctypes: the C ABI's own answers."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(str(RELEASE / "libfirma_stack.so"))
        lib.firma_sidecar_inspect.argtypes = [
            ctypes.c_char_p,
            ctypes.c_uint32,
            ctypes.POINTER(ctypes.c_void_p),
        ]
        lib.firma_sidecar_inspect.restype = ctypes.c_int32
        lib.firma_error_codes.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        lib.firma_error_codes.restype = ctypes.c_int32
        lib.firma_string_free.argtypes = [ctypes.c_void_p]
        lib.firma_string_free.restype = None
        self.lib = lib

    def _take(self, status: int, out: ctypes.c_void_p) -> str:
        assert out.value is not None
        try:
            text = ctypes.string_at(out.value).decode()
        finally:
            self.lib.firma_string_free(out)
        assert status == 0, text
        return text

    def inspect(self, runtime_dir: str) -> str:
        out = ctypes.c_void_p()
        status = self.lib.firma_sidecar_inspect(runtime_dir.encode(), 0, ctypes.byref(out))
        return self._take(status, out)

    def error_codes(self) -> str:
        out = ctypes.c_void_p()
        return self._take(self.lib.firma_error_codes(ctypes.byref(out)), out)


@pytest.fixture(scope="module")
def c_abi() -> _CAbi:
    return _CAbi()


def compact(value: Any) -> str:
    """The JSON text serde writes: no spaces, non-ASCII kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ---- a directory with one marker of each verdict ---------------------------


@pytest.fixture
def fleet(
    firma_runtime_dir: str, firma_sidecar: Start, raw_marker: RawMarker, dead_pid: int
) -> str:
    firma_sidecar("web-4")
    raw_marker("dead-1", pid=dead_pid, listen="127.0.0.1:9", agent_id='quote " é \u2028 \x1b')
    raw_marker("garbage-2", "this is [not toml\n")
    raw_marker("renamed-3", pid=dead_pid, sandbox_id="someone-else")
    return firma_runtime_dir


def test_each_field_converts_to_its_python_type(fleet: str, dead_pid: int) -> None:
    reports = firma_stack.inspect(fleet)
    assert [r.name for r in reports] == ["dead-1", "garbage-2", "renamed-3", "web-4"]
    assert all(isinstance(r, MarkerReport) for r in reports)
    dead, garbage, renamed, web = reports

    assert dead.verdict is Verdict.STALE and dead.state is State.STOPPED
    assert dead.reason is Reason.PROCESS_GONE
    assert dead.detail == f"no process with pid {dead_pid}"
    assert isinstance(dead.entry, SidecarEntry) and dead.error is None
    assert dead.entry.sandbox_id == "dead-1" and dead.entry.pid == dead_pid
    assert dead.entry.agent_id == 'quote " é \u2028 \x1b'  # entry fields unescaped
    assert dead.entry.state is State.STOPPED

    for broken, code, reason in [
        (garbage, "marker_parse", Reason.PARSE_ERROR),
        (renamed, "identity_mismatch", Reason.ID_MISMATCH),
    ]:
        assert broken.verdict is Verdict.BROKEN and broken.reason is reason
        assert broken.state is None and broken.entry is None
        assert isinstance(broken.error, ErrorInfo)
        assert broken.error.code == code and broken.error.errno is None
        assert broken.error.message and "\n" not in broken.error.message
    assert garbage.error is not None and renamed.error is not None
    assert garbage.error.path == str(Path(fleet, "run", "garbage-2", "metadata.toml"))
    assert renamed.error.path == str(Path(fleet, "run", "renamed-3"))

    assert web.verdict is Verdict.LIVE and web.state is State.RUNNING
    assert web.reason is Reason.SERVING and web.error is None
    assert web.entry is not None and web.entry.state is State.RUNNING

    # str-valued enums, like State
    verdict: str = dead.verdict
    assert verdict == "stale" and str(dead.reason) == "process_gone"
    # read-only: the stale marker is still on disk
    assert Path(fleet, "run", "dead-1").is_dir()


def test_to_dict_is_the_c_abi_json_for_the_same_directory(fleet: str, c_abi: _CAbi) -> None:
    # The live sidecar's uptime ticks: take the C answer between two Python
    # answers that agree (bounded by attempts, not time).
    for _ in range(5):
        before = [r.to_dict() for r in firma_stack.inspect(fleet)]
        c_text = c_abi.inspect(fleet)
        if before == [r.to_dict() for r in firma_stack.inspect(fleet)]:
            break
    else:
        raise AssertionError("the reports kept changing between reads")
    assert before == json.loads(c_text)
    assert compact(before) == c_text  # same keys, order and values, byte for byte
    for d in before:
        assert list(d) == REPORT_KEYS
        if d["error"] is not None:
            assert list(d["error"]) == ERROR_KEYS


def test_nested_conversions_agree_with_their_own_to_dict(fleet: str) -> None:
    for report in firma_stack.inspect(fleet):
        d = report.to_dict()
        assert d["verdict"] == report.verdict.value and d["reason"] == report.reason.value
        assert d["state"] == (report.state.value if report.state is not None else None)
        assert d["entry"] == (report.entry.to_dict() if report.entry is not None else None)
        assert d["error"] == (report.error.to_dict() if report.error is not None else None)


def test_reports_are_immutable_values(
    firma_runtime_dir: str, raw_marker: RawMarker, dead_pid: int
) -> None:
    raw_marker("dead-1", pid=dead_pid, listen="127.0.0.1:9")
    raw_marker("garbage-2", "[")
    first = firma_stack.inspect(firma_runtime_dir)
    second = firma_stack.inspect(firma_runtime_dir)
    assert first == second and first is not second
    assert [hash(r) for r in first] == [hash(r) for r in second]
    assert len(set(first + second)) == 2
    assert first[0] != first[1] and first[0] != "dead-1"
    assert first[1].error == second[1].error and hash(first[1].error) == hash(second[1].error)
    with pytest.raises(AttributeError):
        first[0].name = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        first[1].error.code = "io"  # type: ignore[misc, union-attr]
    # The reports outlive the directory they describe.
    Path(firma_runtime_dir, "run", "garbage-2", "metadata.toml").unlink()
    assert first[1].error is not None and first[1].error.code == "marker_parse"
    assert first[0].entry == second[0].entry
    # pickle and copy rebuild equal values
    for report in first:
        assert pickle.loads(pickle.dumps(report)) == report == copy.copy(report)
        if report.error is not None:
            assert pickle.loads(pickle.dumps(report.error)) == report.error


def test_repr_names_every_field(
    firma_runtime_dir: str, raw_marker: RawMarker, dead_pid: int
) -> None:
    raw_marker("dead-1", pid=dead_pid, listen="127.0.0.1:9")
    raw_marker("garbage-2", "[")
    dead, garbage = firma_stack.inspect(firma_runtime_dir)
    assert repr(dead).startswith(
        "MarkerReport(name='dead-1', verdict=Verdict.STALE, state=State.STOPPED, "
        f"reason=Reason.PROCESS_GONE, detail='no process with pid {dead_pid}', "
        "entry=SidecarEntry(sandbox_id='dead-1', "
    )
    assert repr(dead).endswith(", error=None)")
    assert repr(garbage).startswith(
        "MarkerReport(name='garbage-2', verdict=Verdict.BROKEN, state=None, "
        "reason=Reason.PARSE_ERROR, detail="
    )
    assert garbage.error is not None
    path = str(Path(firma_runtime_dir, "run", "garbage-2", "metadata.toml"))
    assert repr(garbage).endswith(
        f", entry=None, error=ErrorInfo(code='marker_parse', message={garbage.error.message!r}, "
        f"path={path!r}, errno=None))"
    )


# ---- arguments and errors ----------------------------------------------------


def test_missing_run_dir_and_default_runtime_dir(
    firma_runtime_dir: str, monkeypatch: pytest.MonkeyPatch, raw_marker: RawMarker, dead_pid: int
) -> None:
    assert firma_stack.inspect(firma_runtime_dir) == []
    raw_marker("via-default", pid=dead_pid)
    monkeypatch.setenv("FIRMA_STATE_DIR", firma_runtime_dir)
    assert [r.name for r in firma_stack.inspect()] == ["via-default"]
    assert [r.name for r in firma_stack.inspect(Path(firma_runtime_dir))] == ["via-default"]
    assert [r.name for r in firma_stack.inspect(firma_runtime_dir.encode())] == ["via-default"]


def test_run_that_is_a_file_raises_stack_io_error(firma_runtime_dir: str) -> None:
    run = Path(firma_runtime_dir, "run")
    run.write_text("not a directory")
    with pytest.raises(StackIOError) as info:
        firma_stack.inspect(firma_runtime_dir)
    assert info.value.errno == errno.ENOTDIR and info.value.path == str(run)


def test_non_utf8_runtime_dir_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError):
        firma_stack.inspect(b"/tmp/\xff\xfe-not-utf8")


def test_timeout_policy_is_the_cores(
    firma_runtime_dir: str, raw_marker: RawMarker, dead_pid: int
) -> None:
    # The same numbers as the C header, which checks them against the core
    # at compile time.
    header = (REPO / "include" / "firma_stack.h").read_text()
    defines = dict(re.findall(r"^#define (FIRMA_\w+_TIMEOUT_MS) (\d+)$", header, re.M))
    assert firma_stack.DEFAULT_TIMEOUT * 1000 == int(defines["FIRMA_DEFAULT_TIMEOUT_MS"])
    assert firma_stack.MAX_TIMEOUT * 1000 == int(defines["FIRMA_MAX_TIMEOUT_MS"])

    raw_marker("dead-1", pid=dead_pid)
    assert len(firma_stack.inspect(firma_runtime_dir, timeout=firma_stack.MAX_TIMEOUT)) == 1
    for bad in [0.0, -1.0, math.nan, math.inf, math.nextafter(firma_stack.MAX_TIMEOUT, math.inf)]:
        with pytest.raises(InvalidArgumentError) as info:
            firma_stack.inspect(firma_runtime_dir, timeout=bad)
        assert info.value.argument == "timeout"
    # every other timeout-taking function uses the same maximum
    with pytest.raises(InvalidArgumentError):
        firma_stack.list(firma_runtime_dir, timeout=firma_stack.MAX_TIMEOUT * 2)
    assert Path(firma_runtime_dir, "run", "dead-1").is_dir()  # nothing ran


def test_other_threads_run_while_inspect_waits_on_a_wedged_tcp_endpoint(
    firma_runtime_dir: str, firma_sidecar: Start
) -> None:
    firma_sidecar("stuck-tcp", mode="wedged", tcp="127.0.0.1:0")
    assert_other_threads_run_during(
        "inspect",
        lambda: firma_stack.inspect(firma_runtime_dir, timeout=5 * BASELINE_SECS),
        lambda reports: [r.reason for r in reports] == [Reason.TIMEOUT],
    )


# ---- completeness of the mappings ---------------------------------------------


def test_every_core_error_code_has_an_exception_class(c_abi: _CAbi) -> None:
    codes = firma_stack.ERROR_CODES
    assert json.loads(c_abi.error_codes()) == list(codes)  # the C ABI's list, in status order
    for code in codes:
        cls = _native._exception_class(code)
        assert isinstance(cls, type) and issubclass(cls, StackError), code
        assert getattr(cls, "code") == code
    # and no class claims a code the core does not have
    classes = [getattr(_errors, name) for name in _errors.__all__]
    assert {c.code for c in classes} == set(codes)
    with pytest.raises(ValueError):
        _native._exception_class("no_such_code")


def _core_codes(enum_name: str) -> List[str]:
    """The codes of the core enum's ``as_str`` match in its source."""
    source = (REPO / "src" / "sidecar_markers" / "model.rs").read_text()
    found = re.findall(rf'{enum_name}::\w+ => "([a-z_]+)"', source)
    assert found, f"no {enum_name}::… => \"…\" arms found in model.rs"
    return found


@pytest.mark.parametrize("enum_cls", [Verdict, Reason])
def test_enums_hold_exactly_the_core_codes(enum_cls: Any) -> None:
    values: Dict[str, Any] = {m.value: m for m in enum_cls}
    assert sorted(values) == sorted(_core_codes(enum_cls.__name__))
    for value, member in values.items():
        assert isinstance(member, str) and member == value and str(member) == value
