package firmastack_test

import (
	"errors"
	"strings"
	"testing"

	firmastack "github.com/firma-stack/firma-stack/bindings/go"
	"github.com/firma-stack/firma-stack/bindings/go/internal/fixture"
)

// RenderMetrics: both formats and collection through the core's one
// encoder; the series themselves are compared with every other surface by
// TestConformance.
func TestRenderMetricsFormatsAndCollection(t *testing.T) {
	k := fixture.Up(t, "fixtures/live-and-stale.json")
	rt := k.Place(t, "runtime")

	text, err := firmastack.RenderMetrics(rt, firmastack.MetricsOptions{NoCollect: true}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# TYPE firma_sidecar_up gauge\n", "firma_sidecars{state=\"stopped\"} 20\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("text format without %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "# EOF") {
		t.Errorf("text format with # EOF:\n%s", text)
	}

	om, err := firmastack.RenderMetrics(rt, firmastack.MetricsOptions{NoCollect: true}, firmastack.MetricsOpenMetrics)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(om, "# EOF\n") || !strings.Contains(om, "# TYPE firma_build info\n") {
		t.Errorf("not OpenMetrics:\n%s", om)
	}

	text, err = firmastack.RenderMetrics(rt, firmastack.MetricsOptions{}, firmastack.MetricsText)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "firma_markers_collected 20\n") {
		t.Errorf("the default collects and counts:\n%s", text)
	}
}

func TestRenderMetricsRefusesAnUnknownFormat(t *testing.T) {
	_, err := firmastack.RenderMetrics(t.TempDir(), firmastack.MetricsOptions{}, "json")
	if !errors.Is(err, firmastack.ErrInvalidArgument) || !strings.Contains(err.Error(), "format") {
		t.Fatalf("got %v, want ErrInvalidArgument naming format", err)
	}
}
