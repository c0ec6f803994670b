/*
 * firma_sidecar_inspect and firma_error_codes at the C boundary: the JSON
 * shape of each verdict, arguments (NULL, non-UTF-8, the timeout policy of
 * every `timeout_ms` argument), errors, the list of error codes against the
 * status numbers, and strings freed from many threads at once. What each
 * marker's reason is belongs to the core's tests and the conformance suite.
 */
#include <pthread.h>

#include "harness.h"

/* ---- the reports ------------------------------------------------------ */

/* A runtime dir with one marker of each verdict (and a reserved name),
 * laid down by the testkit (fixtures/inspect-fleet.json). */
typedef struct {
    h_kit kit;
    const char *rt;
    pid_t dead;
} fleet;

static void fleet_make(fleet *f)
{
    if (!h_kit_up(&f->kit, "fixtures/inspect-fleet.json"))
        h_die("firma-testkit fixtures/inspect-fleet.json");
    f->rt = h_kit_place(&f->kit, "runtime");
    f->dead = (pid_t)atoi(h_kit_place(&f->kit, "pid:gone"));
}

static void fleet_free(fleet *f)
{
    h_kit_down(&f->kit);
}

static void test_reports_have_the_documented_json(void)
{
    fleet f;
    fleet_make(&f);
    char *out = NULL;
    CHECK_CALL(firma_sidecar_inspect(f.rt, 0, &out), FIRMA_OK, out);

    /* sorted by name; the reserved dot-name is not reported */
    CHECK_MSG(out && out[0] == '[' && strncmp(out, "[{\"name\":\"dead-1\",", 18) == 0,
              "first report is not dead-1: %s", out ? out : "(NULL)");
    const char *order[] = {"\"name\":\"dead-1\"", "\"name\":\"garbage-2\"",
                           "\"name\":\"renamed-3\"", "\"name\":\"web-4\""};
    const char *at = out;
    for (size_t i = 0; i < sizeof order / sizeof order[0] && at; i++) {
        at = strstr(at, order[i]);
        CHECK_MSG(at != NULL, "%s missing or out of order: %s", order[i], out);
    }
    CHECK_LACKS(out, ".reserved");

    /* a stale report, byte for byte: every key, in order */
    char want[2048];
    snprintf(want, sizeof want,
             "{\"name\":\"dead-1\",\"verdict\":\"stale\",\"state\":\"stopped\","
             "\"reason\":\"process_gone\",\"detail\":\"no process with pid %d\","
             "\"entry\":{\"sandbox_id\":\"dead-1\",\"agent_id\":\"agent\","
             "\"session_id\":\"session\","
             "\"authority_url\":\"https://authority.invalid\","
             "\"policy_bundle_version\":\"v1\",\"pid\":%d,"
             "\"started_at\":\"2026-11-29T12:00:00Z\",\"state\":\"stopped\","
             "\"listen\":\"127.0.0.1:9\",\"uptime_secs\":null},\"error\":null}",
             (int)f.dead, (int)f.dead);
    CHECK_CONTAINS(out, want);

    /* broken reports: no state, no entry, the error object of the code */
    CHECK_CONTAINS(out, "{\"name\":\"garbage-2\",\"verdict\":\"broken\",\"state\":null,"
                        "\"reason\":\"parse_error\",\"detail\":\"");
    CHECK_CONTAINS(out, "\"entry\":null,\"error\":{\"code\":\"marker_parse\",\"message\":\"");
    char renamed[PATH_MAX + 64];
    h_path(renamed, sizeof renamed, "\"path\":\"%s/run/renamed-3\",\"errno\":null}}", f.rt);
    CHECK_CONTAINS(out, "{\"name\":\"renamed-3\",\"verdict\":\"broken\",\"state\":null,"
                        "\"reason\":\"id_mismatch\",");
    CHECK_CONTAINS(out, "\"error\":{\"code\":\"identity_mismatch\",");
    CHECK_CONTAINS(out, renamed);

    /* a live report carries the entry as firma_sidecar_list shows it */
    CHECK_CONTAINS(out, "{\"name\":\"web-4\",\"verdict\":\"live\",\"state\":\"running\","
                        "\"reason\":\"serving\",");
    CHECK_CONTAINS(out, "\"entry\":{\"sandbox_id\":\"web-4\",");
    const char *tail = "\"error\":null}]";
    CHECK_MSG(out && strlen(out) > strlen(tail) &&
                  strcmp(out + strlen(out) - strlen(tail), tail) == 0,
              "does not end with %s: %s", tail, out ? out : "(NULL)");
    firma_string_free(out);

    /* read-only: the stale marker is still there afterwards */
    char dead_dir[PATH_MAX];
    h_path(dead_dir, sizeof dead_dir, "%s/run/dead-1", f.rt);
    CHECK(h_exists(dead_dir));
    fleet_free(&f);
}

