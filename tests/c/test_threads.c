/*
 * The C ABI from 8 threads at once: every function concurrently over one
 * runtime directory with real sidecars, each thread checking that the
 * answers (and the error details) it gets are its own; then 8 concurrent
 * gc_stale calls, each stale id reported by exactly one of them.
 */
#include <pthread.h>

#include "harness.h"

#define N_THREADS 8
#define ITERATIONS 12
#define N_STALE 20 /* stale-00..stale-19 of fixtures/live-and-stale.json */

static char g_rt[PATH_MAX];
static char g_web[PATH_MAX], g_stuck[PATH_MAX];
static pthread_barrier_t g_barrier;

typedef struct {
    int index;
    int failures;
    char first_failure[512];
    char *gc_result;
} worker;

static void wfail(worker *w, const char *what, const char *json)
{
    if (w->failures++ == 0)
        snprintf(w->first_failure, sizeof w->first_failure, "%s: %s", what,
                 json ? json : "(NULL)");
}

/* Status must be `want` and the JSON must contain `needle`. */
static void expect(worker *w, const char *what, int32_t st, int32_t want, char *out,
                   const char *needle)
{
    if (st != want || out == NULL || (needle && strstr(out, needle) == NULL))
        wfail(w, what, out);
    firma_string_free(out);
}

static void *mixed_worker(void *arg)
{
    worker *w = arg;
    char bad_id[64], own[96], expected_default[PATH_MAX];
    /* an id unique to this thread: its error must name it, not another's */
    snprintf(bad_id, sizeof bad_id, "../thread-%d", w->index);
    snprintf(own, sizeof own, "invalid sandbox id \\\"../thread-%d\\\"", w->index);
    snprintf(expected_default, sizeof expected_default, "%s", g_rt);
    pthread_barrier_wait(&g_barrier);
    for (int i = 0; i < ITERATIONS; i++) {
        char *out = NULL;
        int32_t st;
        st = firma_sidecar_list(g_rt, &out);
        if (st != FIRMA_OK || !out || !strstr(out, "\"sandbox_id\":\"a-web\"") ||
            !strstr(out, "\"state\":\"running\"") || !strstr(out, "\"state\":\"unhealthy\""))
            wfail(w, "list", out);
        firma_string_free(out);

        out = NULL;
        st = firma_sidecar_list_with_timeout(g_rt, 500, &out);
        expect(w, "list_with_timeout", st, FIRMA_OK, out, "\"sandbox_id\":\"b-stuck\"");

        out = NULL;
        st = firma_sidecar_get(g_rt, "a-web", &out);
        expect(w, "get", st, FIRMA_OK, out, "\"state\":\"running\"");

        out = NULL;
        st = firma_sidecar_get_with_timeout(g_rt, "b-stuck", 100, &out);
        expect(w, "get_with_timeout", st, FIRMA_OK, out, "\"state\":\"unhealthy\"");

        out = NULL;
        st = firma_sidecar_get(g_rt, "absent", &out);
        if (st != FIRMA_OK || !out || strcmp(out, "null") != 0)
            wfail(w, "get absent", out);
        firma_string_free(out);

        out = NULL;
        st = firma_sidecar_get(g_rt, bad_id, &out);
        expect(w, "get invalid (own message)", st, FIRMA_INVALID_ARGUMENT, out, own);

        out = NULL;
        st = firma_sidecar_get(g_rt, NULL, &out);
        expect(w, "get NULL id", st, FIRMA_INVALID_ARGUMENT, out, "\"code\":\"invalid_argument\"");

        if (firma_sidecar_list(g_rt, NULL) != FIRMA_INVALID_ARGUMENT)
            wfail(w, "list NULL out", NULL);

        out = NULL;
        st = firma_sidecar_probe_entry(g_web, &out);
        expect(w, "probe_entry", st, FIRMA_OK, out, "\"state\":\"running\"");

        out = NULL;
        st = firma_sidecar_probe_entry_with_timeout(g_stuck, 100, &out);
        expect(w, "probe_entry_with_timeout", st, FIRMA_OK, out, "\"state\":\"unhealthy\"");

        out = NULL;
        st = firma_sidecar_probe_entry("/nonexistent/firma/marker", &out);
        expect(w, "probe_entry missing", st, FIRMA_IO, out, "\"errno\":2}");

        out = NULL;
        st = firma_sidecar_gc_stale(g_rt, &out);
        expect(w, "gc_stale (nothing stale)", st, FIRMA_OK, out, "[]");

        out = NULL;
        st = firma_default_runtime_dir(&out);
        if (st != FIRMA_OK || !out || strcmp(out, expected_default) != 0)
            wfail(w, "default_runtime_dir", out);
        firma_string_free(out);

        if (firma_abi_version() != FIRMA_ABI_VERSION)
            wfail(w, "abi_version", NULL);
        firma_string_free(NULL);
    }
    return NULL;
}

