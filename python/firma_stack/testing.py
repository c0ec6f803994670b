"""Helpers for test harnesses: write markers, and run real sidecars.

* :func:`write_marker` / :func:`remove_marker` wrap the core's writer (the
  same atomic writer supervisors use) with harness-friendly defaults.
* :func:`running_sidecar` starts the real example sidecar
  (``firma-example-sidecar``), waits for its ``ready`` line, yields a
  :class:`SidecarProcess`, and on exit terminates and reaps it.

The example sidecar is ``$FIRMA_EXAMPLE_SIDECAR`` when that names a binary
(e.g. the checkout's ``target/release/firma-example-sidecar``), else the copy
compiled into this package, run as ``python -m firma_stack.example_sidecar``
with the current interpreter: an installed package needs nothing else.

The pytest fixtures built on these live in :mod:`firma_stack.pytest_plugin`.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import (
    IO,
    TYPE_CHECKING,
    Callable,
    ContextManager,
    Iterator,
    List,
    Optional,
    Protocol,
    TypedDict,
    Union,
)

if TYPE_CHECKING:
    # Annotations only (they are never evaluated): Python 3.9 has no
    # typing.ParamSpec at run time.
    from typing_extensions import ParamSpec, Unpack

    P = ParamSpec("P")

from ._native import create_marker, remove_marker

__all__ = [
    "EXAMPLE_SIDECAR_ENV",
    "SidecarFactory",
    "SidecarOptions",
    "SidecarProcess",
    "example_sidecar_command",
    "remove_marker",
    "running_sidecar",
    "start_sidecar",
    "write_marker",
]

#: Environment variable naming an example sidecar binary to use instead of
#: the package's own (``python -m firma_stack.example_sidecar``).
EXAMPLE_SIDECAR_ENV = "FIRMA_EXAMPLE_SIDECAR"

_StrPath = Union[str, "os.PathLike[str]"]


def _utc_now_rfc3339() -> str:
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_marker(
    runtime_dir: Optional[_StrPath],
    sandbox_id: str,
    *,
    pid: Optional[int] = None,
    agent_id: str = "agent-test",
    session_id: str = "session-test",
    authority_url: str = "https://authority.example.invalid",
    policy_bundle_version: str = "sha256:test",
    started_at: Optional[str] = None,
    listen: Optional[str] = None,
    boot_id: Optional[str] = None,
    pid_start_ticks: Optional[int] = None,
) -> str:
    """Writes the marker ``<runtime_dir>/run/<sandbox_id>`` with the core's
    atomic writer and returns its path.

    ``pid`` defaults to this process (which is alive, so the marker is not
    stale). Unless both ``boot_id`` and ``pid_start_ticks`` are given, the
    writer records the identity of the live process ``pid`` (and fails if
    there is none). ``started_at`` defaults to now (RFC 3339, UTC).
    """
    return create_marker(
        runtime_dir,
        sandbox_id=sandbox_id,
        agent_id=agent_id,
        session_id=session_id,
        authority_url=authority_url,
        policy_bundle_version=policy_bundle_version,
        pid=os.getpid() if pid is None else pid,
        started_at=_utc_now_rfc3339() if started_at is None else started_at,
        listen=listen,
        boot_id=boot_id,
        pid_start_ticks=pid_start_ticks,
    )


def example_sidecar_command() -> List[str]:
    """The command that starts the example sidecar (its flags follow):
    ``[$FIRMA_EXAMPLE_SIDECAR]`` when that variable is set and non-empty,
    else ``[sys.executable, "-m", "firma_stack.example_sidecar"]``, the
    package's own copy. Raises :class:`FileNotFoundError` when the variable
    names no executable file."""
    env = os.environ.get(EXAMPLE_SIDECAR_ENV)
    if env:
        if not os.path.isfile(env) or not os.access(env, os.X_OK):
            raise FileNotFoundError(f"${EXAMPLE_SIDECAR_ENV}={env!r} is not an executable file")
        return [env]
    return [sys.executable, "-m", "firma_stack.example_sidecar"]


class SidecarProcess:
    """A running example sidecar started by :func:`start_sidecar`.

    Attributes: ``sandbox_id``, ``runtime_dir``, ``marker_dir`` (from its
    ``ready`` line), ``pid``, ``mode`` and the :class:`subprocess.Popen`
    ``process``.
    """

    def __init__(
        self,
        process: "subprocess.Popen[bytes]",
        sandbox_id: str,
        runtime_dir: str,
        marker_dir: str,
        mode: str,
    ) -> None:
        self.process = process
        self.sandbox_id = sandbox_id
        self.runtime_dir = runtime_dir
        self.marker_dir = marker_dir
        self.mode = mode

    @property
    def pid(self) -> int:
        return self.process.pid

    def __repr__(self) -> str:
        return (
            f"SidecarProcess(sandbox_id={self.sandbox_id!r}, pid={self.pid}, "
            f"mode={self.mode!r}, marker_dir={self.marker_dir!r})"
        )

    def kill(self, *, reap: bool = True) -> None:
        """SIGKILLs the sidecar: it cannot remove its marker, which becomes
        stale. Returns once the process is dead: reaped when ``reap`` is true,
        otherwise left a zombie (this process stays its parent) until
        :meth:`stop` or the end of :func:`running_sidecar` reaps it."""
        if self.process.returncode is not None:
            return
        self.process.kill()
        if reap:
            self.process.wait()
        else:
            # Wait for the exit without collecting it: the pid stays a zombie.
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERMs the sidecar (it removes its own marker and exits 0), waits
        up to ``timeout`` seconds, then SIGKILLs it. Always reaps it and closes
        its pipes. Returns the exit status."""
        proc = self.process
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        return proc.returncode


