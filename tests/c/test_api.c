/*
 * The C ABI, function by function, over real fixtures: every function, every
 * NULL / non-UTF-8 / invalid argument, the error object of every code, the
 * states of real sidecars, collection of stopped ones, and a byte-for-byte
 * cross-check against the Rust API as serialized by the `firma` CLI.
 */
#include "harness.h"

#ifndef C_EXPECTED_VERSION
#error "compile with -DC_EXPECTED_VERSION=\"<Cargo.toml version>\""
#endif

/* Every function that takes an out pointer, called with `out`. */
static const char *const ALL_FUNCTIONS[] = {
    "list", "list_with_timeout", "get", "get_with_timeout", "gc_stale",
    "probe_entry", "probe_entry_with_timeout", "default_runtime_dir",
};
#define N_FUNCTIONS (sizeof ALL_FUNCTIONS / sizeof ALL_FUNCTIONS[0])

static int32_t call_by_name(const char *fn, const char *dir, const char *arg,
                            char **out)
{
    if (strcmp(fn, "list") == 0)
        return firma_sidecar_list(dir, out);
    if (strcmp(fn, "list_with_timeout") == 0)
        return firma_sidecar_list_with_timeout(dir, 100, out);
    if (strcmp(fn, "get") == 0)
        return firma_sidecar_get(dir, arg, out);
    if (strcmp(fn, "get_with_timeout") == 0)
        return firma_sidecar_get_with_timeout(dir, arg, 100, out);
    if (strcmp(fn, "gc_stale") == 0)
        return firma_sidecar_gc_stale(dir, out);
    if (strcmp(fn, "probe_entry") == 0)
        return firma_sidecar_probe_entry(arg, out);
    if (strcmp(fn, "probe_entry_with_timeout") == 0)
        return firma_sidecar_probe_entry_with_timeout(arg, 100, out);
    if (strcmp(fn, "default_runtime_dir") == 0)
        return firma_default_runtime_dir(out);
    abort();
}

/* ---- versions ------------------------------------------------------- */

static void test_version_macros_match_cargo_and_library(void)
{
    char numbers[64];
    snprintf(numbers, sizeof numbers, "%d.%d.%d", FIRMA_STACK_VERSION_MAJOR,
             FIRMA_STACK_VERSION_MINOR, FIRMA_STACK_VERSION_PATCH);
    CHECK_STREQ(FIRMA_STACK_VERSION, C_EXPECTED_VERSION);
    CHECK_STREQ(numbers, C_EXPECTED_VERSION);
    CHECK(firma_abi_version() == FIRMA_ABI_VERSION);
    CHECK(FIRMA_ABI_VERSION >= 1);
}

static void test_status_codes_are_the_documented_numbers(void)
{
    CHECK(sizeof(FirmaStatus) == sizeof(int32_t));
    CHECK(FIRMA_OK == 0);
    CHECK(FIRMA_INVALID_ARGUMENT == 1);
    CHECK(FIRMA_IO == 2);
    CHECK(FIRMA_MARKER_PARSE == 3);
    CHECK(FIRMA_IDENTITY_MISMATCH == 4);
    CHECK(FIRMA_INTERNAL == 5);
}

/* ---- arguments ------------------------------------------------------ */

static void test_string_free_null_is_a_noop(void)
{
    firma_string_free(NULL);
    firma_string_free(NULL);
}

