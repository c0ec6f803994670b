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
#define N_STALE 24

static char g_rt[PATH_MAX];
static h_sidecar g_web, g_stuck;
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
        st = firma_sidecar_probe_entry(g_web.marker, &out);
        expect(w, "probe_entry", st, FIRMA_OK, out, "\"state\":\"running\"");

        out = NULL;
        st = firma_sidecar_probe_entry_with_timeout(g_stuck.marker, 100, &out);
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
    char id[32];
    for (int i = 0; i < N_STALE; i++) {
        snprintf(id, sizeof id, "stale-%02d", i);
        h_write_marker(g_rt, id, id, h_dead_pid(), NULL);
    }
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
    /* the live ones survived the storm */
    CHECK(h_exists(g_web.marker) && h_exists(g_stuck.marker));
}

int main(void)
{
    signal(SIGCHLD, SIG_DFL);
    h_runtime(g_rt, sizeof g_rt, true);
    /* firma_default_runtime_dir must answer g_rt in every thread; the
     * environment is set once, before any thread starts. */
    setenv("FIRMA_STATE_DIR", g_rt, 1);
    h_sidecar_start(&g_web, g_rt, "a-web", "serve", NULL);
    h_sidecar_start(&g_stuck, g_rt, "b-stuck", "wedged", NULL);

    RUN(test_every_function_from_8_threads_at_once);
    RUN(test_concurrent_gc_reports_each_stale_id_once);

    bool stopped = h_sidecar_stop(&g_web) & h_sidecar_stop(&g_stuck);
    if (!stopped)
        fprintf(stderr, "a sidecar did not exit cleanly on SIGTERM\n");
    h_rm_rf(g_rt);
    return h_summary() | (stopped ? 0 : 1);
}
