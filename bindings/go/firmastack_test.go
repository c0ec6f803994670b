package firmastack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	firmastack "github.com/firma-stack/firma-stack/bindings/go"
	"github.com/firma-stack/firma-stack/bindings/go/internal/fixture"
)

// neverHangs is the generous upper bound for calls that must not block
// (the probe timeout is 200 ms by default); it only catches hangs.
const neverHangs = 20 * time.Second

// within runs f and fails the test if it has not returned after d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

func mustGet(t *testing.T, dir, id string) *firmastack.SidecarEntry {
	t.Helper()
	e, err := firmastack.Get(dir, id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	if e == nil {
		t.Fatalf("Get(%q): no entry", id)
	}
	return e
}

func ids(entries []firmastack.SidecarEntry) []string {
	out := []string{}
	for _, e := range entries {
		out = append(out, e.SandboxID)
	}
	return out
}

func TestABIVersionMatchesBinding(t *testing.T) {
	if got := firmastack.ABIVersion(); got != firmastack.BindingABIVersion {
		t.Fatalf("linked library has ABI version %d, binding expects %d", got, firmastack.BindingABIVersion)
	}
}

// Empty results are empty slices, never nil: they encode as [] like the
// CLI's. (What is collected and what is kept is a conformance scenario.)
func TestEmptyResultsAreEmptySlices(t *testing.T) {
	empty := fixture.RuntimeDir(t)
	if got, err := firmastack.GCStale(empty); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("GCStale(no run/) = %#v, %v; want [], nil", got, err)
	}
	if got, err := firmastack.List(empty); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("List(no run/) = %#v, %v; want [], nil", got, err)
	}
}

