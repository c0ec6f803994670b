# Prometheus exposition (docs/design.md, "Metrics"): `firma sidecar
# metrics`, tested against a real node_exporter (textfile collector) and a
# real Prometheus server.
#
# metrics-tools installs Debian's prometheus (server + promtool) and
# prometheus-node-exporter when any of the three commands is missing. On a
# host with systemd the packages also start their services on the default
# ports (9090, 9100); the tests never use those: every server they start
# listens on a free 127.0.0.1 port of its own.
#
# tests/cli/metrics.rs (the `metrics::` tests of the `cli` test binary):
# the rendering tests run in every `cargo test` (so in test-rust too); the
# tests that need promtool, node_exporter or Prometheus are #[ignore]d there
# (cargo lists them as ignored, never as passed) and run here with
# --include-ignored, after metrics-tools; the filter `metrics::` leaves the
# rest of the binary to test-rust. A missing tool makes them fail, never
# skip.
#
# The exporter's tests (tests/cli/exporter*.rs, filter `exporter`) run here
# too: promtool on its exposition and on docs/prometheus/exporter-rules*.yml
# (`promtool test rules`), systemd-analyze verify on
# packaging/systemd/firma-exporter.service, and the three-host fleet
# (network namespaces, Prometheus, Alertmanager, as root). metrics-tools
# also installs prometheus-alertmanager and iproute2 when missing.

METRICS_TOOLS_CMDS := prometheus promtool prometheus-node-exporter prometheus-alertmanager ip systemd-analyze

TEST_LEGS += test-metrics

.PHONY: metrics-tools test-metrics

## metrics-tools: prometheus, promtool, node_exporter, alertmanager, ip, systemd-analyze, from apt only when missing.
metrics-tools:
	@missing=; \
	for c in $(METRICS_TOOLS_CMDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	    echo "installing prometheus prometheus-node-exporter prometheus-alertmanager iproute2 systemd (missing:$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends prometheus prometheus-node-exporter prometheus-alertmanager iproute2 systemd; \
	    for c in $(METRICS_TOOLS_CMDS); do \
	        command -v $$c >/dev/null || { echo "metrics-tools: $$c still missing after apt-get install" >&2; exit 1; }; \
	    done; \
	fi

## test-metrics: `firma sidecar metrics` against promtool, node_exporter and Prometheus.
test-metrics: metrics-tools build-rust
	$(CARGO) test --locked --test cli -- --include-ignored metrics:: exporter
