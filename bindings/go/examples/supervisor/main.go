// Command supervisor is an example supervisor built on firmastack: it
// collects the markers of sidecars that died, prints the sidecars alive on
// this host, and optionally looks up particular runs.
//
//	supervisor [-runtime-dir DIR] [-timeout 200ms] [SANDBOX_ID...]
//
// Exit status: 0 on success, 1 when a call into the library failed or a
// requested run is missing or broken, 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	firmastack "github.com/firma-stack/firma-stack/bindings/go"
)

func main() {
	runtimeDir := flag.String("runtime-dir", "", "runtime directory (default: the library's default)")
	timeout := flag.Duration("timeout", 200*time.Millisecond, "how long each sidecar may take to accept a connection")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [-runtime-dir DIR] [-timeout D] [SANDBOX_ID...]\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if *timeout <= 0 {
		fmt.Fprintln(os.Stderr, "supervisor: -timeout must be positive")
		os.Exit(2)
	}
	os.Exit(run(os.Stdout, os.Stderr, *runtimeDir, *timeout, flag.Args()))
}

// run does the supervisor's work and returns the exit status.
func run(stdout, stderr io.Writer, runtimeDir string, timeout time.Duration, ids []string) int {
	status := 0

	// Collect first, so the report says which runs died.
	removed, err := firmastack.GCStale(runtimeDir)
	if err != nil {
		fmt.Fprintf(stderr, "supervisor: collecting stale markers: %v\n", err)
		return 1
	}
	for _, id := range removed {
		fmt.Fprintf(stdout, "collected stale marker %s\n", id)
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	entries, err := firmastack.ListContext(ctx, runtimeDir)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "supervisor: listing sidecars: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%d live sidecar(s)\n", len(entries))
	if len(entries) > 0 {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SANDBOX\tSTATE\tPID\tUPTIME\tAGENT\tLISTEN")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n",
				e.SandboxID, e.State, e.PID, uptime(e.UptimeSecs), e.AgentID, e.Listen)
		}
		tw.Flush()
	}

	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		e, err := firmastack.GetContext(ctx, runtimeDir, id)
		cancel()
		switch {
		case errors.Is(err, firmastack.ErrInvalidArgument):
			fmt.Fprintf(stdout, "%s: not a valid sandbox id\n", id)
			status = 1
		case errors.Is(err, firmastack.ErrMarkerParse), errors.Is(err, firmastack.ErrIdentityMismatch):
			fmt.Fprintf(stdout, "%s: broken marker, left in place: %v\n", id, err)
			status = 1
		case err != nil:
			fmt.Fprintf(stderr, "supervisor: %s: %v\n", id, err)
			status = 1
		case e == nil:
			fmt.Fprintf(stdout, "%s: no such run\n", id)
			status = 1
		default:
			fmt.Fprintf(stdout, "%s: %s (pid %d, listening on %s)\n", id, e.State, e.PID, e.Listen)
		}
	}
	return status
}

func uptime(secs *uint64) string {
	if secs == nil {
		return "-"
	}
	return (time.Duration(*secs) * time.Second).String()
}
