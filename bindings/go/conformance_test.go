package firmastack_test

// The conformance suite, Go runner: every scenario of
// tests/conformance/scenarios is laid down by firma-testkit and called
// through this binding. The answer is built from the binding's own values
// (SidecarEntry through its JSON tags, *Error's Code, Path and Errno), put
// into canonical form by the testkit, and compared with the scenario's
// expected answer. See tests/conformance/README.md.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	firmastack "github.com/firma-stack/firma-stack/bindings/go"
	"github.com/firma-stack/firma-stack/bindings/go/internal/fixture"
)

type conformanceStep struct {
	Op        string   `json:"op"`
	Runtime   string   `json:"runtime"`
	ID        string   `json:"id"`
	Dir       string   `json:"dir"`
	Arg       string   `json:"arg"`
	TimeoutMS *int64   `json:"timeout_ms"`
	Skip      []string `json:"skip"`
	Expect    string   `json:"expect"`
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
	case "watch_synced":
		v, err = watchSynced(ctx, s.Runtime, s.TimeoutMS)
	case "inspect":
		var reports []firmastack.MarkerReport
		reports, err = firmastack.InspectContext(ctx, s.Runtime)
		v = nonNil(reports)
	case "metrics":
		v, err = firmastack.RenderMetricsContext(ctx, s.Runtime, firmastack.MetricsOptions{}, firmastack.MetricsText)
	case "list_filtered":
		v, err = filtered(ctx, s, firmastack.ListFiltered)
	case "inspect_filtered":
		v, err = filtered(ctx, s, firmastack.InspectFiltered)
	case "wait":
		var r struct {
			SandboxIDs []string           `json:"sandbox_ids"`
			For        firmastack.WaitFor `json:"for"`
			TimeoutMS  *int64             `json:"timeout_ms"`
		}
		if err = json.Unmarshal([]byte(s.Arg), &r); err == nil {
			timeout := 30 * time.Second
			if r.TimeoutMS != nil {
				timeout = time.Duration(*r.TimeoutMS) * time.Millisecond
			}
			v, err = firmastack.Wait(context.Background(), s.Runtime, r.SandboxIDs, r.For, timeout)
		}
	case "runtime_dir_state":
		v, err = firmastack.RuntimeDirState(s.Runtime)
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

// filtered calls a filtered operation with the step's filter.
func filtered[T any](ctx context.Context, s conformanceStep,
	call func(context.Context, string, firmastack.Filter) ([]T, error)) (any, error) {
	var f firmastack.Filter
	if err := json.Unmarshal([]byte(s.Arg), &f); err != nil {
		return nil, err
	}
	items, err := call(ctx, s.Runtime, f)
	return nonNil(items), err
}

// watchSynced returns a read-only watcher's events up to and including
// "synced".
func watchSynced(ctx context.Context, dir string, timeoutMS *int64) ([]firmastack.Event, error) {
	opts := firmastack.WatchOptions{ReadOnly: true}
	if timeoutMS != nil {
		opts.ProbeTimeout = time.Duration(*timeoutMS) * time.Millisecond
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := firmastack.Watch(ctx, dir, opts)
	if err != nil {
		return nil, err
	}
	var events []firmastack.Event
	for ev := range w.Events() {
		events = append(events, ev)
		if ev.Kind == firmastack.EventSynced {
			return events, nil
		}
	}
	return events, w.Err()
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
			k := fixture.Up(t, path)
			var plan struct {
				Steps []conformanceStep `json:"steps"`
			}
			if err := json.Unmarshal(k.Raw, &plan); err != nil {
				t.Fatal(err)
			}
			for i, s := range plan.Steps {
				if slices.Contains(s.Skip, "go") {
					continue
				}
				var actual string
				if s.Op == "disk" {
					actual = k.Ask(t, fmt.Sprintf("disk %d", i))
				} else {
					var kind string
					var v any
					within(t, neverHangs, s.Op, func() { kind, v = conformanceCall(s) })
					text, err := json.Marshal(v)
					if err != nil {
						t.Fatal(err)
					}
					actual = k.Ask(t, "canon "+kind+" "+string(text))
				}
				if actual != s.Expect {
					t.Errorf("scenario %s, step %d (%s %s%s) on go:\n  expected %s\n  actual   %s",
						name, i, s.Op, s.ID, s.Dir, s.Expect, actual)
				}
			}
		})
	}
}
