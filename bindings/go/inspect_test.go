package firmastack

// Inspect as the binding's own: the conversion of each report into Go types
// (errors into *Error), the JSON round trip against the C ABI's text,
// context deadlines, errors, and that every code the core has (verdicts,
// reasons, error codes) has its Go constant. Which reason each kind of
// marker gets is the core's, covered by its tests and the conformance suite.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/firma-stack/firma-stack/bindings/go/internal/fixture"
)

// inspectFleet is a runtime dir with one marker of each verdict, plus a
// reserved dot-name that is never reported, laid down by the testkit
// (fixtures/inspect-fleet.json).
func inspectFleet(t *testing.T) (dir string, dead int) {
	t.Helper()
	kit := fixture.Up(t, "fixtures/inspect-fleet.json")
	dir = kit.Place(t, "runtime")
	pid, ok := kit.Plan.Placeholders["pid:gone"].(float64)
	if !ok {
		t.Fatalf("the fixture has no pid:gone placeholder: %v", kit.Plan.Placeholders)
	}
	return dir, int(pid)
}

func TestInspectConvertsEveryField(t *testing.T) {
	dir, dead := inspectFleet(t)
	reports, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range reports {
		names = append(names, r.Name)
	}
	if strings.Join(names, " ") != "dead-1 garbage-2 renamed-3 web-4" {
		t.Fatalf("names = %v", names)
	}
	stale, garbage, renamed, web := reports[0], reports[1], reports[2], reports[3]

	if stale.Verdict != VerdictStale || stale.State == nil || *stale.State != StateStopped ||
		stale.Reason != ReasonProcessGone || stale.Error != nil {
		t.Errorf("stale report = %+v", stale)
	}
	if want := "no process with pid " + strconv.Itoa(dead); stale.Detail != want {
		t.Errorf("detail = %q, want %q", stale.Detail, want)
	}
	if stale.Entry == nil || stale.Entry.SandboxID != "dead-1" || stale.Entry.PID != uint32(dead) ||
		stale.Entry.Listen != "127.0.0.1:9" || stale.Entry.UptimeSecs != nil {
		t.Errorf("stale entry = %+v", stale.Entry)
	}

	for _, tc := range []struct {
		r      MarkerReport
		reason Reason
		target *Error
		path   string
	}{
		{garbage, ReasonParseError, ErrMarkerParse, filepath.Join(dir, "run", "garbage-2", "metadata.toml")},
		{renamed, ReasonIDMismatch, ErrIdentityMismatch, filepath.Join(dir, "run", "renamed-3")},
	} {
		r := tc.r
		if r.Verdict != VerdictBroken || r.State != nil || r.Entry != nil || r.Reason != tc.reason {
			t.Errorf("%s: report = %+v", r.Name, r)
		}
		if r.Error == nil || !errors.Is(r.Error, tc.target) || r.Error.Path != tc.path ||
			r.Error.Errno != 0 || r.Error.Message == "" {
			t.Errorf("%s: error = %#v, want %v at %s", r.Name, r.Error, tc.target, tc.path)
		}
	}
	if web.Verdict != VerdictLive || web.State == nil || *web.State != StateRunning ||
		web.Reason != ReasonServing || web.Entry == nil || web.Entry.State != StateRunning {
		t.Errorf("live report = %+v", web)
	}
	if !fixture.Exists(t, filepath.Join(dir, "run", "dead-1")) {
		t.Error("inspect removed the stale marker")
	}
}

