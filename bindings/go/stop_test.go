package firmastack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	firmastack "github.com/firma-stack/firma-stack/bindings/go"
	"github.com/firma-stack/firma-stack/bindings/go/internal/fixture"
)

// The scenarios of tests/stop/stop.rs, through the Go binding.

// startProcess runs argv as a child, killed and reaped at cleanup.
func startProcess(t *testing.T, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func procField(t *testing.T, pid, field int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[field]
}

// identityTOML is what the core's writer records for the live process pid
// (boot id, start ticks, the pid namespace), with ticks shifted by skew.
func identityTOML(t *testing.T, pid int, skew uint64) string {
	t.Helper()
	return identityTOMLIn(t, pid, skew, ownPidNS(t))
}

// identityTOMLIn is identityTOML as if recorded in the pid namespace ns.
func identityTOMLIn(t *testing.T, pid int, skew, ns uint64) string {
	t.Helper()
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	ticks, err := strconv.ParseUint(procField(t, pid, 19), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("boot_id = %q\npid_start_ticks = %d\npid_ns_inode = %d\n",
		strings.TrimSpace(string(boot)), ticks+skew, ns)
}

// ownPidNS is the inode of this process's pid namespace.
func ownPidNS(t *testing.T) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/pid", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func identityMarker(t *testing.T, dir, id string, pid int, skew uint64) string {
	return fixture.WriteMarker(t, dir, id, fixture.Metadata(id, pid, "")+identityTOML(t, pid, skew))
}

// termIgnorer is a child that ignores SIGTERM, returned once it does.
func termIgnorer(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := startProcess(t, "bash", "-c", "trap '' TERM; exec sleep 60")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		s := string(b)
		if i := strings.Index(s, "SigIgn:"); i >= 0 && strings.Contains(s, "Name:\tsleep") {
			mask, _ := strconv.ParseUint(strings.Fields(s[i+7:])[0], 16, 64)
			if mask&(1<<(uint(syscall.SIGTERM)-1)) != 0 {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("bash never ignored SIGTERM")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[0] != "Z"
}

func mustStop(t *testing.T, ctx context.Context, dir, id string, opts firmastack.StopOptions) *firmastack.StopOutcome {
	t.Helper()
	out, err := firmastack.Stop(ctx, dir, id, opts)
	if err != nil {
		t.Fatalf("Stop(%s): %v", id, err)
	}
	if out == nil {
		t.Fatalf("Stop(%s): no such marker", id)
	}
	return out
}

func TestStopServingSidecarBySIGTERM(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	sc := fixture.Start(t, dir, "go-serve")
	out := mustStop(t, context.Background(), dir, "go-serve", firmastack.StopOptions{Grace: 5 * time.Second})
	if out.PID != uint32(sc.PID()) || !reflect.DeepEqual(out.Signals, []string{"SIGTERM"}) || !out.Exited || out.Killed {
		t.Fatalf("outcome %+v", out)
	}
	// The example sidecar removes its own marker on SIGTERM.
	if out.Collected || fixture.Exists(t, sc.MarkerDir) {
		t.Fatalf("outcome %+v, marker exists %v", out, fixture.Exists(t, sc.MarkerDir))
	}
	b, _ := json.Marshal(out)
	want := fmt.Sprintf(`{"sandbox_id":"go-serve","pid":%d,"signals":["SIGTERM"],"exited":true,"killed":false,"collected":false,"waited_ms":%d}`, out.PID, out.WaitedMS)
	if string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
}

func TestStopKillsAfterTheGraceAndNoKillLeavesItRunning(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	cmd := termIgnorer(t)
	pid := cmd.Process.Pid
	marker := identityMarker(t, dir, "go-stubborn", pid, 0)

	out := mustStop(t, context.Background(), dir, "go-stubborn", firmastack.StopOptions{Grace: 200 * time.Millisecond, NoKill: true})
	if out.Exited || out.Collected || !reflect.DeepEqual(out.Signals, []string{"SIGTERM"}) || out.Waited() < 200*time.Millisecond {
		t.Fatalf("NoKill outcome %+v", out)
	}
	if !alive(pid) || !fixture.Exists(t, marker) {
		t.Fatal("NoKill: the process or its marker is gone")
	}
	out = mustStop(t, context.Background(), dir, "go-stubborn", firmastack.StopOptions{Grace: 300 * time.Millisecond})
	if !reflect.DeepEqual(out.Signals, []string{"SIGTERM", "SIGKILL"}) || !out.Killed || !out.Exited || !out.Collected || out.WaitedMS < 300 {
		t.Fatalf("outcome %+v", out)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("wait: %v", err)
	}
}

func TestStopContextDeadlineBoundsTheWait(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	cmd := termIgnorer(t)
	identityMarker(t, dir, "go-deadline", cmd.Process.Pid, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var out *firmastack.StopOutcome
	within(t, neverHangs, "Stop with a 300 ms deadline and a 60 s grace", func() {
		out = mustStop(t, ctx, dir, "go-deadline", firmastack.StopOptions{Grace: time.Minute, NoKill: true})
	})
	if out.Exited || out.WaitedMS > 30_000 {
		t.Fatalf("outcome %+v", out)
	}
	// Cancellation is the context's error.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := firmastack.Stop(ctx, dir, "go-deadline", firmastack.StopOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if !alive(cmd.Process.Pid) {
		t.Fatal("the process was stopped")
	}
}

func TestStopRefusals(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	sleeper := startProcess(t, "sleep", "60")
	pid := sleeper.Process.Pid
	identityMarker(t, dir, "go-reused", pid, 9)
	fixture.WriteMarker(t, dir, "go-bare", fixture.Metadata("go-bare", pid, ""))
	identityMarker(t, dir, "go-init", 1, 0)
	identityMarker(t, dir, "go-me", os.Getpid(), 0)
	for id, want := range map[string]error{
		"go-reused": firmastack.ErrPidReused,
		"go-bare":   firmastack.ErrIdentityUnverifiable,
		"go-init":   firmastack.ErrRefused,
		"go-me":     firmastack.ErrRefused,
	} {
		out, err := firmastack.Stop(context.Background(), dir, id, firmastack.StopOptions{Grace: 100 * time.Millisecond})
		if !errors.Is(err, want) || out != nil {
			t.Errorf("%s: %v, %v; want %v", id, out, err, want)
		}
		var e *firmastack.Error
		if errors.As(err, &e) && e.Path != filepath.Join(dir, "run", id) {
			t.Errorf("%s: path %q", id, e.Path)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if !alive(pid) {
		t.Fatal("a refused stop signalled the process")
	}
	// The unsafe opt-out signals the marker without identity.
	out := mustStop(t, context.Background(), dir, "go-bare", firmastack.StopOptions{NoIdentityCheck: true, Grace: 5 * time.Second})
	if !reflect.DeepEqual(out.Signals, []string{"SIGTERM"}) || !out.Exited || !out.Collected {
		t.Fatalf("opt-out outcome %+v", out)
	}
}

func TestStopDeadAndZombieAreNotSignalledAndCollected(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	fixture.WriteMarker(t, dir, "go-dead", fixture.Metadata("go-dead", fixture.DeadPID(t), ""))
	sc := fixture.Start(t, dir, "go-zombie")
	sc.KillToZombie(t)
	for _, id := range []string{"go-dead", "go-zombie"} {
		out := mustStop(t, context.Background(), dir, id, firmastack.StopOptions{})
		if len(out.Signals) != 0 || !out.Exited || !out.Collected || out.Killed {
			t.Errorf("%s: outcome %+v", id, out)
		}
	}
	if out, err := firmastack.Stop(context.Background(), dir, "go-dead", firmastack.StopOptions{}); out != nil || err != nil {
		t.Fatalf("no marker: %v, %v", out, err)
	}
}

// The trust boundary (docs/design.md, "Trust"; tests/isolation/trust_stop.rs) through
// the Go binding: markers that are nobody's claim or whose owner could not
// signal the process, and a pid recorded in another pid namespace.

// checkRefused stops id with an immediate SIGKILL (what a stop let through
// would send at once), with and without NoIdentityCheck, and checks that
// each is refused with want's code, about the marker, its message naming
// the sandbox, the pid and why (each of whys); then that the process is
// alive and the marker kept.
func checkRefused(t *testing.T, dir, id string, pid int, want *firmastack.Error, whys ...string) {
	t.Helper()
	marker := filepath.Join(dir, "run", id)
	for _, noCheck := range []bool{false, true} {
		opts := firmastack.StopOptions{Signal: syscall.SIGKILL, Grace: 100 * time.Millisecond, NoIdentityCheck: noCheck}
		out, err := firmastack.Stop(context.Background(), dir, id, opts)
		var e *firmastack.Error
		if out != nil || !errors.Is(err, want) || !errors.As(err, &e) {
			t.Fatalf("%s (NoIdentityCheck %v): %+v, %v; want %v", id, noCheck, out, err, want.Code)
		}
		prefix := fmt.Sprintf("refusing to signal pid %d of sandbox %q: ", pid, id)
		if e.Code != want.Code || e.Path != marker || e.Errno != 0 || !strings.HasPrefix(e.Message, prefix) {
			t.Errorf("%s (NoIdentityCheck %v): %#v", id, noCheck, e)
		}
		for _, why := range whys {
			if !strings.Contains(e.Message, why) {
				t.Errorf("%s (NoIdentityCheck %v): the message does not say %q: %s", id, noCheck, why, e.Message)
			}
		}
	}
	time.Sleep(50 * time.Millisecond)
	if !alive(pid) {
		t.Fatalf("%s: a refused stop signalled pid %d", id, pid)
	}
	if !fixture.Exists(t, filepath.Join(marker, "metadata.toml")) {
		t.Fatalf("%s: a refused stop removed the marker", id)
	}
}

func TestStopRefusesAMarkerWritableByOthersEvenWithTheOptOut(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	sleeper := startProcess(t, "sleep", "60")
	pid := sleeper.Process.Pid
	marker := identityMarker(t, dir, "go-open", pid, 0)
	if err := os.Chmod(marker, 0o777); err != nil {
		t.Fatal(err)
	}
	checkRefused(t, dir, "go-open", pid, firmastack.ErrNotAuthorized, "nobody's claim", "0777")
	// No longer writable by others, the same marker is this caller's claim
	// on its own process: stopped. The refusal was the mode's alone.
	if err := os.Chmod(marker, 0o700); err != nil {
		t.Fatal(err)
	}
	out := mustStop(t, context.Background(), dir, "go-open", firmastack.StopOptions{Grace: 5 * time.Second})
	if !reflect.DeepEqual(out.Signals, []string{"SIGTERM"}) || !out.Exited || !out.Collected {
		t.Fatalf("outcome %+v", out)
	}
}

func TestStopSignalsNothingForAnotherPidNamespaceWithNoProcess(t *testing.T) {
	const foreignNS = 4026531000
	if ownPidNS(t) == foreignNS {
		t.Fatal("this process is in the pid namespace the test calls foreign")
	}
	dir := fixture.RuntimeDir(t)
	sleeper := startProcess(t, "sleep", "60")
	pid := sleeper.Process.Pid
	// A live process's identity, as if recorded in another pid namespace
	// that has no process: the recorded one is provably gone (this reader
	// sees every process), so nothing is signalled, opt-out or not, and the
	// marker is collected. Our process with that number lives on.
	for _, noCheck := range []bool{false, true} {
		fixture.WriteMarker(t, dir, "go-foreign-ns",
			fixture.Metadata("go-foreign-ns", pid, "")+identityTOMLIn(t, pid, 0, foreignNS))
		out := mustStop(t, context.Background(), dir, "go-foreign-ns",
			firmastack.StopOptions{Signal: syscall.SIGKILL, NoIdentityCheck: noCheck})
		if len(out.Signals) != 0 || !out.Exited || !out.Collected {
			t.Fatalf("opt-out %v: outcome %+v", noCheck, out)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if !alive(pid) {
		t.Fatal("our process under the recorded number was signalled")
	}
}

func TestStopRefusesAnotherUsersMarkerForARootProcess(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	u := fixture.NewUser(t, "stop")
	sleeper := startProcess(t, "sleep", "60")
	pid := sleeper.Process.Pid
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "\nUid:\t0\t0\t0\t0\n") {
		t.Fatalf("the sleeper is not root's:\n%s", status)
	}
	marker := identityMarker(t, dir, "go-not-theirs", pid, 0)
	// The user's own claim (directory and metadata.toml both its, writable
	// by no one else) on root's process, which the user could not signal.
	chown := func(uid, gid int) {
		for _, p := range []string{marker, filepath.Join(marker, "metadata.toml")} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	chown(u.UID, u.GID)
	checkRefused(t, dir, "go-not-theirs", pid, firmastack.ErrNotAuthorized,
		fmt.Sprintf("the marker's owner, uid %d, could not signal it", u.UID))
	// Handed back to root, the same marker is root's claim: stopped.
	chown(0, 0)
	out := mustStop(t, context.Background(), dir, "go-not-theirs", firmastack.StopOptions{Grace: 5 * time.Second})
	if !reflect.DeepEqual(out.Signals, []string{"SIGTERM"}) || !out.Exited || !out.Collected {
		t.Fatalf("outcome %+v", out)
	}
}