class SidecarOptions(TypedDict, total=False):
    """The options of :func:`start_sidecar` (and of :func:`running_sidecar`
    and the ``firma_sidecar`` fixture), every one optional: ``mode``
    (default ``"serve"``), ``tcp``, ``agent``, ``session``, ``binary`` and
    ``ready_timeout`` (seconds, default 30)."""

    mode: str
    tcp: Optional[str]
    agent: Optional[str]
    session: Optional[str]
    binary: Optional[_StrPath]
    ready_timeout: float


class SidecarFactory(Protocol):
    """The type of the pytest fixture ``firma_sidecar``: it takes
    :func:`start_sidecar`'s arguments after ``runtime_dir`` (the fixture's
    ``firma_runtime_dir``). Annotate the fixture with it::

        def test_one(firma_sidecar: SidecarFactory) -> None:
            sidecar = firma_sidecar("sbx-1", mode="wedged")
    """

    def __call__(self, sandbox_id: str, **options: Unpack[SidecarOptions]) -> SidecarProcess: ...


def _read_ready_line(proc: "subprocess.Popen[bytes]", timeout: float) -> Optional[bytes]:
    """Reads stdout up to the first newline, or returns None on EOF/timeout."""
    stdout: Optional[IO[bytes]] = proc.stdout
    assert stdout is not None
    fd = stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            buf += chunk
    return buf.split(b"\n", 1)[0]


def start_sidecar(
    runtime_dir: _StrPath, sandbox_id: str, **options: Unpack[SidecarOptions]
) -> SidecarProcess:
    """Starts the example sidecar and returns once it printed ``ready`` (a
    probe then sees its final state). The caller must :meth:`~SidecarProcess.stop`
    it; prefer :func:`running_sidecar`, which does.

    ``mode`` is ``serve`` (state running), ``wedged`` (unhealthy: the backlog
    is full; with ``tcp`` its SYNs are dropped so a probe waits its whole
    timeout) or ``no-socket`` (unhealthy). ``tcp`` serves TCP on an address
    such as ``"127.0.0.1:0"`` instead of the marker's Unix socket.
    ``agent`` and ``session`` go into its marker. ``binary`` runs that
    example sidecar binary instead of :func:`example_sidecar_command`'s;
    ``ready_timeout`` is how long to wait for ``ready`` (see
    :class:`SidecarOptions`).
    """
    unknown = sorted(set(options) - set(SidecarOptions.__annotations__))
    if unknown:
        raise TypeError(f"start_sidecar() got unexpected keyword arguments {unknown}")
    mode = options.get("mode", "serve")
    tcp, agent, session = options.get("tcp"), options.get("agent"), options.get("session")
    binary, ready_timeout = options.get("binary"), options.get("ready_timeout", 30.0)
    command = [os.fspath(binary)] if binary is not None else example_sidecar_command()
    runtime = os.fspath(runtime_dir)
    argv: List[str] = [*command, "--runtime-dir", runtime, "--id", sandbox_id, "--mode", mode]
    if tcp is not None:
        argv += ["--tcp", tcp]
    if agent is not None:
        argv += ["--agent", agent]
    if session is not None:
        argv += ["--session", session]
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    line = _read_ready_line(proc, ready_timeout)
    if line is None or not line.startswith(b"ready "):
        # It died or never got ready: clean up, and say why.
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
        raise RuntimeError(
            f"example sidecar {sandbox_id!r} did not get ready "
            f"(exit status {proc.returncode}, first line {line!r}): "
            f"{err.decode(errors='replace').strip()}"
        )
    marker_dir = os.fsdecode(line[len(b"ready ") :])
    return SidecarProcess(proc, sandbox_id, runtime, marker_dir, mode)


def _stopped_on_exit(
    start: Callable[P, SidecarProcess],
) -> Callable[P, ContextManager[SidecarProcess]]:
    """The context manager of ``start``: same arguments, yields the sidecar
    it starts and stops it when the block ends."""

    @contextlib.contextmanager
    @functools.wraps(start)  # help() and inspect.signature() show start's arguments
    def started(*args: P.args, **kwargs: P.kwargs) -> Iterator[SidecarProcess]:
        sidecar = start(*args, **kwargs)
        try:
            yield sidecar
        finally:
            sidecar.stop()

    return started


running_sidecar = _stopped_on_exit(start_sidecar)
running_sidecar.__name__ = running_sidecar.__qualname__ = "running_sidecar"
running_sidecar.__doc__ = """Context manager: a real example sidecar, ready when the block
starts, terminated and reaped when it ends. Takes :func:`start_sidecar`'s
arguments."""