func TestInvalidSandboxIDs(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	// A real marker named "x", so that an id truncated at a NUL byte would
	// find something.
	fixture.Start(t, dir, "x")
	// The grammar is a conformance scenario; here: every refusal maps to
	// ErrInvalidArgument on both call forms, including a NUL byte, which
	// only a Go string can carry.
	bad := []string{"", "../x", "with space", "x\x00../../etc"}
	for _, id := range bad {
		e, err := firmastack.Get(dir, id)
		if !errors.Is(err, firmastack.ErrInvalidArgument) {
			t.Errorf("Get(%q) = %v, %v; want ErrInvalidArgument", id, e, err)
			continue
		}
		var fe *firmastack.Error
		if !errors.As(err, &fe) || fe.Code != firmastack.CodeInvalidArgument || fe.Message == "" {
			t.Errorf("Get(%q): error %#v lacks code or message", id, err)
		}
		if errors.Is(err, firmastack.ErrIO) || errors.Is(err, firmastack.ErrMarkerParse) {
			t.Errorf("Get(%q): %v matches another code", id, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if _, err := firmastack.GetContext(ctx, dir, id); !errors.Is(err, firmastack.ErrInvalidArgument) {
			t.Errorf("GetContext(%q) = %v; want ErrInvalidArgument", id, err)
		}
		cancel()
	}
	// The longest valid id is fine (and absent).
	if e, err := firmastack.Get(dir, strings.Repeat("a", 255)); e != nil || err != nil {
		t.Errorf("Get(255 x a) = %v, %v; want nil, nil", e, err)
	}
	// A NUL byte can't cross into C in any argument.
	if _, err := firmastack.List(dir + "\x00"); !errors.Is(err, firmastack.ErrInvalidArgument) {
		t.Errorf("List(dir with NUL) = %v; want ErrInvalidArgument", err)
	}
	if _, err := firmastack.GCStale(dir + "\x00"); !errors.Is(err, firmastack.ErrInvalidArgument) {
		t.Errorf("GCStale(dir with NUL) = %v; want ErrInvalidArgument", err)
	}
	if _, err := firmastack.ProbeEntry(filepath.Join(dir, "run", "x") + "\x00"); !errors.Is(err, firmastack.ErrInvalidArgument) {
		t.Errorf("ProbeEntry(dir with NUL) = %v; want ErrInvalidArgument", err)
	}
	// Non-UTF-8 paths are refused by the C ABI.
	if _, err := firmastack.List(dir + "/\xff"); !errors.Is(err, firmastack.ErrInvalidArgument) {
		t.Errorf("List(non-UTF-8 dir) = %v; want ErrInvalidArgument", err)
	}
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// An identity mismatch is ErrIdentityMismatch (and not ErrMarkerParse),
// with the path set, from Get and ProbeEntry alike.
func TestIdentityMismatch(t *testing.T) {
	k := fixture.Up(t, "scenarios/identity-mismatch-and-empty-dir.json")
	dir := k.Place(t, "runtime")
	markerDir := filepath.Join(k.Place(t, "run"), "impostor")
	e, err := firmastack.Get(dir, "impostor")
	if !errors.Is(err, firmastack.ErrIdentityMismatch) {
		t.Fatalf("Get(impostor) = %v, %v; want ErrIdentityMismatch", e, err)
	}
	if errors.Is(err, firmastack.ErrMarkerParse) {
		t.Errorf("identity mismatch also matches ErrMarkerParse")
	}
	var fe *firmastack.Error
	if !errors.As(err, &fe) || fe.Code != firmastack.CodeIdentityMismatch || !strings.HasPrefix(fe.Path, markerDir) {
		t.Errorf("error = %#v, want code identity_mismatch with a path under %s", err, markerDir)
	}
	if _, err := firmastack.ProbeEntry(markerDir); !errors.Is(err, firmastack.ErrIdentityMismatch) {
		t.Errorf("ProbeEntry(impostor) = %v; want ErrIdentityMismatch", err)
	}
}

func TestIOErrorsCarryErrno(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	missing := filepath.Join(dir, "run", "nobody-here")
	_, err := firmastack.ProbeEntry(missing)
	if !errors.Is(err, firmastack.ErrIO) {
		t.Fatalf("ProbeEntry(missing) = %v; want ErrIO", err)
	}
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, syscall.ENOENT) {
		t.Errorf("ProbeEntry(missing) = %v; want it to unwrap to ENOENT / fs.ErrNotExist", err)
	}
	var fe *firmastack.Error
	if !errors.As(err, &fe) || fe.Errno != syscall.ENOENT || fe.Path != missing {
		t.Errorf("error = %#v, want errno ENOENT and path %s", err, missing)
	}

	// run/ that exists but is not a directory cannot be enumerated.
	notDir := fixture.RuntimeDir(t)
	writeFile(t, notDir, "run", "a file, not a directory")
	if _, err := firmastack.List(notDir); !errors.Is(err, firmastack.ErrIO) {
		t.Errorf("List(run is a file) = %v; want ErrIO", err)
	}
	if _, err := firmastack.GCStale(notDir); !errors.Is(err, firmastack.ErrIO) {
		t.Errorf("GCStale(run is a file) = %v; want ErrIO", err)
	}
}

func TestDefaultRuntimeDirIsUsedForEmptyString(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	t.Setenv("FIRMA_STATE_DIR", dir)
	got, err := firmastack.DefaultRuntimeDir()
	if err != nil || got != dir {
		t.Fatalf("DefaultRuntimeDir() = %q, %v; want %q", got, err, dir)
	}
	sc := fixture.Start(t, dir, "default-dir")
	entries, err := firmastack.List("")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(entries); !reflect.DeepEqual(got, []string{"default-dir"}) {
		t.Fatalf(`List("") = %v, want [default-dir]`, got)
	}
	if e := mustGet(t, "", "default-dir"); e.PID != uint32(sc.PID()) {
		t.Fatalf(`Get("", default-dir).PID = %d, want %d`, e.PID, sc.PID())
	}
	sc.Kill(t)
	if removed, err := firmastack.GCStale(""); err != nil || !reflect.DeepEqual(removed, []string{"default-dir"}) {
		t.Fatalf(`GCStale("") = %v, %v; want [default-dir]`, removed, err)
	}

	t.Setenv("FIRMA_STATE_DIR", "")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/4242")
	if got, err := firmastack.DefaultRuntimeDir(); err != nil || got != "/run/user/4242/firma" {
		t.Fatalf("DefaultRuntimeDir() with XDG_RUNTIME_DIR = %q, %v; want /run/user/4242/firma", got, err)
	}

	// Root never falls back to /tmp, where anyone could create it first.
	t.Setenv("XDG_RUNTIME_DIR", "")
	want := fmt.Sprintf("/tmp/firma-%d", os.Geteuid())
	if os.Geteuid() == 0 {
		want = "/run/firma"
	}
	if got, err := firmastack.DefaultRuntimeDir(); err != nil || got != want {
		t.Fatalf("DefaultRuntimeDir() without FIRMA_STATE_DIR and XDG_RUNTIME_DIR = %q, %v; want %s", got, err, want)
	}
}

func TestContextDeadlineBoundsAWedgedTCPSidecar(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	sc := fixture.Start(t, dir, "tcp-wedged", "--mode", "wedged", "--tcp", "127.0.0.1:0")
	check := func(what string, f func(ctx context.Context) (firmastack.State, error)) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		var state firmastack.State
		var err error
		within(t, neverHangs, what, func() { state, err = f(ctx) })
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if state != firmastack.StateUnhealthy {
			t.Fatalf("%s: state %q, want unhealthy", what, state)
		}
	}
	check("GetContext", func(ctx context.Context) (firmastack.State, error) {
		e, err := firmastack.GetContext(ctx, dir, sc.ID)
		if e == nil {
			return "", err
		}
		return e.State, err
	})
	check("ProbeEntryContext", func(ctx context.Context) (firmastack.State, error) {
		e, err := firmastack.ProbeEntryContext(ctx, sc.MarkerDir)
		return e.State, err
	})
	check("ListContext", func(ctx context.Context) (firmastack.State, error) {
		entries, err := firmastack.ListContext(ctx, dir)
		if len(entries) != 1 {
			return "", fmt.Errorf("listed %v, %v", ids(entries), err)
		}
		return entries[0].State, err
	})
	if e := mustGet(t, dir, sc.ID); !strings.HasPrefix(e.Listen, "127.0.0.1:") {
		t.Errorf("Listen = %q, want the TCP address", e.Listen)
	}
}

func TestDoneContextIsNotCalled(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	fixture.Start(t, dir, "ctx")
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	for _, tc := range []struct {
		ctx  context.Context
		want error
	}{{expired, context.DeadlineExceeded}, {cancelled, context.Canceled}} {
		if _, err := firmastack.ListContext(tc.ctx, dir); !errors.Is(err, tc.want) {
			t.Errorf("ListContext = %v, want %v", err, tc.want)
		}
		if _, err := firmastack.GetContext(tc.ctx, dir, "ctx"); !errors.Is(err, tc.want) {
			t.Errorf("GetContext = %v, want %v", err, tc.want)
		}
		if _, err := firmastack.ProbeEntryContext(tc.ctx, filepath.Join(dir, "run", "ctx")); !errors.Is(err, tc.want) {
			t.Errorf("ProbeEntryContext = %v, want %v", err, tc.want)
		}
	}
	// A generous deadline works like no deadline.
	ctx, cancel3 := context.WithTimeout(context.Background(), time.Hour)
	defer cancel3()
	if e, err := firmastack.GetContext(ctx, dir, "ctx"); err != nil || e == nil || e.State != firmastack.StateRunning {
		t.Fatalf("GetContext(1h) = %v, %v; want running", e, err)
	}
}

func TestSixtyFourGoroutinesAtOnce(t *testing.T) {
	// One serving sidecar "live" and stale-00..stale-19 (dead pid), plus
	// example sidecars started here.
	k := fixture.Up(t, "fixtures/live-and-stale.json")
	dir := k.Place(t, "runtime")
	live := []string{"g-live-1", "g-live-2", "g-live-3"}
	for _, id := range live {
		fixture.Start(t, dir, id)
	}
	fixture.Start(t, dir, "g-wedged", "--mode", "wedged")
	live = append(live, "g-wedged", "live")
	sort.Strings(live)
	var stale []string
	for i := 0; i < 20; i++ {
		stale = append(stale, fmt.Sprintf("stale-%02d", i))
	}

	const n = 64
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		mu      sync.Mutex
		removed = map[string]int{}
		errs    []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, fmt.Sprintf(format, args...))
	}
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			<-start
			switch g % 4 {
			case 0, 1:
				entries, err := firmastack.List(dir)
				if err != nil {
					fail("goroutine %d: List: %v", g, err)
				} else if got := ids(entries); !reflect.DeepEqual(got, live) {
					fail("goroutine %d: List = %v, want %v", g, got, live)
				}
			case 2:
				id := live[g%len(live)]
				e, err := firmastack.Get(dir, id)
				if err != nil || e == nil || e.SandboxID != id {
					fail("goroutine %d: Get(%s) = %v, %v", g, id, e, err)
				}
				id = stale[g%len(stale)]
				e, err = firmastack.Get(dir, id)
				// Collected or not yet: absent, or present and stopped.
				if err != nil || (e != nil && e.State != firmastack.StateStopped) {
					fail("goroutine %d: Get(%s) = %v, %v", g, id, e, err)
				}
			case 3:
				got, err := firmastack.GCStale(dir)
				if err != nil {
					fail("goroutine %d: GCStale: %v", g, err)
				}
				mu.Lock()
				for _, id := range got {
					removed[id]++
				}
				mu.Unlock()
			}
		}(g)
	}
	within(t, 4*neverHangs, "64 concurrent calls", func() {
		close(start)
		wg.Wait()
	})
	for _, e := range errs {
		t.Error(e)
	}
	for id, count := range removed {
		if count != 1 {
			t.Errorf("%s reported removed %d times, want at most once", id, count)
		}
	}
	for _, id := range stale {
		if fixture.Exists(t, filepath.Join(dir, "run", id)) {
			t.Errorf("stale marker %s survived", id)
		}
	}
}