// json.Marshal of the decoded reports is the C ABI's JSON, byte for byte
// (the strings here hold nothing encoding/json escapes differently).
func TestInspectJSONRoundTripsTheCText(t *testing.T) {
	dir, _ := inspectFleet(t)
	// The live sidecar's uptime ticks: decode a C answer that equals the
	// one after it.
	var text string
	for attempt := 0; ; attempt++ {
		first, err := inspectJSON(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		second, err := inspectJSON(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if first == second {
			text = first
			break
		}
		if attempt == 5 {
			t.Fatal("the reports kept changing between reads")
		}
	}
	var reports []MarkerReport
	if err := json.Unmarshal([]byte(text), &reports); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(reports); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSuffix(buf.String(), "\n"); got != text {
		t.Errorf("round trip differs:\n Go %s\n C  %s", got, text)
	}

}

// The same directory through the firma CLI (skipped, saying why, while the
// CLI has no inspect).
func TestInspectEqualsTheCLI(t *testing.T) {
	dir, _ := inspectFleet(t)
	firma := fixture.Binary(t, "firma")
	var stderr bytes.Buffer
	cmd := exec.Command(firma, "--runtime-dir", dir, "sidecar", "inspect", "--json")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && strings.Contains(stderr.String(), "unrecognized subcommand") {
		first, _, _ := strings.Cut(stderr.String(), "\n")
		t.Skipf("this firma has no `sidecar inspect` yet (%s)", first)
	}
	if err != nil {
		t.Fatalf("firma sidecar inspect --json: %v: %s", err, stderr.String())
	}
	reports, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	var cli []MarkerReport
	if err := json.Unmarshal(out, &cli); err != nil {
		t.Fatalf("CLI JSON: %v: %s", err, out)
	}
	if len(cli) != len(reports) {
		t.Fatalf("CLI reports %d entries, Go %d", len(cli), len(reports))
	}
	for i := range cli {
		// the live sidecar's uptime may have ticked between the calls
		if cli[i].Entry != nil && reports[i].Entry != nil {
			cli[i].Entry.UptimeSecs = reports[i].Entry.UptimeSecs
		}
		a, _ := json.Marshal(cli[i])
		b, _ := json.Marshal(reports[i])
		if !bytes.Equal(a, b) {
			t.Errorf("CLI and Go differ:\n CLI %s\n Go  %s", a, b)
		}
	}
}

func TestErrorObjectJSON(t *testing.T) {
	in := `{"code":"io","message":"cannot open /x: Permission denied (os error 13)","path":"/x","errno":13}`
	var e Error
	if err := json.Unmarshal([]byte(in), &e); err != nil {
		t.Fatal(err)
	}
	want := Error{Code: CodeIO, Message: "cannot open /x: Permission denied (os error 13)", Path: "/x", Errno: syscall.EACCES}
	if e != want {
		t.Errorf("decoded %#v, want %#v", e, want)
	}
	if out, _ := json.Marshal(&e); string(out) != in {
		t.Errorf("encoded %s, want %s", out, in)
	}
	nulls := `{"code":"marker_parse","message":"m","path":null,"errno":null}`
	if err := json.Unmarshal([]byte(nulls), &e); err != nil || e != (Error{Code: CodeMarkerParse, Message: "m"}) {
		t.Errorf("decoded %#v, %v", e, err)
	}
	if out, _ := json.Marshal(e); string(out) != nulls {
		t.Errorf("encoded %s, want %s", out, nulls)
	}
	for _, bad := range []string{`{"message":"no code"}`, `"a string"`, `{"code":1}`} {
		if err := json.Unmarshal([]byte(bad), &e); err == nil {
			t.Errorf("%s decoded without an error", bad)
		}
	}
}

func TestInspectContextDeadlines(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	fixture.Start(t, dir, "stuck-tcp", "--mode", "wedged", "--tcp", "127.0.0.1:0")

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := InspectContext(canceled, dir); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
	past, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	if _, err := InspectContext(past, dir); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("past deadline: %v", err)
	}

	// The deadline is the probe timeout: a dropped SYN is reported as a
	// timeout once it passes.
	short, cancel3 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel3()
	began := time.Now()
	reports, err := InspectContext(short, dir)
	if err != nil || len(reports) != 1 || reports[0].Reason != ReasonTimeout {
		t.Fatalf("InspectContext(300ms) = %+v, %v; want one timeout report", reports, err)
	}
	if elapsed := time.Since(began); elapsed > 30*time.Second {
		t.Errorf("took %v", elapsed) // never hangs
	}

	// A deadline beyond the core's maximum probes for the maximum: no
	// invalid-argument error. (A serving sidecar answers at once.)
	far, cancel4 := context.WithTimeout(context.Background(), MaxTimeout+time.Hour)
	defer cancel4()
	if ms, err := timeoutFrom(far); err != nil || ms != maxTimeoutMS {
		t.Errorf("timeoutFrom(far) = %d, %v", ms, err)
	}
	serving := fixture.RuntimeDir(t)
	fixture.Start(t, serving, "web")
	reports, err = InspectContext(far, serving)
	if err != nil || len(reports) != 1 || reports[0].Reason != ReasonServing {
		t.Errorf("InspectContext(far) = %+v, %v; want one serving report", reports, err)
	}
	if DefaultTimeout != 200*time.Millisecond || MaxTimeout != 10*time.Minute {
		t.Errorf("DefaultTimeout %v, MaxTimeout %v: not the header's numbers", DefaultTimeout, MaxTimeout)
	}
}

func TestInspectErrors(t *testing.T) {
	dir := fixture.RuntimeDir(t)
	if reports, err := Inspect(dir); err != nil || reports == nil || len(reports) != 0 {
		t.Errorf("missing run/: %v, %v; want an empty, non-nil slice", reports, err)
	}
	run := filepath.Join(dir, "run")
	if err := os.WriteFile(run, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Inspect(dir)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrIO) || !errors.Is(err, syscall.ENOTDIR) || e.Path != run {
		t.Errorf("run/ a file: %#v", err)
	}
	if _, err := Inspect("bad\x00dir"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("NUL in dir: %v", err)
	}
	if _, err := Inspect("/tmp/\xff\xfe-not-utf8"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("non-UTF-8 dir: %v", err)
	}
}

// ---- every core code has its Go constant ----------------------------------

// goConstants returns the string constants of type typeName declared in
// this package's file, by value.
func goConstants(t *testing.T, file, typeName string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != typeName {
				continue
			}
			for i, name := range vs.Names {
				lit := vs.Values[i].(*ast.BasicLit)
				value, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				found[value] = name.Name
			}
		}
	}
	return found
}

