package firmastack

/*
#include <stdlib.h>
#include "firma_stack.h"
*/
import "C"

import (
	"context"
	"sync"
	"time"
)

// Event is one event of a [Watch] stream: the JSON object of every surface.
type Event struct {
	Kind      EventKind     `json:"event"`
	SandboxID string        `json:"sandbox_id,omitempty"`
	Entry     *SidecarEntry `json:"entry,omitempty"`
	Previous  State         `json:"previous,omitempty"`
	Reason    EventReason   `json:"reason,omitempty"`
	// At is when the watcher saw it (the JSON's RFC 3339 UTC time, with
	// milliseconds).
	At time.Time `json:"at"`
	// Err is the failure of an EventError (a *Error), nil otherwise.
	Err error `json:"-"`
}

// WatchOptions configures [Watch]; the zero value means the defaults.
type WatchOptions struct {
	// ProbeInterval: how often every known sidecar is judged again and its
	// endpoint probed (0: 1 s). Exits are seen at once through pidfds.
	ProbeInterval time.Duration
	// ProbeTimeout: how long a probe may take (0: 200 ms).
	ProbeTimeout time.Duration
	// RescanInterval: how often all of run/ is rescanned as a safety net
	// (0: 30 s).
	RescanInterval time.Duration
	// ReadOnly: do not collect stale markers (a stopped sidecar is then
	// reported EventChanged to StateStopped).
	ReadOnly bool
}

// Watcher is a running [Watch]: receive from Events until the context is
// cancelled.
type Watcher struct {
	events chan Event
	mu     sync.Mutex
	err    error
}

// Events delivers the stream. It is closed only when the context passed
// to [Watch] is cancelled (after which every resource is released): a
// failure is delivered in the stream as an [EventError] and the stream
// goes on.
func (w *Watcher) Events() <-chan Event { return w.events }

// Err is the error of the latest EventError while it persists: nil before
// any failure and again once the library answers without one.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// waitSlice bounds each wait inside the library, so cancelling the
// context takes effect within it; it is also the pause after a failure
// (the library itself tries again one probe interval later).
const waitSlice = 100 * time.Millisecond

// Watch starts watching runtimeDir ("" means the default): EventAppeared
// for every live sidecar, one EventSynced, then EventChanged, EventGone
// and EventAppeared as they happen. The initial scan happens before Watch
// returns (errors in it, or bad options, are returned). One goroutine
// reads the stream; cancel ctx to stop it: Events is then closed and the
// watcher's descriptors released. A later failure is an EventError in the
// stream, never its end. Events is unbuffered: a slow receiver delays the
// stream but loses nothing.
//
//	w, err := firmastack.Watch(ctx, "", firmastack.WatchOptions{})
//	for ev := range w.Events() {
//		if ev.Kind == firmastack.EventError { log.Print(ev.Err); continue }
//		...
//	}
func Watch(ctx context.Context, runtimeDir string, opts WatchOptions) (*Watcher, error) {
	o := map[string]any{}
	if opts.ProbeInterval != 0 {
		o["probe_interval_ms"] = durationMillis(opts.ProbeInterval)
	}
	if opts.ProbeTimeout != 0 {
		o["timeout_ms"] = durationMillis(opts.ProbeTimeout)
	}
	if opts.RescanInterval != 0 {
		o["rescan_interval_ms"] = durationMillis(opts.RescanInterval)
	}
	if opts.ReadOnly {
		o["collect"] = false
	}
	js, err := optionsJSON(o)
	if err != nil {
		return nil, err
	}
	dir, cOpts, err := dirAnd(runtimeDir, "options", js)
	if err != nil {
		return nil, err
	}
	defer freeBoth(dir, cOpts)

	var handle *C.firma_watch
	var errJSON *C.char
	status := C.firma_watch_open(dir, cOpts, &handle, &errJSON)
	if status != C.FIRMA_OK {
		_, err := takeResult(status, errJSON)
		return nil, err
	}
	w := &Watcher{events: make(chan Event)}
	go w.run(ctx, handle)
	return w, nil
}

// durationMillis rounds up, so a positive duration never becomes 0 ms
// (which the library refuses).
func durationMillis(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

func (w *Watcher) run(ctx context.Context, handle *C.firma_watch) {
	defer close(w.events)
	defer C.firma_watch_close(handle)
	slice := C.int32_t(waitSlice / time.Millisecond)
	for ctx.Err() == nil {
		var out *C.char
		status := C.firma_watch_next(handle, slice, &out)
		text, err := takeResult(status, out)
		var ev Event
		if err == nil {
			if text == "null" {
				w.setErr(nil)
				continue
			}
			err = decode(text, &ev)
		}
		if err != nil {
			// Not the end: deliver it, pause, and go on.
			ev = Event{Kind: EventError, Err: err, At: time.Now().UTC().Truncate(time.Millisecond)}
		}
		w.setErr(ev.Err)
		select {
		case w.events <- ev:
		case <-ctx.Done():
			return
		}
		if err != nil {
			select {
			case <-time.After(waitSlice):
			case <-ctx.Done():
				return
			}
		}
	}
}

func (w *Watcher) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
}
