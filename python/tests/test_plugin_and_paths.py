"""The pytest plugin's fixtures, the testing helpers, and path arguments."""

from __future__ import annotations

import builtins
import json
import os
import pathlib
import subprocess
import sys
import textwrap
from typing import Callable, Dict

import pytest

import firma_stack
from firma_stack import State
from firma_stack.testing import (
    SidecarFactory,
    SidecarProcess,
    example_sidecar_command,
    remove_marker,
    running_sidecar,
    write_marker,
)

Start = SidecarFactory


def test_plugin_is_registered_through_its_entry_point(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("firma_stack")
    assert plugin is not None and plugin.__name__ == "firma_stack.pytest_plugin"


def test_fixtures_give_a_runtime_dir_and_real_sidecars(
    firma_runtime_dir: str, firma_sidecar: Start
) -> None:
    assert os.path.isdir(firma_runtime_dir) and os.listdir(firma_runtime_dir) == []
    sc = firma_sidecar("fx-1", mode="wedged")

    assert sc.marker_dir == os.path.join(firma_runtime_dir, "run", "fx-1")
    assert os.path.isdir(sc.marker_dir)
    assert firma_stack.get(firma_runtime_dir, "fx-1").state is State.UNHEALTHY  # type: ignore[union-attr]


def test_fixtures_clean_up_in_a_fresh_pytest_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A separate pytest process that knows nothing but the installed
    # package: the fixtures must come from the entry point, and teardown must
    # stop the sidecar (which removes its marker) and remove the directory.
    pytester.makepyfile(
        textwrap.dedent(
            """
            import os, json
            import firma_stack

            def test_one(firma_runtime_dir, firma_sidecar):
                sc = firma_sidecar("inner-1")
                assert firma_stack.get(firma_runtime_dir, "inner-1").state == "running"
                with open(os.environ["FIRMA_TEST_REPORT"], "w") as f:
                    json.dump({"dir": firma_runtime_dir, "pid": sc.pid}, f)
            """
        )
    )
    report = pytester.path / "report.json"
    monkeypatch.setenv("FIRMA_TEST_REPORT", str(report))

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
    info = json.loads(report.read_text())
    assert not os.path.exists(info["dir"])
    with pytest.raises(ProcessLookupError):
        os.kill(info["pid"], 0)  # stopped and reaped by the fixture


def test_stopped_sidecar_removes_its_marker(firma_runtime_dir: str, firma_sidecar: Start) -> None:
    sc = firma_sidecar("polite-1")
    assert sc.stop() == 0

    assert firma_stack.get(firma_runtime_dir, "polite-1") is None
    assert firma_stack.list(firma_runtime_dir) == []


def test_running_sidecar_context_manager(firma_runtime_dir: str) -> None:
    with running_sidecar(firma_runtime_dir, "cm-1", agent="a", session="s") as sc:
        entry = firma_stack.probe_entry(sc.marker_dir)
        assert (entry.state, entry.pid, entry.agent_id) == (State.RUNNING, sc.pid, "a")
    assert sc.process.returncode == 0  # SIGTERM: it removed its marker and exited
    assert not os.path.exists(sc.marker_dir)
    assert firma_stack.list(firma_runtime_dir) == []


def test_running_sidecar_reports_a_sidecar_that_cannot_start(firma_runtime_dir: str) -> None:
    write_marker(firma_runtime_dir, "taken-1")

    with pytest.raises(RuntimeError, match="did not get ready"):
        with running_sidecar(firma_runtime_dir, "taken-1"):
            pass  # pragma: no cover


def test_example_sidecar_command_honours_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    (found,) = example_sidecar_command()
    assert os.access(found, os.X_OK)
    monkeypatch.setenv("FIRMA_EXAMPLE_SIDECAR", "/nonexistent/firma-example-sidecar")
    with pytest.raises(FileNotFoundError, match="FIRMA_EXAMPLE_SIDECAR"):
        example_sidecar_command()
    monkeypatch.delenv("FIRMA_EXAMPLE_SIDECAR", raising=False)
    assert example_sidecar_command() == [sys.executable, "-m", "firma_stack.example_sidecar"]


def test_packaged_example_sidecar_runs_without_a_binary(
    firma_runtime_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The package's own sidecar (python -m firma_stack.example_sidecar): live
    # while it runs, its marker removed on SIGTERM, a stale marker on SIGKILL.
    monkeypatch.delenv("FIRMA_EXAMPLE_SIDECAR", raising=False)
    with running_sidecar(firma_runtime_dir, "pkg-1") as sidecar:
        entry = firma_stack.get(firma_runtime_dir, "pkg-1")
        assert entry is not None and entry.state == State.RUNNING
        assert entry.pid == sidecar.pid
    assert sidecar.process.returncode == 0
    assert firma_stack.get(firma_runtime_dir, "pkg-1") is None
    with running_sidecar(firma_runtime_dir, "pkg-2", mode="no-socket") as sidecar:
        entry = firma_stack.get(firma_runtime_dir, "pkg-2")
        assert entry is not None and entry.state == State.UNHEALTHY
        sidecar.kill()
        entry = firma_stack.get(firma_runtime_dir, "pkg-2")
        assert entry is not None and entry.state == State.STOPPED


def test_packaged_example_sidecar_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "firma_stack.example_sidecar", "--mode", "bogus"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--mode" in proc.stderr and "bogus" in proc.stderr


def test_write_and_remove_marker(firma_runtime_dir: str) -> None:
    path = write_marker(firma_runtime_dir, "mine-1", agent_id="me")

    assert path == os.path.join(firma_runtime_dir, "run", "mine-1")
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o700)
    entry = firma_stack.get(firma_runtime_dir, "mine-1")
    assert entry is not None
    assert (entry.pid, entry.agent_id) == (os.getpid(), "me")
    assert entry.state is State.UNHEALTHY  # alive (this process), no socket
    assert remove_marker(firma_runtime_dir, "mine-1") is True
    assert remove_marker(firma_runtime_dir, "mine-1") is False
    assert firma_stack.get(firma_runtime_dir, "mine-1") is None


class MyPath:
    def __init__(self, path: str) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return self.path


def test_paths_may_be_str_bytes_or_pathlike(firma_runtime_dir: str, firma_sidecar: Start) -> None:
    sc = firma_sidecar("p-1")
    expected = firma_stack.list(firma_runtime_dir)

    for form in (
        firma_runtime_dir,
        pathlib.Path(firma_runtime_dir),
        os.fsencode(firma_runtime_dir),
        MyPath(firma_runtime_dir),
    ):
        assert firma_stack.list(form) == expected
        assert firma_stack.get(form, "p-1") == expected[0]
        assert firma_stack.gc_stale(form) == []
    assert firma_stack.probe_entry(pathlib.Path(sc.marker_dir)) == expected[0]
    assert firma_stack.probe_entry(os.fsencode(sc.marker_dir)) == expected[0]


def test_none_means_the_default_runtime_dir(
    firma_runtime_dir: str, firma_sidecar: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    firma_sidecar("dflt-1")
    monkeypatch.setenv("FIRMA_STATE_DIR", firma_runtime_dir)

    assert firma_stack.default_runtime_dir() == firma_runtime_dir
    assert [e.sandbox_id for e in firma_stack.list()] == ["dflt-1"]
    assert firma_stack.get(None, "dflt-1") is not None
    assert firma_stack.gc_stale() == []


def test_default_runtime_dir_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRMA_STATE_DIR", "")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/4242")
    assert firma_stack.default_runtime_dir() == "/run/user/4242/firma"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    # Root never falls back to /tmp, where anyone could create it first.
    euid = os.geteuid()
    want = "/run/firma" if euid == 0 else f"/tmp/firma-{euid}"
    assert firma_stack.default_runtime_dir() == want


def test_star_import_shadows_no_builtin_or_standard_module() -> None:
    # `from firma_stack import *` must not replace `list` or `import
    # inspect`; both stay attributes (`firma_stack.list`).
    shadowed = set(firma_stack.__all__) & (
        set(dir(builtins)) | set(getattr(sys, "stdlib_module_names", ()))
    )
    assert not shadowed
    assert firma_stack.list is firma_stack._native.list
    assert firma_stack.inspect is firma_stack._native.inspect
    namespace: Dict[str, object] = {}
    exec("from firma_stack import *", namespace)
    assert "list" not in namespace and "get" in namespace