static void *gc_worker(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(&g_barrier);
    char *out = NULL;
    int32_t st = firma_sidecar_gc_stale(g_rt, &out);
    if (st != FIRMA_OK)
        wfail(w, "concurrent gc_stale", out);
    w->gc_result = out; /* freed by main */
    return NULL;
}

static void run_workers(worker *ws, void *(*fn)(void *))
{
    pthread_t threads[N_THREADS];
    if (pthread_barrier_init(&g_barrier, NULL, N_THREADS) != 0)
        h_die("pthread_barrier_init");
    for (int i = 0; i < N_THREADS; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        ws[i].index = i;
        errno = pthread_create(&threads[i], NULL, fn, &ws[i]);
        if (errno != 0)
            h_die("pthread_create");
    }
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&g_barrier);
}

static void test_every_function_from_8_threads_at_once(void)
{
    worker ws[N_THREADS];
    run_workers(ws, mixed_worker);
    for (int i = 0; i < N_THREADS; i++)
        CHECK_MSG(ws[i].failures == 0, "thread %d: %d failures, first: %s", i,
                  ws[i].failures, ws[i].first_failure);
}

static void test_concurrent_gc_reports_each_stale_id_once(void)
{
    /* A serving "live" and stale-00..stale-19 of a dead pid. */
    h_kit k;
    if (!h_kit_up(&k, "fixtures/live-and-stale.json"))
        h_die("firma-testkit fixtures/live-and-stale.json");
    char default_rt[PATH_MAX];
    h_path(default_rt, sizeof default_rt, "%s", g_rt);
    h_path(g_rt, sizeof g_rt, "%s", h_kit_place(&k, "runtime"));
    worker ws[N_THREADS];
    run_workers(ws, gc_worker);
    int seen[N_STALE] = {0};
    for (int t = 0; t < N_THREADS; t++) {
        CHECK_MSG(ws[t].failures == 0, "thread %d: %s", t, ws[t].first_failure);
        const char *p = ws[t].gc_result;
        while (p && (p = strstr(p, "\"stale-")) != NULL) {
            int n = atoi(p + 7);
            if (n >= 0 && n < N_STALE)
                seen[n]++;
            p += 7;
        }
        firma_string_free(ws[t].gc_result);
    }
    for (int i = 0; i < N_STALE; i++) {
        char dir[PATH_MAX];
        CHECK_MSG(seen[i] == 1, "stale-%02d reported %d times", i, seen[i]);
        h_path(dir, sizeof dir, "%s/run/stale-%02d", g_rt, i);
        CHECK(!h_exists(dir));
    }
    /* the live one survived the storm */
    char live[PATH_MAX];
    h_path(live, sizeof live, "%s/run/live", g_rt);
    CHECK(h_exists(live));
    h_kit_down(&k);
    h_path(g_rt, sizeof g_rt, "%s", default_rt);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* A serving a-web and a wedged b-stuck; nothing stale. */
    h_kit k;
    if (!h_kit_up(&k, "fixtures/web-and-wedged.json"))
        h_die("firma-testkit fixtures/web-and-wedged.json");
    h_path(g_rt, sizeof g_rt, "%s", h_kit_place(&k, "runtime"));
    h_path(g_web, sizeof g_web, "%s/a-web", h_kit_place(&k, "run"));
    h_path(g_stuck, sizeof g_stuck, "%s/b-stuck", h_kit_place(&k, "run"));
    /* firma_default_runtime_dir must answer g_rt in every thread; the
     * environment is set once, before any thread starts. */
    setenv("FIRMA_STATE_DIR", g_rt, 1);

    RUN(test_every_function_from_8_threads_at_once);
    RUN(test_concurrent_gc_reports_each_stale_id_once);

    h_kit_down(&k);
    return h_summary();
}
