// Command worker is the Go contender of `make bench`: list and get through
// the firmastack package (cgo over the C ABI).
//
// Line protocol (see bench/src/worker.rs):
//
//	list DIR REPS    -> ok ENTRIES RUNNING ns...   (each rep: the call)
//	get DIR ID CALLS -> ok RUNNING NS              (all calls)
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	firmastack "github.com/firma-stack/firma-stack/bindings/go"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64*1024), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		w := strings.Fields(in.Text())
		var reply string
		switch {
		case len(w) == 3 && w[0] == "list":
			reps, _ := strconv.Atoi(w[2])
			times := make([]string, 0, reps)
			entries, running := 0, 0
			var err error
			for i := 0; i < reps && err == nil; i++ {
				var list []firmastack.SidecarEntry
				t0 := time.Now()
				list, err = firmastack.List(w[1])
				times = append(times, strconv.FormatInt(time.Since(t0).Nanoseconds(), 10))
				entries, running = len(list), 0
				for _, e := range list {
					if e.State == firmastack.StateRunning {
						running++
					}
				}
			}
			if err != nil {
				reply = "err " + err.Error()
			} else {
				reply = fmt.Sprintf("ok %d %d %s", entries, running, strings.Join(times, " "))
			}
		case len(w) == 4 && w[0] == "get":
			calls, _ := strconv.Atoi(w[3])
			running := 0
			var err error
			t0 := time.Now()
			for i := 0; i < calls && err == nil; i++ {
				var e *firmastack.SidecarEntry
				e, err = firmastack.Get(w[1], w[2])
				if e != nil && e.State == firmastack.StateRunning {
					running++
				}
			}
			ns := time.Since(t0).Nanoseconds()
			if err != nil {
				reply = "err " + err.Error()
			} else {
				reply = fmt.Sprintf("ok %d %d", running, ns)
			}
		case len(w) == 1 && w[0] == "quit":
			return
		default:
			reply = fmt.Sprintf("err unknown request %q", in.Text())
		}
		fmt.Fprintln(out, reply)
		out.Flush()
	}
}