static void test_null_out_pointer_is_invalid_and_writes_nothing(void)
{
    char rt[PATH_MAX], marker[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    h_write_marker(rt, "dead-1", "dead-1", h_dead_pid(), NULL);
    h_path(marker, sizeof marker, "%s/run/dead-1", rt);
    for (size_t i = 0; i < N_FUNCTIONS; i++) {
        const char *arg = strncmp(ALL_FUNCTIONS[i], "probe", 5) == 0 ? marker : "dead-1";
        int32_t st = call_by_name(ALL_FUNCTIONS[i], rt, arg, NULL);
        CHECK_MSG(st == FIRMA_INVALID_ARGUMENT, "%s(out=NULL): status %d",
                  ALL_FUNCTIONS[i], (int)st);
        /* also with a bad argument: the out check still wins */
        st = call_by_name(ALL_FUNCTIONS[i], NULL, NULL, NULL);
        CHECK_MSG(st == FIRMA_INVALID_ARGUMENT, "%s(NULL, NULL, NULL): status %d",
                  ALL_FUNCTIONS[i], (int)st);
    }
    /* nothing ran: the stale marker is still there */
    CHECK(h_exists(marker));
    h_rm_rf(rt);
}

static void test_null_string_arguments_are_invalid(void)
{
    char *out;
    const char *fns[] = {"get", "get_with_timeout", "probe_entry", "probe_entry_with_timeout"};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        out = NULL;
        int32_t st = call_by_name(fns[i], "/tmp", NULL, &out);
        CHECK_MSG(st == FIRMA_INVALID_ARGUMENT, "%s(NULL): status %d", fns[i], (int)st);
        CHECK_MSG(h_error_shape(out, "invalid_argument", -1, -1), "%s: %s", fns[i],
                  out ? out : "(NULL)");
        CHECK_CONTAINS(out, "NULL");
        firma_string_free(out);
    }
}

static void test_non_utf8_strings_are_invalid(void)
{
    const char *bad = "/tmp/\xff\xfe-not-utf8";
    const char *bad_id = "id-\xc3\x28";
    for (size_t i = 0; i < N_FUNCTIONS; i++) {
        if (strcmp(ALL_FUNCTIONS[i], "default_runtime_dir") == 0)
            continue;
        char *out = NULL;
        int32_t st = call_by_name(ALL_FUNCTIONS[i], bad, bad, &out);
        CHECK_MSG(st == FIRMA_INVALID_ARGUMENT, "%s(non-UTF-8): status %d",
                  ALL_FUNCTIONS[i], (int)st);
        CHECK_MSG(h_error_shape(out, "invalid_argument", -1, -1), "%s: %s",
                  ALL_FUNCTIONS[i], out ? out : "(NULL)");
        CHECK_CONTAINS(out, "UTF-8");
        firma_string_free(out);
    }
    char *out = NULL;
    CHECK_CALL(firma_sidecar_get("/tmp", bad_id, &out), FIRMA_INVALID_ARGUMENT, out);
    CHECK_CONTAINS(out, "sandbox_id is not valid UTF-8");
    firma_string_free(out);
}

