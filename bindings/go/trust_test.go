package firmastack_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	firmastack "github.com/firma-stack/firma-stack/bindings/go"
	"github.com/firma-stack/firma-stack/bindings/go/internal/fixture"
)

// docs/design.md, "Trust": in a runtime directory others may write (mode
// 0777 here), Stop and GCStale refuse with ErrUntrustedDirectory — nothing
// signalled, nothing removed — while List still answers. The checks are the
// core's (tests/isolation/trust.rs); this proves the refusal reaches Go whole.
func TestUntrustedDirectoryRefusesStopAndGC(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	cmd := startProcess(t, "sleep", "600")
	pid := cmd.Process.Pid
	identityMarker(t, dir, "go-victim", pid, 0)
	stale := fixture.WriteMarker(t, dir, "go-stale", fixture.Metadata("go-stale", fixture.DeadPID(t), ""))
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })

	refused := func(what string, err error, action string) {
		t.Helper()
		var e *firmastack.Error
		if !errors.Is(err, firmastack.ErrUntrustedDirectory) || !errors.As(err, &e) {
			t.Fatalf("%s: %v, want ErrUntrustedDirectory", what, err)
		}
		if e.Code != firmastack.CodeUntrustedDirectory || e.Path != dir ||
			!strings.HasPrefix(e.Message, "refusing to "+action+" under "+dir+": ") ||
			!strings.Contains(e.Message, "mode 0777") {
			t.Fatalf("%s: %+v", what, e)
		}
	}
	out, err := firmastack.Stop(context.Background(), dir, "go-victim", firmastack.StopOptions{Grace: 100 * time.Millisecond})
	if out != nil {
		t.Fatalf("Stop: outcome %+v", out)
	}
	refused("Stop", err, "stop a sidecar")
	if !alive(pid) {
		t.Fatal("Stop signalled in an untrusted directory")
	}
	removed, err := firmastack.GCStale(dir)
	if removed != nil {
		t.Fatalf("GCStale: %v", removed)
	}
	refused("GCStale", err, "collect stale markers")
	if !fixture.Exists(t, filepath.Join(stale, "metadata.toml")) {
		t.Fatal("GCStale removed a marker in an untrusted directory")
	}
	entries, err := firmastack.List(dir)
	if err != nil || len(entries) != 1 || entries[0].SandboxID != "go-victim" {
		t.Fatalf("List = %+v, %v; want go-victim only", entries, err)
	}
	if !fixture.Exists(t, filepath.Join(stale, "metadata.toml")) {
		t.Fatal("List collected in an untrusted directory")
	}

	// Private again: collected.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if removed, err := firmastack.GCStale(dir); err != nil || !reflect.DeepEqual(removed, []string{"go-stale"}) {
		t.Fatalf("GCStale = %v, %v; want [go-stale]", removed, err)
	}
}
