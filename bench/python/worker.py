"""The Python contender of `make bench`: list and get through the
firma_stack package (run with .venv/bin/python).

Line protocol (see bench/src/worker.rs):
  list DIR REPS    -> ok ENTRIES RUNNING ns...   (each rep: call + release)
  get DIR ID CALLS -> ok RUNNING NS              (all calls)
"""

import sys
import time

import firma_stack


def main() -> None:
    running_state = firma_stack.State.RUNNING
    clock = time.perf_counter_ns
    for line in sys.stdin:
        words = line.split()
        if len(words) == 3 and words[0] == "list":
            d, reps = words[1], int(words[2])
            times = []
            entries = running = 0
            for _ in range(reps):
                t0 = clock()
                r = firma_stack.list(d)
                t1 = clock()
                # Counted outside the timed region; releasing is timed.
                entries = len(r)
                running = sum(1 for e in r if e.state == running_state)
                t2 = clock()
                del r
                times.append((t1 - t0) + (clock() - t2))
            reply = "ok %d %d %s" % (entries, running, " ".join(map(str, times)))
        elif len(words) == 4 and words[0] == "get":
            d, sid, calls = words[1], words[2], int(words[3])
            get = firma_stack.get
            running = 0
            t0 = clock()
            for _ in range(calls):
                e = get(d, sid)
                if e is not None and e.state == running_state:
                    running += 1
            reply = "ok %d %d" % (running, clock() - t0)
        elif words[:1] == ["quit"]:
            break
        else:
            reply = "err unknown request %r" % line
        sys.stdout.write(reply + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
