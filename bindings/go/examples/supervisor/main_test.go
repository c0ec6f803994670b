package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firma-stack/firma-stack/bindings/go/internal/fixture"
)

func TestSupervisorReportsLiveAndCollectsStale(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	live := fixture.Start(t, dir, "run-live", "--agent", "agent-7")
	fixture.Start(t, dir, "run-wedged", "--mode", "wedged")
	dead := fixture.Start(t, dir, "run-dead")
	dead.Kill(t)
	fixture.WriteMarker(t, dir, "run-broken", "not toml [")

	var stdout, stderr strings.Builder
	status := run(&stdout, &stderr, dir, time.Second,
		[]string{"run-live", "run-gone", "../etc", "run-broken"})
	out := stdout.String()
	t.Logf("output:\n%s", out)
	if stderr.Len() != 0 {
		t.Errorf("stderr: %s", stderr.String())
	}
	if status != 1 {
		t.Errorf("status %d, want 1 (a requested run is missing)", status)
	}
	for _, want := range []string{
		"collected stale marker run-dead\n",
		"2 live sidecar(s)\n",
		"run-live: running (pid ",
		"run-gone: no such run\n",
		"../etc: not a valid sandbox id\n",
		"run-broken: broken marker, left in place: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	var liveRow, wedgedRow bool
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && f[0] == "run-live" {
			liveRow = f[1] == "running" && f[4] == "agent-7" && f[5] == filepath.Join(live.MarkerDir, "sidecar.sock")
		}
		if len(f) == 6 && f[0] == "run-wedged" {
			wedgedRow = f[1] == "unhealthy"
		}
	}
	if !liveRow || !wedgedRow {
		t.Errorf("table rows wrong (live %v, wedged %v)", liveRow, wedgedRow)
	}
	if fixture.Exists(t, dead.MarkerDir) || !fixture.Exists(t, filepath.Join(dir, "run", "run-broken")) {
		t.Error("the dead run's marker must be gone and the broken one kept")
	}

	// Nothing stale left, nothing requested: success.
	stdout.Reset()
	if status := run(&stdout, &stderr, dir, time.Second, nil); status != 0 {
		t.Errorf("second run: status %d, output %s", status, stdout.String())
	}
	if strings.Contains(stdout.String(), "collected") {
		t.Errorf("second run collected again: %s", stdout.String())
	}
}
