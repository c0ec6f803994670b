package firmastack

/*
#include <stdlib.h>
#include "firma_stack.h"
*/
import "C"

import (
	"context"
	"unsafe"
)

// MetricsFormat is the exposition format of [RenderMetrics].
type MetricsFormat string

const (
	// MetricsText is the Prometheus text format 0.0.4
	// (Content-Type "text/plain; version=0.0.4; charset=utf-8"); "" means
	// it too.
	MetricsText MetricsFormat = "text"
	// MetricsOpenMetrics is OpenMetrics 1.0.0, ending "# EOF"
	// (Content-Type "application/openmetrics-text; version=1.0.0; charset=utf-8").
	MetricsOpenMetrics MetricsFormat = "openmetrics"
)

// MetricsOptions says how [RenderMetrics] scans. The zero value is the
// default: stale markers are collected (as [List] does) and counted.
type MetricsOptions struct {
	// NoCollect removes nothing: the sidecars of stale markers are shown
	// with state "stopped" instead.
	NoCollect bool
}

type metricsOptionsJSON struct {
	Format    MetricsFormat `json:"format"`
	TimeoutMS *uint32       `json:"timeout_ms"`
	Collect   bool          `json:"collect"`
}

// RenderMetrics scans runtimeDir ("" means the default) once and renders
// its sidecars as Prometheus metrics in format, through the core's one
// encoder (firma_render_metrics): the same series as `firma sidecar
// metrics` and every other surface's render_metrics, ready to serve from
// a supervisor's own HTTP handler. A missing or unreadable runtime
// directory is not an error: its metrics say firma_runtime_dir_up 0. An
// unknown format is an error matching [ErrInvalidArgument].
func RenderMetrics(runtimeDir string, opts MetricsOptions, format MetricsFormat) (string, error) {
	return RenderMetricsContext(context.Background(), runtimeDir, opts, format)
}

// RenderMetricsContext is [RenderMetrics] with the probe timeout taken
// from ctx's deadline.
func RenderMetricsContext(ctx context.Context, runtimeDir string, opts MetricsOptions, format MetricsFormat) (string, error) {
	timeout, dir, err := timeoutAndDir(ctx, runtimeDir)
	if err != nil {
		return "", err
	}
	defer C.free(unsafe.Pointer(dir))
	if format == "" {
		format = MetricsText
	}
	o := metricsOptionsJSON{Format: format, Collect: !opts.NoCollect}
	if timeout != 0 {
		ms := uint32(timeout)
		o.TimeoutMS = &ms
	}
	js, err := optionsJSON(o)
	if err != nil {
		return "", err
	}
	cjs, err := cString("options", js)
	if err != nil {
		return "", err
	}
	defer C.free(unsafe.Pointer(cjs))
	return stringResult(func(out **C.char) C.int32_t {
		return C.firma_render_metrics(dir, cjs, out)
	})
}