// coreCodes returns the codes of the core enum's as_str match.
func coreCodes(t *testing.T, enum string) []string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(fixture.RepoRoot(t), "src", "sidecar_markers", "model.rs"))
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, m := range regexp.MustCompile(enum+`::\w+ => "([a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		codes = append(codes, m[1])
	}
	if len(codes) == 0 {
		t.Fatalf("no %s arms found in model.rs", enum)
	}
	return codes
}

func sameSet(t *testing.T, what string, core []string, goConsts map[string]string) {
	t.Helper()
	var goValues []string
	for v := range goConsts {
		goValues = append(goValues, v)
	}
	sort.Strings(core)
	sort.Strings(goValues)
	if strings.Join(core, " ") != strings.Join(goValues, " ") {
		t.Errorf("%s: core has %v, Go constants %v", what, core, goValues)
	}
}

func TestEveryStateVerdictAndReasonHasAConstant(t *testing.T) {
	sameSet(t, "Verdict", coreCodes(t, "Verdict"), goConstants(t, "codes.go", "Verdict"))
	sameSet(t, "Reason", coreCodes(t, "Reason"), goConstants(t, "codes.go", "Reason"))
	sameSet(t, "State", coreCodes(t, "State"), goConstants(t, "codes.go", "State"))
}

// Every code the linked library reports (firma_error_codes) has an
// ErrorCode constant and a sentinel, and none is left over; the status
// fallback table is the library's own, in status order.
func TestEveryLibraryErrorCodeHasAConstantAndSentinel(t *testing.T) {
	codes, err := ErrorCodes()
	if err != nil {
		t.Fatal(err)
	}
	var lib []string
	for _, c := range codes {
		lib = append(lib, string(c))
	}
	consts := goConstants(t, "codes.go", "ErrorCode")
	sameSet(t, "ErrorCode", lib, consts)

	// Sentinels: `ErrX = &Error{Code: CodeX}`, one per constant.
	f, err := parser.ParseFile(token.NewFileSet(), "codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	sentinelOf := map[string]string{} // constant name -> sentinel name
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Values) != len(vs.Names) {
			return true
		}
		for i, v := range vs.Values {
			u, ok := v.(*ast.UnaryExpr)
			if !ok {
				continue
			}
			lit, ok := u.X.(*ast.CompositeLit)
			if !ok || len(lit.Elts) != 1 {
				continue
			}
			if kv, ok := lit.Elts[0].(*ast.KeyValueExpr); ok {
				if c, ok := kv.Value.(*ast.Ident); ok {
					sentinelOf[c.Name] = vs.Names[i].Name
				}
			}
		}
		return true
	})
	for _, code := range lib {
		if name, ok := consts[code]; ok && sentinelOf[name] == "" {
			t.Errorf("code %q (%s) has no sentinel", code, name)
		}
	}
	if got := statusCodes(); len(got) != len(codes) || !equalCodes(got, codes) {
		t.Errorf("status table %v, library %v", got, codes)
	}
	// The fallback for an undecodable error object names the status's code.
	if e := decodeError(3, "not json"); e.Code != codes[2] {
		t.Errorf("status 3 fallback: %v", e.Code)
	}
	if e := decodeError(99, "not json"); e.Code != CodeInternal {
		t.Errorf("unknown status fallback: %v", e.Code)
	}
}

func equalCodes(a, b []ErrorCode) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
