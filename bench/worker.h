/*
 * worker.h — the worker line protocol of firma-bench (bench/src/worker.rs)
 * for the C contenders, floor.c and c_worker.c: the request loop, so each
 * of them only says how to list once and get once.
 *
 *   list DIR REPS    -> ok ENTRIES RUNNING ns...   (one time per rep)
 *   get DIR ID CALLS -> ok RUNNING NS              (all calls together)
 *   quit
 *
 * Anything else, or a failed call, is answered "err ...".
 */
#ifndef FIRMA_BENCH_WORKER_H
#define FIRMA_BENCH_WORKER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline long long worker_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One listing of dir: sets *entries, *running and *ns (the time of the
 * call and of releasing its result, never of counting); 0 or a status. */
typedef int (*worker_list_fn)(const char *dir, long *entries, long *running, long long *ns);

/* One get of id in dir: *running += 1 when it is running; 0 or a status.
 * The caller times all calls together. */
typedef int (*worker_get_fn)(const char *dir, const char *id, long *running);

static void worker_reply_list(const char *dir, int reps, worker_list_fn list) {
    long long *t = calloc((size_t)reps, sizeof *t);
    long entries = 0, running = 0;
    int status = t == NULL ? -1 : 0;
    for (int i = 0; status == 0 && i < reps; i++) status = list(dir, &entries, &running, &t[i]);
    if (status != 0) {
        printf("err list %s: status %d\n", dir, status);
    } else {
        printf("ok %ld %ld", entries, running);
        for (int i = 0; i < reps; i++) printf(" %lld", t[i]);
        printf("\n");
    }
    free(t);
}

static void worker_reply_get(const char *dir, const char *id, int calls, worker_get_fn get) {
    long running = 0;
    int status = 0;
    long long t0 = worker_now_ns();
    for (int i = 0; status == 0 && i < calls; i++) status = get(dir, id, &running);
    long long total = worker_now_ns() - t0;
    if (status != 0)
        printf("err get %s: status %d\n", id, status);
    else
        printf("ok %ld %lld\n", running, total);
}

/* Answers requests on stdin until "quit" or end of input; get may be NULL
 * (the contender does not do it). Returns main's exit status. */
static int worker_serve(worker_list_fn list, worker_get_fn get) {
    char line[8192], dir[4096], id[512];
    int n;
    while (fgets(line, sizeof line, stdin)) {
        if (sscanf(line, "list %4095s %d", dir, &n) == 2 && n > 0)
            worker_reply_list(dir, n, list);
        else if (get && sscanf(line, "get %4095s %511s %d", dir, id, &n) == 3 && n > 0)
            worker_reply_get(dir, id, n, get);
        else if (strncmp(line, "quit", 4) == 0)
            break;
        else
            printf("err unknown request\n");
        fflush(stdout);
    }
    return 0;
}

#endif
