package firmastack_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	firmastack "github.com/firma-stack/firma-stack/bindings/go"
	"github.com/firma-stack/firma-stack/bindings/go/internal/fixture"
)

// Reliability (SECURITY.md, Fuzzing): random metadata written to markers of this (live) test process
// reads back unchanged as SidecarEntry values, and their JSON relates to the
// CLI's `sidecar status --json` bytes exactly as stated below. Seeded and
// deterministic; many markers per runtime dir keep it fast.

var roundTripSeeds = []int64{101, 202, 303, 404}

const roundTripMarkersPerDir = 60

// roundTripSpecials are characters JSON encoders treat differently; the
// seeds must exercise each of them (checked below).
var roundTripSpecials = []string{
	`"`, `\`, "/", "\n", "\t", "\r", "\b", "\f", "\x00", "\x01", "\x1f", "\x7f",
	"<", ">", "&", "'", "\u2028", "\u2029", "\u00e9", "\ufeff", "\U0001F600", "\U0010FFFF",
}

const roundTripIDChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

// roundTripCase is the metadata written for one sandbox id.
type roundTripCase struct {
	ID, Agent, Session, Authority, Policy, Started string
}

func (c roundTripCase) texts() []string {
	return []string{c.Agent, c.Session, c.Authority, c.Policy, c.Started}
}

func randomPiece(rng *rand.Rand, specialOdds float64) string {
	if rng.Float64() < specialOdds {
		return roundTripSpecials[rng.Intn(len(roundTripSpecials))]
	}
	return string(rune(0x20 + rng.Intn(0x7f-0x20)))
}

func randomText(rng *rand.Rand) string {
	roll := rng.Float64()
	switch {
	case roll < 0.1:
		return ""
	case roll < 0.2: // 1-2 KiB of UTF-8
		target := 1024 + rng.Intn(1025)
		var b strings.Builder
		for b.Len() < target {
			b.WriteString(randomPiece(rng, 0.3))
		}
		return b.String()
	default:
		var b strings.Builder
		for n := 1 + rng.Intn(40); n > 0; n-- {
			b.WriteString(randomPiece(rng, 0.4))
		}
		return b.String()
	}
}

func randomSandboxID(rng *rand.Rand) string {
	noDot := strings.Replace(roundTripIDChars, ".", "", 1)
	b := []byte{noDot[rng.Intn(len(noDot))]}
	for n := rng.Intn(40); n > 0; n-- {
		b = append(b, roundTripIDChars[rng.Intn(len(roundTripIDChars))])
	}
	return string(b)
}

func generateRoundTrip(seed int64) map[string]roundTripCase {
	rng := rand.New(rand.NewSource(seed))
	cases := map[string]roundTripCase{}
	for len(cases) < roundTripMarkersPerDir {
		id := randomSandboxID(rng)
		if _, dup := cases[id]; dup {
			continue
		}
		cases[id] = roundTripCase{
			ID: id, Agent: randomText(rng), Session: randomText(rng),
			Authority: randomText(rng), Policy: randomText(rng), Started: randomText(rng),
		}
	}
	return cases
}

// tomlString renders s as a TOML basic string: '"' and '\' escaped, control
// characters (which TOML forbids raw) as short escapes or \uXXXX, the rest
// verbatim.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// metadataTOML is a metadata.toml for c and pid. The Go binding exposes no
// writer and the text fields are random, so the text is rendered here
// (TOML quoting, not Go's %q) and written with
// fixture.WriteMarker (plus sidecar.pid, as the core's writer lays a marker
// out); a wrong rendering fails the typed comparison.
func (c roundTripCase) metadataTOML(pid int) string {
	return fmt.Sprintf("sandbox_id = %s\nagent_id = %s\nsession_id = %s\nauthority_url = %s\n"+
		"policy_bundle_version = %s\npid = %d\nstarted_at = %s\n",
		tomlString(c.ID), tomlString(c.Agent), tomlString(c.Session), tomlString(c.Authority),
		tomlString(c.Policy), pid, tomlString(c.Started))
}

// jsonEscapes rewrites the CLI's JSON (serde_json, which escapes only '"',
// '\' and U+0000-U+001F) into what encoding/json produces. The replaced
// characters only ever occur inside strings (keys and literals are plain
// ASCII), so a byte-level replacement is exact.
var (
	// An Encoder with SetEscapeHTML(false) still escapes U+2028 and U+2029.
	encoderEscapes = strings.NewReplacer("\u2028", `\u2028`, "\u2029", `\u2029`)
	// json.Marshal also escapes <, > and & for HTML.
	marshalEscapes = strings.NewReplacer("\u2028", `\u2028`, "\u2029", `\u2029`,
		"<", `\u003c`, ">", `\u003e`, "&", `\u0026`)
)

func TestRoundTripGeneratorCoverage(t *testing.T) {
	var texts []string
	for _, seed := range roundTripSeeds {
		for _, c := range generateRoundTrip(seed) {
			texts = append(texts, c.texts()...)
		}
	}
	all := strings.Join(texts, "")
	for _, s := range roundTripSpecials {
		if !strings.Contains(all, s) {
			t.Errorf("the seeds never write %q", s)
		}
	}
	var empty, long bool
	for _, s := range texts {
		empty = empty || s == ""
		long = long || len(s) >= 1024
	}
	if !empty || !long {
		t.Errorf("the seeds write an empty string: %v, a 1-2 KiB string: %v", empty, long)
	}
}

func TestRoundTripJSON(t *testing.T) {
	firma := fixture.Binary(t, "firma")
	pid := os.Getpid()
	for _, seed := range roundTripSeeds {
		seed := seed
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			dir := fixture.RuntimeDir(t)
			cases := generateRoundTrip(seed)
			for id, c := range cases {
				marker := fixture.WriteMarker(t, dir, id, c.metadataTOML(pid))
				// As the core's writer does: sidecar.pid, whose mtime is the
				// start time uptime_secs counts from.
				if err := os.WriteFile(filepath.Join(marker, "sidecar.pid"), []byte(fmt.Sprintf("%d\n", pid)), 0o600); err != nil {
					t.Fatal(err)
				}
			}

			// uptime_secs ticks every second: use a CLI read bracketed by
			// two equal listings, so all three saw the same second.
			var entries []firmastack.SidecarEntry
			var cli []byte
			for attempt := 0; ; attempt++ {
				before, err := firmastack.List(dir)
				if err != nil {
					t.Fatal(err)
				}
				cli = fixture.Output(t, firma, "--runtime-dir", dir, "sidecar", "status", "--json")
				after, err := firmastack.List(dir)
				if err != nil {
					t.Fatal(err)
				}
				if reflect.DeepEqual(before, after) {
					entries = before
					break
				}
				if attempt == 5 {
					t.Fatal("listing kept changing between reads")
				}
			}

			// (a) Every typed field is what was written.
			if len(entries) != len(cases) {
				t.Fatalf("List returned %d entries, wrote %d markers", len(entries), len(cases))
			}
			if !sort.SliceIsSorted(entries, func(i, j int) bool { return entries[i].SandboxID < entries[j].SandboxID }) {
				t.Error("entries are not sorted by sandbox id")
			}
			for _, e := range entries {
				c, ok := cases[e.SandboxID]
				if !ok {
					t.Fatalf("unexpected entry %q", e.SandboxID)
				}
				got := roundTripCase{e.SandboxID, e.AgentID, e.SessionID, e.AuthorityURL, e.PolicyBundleVersion, e.StartedAt}
				if got != c {
					t.Errorf("entry %s:\n got %+q\nwant %+q", e.SandboxID, got, c)
				}
				if e.PID != uint32(pid) || e.State != firmastack.StateUnhealthy {
					t.Errorf("entry %s: pid %d state %s, want pid %d unhealthy (live, no socket)", e.SandboxID, e.PID, e.State, pid)
				}
				if want := filepath.Join(dir, "run", e.SandboxID, "sidecar.sock"); e.Listen != want {
					t.Errorf("entry %s: listen %q, want %q", e.SandboxID, e.Listen, want)
				}
				if e.UptimeSecs == nil {
					t.Errorf("entry %s: uptime_secs is null", e.SandboxID)
				}
			}

			// (b) An Encoder without HTML escaping writes the CLI's bytes,
			// except that it escapes U+2028 and U+2029.
			var enc bytes.Buffer
			encoder := json.NewEncoder(&enc)
			encoder.SetEscapeHTML(false)
			if err := encoder.Encode(entries); err != nil {
				t.Fatal(err)
			}
			if want := encoderEscapes.Replace(string(cli)); enc.String() != want {
				t.Errorf("Encoder(SetEscapeHTML(false)) differs from the CLI beyond U+2028/U+2029:\ngo:  %s\ncli: %s", enc.String(), want)
			}
			if !strings.ContainsAny(string(cli), "\u2028\u2029") {
				t.Error("fixture not as intended: no U+2028/U+2029 in this dir")
			}

			// The CLI's JSON decodes into the Go type as the same values.
			var decoded []firmastack.SidecarEntry
			if err := json.Unmarshal(cli, &decoded); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(decoded, entries) {
				t.Error("json.Unmarshal of the CLI's JSON differs from List")
			}

			// json.Marshal of the decoded values is the CLI's JSON with
			// <, >, &, U+2028 and U+2029 escaped.
			marshaled, err := json.Marshal(decoded)
			if err != nil {
				t.Fatal(err)
			}
			if want := marshalEscapes.Replace(strings.TrimSuffix(string(cli), "\n")); string(marshaled) != want {
				t.Errorf("json.Marshal differs from the CLI beyond <>&, U+2028, U+2029:\ngo:  %s\ncli: %s", marshaled, want)
			}

			// And Unmarshal(Marshal(x)) == x: the Go type round-trips itself.
			var again []firmastack.SidecarEntry
			if err := json.Unmarshal(marshaled, &again); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again, entries) {
				t.Error("json.Unmarshal(json.Marshal(entries)) differs from entries")
			}
		})
	}
}