func TestJSONMatchesTheCLI(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	fixture.Start(t, dir, "cli-a", "--agent", "agent-x", "--session", "s-1")
	fixture.Start(t, dir, "cli-b", "--mode", "wedged")
	fixture.Start(t, dir, "cli-c", "--mode", "no-socket")
	fixture.Start(t, dir, "cli-d", "--tcp", "127.0.0.1:0")
	future := fixture.Start(t, dir, "cli-e")
	// sidecar.pid modified in the future: uptime_secs is null.
	later := time.Now().Add(24 * time.Hour)
	if err := os.Chtimes(filepath.Join(future.MarkerDir, "sidecar.pid"), later, later); err != nil {
		t.Fatal(err)
	}
	dead := fixture.Start(t, dir, "cli-f")
	dead.Kill(t)
	firma := fixture.Binary(t, "firma")

	marshal := func() string {
		entries, err := firmastack.List(dir)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(entries)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// uptime_secs ticks every second; compare only when both Go listings
	// around the CLI's agree, so all three saw the same second.
	for attempt := 0; ; attempt++ {
		before := marshal()
		cli := strings.TrimSuffix(string(fixture.Output(t, firma, "--runtime-dir", dir, "sidecar", "status", "--json")), "\n")
		after := marshal()
		if before != after {
			if attempt < 5 {
				continue
			}
			t.Fatalf("listing keeps changing:\n%s\n%s", before, after)
		}
		if cli != before {
			t.Fatalf("json.Marshal(List) differs from `firma sidecar status --json`:\ngo:  %s\ncli: %s", before, cli)
		}
		if !strings.Contains(before, `"uptime_secs":null`) || strings.Contains(before, "cli-f") {
			t.Fatalf("fixture not as intended: %s", before)
		}
		break
	}
	for attempt := 0; ; attempt++ {
		e := mustGet(t, dir, "cli-a")
		goJSON, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		cli := strings.TrimSuffix(string(fixture.Output(t, firma, "--runtime-dir", dir, "sidecar", "get", "cli-a", "--json")), "\n")
		if cli != string(goJSON) && attempt < 5 {
			continue
		}
		if cli != string(goJSON) {
			t.Fatalf("json.Marshal(Get) differs from `firma sidecar get --json`:\ngo:  %s\ncli: %s", goJSON, cli)
		}
		break
	}
}
