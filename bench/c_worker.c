/*
 * c_worker.c — the C contender of `make bench`: list and get through the C
 * ABI (include/firma_stack.h), linked against target/release/libfirma_stack.a.
 *
 * Line protocol (see bench/src/run.rs):
 *   list DIR REPS    -> ok ENTRIES RUNNING ns...   (each rep: call + free)
 *   get DIR ID CALLS -> ok RUNNING NS              (all calls, each + free)
 * Counting entries in the JSON happens outside the timed region.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "firma_stack.h"

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long count(const char *s, const char *needle) {
    long n = 0;
    size_t len = strlen(needle);
    while ((s = strstr(s, needle)) != NULL) {
        n++;
        s += len;
    }
    return n;
}

int main(void) {
    char line[8192], dir[4096], id[512];
    int reps;
    while (fgets(line, sizeof line, stdin)) {
        if (sscanf(line, "list %4095s %d", dir, &reps) == 2 && reps > 0) {
            long long *t = calloc((size_t)reps, sizeof *t);
            long entries = 0, running = 0;
            int32_t status = FIRMA_OK;
            for (int i = 0; t && i < reps && status == FIRMA_OK; i++) {
                char *json = NULL;
                long long t0 = now_ns();
                status = firma_sidecar_list(dir, &json);
                long long t1 = now_ns();
                if (status == FIRMA_OK && i == reps - 1) {
                    entries = count(json, "\"sandbox_id\":");
                    running = count(json, "\"state\":\"running\"");
                }
                long long t2 = now_ns();
                firma_string_free(json);
                t[i] = (t1 - t0) + (now_ns() - t2);
            }
            if (!t || status != FIRMA_OK) {
                printf("err status %d\n", (int)status);
            } else {
                printf("ok %ld %ld", entries, running);
                for (int i = 0; i < reps; i++) printf(" %lld", t[i]);
                printf("\n");
            }
            free(t);
        } else if (sscanf(line, "get %4095s %511s %d", dir, id, &reps) == 3 && reps > 0) {
            long running = 0;
            int32_t status = FIRMA_OK;
            long long t0 = now_ns();
            for (int i = 0; i < reps && status == FIRMA_OK; i++) {
                char *json = NULL;
                status = firma_sidecar_get(dir, id, &json);
                if (status == FIRMA_OK && strstr(json, "\"state\":\"running\"")) running++;
                firma_string_free(json);
            }
            long long total = now_ns() - t0;
            if (status != FIRMA_OK)
                printf("err status %d\n", (int)status);
            else
                printf("ok %ld %lld\n", running, total);
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        } else {
            printf("err unknown request\n");
        }
        fflush(stdout);
    }
    return 0;
}
