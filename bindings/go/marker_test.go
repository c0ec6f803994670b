package firmastack_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	firmastack "github.com/firma-stack/firma-stack/bindings/go"
	"github.com/firma-stack/firma-stack/bindings/go/internal/fixture"
)

// listenUnix serves a Unix socket at path for the test (the probe's
// connection waits in the backlog).
func listenUnix(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
}

func marker(id string, pid int, listen string) firmastack.Marker {
	return firmastack.Marker{
		SandboxID: id, AgentID: "agent-go", SessionID: "session-go",
		AuthorityURL: "https://authority.example.invalid", PolicyBundleVersion: "1",
		PID: pid, Listen: listen,
	}
}

// A marker written from Go for a real process is listed running, and the
// CLI's stop (another process) verifies the identity the core recorded and
// stops it.
func TestCreateMarkerIsRunningAndTheCLIStopsIt(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	sock := filepath.Join(dir, "go-w.sock")
	listenUnix(t, sock)
	child := startProcess(t, "sleep", "1000")
	path, err := firmastack.CreateMarker(dir, marker("go-w", child.Process.Pid, sock))
	if err != nil || path != filepath.Join(dir, "run", "go-w") {
		t.Fatalf("CreateMarker = %q, %v", path, err)
	}
	entries, err := firmastack.List(dir)
	if err != nil || len(entries) != 1 || entries[0].State != firmastack.StateRunning ||
		int(entries[0].PID) != child.Process.Pid || entries[0].AgentID != "agent-go" {
		t.Fatalf("List = %+v, %v", entries, err)
	}
	if _, err := entries[0].StartedTime(); err != nil {
		t.Errorf("started_at: %v", err)
	}
	fixture.Output(t, fixture.Binary(t, "firma"), "--runtime-dir", dir, "sidecar", "stop", "--grace-ms", "5000", "go-w")
	err = child.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("the child ended with %v; want SIGTERM", err)
	}
	if fixture.Exists(t, path) {
		t.Errorf("%s still there after stop", path)
	}
}

// PID 0 is the calling process; StartedAt is kept; RemoveMarker says
// whether there was one.
func TestCreateMarkerOfThisProcessAndRemoveMarker(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	sock := filepath.Join(dir, "self.sock")
	listenUnix(t, sock)
	m := marker("go-self", 0, sock)
	m.StartedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	if _, err := firmastack.CreateMarker(dir, m); err != nil {
		t.Fatal(err)
	}
	e, err := firmastack.Get(dir, "go-self")
	if err != nil || e == nil || int(e.PID) != os.Getpid() || e.State != firmastack.StateRunning ||
		e.StartedAt != "2026-01-02T02:04:05Z" {
		t.Fatalf("Get = %+v, %v", e, err)
	}
	if _, err := firmastack.CreateMarker(dir, m); !errors.Is(err, firmastack.ErrIO) ||
		!strings.Contains(err.Error(), "marker already exists") {
		t.Errorf("a second CreateMarker: %v; want ErrIO, marker already exists", err)
	}
	for _, want := range []bool{true, false} {
		if got, err := firmastack.RemoveMarker(dir, "go-self"); got != want || err != nil {
			t.Errorf("RemoveMarker = %v, %v; want %v", got, err, want)
		}
	}
	if _, err := firmastack.RemoveMarker(dir, "../x"); !errors.Is(err, firmastack.ErrInvalidArgument) {
		t.Errorf("RemoveMarker(../x): %v", err)
	}
}

// Bad input is refused naming the field, and nothing is written.
func TestCreateMarkerRefusesBadInputAndWritesNothing(t *testing.T) {
	dir := filepath.Join(fixture.RuntimeDir(t), "not-yet")
	cases := []struct {
		m    firmastack.Marker
		want string
	}{
		{marker("../x", os.Getpid(), ""), "sandbox id"},
		{marker("ok", os.Getpid(), "relative/sidecar.sock"), "listen"},
		{marker("ok", -1, ""), "pid"},
		{marker("ok\x00", os.Getpid(), ""), "sandbox id"},
	}
	for _, c := range cases {
		_, err := firmastack.CreateMarker(dir, c.m)
		if !errors.Is(err, firmastack.ErrInvalidArgument) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want ErrInvalidArgument naming %s", c.m, err, c.want)
		}
	}
	if _, err := firmastack.CreateMarker(dir, marker("ok", fixture.DeadPID(t), "")); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("a pid with no process: %v; want ESRCH", err)
	}
	if fixture.Exists(t, dir) {
		t.Errorf("%s was created", dir)
	}
}

// Filters, Wait and RuntimeDirState convert only: the core answers.
func TestFilterWaitAndRuntimeDirState(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	a := fixture.Start(t, dir, "go-sel-a")
	fixture.Start(t, dir, "go-sel-b", "--mode", "no-socket")
	ctx := context.Background()
	got, err := firmastack.ListFiltered(ctx, dir, firmastack.Filter{States: []firmastack.State{firmastack.StateUnhealthy}})
	if err != nil || len(got) != 1 || got[0].SandboxID != "go-sel-b" {
		t.Fatalf("ListFiltered(unhealthy) = %+v, %v", got, err)
	}
	reports, err := firmastack.InspectFiltered(ctx, dir, firmastack.Filter{Reasons: []firmastack.Reason{firmastack.ReasonServing}})
	if err != nil || len(reports) != 1 || reports[0].Name != "go-sel-a" {
		t.Fatalf("InspectFiltered(serving) = %+v, %v", reports, err)
	}
	_, err = firmastack.ListFiltered(ctx, dir, firmastack.Filter{States: []firmastack.State{"fine"}})
	if !errors.Is(err, firmastack.ErrInvalidArgument) {
		t.Errorf("an unknown state: %v", err)
	}

	out, err := firmastack.Wait(ctx, dir, []string{"go-sel-a"}, firmastack.WaitRunning, 10*time.Second)
	if err != nil || !out.Met || out.Condition != firmastack.WaitRunning || len(out.Sidecars) != 1 ||
		out.Sidecars[0].State == nil || *out.Sidecars[0].State != firmastack.StateRunning {
		t.Fatalf("Wait(running) = %+v, %v", out, err)
	}
	out, err = firmastack.Wait(ctx, dir, []string{"go-sel-a", "none"}, firmastack.WaitGone, 0)
	if err != nil || out.Met || out.Sidecars[1].State != nil || !out.Sidecars[1].Met {
		t.Fatalf("Wait(gone, 0) = %+v, %v", out, err)
	}
	a.Kill(t)
	out, err = firmastack.Wait(ctx, dir, []string{"go-sel-a"}, firmastack.WaitGone, 30*time.Second)
	if err != nil || !out.Met {
		t.Fatalf("Wait(gone) after the kill = %+v, %v", out, err)
	}
	if _, err := firmastack.Wait(ctx, dir, nil, firmastack.WaitGone, 0); !errors.Is(err, firmastack.ErrInvalidArgument) {
		t.Errorf("Wait without ids: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := firmastack.Wait(cancelled, dir, []string{"x"}, firmastack.WaitGone, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled context: %v", err)
	}

	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]firmastack.DirState{
		dir:                        firmastack.DirPresent,
		filepath.Join(dir, "typo"): firmastack.DirMissing,
		file:                       firmastack.DirUnreadable,
	} {
		if got, err := firmastack.RuntimeDirState(path); got != want || err != nil {
			t.Errorf("RuntimeDirState(%s) = %q, %v; want %q", path, got, err, want)
		}
	}
}