static void test_missing_run_dir_is_an_empty_array(void)
{
    char rt[PATH_MAX];
    h_runtime(rt, sizeof rt, false);
    char *out = NULL;
    CHECK_CALL(firma_sidecar_inspect(rt, 0, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "[]");
    firma_string_free(out);
    h_rm_rf(rt);
}

static void test_null_runtime_dir_is_the_default(void)
{
    char *saved = getenv("FIRMA_STATE_DIR") ? strdup(getenv("FIRMA_STATE_DIR")) : NULL;
    fleet f;
    fleet_make(&f);
    setenv("FIRMA_STATE_DIR", f.rt, 1);
    char *out = NULL;
    CHECK_CALL(firma_sidecar_inspect(NULL, 0, &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "[{\"name\":\"dead-1\",\"verdict\":\"stale\",");
    firma_string_free(out);
    if (saved)
        setenv("FIRMA_STATE_DIR", saved, 1);
    else
        unsetenv("FIRMA_STATE_DIR");
    free(saved);
    fleet_free(&f);
}

/* ---- arguments and errors ------------------------------------------------ */

static void test_bad_arguments(void)
{
    /* a NULL out pointer: nothing runs, nothing is written */
    CHECK(firma_sidecar_inspect("/tmp", 0, NULL) == FIRMA_INVALID_ARGUMENT);
    CHECK(firma_error_codes(NULL) == FIRMA_INVALID_ARGUMENT);

    char *out = NULL;
    CHECK_CALL(firma_sidecar_inspect("/tmp/\xff\xfe-not-utf8", 0, &out),
               FIRMA_INVALID_ARGUMENT, out);
    CHECK_MSG(h_error_shape(out, "invalid_argument", -1, -1), "%s", out ? out : "(NULL)");
    CHECK_CONTAINS(out, "runtime_dir is not valid UTF-8");
    firma_string_free(out);

    /* a failed enumeration is the call's error, with path and errno */
    char rt[PATH_MAX], run[PATH_MAX];
    h_runtime(rt, sizeof rt, false);
    h_path(run, sizeof run, "%s/run", rt);
    h_write_file(run, "run/ is a regular file here\n");
    out = NULL;
    CHECK_CALL(firma_sidecar_inspect(rt, 0, &out), FIRMA_IO, out);
    CHECK_MSG(h_error_shape(out, "io", 1, ENOTDIR), "%s", out ? out : "(NULL)");
    CHECK_CONTAINS(out, run);
    firma_string_free(out);
    h_rm_rf(rt);
}

/* Every function with a timeout_ms follows the core's policy: 0 is the
 * default, FIRMA_MAX_TIMEOUT_MS is accepted, one more is invalid (over
 * the fleet's markers). */
static void test_every_timeout_ms_follows_the_core_policy(void)
{
    CHECK(FIRMA_DEFAULT_TIMEOUT_MS == 200);
    CHECK(FIRMA_MAX_TIMEOUT_MS == 600000);
    fleet f;
    fleet_make(&f);
    const char *rt = f.rt;
    char marker[PATH_MAX];
    /* the live one: list collects dead-1 on the way */
    h_path(marker, sizeof marker, "%s/run/web-4", rt);
    const uint32_t ok[] = {0, 1, FIRMA_MAX_TIMEOUT_MS};
    for (int which = 0; which < 4; which++) {
        const char *fn = (const char *[]){"inspect", "list_with_timeout", "get_with_timeout",
                                          "probe_entry_with_timeout"}[which];
        for (int k = 0; k < 4; k++) {
            uint32_t t = k < 3 ? ok[k] : FIRMA_MAX_TIMEOUT_MS + 1;
            char *out = NULL;
            int32_t st;
            switch (which) {
            case 0: st = firma_sidecar_inspect(rt, t, &out); break;
            case 1: st = firma_sidecar_list_with_timeout(rt, t, &out); break;
            case 2: st = firma_sidecar_get_with_timeout(rt, "web-4", t, &out); break;
            default: st = firma_sidecar_probe_entry_with_timeout(marker, t, &out); break;
            }
            if (k < 3) {
                CHECK_MSG(st == FIRMA_OK, "%s(timeout_ms=%u): status %d: %s", fn, t, (int)st,
                          out ? out : "(NULL)");
            } else {
                CHECK_MSG(st == FIRMA_INVALID_ARGUMENT, "%s(timeout_ms=%u): status %d", fn, t,
                          (int)st);
                CHECK_MSG(h_error_shape(out, "invalid_argument", -1, -1), "%s: %s", fn,
                          out ? out : "(NULL)");
                CHECK_CONTAINS(out, "timeout_ms");
                CHECK_CONTAINS(out, "600000");
            }
            firma_string_free(out);
        }
    }
    fleet_free(&f);
}

/* ---- error codes ---------------------------------------------------------- */

static void test_error_codes_follow_the_status_numbers(void)
{
    char *out = NULL;
    CHECK_CALL(firma_error_codes(&out), FIRMA_OK, out);
    /* status i is the i-th code: the same strings the error objects carry */
    CHECK_STREQ(out, "[\"invalid_argument\",\"io\",\"marker_parse\",\"identity_mismatch\","
                     "\"internal\",\"identity_unverifiable\",\"pid_reused\",\"refused\","
                     "\"pidfd_unavailable\",\"untrusted_directory\",\"not_authorized\",\"forked\"]");
    firma_string_free(out);
    CHECK(FIRMA_INVALID_ARGUMENT == 1 && FIRMA_IO == 2 && FIRMA_MARKER_PARSE == 3 &&
          FIRMA_IDENTITY_MISMATCH == 4 && FIRMA_INTERNAL == 5 &&
          FIRMA_IDENTITY_UNVERIFIABLE == 6 && FIRMA_PID_REUSED == 7 && FIRMA_REFUSED == 8 &&
          FIRMA_PIDFD_UNAVAILABLE == 9 && FIRMA_UNTRUSTED_DIRECTORY == 10 &&
          FIRMA_NOT_AUTHORIZED == 11 && FIRMA_FORKED == 12);

    /* and the error objects agree: an invalid argument carries code 1's name */
    out = NULL;
    CHECK_CALL(firma_sidecar_inspect(NULL, FIRMA_MAX_TIMEOUT_MS + 1, &out),
               FIRMA_INVALID_ARGUMENT, out);
    CHECK(h_error_shape(out, "invalid_argument", -1, -1));
    firma_string_free(out);
}

/* ---- threads ------------------------------------------------------------- */

#define N_THREADS 8
#define ITERATIONS 10

typedef struct {
    const char *rt;
    int failures;
} worker;

static void *inspect_worker(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < ITERATIONS; i++) {
        char *out = NULL;
        int32_t st = firma_sidecar_inspect(w->rt, 500, &out);
        if (st != FIRMA_OK || out == NULL || strstr(out, "\"reason\":\"parse_error\"") == NULL ||
            strstr(out, "\"reason\":\"serving\"") == NULL)
            w->failures++;
        firma_string_free(out);
        out = NULL;
        if (firma_error_codes(&out) != FIRMA_OK || out == NULL)
            w->failures++;
        firma_string_free(out);
    }
    return NULL;
}

static void test_concurrent_inspects_from_threads(void)
{
    fleet f;
    fleet_make(&f);
    pthread_t threads[N_THREADS];
    worker workers[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        workers[i] = (worker){.rt = f.rt, .failures = 0};
        CHECK(pthread_create(&threads[i], NULL, inspect_worker, &workers[i]) == 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        CHECK_MSG(workers[i].failures == 0, "thread %d: %d bad answers", i,
                  workers[i].failures);
    }
    fleet_free(&f);
}

int main(void)
{
    /* An inherited ignored SIGCHLD would auto-reap the sidecars and dead
     * pids the fixtures wait for. */
    signal(SIGCHLD, SIG_DFL);
    RUN(test_reports_have_the_documented_json);
    RUN(test_missing_run_dir_is_an_empty_array);
    RUN(test_null_runtime_dir_is_the_default);
    RUN(test_bad_arguments);
    RUN(test_every_timeout_ms_follows_the_core_policy);
    RUN(test_error_codes_follow_the_status_numbers);
    RUN(test_concurrent_inspects_from_threads);
    return h_summary();
}
