package firmastack_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"testing"
	"time"

	firmastack "github.com/firma-stack/firma-stack/bindings/go"
	"github.com/firma-stack/firma-stack/bindings/go/internal/fixture"
)

// eventBound proves the stream is event-driven; it is no speed claim.
const eventBound = 5 * time.Second

func nextMatching(t *testing.T, w *firmastack.Watcher, seen *[]firmastack.Event, what string,
	match func(firmastack.Event) bool) firmastack.Event {
	t.Helper()
	deadline := time.After(eventBound)
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("stream closed before %s (Err: %v); seen %+v", what, w.Err(), *seen)
			}
			*seen = append(*seen, ev)
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s within %v; seen %+v", what, eventBound, *seen)
		}
	}
}

// startSynced watches dir with opts (until the test ends) and takes the
// events up to the initial synced, which it returns with the watcher.
func startSynced(t *testing.T, dir string, opts firmastack.WatchOptions) (*firmastack.Watcher, []firmastack.Event) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := firmastack.Watch(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	var seen []firmastack.Event
	nextMatching(t, w, &seen, "synced", func(e firmastack.Event) bool { return e.Kind == firmastack.EventSynced })
	return w, seen
}

func TestWatchStreamsAppearedSyncedGoneAndMatchesList(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	a := fixture.Start(t, dir, "go-alpha")
	w, seen := startSynced(t, dir, firmastack.WatchOptions{ProbeInterval: 500 * time.Millisecond})
	if len(seen) != 2 || seen[0].Kind != firmastack.EventAppeared || seen[0].SandboxID != "go-alpha" ||
		seen[0].Entry == nil || int(seen[0].Entry.PID) != a.PID() || seen[0].Entry.State != firmastack.StateRunning {
		t.Fatalf("initial events = %+v", seen)
	}
	if at := seen[0].At; at.IsZero() || at.Location() != time.UTC || time.Since(at) > time.Hour {
		t.Errorf("At %v: not a recent UTC time", at)
	}
	b := fixture.Start(t, dir, "go-bravo")
	nextMatching(t, w, &seen, "appeared go-bravo", func(e firmastack.Event) bool {
		return e.Kind == firmastack.EventAppeared && e.SandboxID == "go-bravo"
	})
	b.Kill(t)
	gone := nextMatching(t, w, &seen, "gone go-bravo", func(e firmastack.Event) bool { return e.Kind == firmastack.EventGone })
	if gone.SandboxID != "go-bravo" || gone.Reason != firmastack.GoneCollected {
		t.Fatalf("gone = %+v", gone)
	}
	state := map[string]firmastack.SidecarEntry{}
	for _, ev := range seen {
		switch ev.Kind {
		case firmastack.EventAppeared, firmastack.EventChanged:
			state[ev.SandboxID] = *ev.Entry
		case firmastack.EventGone:
			delete(state, ev.SandboxID)
		}
	}
	listed, err := firmastack.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for id, e := range state {
		got = append(got, id+"/"+string(e.State))
	}
	for _, e := range listed {
		want = append(want, e.SandboxID+"/"+string(e.State))
	}
	sort.Strings(got)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("state from events %v != List %v", got, want)
	}
}

func TestWatchReadOnlyReportsStopped(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	s := fixture.Start(t, dir, "go-victim")
	w, seen := startSynced(t, dir, firmastack.WatchOptions{ReadOnly: true})
	s.KillToZombie(t)
	ev := nextMatching(t, w, &seen, "changed", func(e firmastack.Event) bool { return e.Kind == firmastack.EventChanged })
	if ev.Previous != firmastack.StateRunning || ev.Entry.State != firmastack.StateStopped {
		t.Fatalf("changed = %+v", ev)
	}
	if !fixture.Exists(t, filepath.Join(dir, "run", "go-victim")) {
		t.Fatal("a read-only watcher removed a marker")
	}
}

func TestWatchBadOptionsAreInvalidArgument(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	_, err := firmastack.Watch(context.Background(), dir, firmastack.WatchOptions{ProbeInterval: -time.Second})
	if err == nil || !errors.Is(err, firmastack.ErrInvalidArgument) {
		t.Fatalf("Watch with a negative interval: %v", err)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Cancelling the context closes Events and releases every goroutine and
// descriptor (watchers opened and cancelled many times, some mid-stream).
func TestWatchCancelReleasesEverything(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	_ = fixture.Start(t, dir, "go-leak")
	// Warm up whatever the runtime starts once.
	runtime.GC()
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		w, err := firmastack.Watch(ctx, dir, firmastack.WatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			<-w.Events() // read one, leave the rest unread
		}
		cancel()
		deadline := time.After(eventBound)
	drain:
		for {
			select {
			case _, ok := <-w.Events():
				if !ok {
					break drain
				}
			case <-deadline:
				t.Fatal("Events not closed after cancel")
			}
		}
		if err := w.Err(); err != nil {
			t.Fatalf("Err after cancel = %v, want nil", err)
		}
	}
	deadline := time.Now().Add(eventBound)
	for runtime.NumGoroutine() > baseG && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > baseG {
		t.Errorf("goroutines: %d before, %d after 20 cancelled watchers", baseG, g)
	}
	if fd := openFDs(t); fd > baseFD {
		t.Errorf("descriptors: %d before, %d after 20 cancelled watchers", baseFD, fd)
	}
}

// A transient failure is not the end of the stream: run/ replaced by a
// symlink for half a second (every scan fails meanwhile), then put back;
// a sidecar started afterwards is still delivered, and Events stays open.
func TestWatchSurvivesRunSwappedForASymlink(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	_ = fixture.Start(t, dir, "go-before")
	w, seen := startSynced(t, dir, firmastack.WatchOptions{ProbeInterval: 100 * time.Millisecond})

	run, real := filepath.Join(dir, "run"), filepath.Join(dir, "run.real")
	if err := os.Rename(run, real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, run); err != nil {
		t.Fatal(err)
	}
	// Keep receiving while run/ is a symlink, as a supervisor would.
	swapped := time.After(500 * time.Millisecond)
	errorsSeen := 0
wait:
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("Events closed while run/ was a symlink (Err: %v); seen %+v", w.Err(), seen)
			}
			seen = append(seen, ev)
			if ev.Kind == firmastack.EventError {
				errorsSeen++
				var fe *firmastack.Error
				if !errors.As(ev.Err, &fe) || ev.At.IsZero() {
					t.Errorf("error event without a *firmastack.Error or a time: %+v", ev)
				}
			}
		case <-swapped:
			break wait
		}
	}
	if err := os.Remove(run); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(real, run); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d error events while run/ was a symlink", errorsSeen)

	_ = fixture.Start(t, dir, "go-after")
	nextMatching(t, w, &seen, "appeared go-after", func(e firmastack.Event) bool {
		return e.Kind == firmastack.EventAppeared && e.SandboxID == "go-after"
	})
	if err := w.Err(); err != nil {
		t.Errorf("Err = %v once the library answers again, want nil", err)
	}
}
