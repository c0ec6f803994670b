package firmastack_test

// The conformance suite, Go runner: every scenario of
// tests/conformance/scenarios is laid down by firma-testkit and called
// through this binding. The answer is built from the binding's own values
// (SidecarEntry through its JSON tags, *Error's Code, Path and Errno), put
// into canonical form by the testkit, and compared with the scenario's
// expected answer. See tests/conformance/README.md.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	firmastack "firma.dev/firma-stack/bindings/go"
	"firma.dev/firma-stack/bindings/go/internal/fixture"
)

type conformanceStep struct {
	Op        string   `json:"op"`
	Runtime   string   `json:"runtime"`
	ID        string   `json:"id"`
	Dir       string   `json:"dir"`
	TimeoutMS *int64   `json:"timeout_ms"`
	Skip      []string `json:"skip"`
	Expect    string   `json:"expect"`
}

type conformanceKit struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	Steps []conformanceStep `json:"steps"`
}

func startKit(t *testing.T, scenario string) *conformanceKit {
	t.Helper()
	cmd := exec.Command(fixture.Testkit(t), "up", scenario)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	k := &conformanceKit{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() {
		k.stdin.Close()
		_ = k.cmd.Wait()
	})
	line, err := k.out.ReadString('\n')
	if err != nil {
		t.Fatalf("the testkit gave no plan for %s: %v", scenario, err)
	}
	if err := json.Unmarshal([]byte(line), k); err != nil {
		t.Fatalf("plan of %s: %v", scenario, err)
	}
	return k
}

func (k *conformanceKit) ask(t *testing.T, request string) string {
	t.Helper()
	if _, err := fmt.Fprintln(k.stdin, request); err != nil {
		t.Fatal(err)
	}
	line, err := k.out.ReadString('\n')
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	return strings.TrimSuffix(line, "\n")
}

// conformanceCall returns the binding's answer as ("ok"|"error", JSON).
func conformanceCall(s conformanceStep) (string, any) {
	ctx := context.Background()
	if s.TimeoutMS != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*s.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	var v any
	var err error
	switch s.Op {
	case "list":
		var entries []firmastack.SidecarEntry
		entries, err = firmastack.ListContext(ctx, s.Runtime)
		v = nonNil(entries)
	case "get":
		v, err = firmastack.GetContext(ctx, s.Runtime, s.ID)
	case "gc_stale":
		var ids []string
		ids, err = firmastack.GCStale(s.Runtime)
		v = nonNil(ids)
	case "probe_entry":
		v, err = firmastack.ProbeEntryContext(ctx, s.Dir)
	default:
		return "error", map[string]any{"code": "the Go runner has no op " + s.Op}
	}
	if err != nil {
		var fe *firmastack.Error
		if !errors.As(err, &fe) {
			return "error", map[string]any{"code": "not a *firmastack.Error: " + err.Error()}
		}
		return "error", map[string]any{"code": fe.Code, "path": fe.Path, "errno": int(fe.Errno)}
	}
	return "ok", v
}

// nonNil makes an empty result encode as [] whether the binding returned a
// nil or an empty slice (the two are the same to a Go caller).
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func TestConformance(t *testing.T) {
	dir := filepath.Join(fixture.RepoRoot(t), "tests", "conformance", "scenarios")
	scenarios, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(scenarios) == 0 {
		t.Fatalf("no scenarios in %s (%v)", dir, err)
	}
	for _, path := range scenarios {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			k := startKit(t, path)
			for i, s := range k.Steps {
				if slices.Contains(s.Skip, "go") {
					continue
				}
				var actual string
				if s.Op == "disk" {
					actual = k.ask(t, fmt.Sprintf("disk %d", i))
				} else {
					var kind string
					var v any
					within(t, neverHangs, s.Op, func() { kind, v = conformanceCall(s) })
					text, err := json.Marshal(v)
					if err != nil {
						t.Fatal(err)
					}
					actual = k.ask(t, "canon "+kind+" "+string(text))
				}
				if actual != s.Expect {
					t.Errorf("scenario %s, step %d (%s %s%s) on go:\n  expected %s\n  actual   %s",
						name, i, s.Op, s.ID, s.Dir, s.Expect, actual)
				}
			}
		})
	}
}