static void test_invalid_sandbox_ids_are_rejected_before_any_lookup(void)
{
    char rt[PATH_MAX], outside[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    /* A well-formed marker of a dead run OUTSIDE run/: "../x" must not reach it. */
    h_write_marker(rt, "../x", "x", h_dead_pid(), NULL);
    h_path(outside, sizeof outside, "%s/x", rt);

    char long_id[300];
    memset(long_id, 'a', 256);
    long_id[256] = '\0';
    const char *bad[] = {"../x", "", ".hidden", "a/b", "a b", "x\n", "caf\xc3\xa9", long_id};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = NULL;
        int32_t st = firma_sidecar_get(rt, bad[i], &out);
        CHECK_MSG(st == FIRMA_INVALID_ARGUMENT, "get(%s): status %d", bad[i], (int)st);
        CHECK_MSG(h_error_shape(out, "invalid_argument", -1, -1), "get(%s): %s", bad[i],
                  out ? out : "(NULL)");
        CHECK_CONTAINS(out, "invalid sandbox id");
        firma_string_free(out);
        out = NULL;
        st = firma_sidecar_get_with_timeout(rt, bad[i], 50, &out);
        CHECK_MSG(st == FIRMA_INVALID_ARGUMENT, "get_with_timeout(%s): status %d", bad[i],
                  (int)st);
        firma_string_free(out);
    }
    CHECK(h_exists(outside));

    /* 255 bytes is the longest valid id: absent, not an error */
    long_id[255] = '\0';
    char *out = NULL;
    CHECK_CALL(firma_sidecar_get(rt, long_id, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "null");
    firma_string_free(out);
    h_rm_rf(rt);
}

/* ---- empty and missing ---------------------------------------------- */

static void test_missing_run_dir_and_missing_markers(void)
{
    char rt[PATH_MAX];
    h_runtime(rt, sizeof rt, false); /* no run/ at all */
    char *out = NULL;
    CHECK_CALL(firma_sidecar_list(rt, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "[]");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_gc_stale(rt, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "[]");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_get(rt, "nobody", &out), FIRMA_OK, out);
    CHECK_STREQ(out, "null");
    firma_string_free(out);

    char run[PATH_MAX];
    h_path(run, sizeof run, "%s/run", rt);
    CHECK(mkdir(run, 0700) == 0);
    out = NULL;
    CHECK_CALL(firma_sidecar_get_with_timeout(rt, "nobody", 0, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "null");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_list_with_timeout(rt, 0, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "[]");
    firma_string_free(out);
    h_rm_rf(rt);
}

/* ---- default runtime dir ------------------------------------------------ */

static void test_default_runtime_dir_follows_the_environment(void)
{
    char *saved_state = getenv("FIRMA_STATE_DIR") ? strdup(getenv("FIRMA_STATE_DIR")) : NULL;
    char *saved_xdg = getenv("XDG_RUNTIME_DIR") ? strdup(getenv("XDG_RUNTIME_DIR")) : NULL;
    char want[PATH_MAX], *out = NULL;

    setenv("FIRMA_STATE_DIR", "/some/state", 1);
    setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
    CHECK_CALL(firma_default_runtime_dir(&out), FIRMA_OK, out);
    CHECK_STREQ(out, "/some/state");
    firma_string_free(out);

    setenv("FIRMA_STATE_DIR", "", 1); /* empty counts as unset */
    out = NULL;
    CHECK_CALL(firma_default_runtime_dir(&out), FIRMA_OK, out);
    CHECK_STREQ(out, "/run/user/4242/firma");
    firma_string_free(out);

    unsetenv("FIRMA_STATE_DIR");
    unsetenv("XDG_RUNTIME_DIR");
    out = NULL;
    CHECK_CALL(firma_default_runtime_dir(&out), FIRMA_OK, out);
    h_path(want, sizeof want, "/tmp/firma-%u", (unsigned)getuid());
    CHECK_STREQ(out, want);
    firma_string_free(out);

    /* a default that is not UTF-8 cannot be returned as a C string of UTF-8 */
    setenv("FIRMA_STATE_DIR", "/tmp/\xff", 1);
    out = NULL;
    CHECK_CALL(firma_default_runtime_dir(&out), FIRMA_INVALID_ARGUMENT, out);
    CHECK(h_error_shape(out, "invalid_argument", -1, -1));
    firma_string_free(out);

    /* a NULL runtime_dir means the default, for every function taking one */
    char rt[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    h_sidecar sc;
    h_sidecar_start(&sc, rt, "via-default", "serve", NULL);
    h_write_marker(rt, "dead-default", "dead-default", h_dead_pid(), NULL);
    setenv("FIRMA_STATE_DIR", rt, 1);
    out = NULL;
    CHECK_CALL(firma_sidecar_get(NULL, "dead-default", &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"state\":\"stopped\"");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_gc_stale(NULL, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "[\"dead-default\"]");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_list(NULL, &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "[{\"sandbox_id\":\"via-default\",");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_list_with_timeout(NULL, 500, &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"state\":\"running\"");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_get_with_timeout(NULL, "via-default", 500, &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"state\":\"running\"");
    firma_string_free(out);
    CHECK(h_sidecar_stop(&sc));
    h_rm_rf(rt);

    if (saved_state) setenv("FIRMA_STATE_DIR", saved_state, 1); else unsetenv("FIRMA_STATE_DIR");
    if (saved_xdg) setenv("XDG_RUNTIME_DIR", saved_xdg, 1); else unsetenv("XDG_RUNTIME_DIR");
    free(saved_state);
    free(saved_xdg);
}

/* ---- live sidecars ------------------------------------------------------ */

static void test_real_sidecars_running_and_unhealthy(void)
{
    char rt[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    h_sidecar web, stuck, mute;
    h_sidecar_start(&web, rt, "a-web", "serve", NULL);
    h_sidecar_start(&stuck, rt, "b-stuck", "wedged", NULL);
    h_sidecar_start(&mute, rt, "c-mute", "no-socket", NULL);

    char *out = NULL, want[PATH_MAX * 2];
    CHECK_CALL(firma_sidecar_list(rt, &out), FIRMA_OK, out);
    /* sorted by id, the DESIGN key order, the real pid */
    h_path(want, sizeof want,
           "[{\"sandbox_id\":\"a-web\",\"agent_id\":\"agent-example\","
           "\"session_id\":\"session-example\","
           "\"authority_url\":\"https://authority.example.invalid\","
           "\"policy_bundle_version\":\"sha256:example\",\"pid\":%d,\"started_at\":\"",
           (int)web.pid);
    CHECK_MSG(out && strncmp(out, want, strlen(want)) == 0, "list: %s", out ? out : "(NULL)");
    h_path(want, sizeof want, "\"state\":\"running\",\"listen\":\"%s/sidecar.sock\",\"uptime_secs\":",
           web.marker);
    CHECK_CONTAINS(out, want);
    const char *b = out ? strstr(out, "{\"sandbox_id\":\"b-stuck\"") : NULL;
    const char *c = out ? strstr(out, "{\"sandbox_id\":\"c-mute\"") : NULL;
    CHECK(b != NULL && c != NULL && b < c);
    if (b && c) {
        CHECK(strstr(b, "\"state\":\"unhealthy\"") != NULL && strstr(b, "\"state\":\"unhealthy\"") < c);
        CHECK_CONTAINS(c, "\"state\":\"unhealthy\"");
    }
    firma_string_free(out);

    struct { const char *id; h_sidecar *s; const char *state; } cases[] = {
        {"a-web", &web, "running"}, {"b-stuck", &stuck, "unhealthy"}, {"c-mute", &mute, "unhealthy"},
    };
    for (size_t i = 0; i < 3; i++) {
        char st[64];
        h_path(st, sizeof st, "\"state\":\"%s\"", cases[i].state);
        out = NULL;
        CHECK_CALL(firma_sidecar_get(rt, cases[i].id, &out), FIRMA_OK, out);
        CHECK_CONTAINS(out, st);
        CHECK(out && out[0] == '{' && out[strlen(out) - 1] == '}');
        firma_string_free(out);
        out = NULL;
        CHECK_CALL(firma_sidecar_probe_entry(cases[i].s->marker, &out), FIRMA_OK, out);
        CHECK_CONTAINS(out, st);
        firma_string_free(out);
        out = NULL;
        CHECK_CALL(firma_sidecar_probe_entry_with_timeout(cases[i].s->marker, 1000, &out),
                   FIRMA_OK, out);
        CHECK_CONTAINS(out, st);
        firma_string_free(out);
    }
    /* gc removes nothing alive */
    out = NULL;
    CHECK_CALL(firma_sidecar_gc_stale(rt, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "[]");
    firma_string_free(out);
    CHECK(h_exists(web.marker) && h_exists(stuck.marker) && h_exists(mute.marker));

    CHECK(h_sidecar_stop(&web));
    CHECK(h_sidecar_stop(&stuck));
    CHECK(h_sidecar_stop(&mute));
    /* stopped cleanly: markers gone, nothing listed */
    out = NULL;
    CHECK_CALL(firma_sidecar_list(rt, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "[]");
    firma_string_free(out);
    h_rm_rf(rt);
}

static void test_killed_sidecar_is_stopped_then_collected_by_list(void)
{
    char rt[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    h_sidecar live, doomed;
    h_sidecar_start(&live, rt, "live", "serve", NULL);
    h_sidecar_start(&doomed, rt, "doomed", "serve", NULL);
    h_sidecar_kill(&doomed, true);

    char *out = NULL;
    CHECK_CALL(firma_sidecar_get(rt, "doomed", &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"state\":\"stopped\"");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_probe_entry(doomed.marker, &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"state\":\"stopped\"");
    firma_string_free(out);
    CHECK(h_exists(doomed.marker)); /* get and probe never remove */

    out = NULL;
    CHECK_CALL(firma_sidecar_list(rt, &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"sandbox_id\":\"live\"");
    CHECK_LACKS(out, "doomed");
    firma_string_free(out);
    CHECK(!h_exists(doomed.marker)); /* list collected it */
    CHECK(h_exists(live.marker));

    out = NULL;
    CHECK_CALL(firma_sidecar_gc_stale(rt, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "[]");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_get(rt, "doomed", &out), FIRMA_OK, out);
    CHECK_STREQ(out, "null");
    firma_string_free(out);
    CHECK(h_sidecar_stop(&live));
    h_rm_rf(rt);
}

static void test_zombie_and_dead_pid_collected_by_gc(void)
{
    char rt[PATH_MAX], dead_marker[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    h_sidecar zombie, live;
    h_sidecar_start(&live, rt, "a-live", "serve", NULL);
    h_sidecar_start(&zombie, rt, "z-zombie", "serve", NULL);
    h_sidecar_kill(&zombie, false); /* dead, not reaped: a zombie */
    h_write_marker(rt, "m-dead", "m-dead", h_dead_pid(), NULL);
    h_path(dead_marker, sizeof dead_marker, "%s/run/m-dead", rt);

    char *out = NULL;
    CHECK_CALL(firma_sidecar_get(rt, "z-zombie", &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"state\":\"stopped\"");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_probe_entry(dead_marker, &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"sandbox_id\":\"m-dead\"");
    CHECK_CONTAINS(out, "\"state\":\"stopped\"");
    CHECK_CONTAINS(out, "\"uptime_secs\":null"); /* no sidecar.pid written */
    firma_string_free(out);

    out = NULL;
    CHECK_CALL(firma_sidecar_gc_stale(rt, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "[\"m-dead\",\"z-zombie\"]");
    firma_string_free(out);
    CHECK(!h_exists(zombie.marker) && !h_exists(dead_marker));
    CHECK(h_exists(live.marker));
    out = NULL;
    CHECK_CALL(firma_sidecar_gc_stale(rt, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "[]");
    firma_string_free(out);
    h_reap(&zombie);
    CHECK(h_sidecar_stop(&live));
    h_rm_rf(rt);
}

/* ---- broken markers ------------------------------------------------------ */

static void test_corrupt_marker_is_a_parse_error_and_never_removed(void)
{
    char rt[PATH_MAX], path[PATH_MAX], dir[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    h_path(dir, sizeof dir, "%s/run/corrupt", rt);
    CHECK(mkdir(dir, 0700) == 0);
    h_path(path, sizeof path, "%s/metadata.toml", dir);
    h_write_file(path, "sandbox_id = \"corrupt\"\nthis is [not toml\n");
    h_write_marker(rt, "zero-pid", "zero-pid", 0, NULL); /* pid 0: out of range */
    h_sidecar live;
    h_sidecar_start(&live, rt, "live", "serve", NULL);

    char *out = NULL;
    CHECK_CALL(firma_sidecar_get(rt, "corrupt", &out), FIRMA_MARKER_PARSE, out);
    CHECK_MSG(h_error_shape(out, "marker_parse", 1, -1), "%s", out ? out : "(NULL)");
    CHECK_CONTAINS(out, "/run/corrupt");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_probe_entry(dir, &out), FIRMA_MARKER_PARSE, out);
    CHECK(h_error_shape(out, "marker_parse", 1, -1));
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_get_with_timeout(rt, "zero-pid", 100, &out), FIRMA_MARKER_PARSE, out);
    CHECK(h_error_shape(out, "marker_parse", 1, -1));
    firma_string_free(out);

    /* one bad marker cannot break the listing, and is never collected */
    out = NULL;
    CHECK_CALL(firma_sidecar_list(rt, &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"sandbox_id\":\"live\"");
    CHECK_LACKS(out, "corrupt");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_gc_stale(rt, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "[]");
    firma_string_free(out);
    CHECK(h_exists(path));
    CHECK(h_sidecar_stop(&live));
    h_rm_rf(rt);
}

static void test_renamed_marker_is_an_identity_mismatch(void)
{
    char rt[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    h_sidecar s;
    h_sidecar_start(&s, rt, "original", "serve", NULL);
    h_path(from, sizeof from, "%s/run/original", rt);
    h_path(to, sizeof to, "%s/run/renamed", rt);
    CHECK(rename(from, to) == 0);

    char *out = NULL;
    CHECK_CALL(firma_sidecar_get(rt, "renamed", &out), FIRMA_IDENTITY_MISMATCH, out);
    CHECK_MSG(h_error_shape(out, "identity_mismatch", 1, -1), "%s", out ? out : "(NULL)");
    CHECK_CONTAINS(out, "original");
    CHECK_CONTAINS(out, "renamed");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_probe_entry(to, &out), FIRMA_IDENTITY_MISMATCH, out);
    CHECK(h_error_shape(out, "identity_mismatch", 1, -1));
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_list(rt, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "[]");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_gc_stale(rt, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "[]");
    firma_string_free(out);
    CHECK(h_exists(to));

    CHECK(rename(to, from) == 0);
    CHECK(h_sidecar_stop(&s));
    h_rm_rf(rt);
}

static void test_io_errors_carry_path_and_errno(void)
{
    char rt[PATH_MAX], run[PATH_MAX], missing[PATH_MAX], empty[PATH_MAX];
    h_runtime(rt, sizeof rt, false);
    h_path(run, sizeof run, "%s/run", rt);
    h_write_file(run, "run/ is a regular file here\n");
    char *out = NULL;
    CHECK_CALL(firma_sidecar_list(rt, &out), FIRMA_IO, out);
    CHECK_MSG(h_error_shape(out, "io", 1, ENOTDIR), "%s", out ? out : "(NULL)");
    CHECK_CONTAINS(out, run);
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_gc_stale(rt, &out), FIRMA_IO, out);
    CHECK(h_error_shape(out, "io", 1, ENOTDIR));
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_get(rt, "any", &out), FIRMA_IO, out);
    CHECK(h_error_shape(out, "io", 1, ENOTDIR));
    firma_string_free(out);

    h_path(missing, sizeof missing, "%s/no-such-marker", rt);
    out = NULL;
    CHECK_CALL(firma_sidecar_probe_entry(missing, &out), FIRMA_IO, out);
    CHECK_MSG(h_error_shape(out, "io", 1, ENOENT), "%s", out ? out : "(NULL)");
    CHECK_CONTAINS(out, missing);
    firma_string_free(out);

    /* a marker directory without metadata.toml is broken, not absent */
    unlink(run);
    h_path(empty, sizeof empty, "%s/run/empty", rt);
    CHECK(mkdir(run, 0700) == 0 && mkdir(empty, 0700) == 0);
    out = NULL;
    CHECK_CALL(firma_sidecar_get(rt, "empty", &out), FIRMA_IO, out);
    CHECK_MSG(h_error_shape(out, "io", 1, ENOENT), "%s", out ? out : "(NULL)");
    firma_string_free(out);
    h_rm_rf(rt);
}

/* ---- timeouts ------------------------------------------------------------ */

static void test_per_call_timeout_bounds_a_dropped_syn(void)
{
    char rt[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    h_sidecar syn;
    h_sidecar_start(&syn, rt, "tcp-wedged", "wedged", "127.0.0.1:0");

    double t0 = h_now();
    char *out = NULL;
    CHECK_CALL(firma_sidecar_list_with_timeout(rt, 50, &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"state\":\"unhealthy\"");
    CHECK_CONTAINS(out, "\"listen\":\"127.0.0.1:");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_get_with_timeout(rt, "tcp-wedged", 50, &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"state\":\"unhealthy\"");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_probe_entry_with_timeout(syn.marker, 50, &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"state\":\"unhealthy\"");
    firma_string_free(out);
    /* 0 means the default timeout (200 ms): still bounded */
    out = NULL;
    CHECK_CALL(firma_sidecar_get_with_timeout(rt, "tcp-wedged", 0, &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"state\":\"unhealthy\"");
    firma_string_free(out);
    /* generous upper bound: "never hangs", not a speed test */
    CHECK_MSG(h_now() - t0 < 30.0, "took %.1f s", h_now() - t0);
    CHECK(h_sidecar_stop(&syn));
    h_rm_rf(rt);
}

/* ---- cross-check against the Rust API (via the firma CLI) --------------- */

/* Runs argv, returns its stdout (malloc'd) and exit code. */
static char *run_capture(char *const argv[], int *exit_code)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        h_die("pipe");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        h_die("fork");
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        h_die("malloc");
    for (;;) {
        if (len + 1 >= cap) {
            char *more = realloc(buf, cap *= 2);
            if (more == NULL)
                h_die("realloc");
            buf = more;
        }
        ssize_t r = read(fds[0], buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return buf;
}

static char *firma_cli(const char *rt, const char *cmd, const char *id, int *code)
{
    char *argv[10];
    int n = 0;
    argv[n++] = (char *)C_BIN_DIR "/firma";
    argv[n++] = (char *)"--runtime-dir";
    argv[n++] = (char *)rt;
    argv[n++] = (char *)"sidecar";
    argv[n++] = (char *)cmd;
    if (id != NULL)
        argv[n++] = (char *)id;
    argv[n++] = (char *)"--json";
    argv[n] = NULL;
    return run_capture(argv, code);
}

/* C output + "\n" must equal the CLI's. Uptimes tick, so the CLI call is
 * bracketed by two C calls: when both C answers agree, the CLI's (taken in
 * between) must be the same bytes. Retried when a second boundary passed. */
static void cross_check(const char *rt, const char *cmd, const char *id, int want_code)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        char *before = NULL, *after = NULL;
        int32_t st = strcmp(cmd, "status") == 0 ? firma_sidecar_list(rt, &before)
                                                : firma_sidecar_get(rt, id, &before);
        CHECK(st == FIRMA_OK);
        int code = -1;
        char *cli = firma_cli(rt, cmd, id, &code);
        st = strcmp(cmd, "status") == 0 ? firma_sidecar_list(rt, &after)
                                        : firma_sidecar_get(rt, id, &after);
        CHECK(st == FIRMA_OK);
        bool settled = before && after && strcmp(before, after) == 0;
        if (settled) {
            size_t n = strlen(before);
            CHECK_MSG(code == want_code, "firma %s %s: exit %d", cmd, id ? id : "", code);
            CHECK_MSG(strlen(cli) == n + 1 && strncmp(cli, before, n) == 0 && cli[n] == '\n',
                      "C and Rust differ for %s %s:\n      C    %s\n      Rust %s", cmd,
                      id ? id : "", before, cli);
        }
        free(cli);
        firma_string_free(before);
        firma_string_free(after);
        if (settled)
            return;
    }
    CHECK_MSG(false, "%s %s: C answers never settled", cmd, id ? id : "");
}

static void test_c_json_equals_rust_serialization(void)
{
    char rt[PATH_MAX], twin[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    h_runtime(twin, sizeof twin, true);
    h_sidecar web, stuck, tcp, mute, killed;
    h_sidecar_start(&web, rt, "web-1", "serve", NULL);
    h_sidecar_start(&stuck, rt, "stuck-2", "wedged", NULL);
    h_sidecar_start(&tcp, rt, "tcp-3", "serve", "127.0.0.1:0");
    h_sidecar_start(&mute, rt, "mute-4", "no-socket", NULL);
    h_sidecar_start(&killed, rt, "killed-5", "serve", NULL);
    pid_t killed_pid = killed.pid;
    h_sidecar_kill(&killed, true);
    pid_t dead = h_dead_pid();
    h_write_marker(rt, "dead-6", "dead-6", dead, "listen = \"127.0.0.1:9\"\n");

    /* get (never removes) on every state, and on an absent id */
    cross_check(rt, "get", "web-1", 0);
    cross_check(rt, "get", "stuck-2", 0);
    cross_check(rt, "get", "tcp-3", 0);
    cross_check(rt, "get", "mute-4", 0);
    cross_check(rt, "get", "killed-5", 0);
    cross_check(rt, "get", "dead-6", 0);
    cross_check(rt, "get", "absent-7", 1);

    /* gc: the C call on a twin directory holding the same stale markers
     * (hand-written, same ids and dead pids) as the CLI's directory */
    h_write_marker(rt, "dead-8", "dead-8", dead, NULL);
    h_write_marker(twin, "dead-6", "dead-6", dead, NULL);
    h_write_marker(twin, "dead-8", "dead-8", dead, NULL);
    h_write_marker(twin, "killed-5", "killed-5", killed_pid, NULL);
    char *c_gc = NULL;
    CHECK_CALL(firma_sidecar_gc_stale(twin, &c_gc), FIRMA_OK, c_gc);
    CHECK_STREQ(c_gc, "[\"dead-6\",\"dead-8\",\"killed-5\"]");
    int code = -1;
    char *cli_gc = firma_cli(rt, "gc", NULL, &code);
    CHECK(code == 0);
    CHECK_MSG(c_gc && strlen(cli_gc) == strlen(c_gc) + 1 &&
                  strncmp(cli_gc, c_gc, strlen(c_gc)) == 0,
              "gc: C %s, Rust %s", c_gc ? c_gc : "(NULL)", cli_gc);
    free(cli_gc);
    firma_string_free(c_gc);

    /* list: every live state together */
    cross_check(rt, "status", NULL, 0);

    CHECK(h_sidecar_stop(&web));
    CHECK(h_sidecar_stop(&stuck));
    CHECK(h_sidecar_stop(&tcp));
    CHECK(h_sidecar_stop(&mute));
    cross_check(rt, "status", NULL, 0); /* [] */
    h_rm_rf(rt);
    h_rm_rf(twin);
}

int main(void)
{
    /* The sidecars are started with SIGTERM handled by them; make sure we
     * do not inherit an ignored SIGCHLD that would auto-reap them. */
    signal(SIGCHLD, SIG_DFL);
    RUN(test_version_macros_match_cargo_and_library);
    RUN(test_status_codes_are_the_documented_numbers);
    RUN(test_string_free_null_is_a_noop);
    RUN(test_null_out_pointer_is_invalid_and_writes_nothing);
    RUN(test_null_string_arguments_are_invalid);
    RUN(test_non_utf8_strings_are_invalid);
    RUN(test_invalid_sandbox_ids_are_rejected_before_any_lookup);
    RUN(test_missing_run_dir_and_missing_markers);
    RUN(test_default_runtime_dir_follows_the_environment);
    RUN(test_real_sidecars_running_and_unhealthy);
    RUN(test_killed_sidecar_is_stopped_then_collected_by_list);
    RUN(test_zombie_and_dead_pid_collected_by_gc);
    RUN(test_corrupt_marker_is_a_parse_error_and_never_removed);
    RUN(test_renamed_marker_is_an_identity_mismatch);
    RUN(test_io_errors_carry_path_and_errno);
    RUN(test_per_call_timeout_bounds_a_dropped_syn);
    RUN(test_c_json_equals_rust_serialization);
    return h_summary();
}
