"""Exception types, codes and attributes; the panic boundary; arguments."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import pytest

import firma_stack
from firma_stack.testing import write_marker
from firma_stack import IdentityMismatchError, InternalError, InvalidArgumentError
from firma_stack import InvalidSandboxIdError, MarkerParseError, StackError, StackIOError

from _support import core_fixture


def test_hierarchy_and_codes() -> None:
    expected = {
        InvalidArgumentError: "invalid_argument",
        InvalidSandboxIdError: "invalid_argument",
        StackIOError: "io",
        MarkerParseError: "marker_parse",
        IdentityMismatchError: "identity_mismatch",
        InternalError: "internal",
    }
    for cls, code in expected.items():
        assert issubclass(cls, StackError) and issubclass(cls, Exception)
        assert cls.code == code
    assert issubclass(InvalidSandboxIdError, ValueError)
    assert issubclass(InvalidArgumentError, ValueError)
    assert issubclass(StackIOError, OSError)
    assert not issubclass(MarkerParseError, (ValueError, OSError))


@pytest.mark.parametrize("call", ["list", "gc_stale", "get"])
def test_run_that_is_a_file_is_an_oserror_enotdir(firma_runtime_dir: str, call: str) -> None:
    run = Path(firma_runtime_dir, "run")
    run.write_text("not a directory")

    with pytest.raises(StackIOError) as info:
        if call == "get":
            firma_stack.get(firma_runtime_dir, "x")
        else:
            getattr(firma_stack, call)(firma_runtime_dir)
    err = info.value
    assert isinstance(err, OSError) and isinstance(err, StackError)
    assert err.code == "io"
    assert err.errno == errno.ENOTDIR
    assert err.strerror == os.strerror(errno.ENOTDIR)
    assert err.filename == str(run) == err.path
    assert str(run) in str(err)
    assert run.read_text() == "not a directory"


def test_missing_marker_dir_is_an_oserror_enoent(firma_runtime_dir: str) -> None:
    missing = os.path.join(firma_runtime_dir, "run", "nope")

    with pytest.raises(StackIOError) as info:
        firma_stack.probe_entry(missing)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == missing
    # Catchable the usual ways too.
    with pytest.raises(OSError):
        firma_stack.probe_entry(missing)


def test_marker_parse_error_has_path_and_reason() -> None:
    with core_fixture("scenarios/malformed-markers-are-parse-errors-and-kept.json") as kit:
        marker = os.path.join(kit.placeholders["run"], "missing-key")
        with pytest.raises(MarkerParseError) as info:
            firma_stack.get(kit.placeholders["runtime"], "missing-key")
    err = info.value
    assert err.code == "marker_parse"
    assert err.path is not None and err.path.startswith(marker)
    assert err.reason and err.reason in str(err)


def test_invalid_sandbox_id_carries_the_id() -> None:
    with pytest.raises(InvalidSandboxIdError) as info:
        firma_stack.get(None, "../escape")
    assert info.value.sandbox_id == "../escape"
    assert info.value.argument == "sandbox_id"
    assert info.value.path is None


def test_writer_rejects_a_bad_pid_as_an_invalid_argument(firma_runtime_dir: str) -> None:
    for pid in (0, -1, 2**31, 2**40):
        with pytest.raises(InvalidArgumentError) as info:
            write_marker(firma_runtime_dir, "w-1", pid=pid)
        assert info.value.argument == "pid"
        assert isinstance(info.value, ValueError)
    assert not os.path.exists(os.path.join(firma_runtime_dir, "run", "w-1"))


def test_writer_refuses_to_overwrite(firma_runtime_dir: str) -> None:
    write_marker(firma_runtime_dir, "once-1")

    with pytest.raises(StackIOError) as info:
        write_marker(firma_runtime_dir, "once-1")
    assert "exists" in str(info.value)


def test_a_panic_becomes_internal_error_not_panic_exception() -> None:
    with pytest.raises(InternalError) as info:
        firma_stack._native._panic_for_test()
    assert info.value.code == "internal"
    assert "panic" in str(info.value)
    # PanicException derives from BaseException, not Exception.
    assert isinstance(info.value, Exception)


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf"), 601])
def test_bad_timeout_is_an_invalid_argument(firma_runtime_dir: str, timeout: float) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        firma_stack.list(firma_runtime_dir, timeout=timeout)
    assert info.value.argument == "timeout"


def test_wrong_argument_types_are_type_errors() -> None:
    with pytest.raises(TypeError):
        firma_stack.list(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        firma_stack.get(None, b"bytes-id")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        firma_stack.list(None, timeout="1")  # type: ignore[arg-type]


def test_exceptions_pickle_with_their_attributes(firma_runtime_dir: str) -> None:
    Path(firma_runtime_dir, "run").write_text("")
    with pytest.raises(StackIOError) as io_info:
        firma_stack.list(firma_runtime_dir)
    with pytest.raises(InvalidSandboxIdError) as id_info:
        firma_stack.get(firma_runtime_dir, ".x")

    io_err = pickle.loads(pickle.dumps(io_info.value))
    id_err = pickle.loads(pickle.dumps(id_info.value))

    assert type(io_err) is StackIOError
    assert (io_err.errno, io_err.filename, str(io_err)) == (
        errno.ENOTDIR,
        io_info.value.filename,
        str(io_info.value),
    )
    assert type(id_err) is InvalidSandboxIdError
    assert (id_err.sandbox_id, str(id_err)) == (".x", str(id_info.value))
