/*
 * c_worker.c — the C contender of `make bench`: list and get through the C
 * ABI (include/firma_stack.h), linked against target/release/libfirma_stack.a.
 * Speaks the worker line protocol of worker.h; counting entries in the JSON
 * happens outside the timed region, freeing it inside.
 */
#define _GNU_SOURCE
#include <stdint.h>

#include "firma_stack.h"
#include "worker.h"

static long count(const char *s, const char *needle) {
    long n = 0;
    size_t len = strlen(needle);
    while ((s = strstr(s, needle)) != NULL) {
        n++;
        s += len;
    }
    return n;
}

static int list(const char *dir, long *entries, long *running, long long *ns) {
    char *json = NULL;
    long long t0 = worker_now_ns();
    int32_t status = firma_sidecar_list(dir, &json);
    long long t1 = worker_now_ns();
    if (status == FIRMA_OK) {
        *entries = count(json, "\"sandbox_id\":");
        *running = count(json, "\"state\":\"running\"");
    }
    long long t2 = worker_now_ns();
    firma_string_free(json);
    *ns = (t1 - t0) + (worker_now_ns() - t2);
    return status;
}

static int get(const char *dir, const char *id, long *running) {
    char *json = NULL;
    int32_t status = firma_sidecar_get(dir, id, &json);
    if (status == FIRMA_OK && strstr(json, "\"state\":\"running\"")) ++*running;
    firma_string_free(json);
    return status;
}

int main(void) { return worker_serve(list, get); }
