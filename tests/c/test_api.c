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
    "probe_entry", "probe_entry_with_timeout", "default_runtime_dir", "render_metrics",
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
    if (strcmp(fn, "render_metrics") == 0)
        return firma_render_metrics(dir, NULL, out);
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

/* Every status, the refusals of firma_sidecar_stop included, in the order
 * of its documented number (its index here). */
static void test_status_codes_are_the_documented_numbers(void)
{
    static const FirmaStatus numbered[] = {
        FIRMA_OK, FIRMA_INVALID_ARGUMENT, FIRMA_IO, FIRMA_MARKER_PARSE,
        FIRMA_IDENTITY_MISMATCH, FIRMA_INTERNAL, FIRMA_IDENTITY_UNVERIFIABLE,
        FIRMA_PID_REUSED, FIRMA_REFUSED, FIRMA_PIDFD_UNAVAILABLE,
        FIRMA_UNTRUSTED_DIRECTORY, FIRMA_NOT_AUTHORIZED, FIRMA_FORKED,
    };
    CHECK(sizeof(FirmaStatus) == sizeof(int32_t));
    for (size_t i = 0; i < sizeof numbered / sizeof numbered[0]; i++)
        CHECK_MSG(numbered[i] == (FirmaStatus)i, "status %zu is %d", i, (int)numbered[i]);
}

/* ---- arguments ------------------------------------------------------ */

static void test_string_free_null_is_a_noop(void)
{
    firma_string_free(NULL);
    firma_string_free(NULL);
}

static void test_null_out_pointer_is_invalid_and_writes_nothing(void)
{
    char marker[PATH_MAX];
    h_kit k;
    if (!h_kit_up(&k, "fixtures/live-and-stale.json"))
        h_die("firma-testkit fixtures/live-and-stale.json");
    const char *rt = h_kit_place(&k, "runtime");
    h_path(marker, sizeof marker, "%s/stale-00", h_kit_place(&k, "run"));
    for (size_t i = 0; i < N_FUNCTIONS; i++) {
        const char *arg = strncmp(ALL_FUNCTIONS[i], "probe", 5) == 0 ? marker : "stale-00";
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
    h_kit_down(&k);
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

/* ---- metrics ------------------------------------------------------------ */

static void test_render_metrics_gives_text_or_openmetrics_and_refuses_bad_options(void)
{
    h_kit k;
    if (!h_kit_up(&k, "fixtures/live-and-stale.json"))
        h_die("firma-testkit fixtures/live-and-stale.json");
    const char *rt = h_kit_place(&k, "runtime");
    char *out = NULL;
    CHECK_CALL(firma_render_metrics(rt, "{\"collect\":false}", &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "# TYPE firma_sidecar_up gauge\n");
    CHECK_CONTAINS(out, "firma_runtime_dir_up 1\n");
    CHECK_CONTAINS(out, "firma_sidecars{state=\"stopped\"} ");
    CHECK_MSG(strstr(out, "# EOF") == NULL, "text format with # EOF: %s", out);
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_render_metrics(rt, "{\"format\":\"openmetrics\",\"collect\":false}", &out),
               FIRMA_OK, out);
    size_t n = strlen(out);
    CHECK_MSG(n > 6 && strcmp(out + n - 6, "# EOF\n") == 0, "openmetrics without # EOF: %s", out);
    CHECK_CONTAINS(out, "# TYPE firma_build info\n");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_render_metrics(rt, "{\"format\":\"json\"}", &out), FIRMA_INVALID_ARGUMENT,
               out);
    CHECK(h_error_shape(out, "invalid_argument", -1, -1));
    CHECK_CONTAINS(out, "\\\"format\\\" must be");
    firma_string_free(out);
    h_kit_down(&k);
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
    /* root never falls back to /tmp, where anyone could create it first */
    if (geteuid() == 0)
        h_path(want, sizeof want, "/run/firma");
    else
        h_path(want, sizeof want, "/tmp/firma-%u", (unsigned)geteuid());
    CHECK_STREQ(out, want);
    firma_string_free(out);

    /* a default that is not UTF-8 cannot be returned as a C string of UTF-8 */
    setenv("FIRMA_STATE_DIR", "/tmp/\xff", 1);
    out = NULL;
    CHECK_CALL(firma_default_runtime_dir(&out), FIRMA_INVALID_ARGUMENT, out);
    CHECK(h_error_shape(out, "invalid_argument", -1, -1));
    firma_string_free(out);

    /* a NULL runtime_dir means the default, for every function taking one */
    h_kit k; /* a serving "live" and stale-00..stale-19 */
    if (!h_kit_up(&k, "fixtures/live-and-stale.json"))
        h_die("firma-testkit fixtures/live-and-stale.json");
    setenv("FIRMA_STATE_DIR", h_kit_place(&k, "runtime"), 1);
    out = NULL;
    CHECK_CALL_CONTAINS(firma_sidecar_get(NULL, "stale-00", &out), FIRMA_OK, out,
                        "\"state\":\"stopped\"");
    CHECK_CALL_CONTAINS(firma_sidecar_gc_stale(NULL, &out), FIRMA_OK, out,
                        "[\"stale-00\",\"stale-01\",");
    CHECK_CALL_CONTAINS(firma_sidecar_list(NULL, &out), FIRMA_OK, out, "[{\"sandbox_id\":\"live\",");
    CHECK_CALL_CONTAINS(firma_sidecar_list_with_timeout(NULL, 500, &out), FIRMA_OK, out,
                        "\"state\":\"running\"");
    CHECK_CALL_CONTAINS(firma_sidecar_get_with_timeout(NULL, "live", 500, &out), FIRMA_OK, out,
                        "\"state\":\"running\"");
    h_kit_down(&k);

    if (saved_state) setenv("FIRMA_STATE_DIR", saved_state, 1); else unsetenv("FIRMA_STATE_DIR");
    if (saved_xdg) setenv("XDG_RUNTIME_DIR", saved_xdg, 1); else unsetenv("XDG_RUNTIME_DIR");
    free(saved_state);
    free(saved_xdg);
}

/* ---- cross-check against the Rust API (via the firma CLI) --------------- */

/* Runs argv, returns its stdout (malloc'd) and exit code. */
static char *run_capture(char *const argv[], int *exit_code)
{
    int fds[2];
    pid_t pid = h_fork_piped(fds);
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
    /* One marker in each state; and the same fixture again, so that gc can
     * be run once by C and once by the CLI on identical directories. */
    h_kit k, twin;
    if (!h_kit_up(&k, "fixtures/every-state.json") || !h_kit_up(&twin, "fixtures/every-state.json"))
        h_die("firma-testkit fixtures/every-state.json");
    const char *rt = h_kit_place(&k, "runtime");

    /* get (never removes) on every state, and on an absent id */
    const char *ids[] = {"web-1", "stuck-2", "tcp-3", "mute-4", "killed-5", "dead-6"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        cross_check(rt, "get", ids[i], 0);
    cross_check(rt, "get", "absent-7", 1);

    char *c_gc = NULL;
    CHECK_CALL(firma_sidecar_gc_stale(h_kit_place(&twin, "runtime"), &c_gc), FIRMA_OK, c_gc);
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
    h_kit_down(&twin);
    h_kit_down(&k);
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
    RUN(test_default_runtime_dir_follows_the_environment);
    RUN(test_render_metrics_gives_text_or_openmetrics_and_refuses_bad_options);
    RUN(test_c_json_equals_rust_serialization);
    return h_summary();
}
