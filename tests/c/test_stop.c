/*
 * firma_sidecar_stop over real processes: the scenarios of tests/stop/stop.rs
 * through the C ABI — a serving sidecar stopped by SIGTERM, a child that
 * ignores SIGTERM killed after the grace period (or left running with
 * "kill": false), the refusals with their own statuses (reused pid, no
 * identity, pid 1), a dead pid collected, and the options object checked.
 *
 * Where pidfd_open(2) answers ENOSYS — under valgrind 3.19, which does not
 * know the call, or on a kernel before 5.3 — every stop that would signal
 * must fail closed instead (FIRMA_PIDFD_UNAVAILABLE, errno ENOSYS, nothing
 * signalled, marker kept); those tests check exactly that, and say so.
 */
#include <pwd.h>
#include <sys/syscall.h>

#include "processes.h"

static bool have_pidfd;

/* When pidfds are unavailable: the stop must fail closed. Returns true when
 * it checked that (the caller then skips the signalling checks). */
static bool checked_fail_closed(const char *rt, const char *id, const char *opts, pid_t pid)
{
    if (have_pidfd)
        return false;
    char *out = NULL, marker[PATH_MAX];
    h_path(marker, sizeof marker, "%s/run/%s", rt, id);
    CHECK_CALL(firma_sidecar_stop(rt, id, opts, &out), FIRMA_PIDFD_UNAVAILABLE, out);
    CHECK_MSG(h_error_shape(out, "pidfd_unavailable", 1, ENOSYS), "%s", out ? out : "(NULL)");
    firma_string_free(out);
    CHECK(kill(pid, 0) == 0 && h_exists(marker));
    return true;
}

/* The inode of this process's pid namespace. */
static unsigned long long own_pid_ns(void)
{
    struct stat ns;
    if (stat("/proc/self/ns/pid", &ns) != 0)
        h_die("/proc/self/ns/pid");
    return (unsigned long long)ns.st_ino;
}

/* The identity the core's writer would record for pid (boot id, start
 * ticks shifted by skew), as if recorded in the pid namespace ns, as TOML
 * lines. */
static void identity_toml_in(char *buf, size_t size, pid_t pid, unsigned long long skew,
                             unsigned long long ns)
{
    char path[64], line[1024], boot[64] = "";
    h_path(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(line, sizeof line, f) == NULL)
        h_die(path);
    fclose(f);
    char *p = strrchr(line, ')');
    unsigned long long ticks = 0;
    /* field 3 is the state; start ticks are field 22 */
    for (int field = 3; p != NULL && field <= 22; field++) {
        p = strchr(p + 1, ' ');
        if (field == 22 && p != NULL)
            ticks = strtoull(p + 1, NULL, 10);
    }
    f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f == NULL || fgets(boot, sizeof boot, f) == NULL)
        h_die("boot_id");
    fclose(f);
    boot[strcspn(boot, "\n")] = '\0';
    snprintf(buf, size, "boot_id = \"%s\"\npid_start_ticks = %llu\npid_ns_inode = %llu\n", boot,
             ticks + skew, ns);
}

/* The identity the core's writer would record for pid (boot id, start
 * ticks shifted by skew, pid namespace), as TOML lines. */
static void identity_toml(char *buf, size_t size, pid_t pid, unsigned long long skew)
{
    identity_toml_in(buf, size, pid, skew, own_pid_ns());
}

static void identity_marker(const char *rt, const char *id, pid_t pid, unsigned long long skew)
{
    char extra[512];
    identity_toml(extra, sizeof extra, pid, skew);
    h_write_marker(rt, id, id, pid, extra);
}

static bool alive(pid_t pid)
{
    char path[64], stat[512];
    if (kill(pid, 0) != 0)
        return false;
    h_path(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool ok = fgets(stat, sizeof stat, f) != NULL;
    fclose(f);
    char *p = ok ? strrchr(stat, ')') : NULL;
    return p != NULL && p[1] == ' ' && p[2] != 'Z';
}

static void reap(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* The fixture of most tests here: a fresh runtime directory rt (with run/)
 * holding the marker id, with its identity recorded, of a live child of
 * ours that ignores SIGTERM; returns that child's pid. */
static pid_t stubborn_in_runtime(char *rt, size_t size, const char *id)
{
    h_runtime(rt, size, true);
    pid_t pid = h_pausing_child(true);
    identity_marker(rt, id, pid, 0);
    return pid;
}

/* Tears down a fixture: the child killed and reaped, rt removed. */
static void fixture_down(const char *rt, pid_t pid)
{
    reap(pid);
    h_rm_rf(rt);
}

/* Each options object of bad[] is FIRMA_INVALID_ARGUMENT for id, with an
 * error object naming bad[i][1] (and saying also, when not NULL). */
static void check_invalid_options(const char *rt, const char *id, const char *const bad[][2],
                                  size_t n, const char *also)
{
    for (size_t i = 0; i < n; i++) {
        char *out = NULL;
        CHECK_CALL(firma_sidecar_stop(rt, id, bad[i][0], &out), FIRMA_INVALID_ARGUMENT, out);
        CHECK_MSG(h_error_shape(out, "invalid_argument", 0, -1), "%s: %s", bad[i][0], out ? out : "(NULL)");
        if (also != NULL)
            CHECK_CONTAINS(out, also);
        CHECK_CONTAINS(out, bad[i][1]);
        firma_string_free(out);
    }
}

static void test_serving_sidecar_stopped_by_sigterm(void)
{
    char rt[PATH_MAX], want[256];
    char *out = NULL;
    h_sidecar s;
    h_runtime(rt, sizeof rt, true);
    h_sidecar_start(&s, rt, "c-serve", "serve", NULL);
    if (checked_fail_closed(rt, "c-serve", "{\"grace_ms\":5000}", s.pid)) {
        h_sidecar_stop(&s);
        h_rm_rf(rt);
        return;
    }
    CHECK_CALL(firma_sidecar_stop(rt, "c-serve", "{\"grace_ms\":5000}", &out), FIRMA_OK, out);
    snprintf(want, sizeof want,
             "{\"sandbox_id\":\"c-serve\",\"pid\":%d,\"signals\":[\"SIGTERM\"],\"exited\":true,"
             "\"killed\":false,\"collected\":false,\"waited_ms\":",
             (int)s.pid);
    CHECK_MSG(out != NULL && strncmp(out, want, strlen(want)) == 0, "got %s", out ? out : "(NULL)");
    /* the example sidecar removed its own marker on SIGTERM */
    CHECK(!h_exists(s.marker));
    firma_string_free(out);
    h_reap(&s);
    h_rm_rf(rt);
}

static void test_ignoring_sigterm_killed_after_grace_or_left_with_kill_false(void)
{
    char rt[PATH_MAX], marker[PATH_MAX];
    char *out = NULL;
    pid_t pid = stubborn_in_runtime(rt, sizeof rt, "c-stubborn");
    h_path(marker, sizeof marker, "%s/run/c-stubborn", rt);
    if (checked_fail_closed(rt, "c-stubborn", "{\"grace_ms\":200}", pid)) {
        fixture_down(rt, pid);
        return;
    }

    CHECK_CALL(firma_sidecar_stop(rt, "c-stubborn", "{\"grace_ms\":200,\"kill\":false}", &out),
               FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"signals\":[\"SIGTERM\"],\"exited\":false,\"killed\":false,\"collected\":false");
    CHECK(alive(pid) && h_exists(marker));
    firma_string_free(out);

    out = NULL;
    CHECK_CALL(firma_sidecar_stop(rt, "c-stubborn", "{\"grace_ms\":300,\"signal\":\"TERM\"}", &out),
               FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"signals\":[\"SIGTERM\",\"SIGKILL\"],\"exited\":true,\"killed\":true,\"collected\":true");
    const char *w = out ? strstr(out, "\"waited_ms\":") : NULL;
    CHECK_MSG(w != NULL && atol(w + 12) >= 300, "grace not honoured: %s", out ? out : "(NULL)");
    CHECK(!h_exists(marker));
    firma_string_free(out);
    int status = 0;
    kill(pid, SIGKILL); /* a no-op when the stop worked; never hang otherwise */
    CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    h_rm_rf(rt);
}

static void test_refusals_have_their_own_statuses_and_signal_nothing(void)
{
    char rt[PATH_MAX];
    char *out = NULL;
    h_runtime(rt, sizeof rt, true);
    pid_t pid = h_pausing_child(true); /* any live process of ours */
    identity_marker(rt, "c-reused", pid, 9);
    h_write_marker(rt, "c-bare", "c-bare", pid, NULL);
    identity_marker(rt, "c-init", 1, 0);
    struct {
        const char *id, *code;
        int32_t status;
    } cases[] = {
        {"c-reused", "pid_reused", FIRMA_PID_REUSED},
        {"c-bare", "identity_unverifiable", FIRMA_IDENTITY_UNVERIFIABLE},
        {"c-init", "refused", FIRMA_REFUSED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        out = NULL;
        /* SIGKILL at once if it were allowed: a refusal must stop it */
        CHECK_CALL(firma_sidecar_stop(rt, cases[i].id, "{\"signal\":9}", &out), cases[i].status, out);
        CHECK_MSG(h_error_shape(out, cases[i].code, 1, -1), "%s: %s", cases[i].id, out ? out : "(NULL)");
        firma_string_free(out);
    }
    CHECK(alive(pid));
    /* the documented-unsafe opt-out */
    if (checked_fail_closed(rt, "c-bare", "{\"verify_identity\":false}", pid)) {
        fixture_down(rt, pid);
        return;
    }
    out = NULL;
    CHECK_CALL(firma_sidecar_stop(rt, "c-bare", "{\"verify_identity\":false,\"grace_ms\":0}", &out),
               FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"exited\":true,\"killed\":true,\"collected\":true");
    firma_string_free(out);
    fixture_down(rt, pid);
}

static void test_dead_pid_collected_and_missing_marker_is_null(void)
{
    char rt[PATH_MAX];
    char *out = NULL;
    h_runtime(rt, sizeof rt, true);
    h_write_marker(rt, "c-dead", "c-dead", h_dead_pid(), NULL);
    CHECK_CALL(firma_sidecar_stop(rt, "c-dead", NULL, &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"signals\":[],\"exited\":true,\"killed\":false,\"collected\":true,\"waited_ms\":0}");
    firma_string_free(out);
    out = NULL;
    CHECK_CALL(firma_sidecar_stop(rt, "c-dead", NULL, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "null");
    firma_string_free(out);
    h_rm_rf(rt);
}

static void test_bad_options_are_invalid_arguments(void)
{
    char rt[PATH_MAX];
    pid_t pid = stubborn_in_runtime(rt, sizeof rt, "c-opts");
    static const char *const bad[][2] = {
        {"{\"grace\":1}", "grace\\\""},
        {"{\"signal\":\"NOPE\"}", "NOPE"},
        {"{\"signal\":0}", "signal"},
        {"{\"kill\":1}", "kill"},
        {"{\"grace_ms\":-5}", "grace_ms"},
        {"{\"grace_ms\":600001}", "grace"},
        {"[]", "object"},
        {"{", "JSON"},
    };
    check_invalid_options(rt, "c-opts", bad, sizeof bad / sizeof bad[0], NULL);
    CHECK(firma_sidecar_stop(rt, "c-opts", NULL, NULL) == FIRMA_INVALID_ARGUMENT);
    char *out = NULL;
    CHECK_CALL(firma_sidecar_stop(rt, NULL, NULL, &out), FIRMA_INVALID_ARGUMENT, out);
    firma_string_free(out);
    CHECK(alive(pid));
    fixture_down(rt, pid);
}

/* ---- the trust boundary ------------------------------------------------ */

#define REFUSAL_OPTS_N 2
static const char *const refusal_opts[REFUSAL_OPTS_N] = {
    /* SIGKILL at once if it were allowed: a refusal must stop it */
    "{\"signal\":9}",
    /* the opt-out changes nothing about these refusals */
    "{\"signal\":9,\"verify_identity\":false}",
};

/* Stops id with each of refusal_opts and checks the refusal: status, the
 * error object's shape and code, its path (the marker), its message naming
 * the pid and why; then that pid is alive and the marker kept. */
static void check_refused(const char *rt, const char *id, pid_t pid, int32_t status,
                          const char *code, const char *why)
{
    char marker[PATH_MAX], path_json[PATH_MAX + 16], meta[PATH_MAX], who[128];
    h_path(marker, sizeof marker, "%s/run/%s", rt, id);
    h_path(meta, sizeof meta, "%s/metadata.toml", marker);
    h_path(path_json, sizeof path_json, "\"path\":\"%s\"", marker);
    h_path(who, sizeof who, "refusing to signal pid %d of sandbox ", (int)pid);
    for (size_t i = 0; i < REFUSAL_OPTS_N; i++) {
        char *out = NULL;
        CHECK_CALL(firma_sidecar_stop(rt, id, refusal_opts[i], &out), status, out);
        CHECK_MSG(h_error_shape(out, code, 1, -1), "%s %s: %s", id, refusal_opts[i],
                  out ? out : "(NULL)");
        CHECK_CONTAINS(out, path_json);
        CHECK_CONTAINS(out, who);
        CHECK_CONTAINS(out, why);
        firma_string_free(out);
    }
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
    CHECK_MSG(alive(pid), "%s: a refused stop signalled pid %d", id, (int)pid);
    CHECK_MSG(h_exists(meta), "%s: a refused stop removed the marker", id);
}

/* After the refusals, the same marker made a valid claim of root's on
 * root's own process must be stopped (so the refusal was the trust check's
 * alone); where pidfds are unavailable it fails closed instead. */
static void check_stoppable(const char *rt, const char *id, pid_t pid)
{
    char *out = NULL;
    if (checked_fail_closed(rt, id, "{\"signal\":9}", pid))
        return;
    CHECK_CALL(firma_sidecar_stop(rt, id, "{\"signal\":9}", &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"signals\":[\"SIGKILL\"],\"exited\":true,\"killed\":true,\"collected\":true");
    firma_string_free(out);
}

static void test_a_marker_writable_by_others_is_nobodys_claim(void)
{
    char rt[PATH_MAX], marker[PATH_MAX];
    pid_t pid = stubborn_in_runtime(rt, sizeof rt, "c-open"); /* a live process of ours (root's) */
    h_path(marker, sizeof marker, "%s/run/c-open", rt);
    if (chmod(marker, 0777) != 0)
        h_die(marker);
    /* Refused before any pidfd is opened: the same with or without pidfds
     * (under valgrind too). */
    check_refused(rt, "c-open", pid, FIRMA_NOT_AUTHORIZED, "not_authorized",
                  "(mode 0777) is writable by others, so it is nobody's claim");
    /* (A stop let through may have collected it: then there is nothing to
     * hand back.) */
    bool kept = chmod(marker, 0700) == 0;
    CHECK_MSG(kept, "chmod %s: %s", marker, strerror(errno));
    if (kept)
        check_stoppable(rt, "c-open", pid);
    fixture_down(rt, pid);
}

static void test_another_pid_namespace_with_no_process_there_signals_nothing(void)
{
    const unsigned long long foreign_ns = 4026531000ULL;
    char rt[PATH_MAX], extra[512];
    CHECK_MSG(own_pid_ns() != foreign_ns, "this process is in the namespace called foreign");
    h_runtime(rt, sizeof rt, true);
    pid_t pid = h_pausing_child(true);
    /* A live process's identity, as if recorded in another pid namespace
     * that has no process: the recorded one is provably gone (this reader
     * sees every process), so nothing is signalled, opt-out or not, and
     * the marker is collected. Our process with that number lives on. */
    identity_toml_in(extra, sizeof extra, pid, 0, foreign_ns);
    for (size_t i = 0; i < REFUSAL_OPTS_N; i++) {
        char *out = NULL;
        h_write_marker(rt, "c-foreign-ns", "c-foreign-ns", pid, extra);
        CHECK_CALL(firma_sidecar_stop(rt, "c-foreign-ns", refusal_opts[i], &out), FIRMA_OK, out);
        CHECK_CONTAINS(out, "\"signals\":[],\"exited\":true,\"killed\":false,\"collected\":true");
        firma_string_free(out);
    }
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
    CHECK_MSG(alive(pid), "c-foreign-ns: pid %d, which only shares the number, was signalled",
              (int)pid);
    fixture_down(rt, pid);
}

/* Runs argv (found in PATH), its output discarded; its exit status, or -1. */
static int run_quiet(char *const argv[])
{
    extern char **environ;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int status = 0;
    fflush(NULL);
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs argv, retried while another useradd/userdel (other tests, other
 * checkouts) holds the password file's lock; true when it succeeded. */
static bool run_retried(char *const argv[])
{
    struct timespec wait = {0, 50 * 1000 * 1000};
    for (int i = 0; i < 100; i++) {
        if (run_quiet(argv) == 0)
            return true;
        nanosleep(&wait, NULL);
    }
    return false;
}

/* A real user made for one test (useradd --system --no-create-home
 * --user-group); name receives its name, for user_del. */
static void user_add(char *name, size_t size, uid_t *uid, gid_t *gid)
{
    static unsigned serial;
    h_path(name, size, "fc%d%u", (int)(getpid() % 100000), serial++);
    char *argv[] = {"useradd", "--system", "--no-create-home", "--user-group",
                    "--shell", "/usr/sbin/nologin", name, NULL};
    if (!run_retried(argv)) {
        fprintf(stderr, "fixture error: useradd %s failed (this test needs root)\n", name);
        exit(2);
    }
    struct passwd *pw = getpwnam(name);
    if (pw == NULL)
        h_die("getpwnam");
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
}

static void user_del(char *name)
{
    char *argv[] = {"userdel", name, NULL};
    CHECK_MSG(run_retried(argv), "userdel %s failed", name);
}

static void test_another_users_marker_cannot_stop_a_root_process(void)
{
    char rt[PATH_MAX], marker[PATH_MAX], meta[PATH_MAX], name[32], why[128];
    uid_t uid;
    gid_t gid;
    user_add(name, sizeof name, &uid, &gid);
    pid_t pid = stubborn_in_runtime(rt, sizeof rt, "c-not-theirs"); /* root's, as this test is */
    h_path(marker, sizeof marker, "%s/run/c-not-theirs", rt);
    h_path(meta, sizeof meta, "%s/metadata.toml", marker);
    /* The user's own claim (directory and metadata.toml its, writable by no
     * one else) on root's process, which the user could not signal. */
    if (chown(marker, uid, gid) != 0 || chown(meta, uid, gid) != 0) {
        int e = errno;
        user_del(name);
        errno = e;
        h_die("chown");
    }
    if (have_pidfd) {
        h_path(why, sizeof why, "the marker's owner, uid %u, could not signal it", (unsigned)uid);
        check_refused(rt, "c-not-theirs", pid, FIRMA_NOT_AUTHORIZED, "not_authorized", why);
    } else {
        /* Authority is judged on the pinned process, after pidfd_open,
         * which fails here: closed either way, nothing signalled. */
        for (size_t i = 0; i < REFUSAL_OPTS_N; i++)
            checked_fail_closed(rt, "c-not-theirs", refusal_opts[i], pid);
    }
    /* Handed back to root, the same marker is root's claim: stopped. (A
     * stop let through may have collected it: then there is nothing to
     * hand back, and the user must still be deleted.) */
    bool kept = chown(marker, 0, 0) == 0 && chown(meta, 0, 0) == 0;
    CHECK_MSG(kept, "chown %s: %s", marker, strerror(errno));
    if (kept)
        check_stoppable(rt, "c-not-theirs", pid);
    fixture_down(rt, pid);
    user_del(name);
}

/* A call refused for an untrusted runtime directory: its status, the error
 * object's shape and a part of its message; the JSON is then freed and *out
 * set back to NULL. */
static void check_untrusted(const char *call, int32_t status, char **out, const char *says)
{
    CHECK_MSG(status == FIRMA_UNTRUSTED_DIRECTORY, "%s: status %d, want %d; json: %s", call,
              (int)status, (int)FIRMA_UNTRUSTED_DIRECTORY, *out ? *out : "(NULL)");
    CHECK_MSG(h_error_shape(*out, "untrusted_directory", 1, -1), "%s", *out ? *out : "(NULL)");
    CHECK_CONTAINS(*out, says);
    firma_string_free(*out);
    *out = NULL;
}

/* docs/design.md, "Trust": in a runtime directory others may write (here
 * mode 0777), stop and gc refuse with FIRMA_UNTRUSTED_DIRECTORY — nothing
 * signalled, nothing removed — while list still answers. Mode 0700 again:
 * both work. */
static void test_untrusted_directory_refuses_stop_and_gc(void)
{
    char rt[PATH_MAX], stale[PATH_MAX];
    char *out = NULL;
    pid_t pid = stubborn_in_runtime(rt, sizeof rt, "c-victim");
    h_write_marker(rt, "c-stale", "c-stale", h_dead_pid(), NULL);
    h_path(stale, sizeof stale, "%s/run/c-stale/metadata.toml", rt);
    if (chmod(rt, 0777) != 0)
        h_die("chmod");
    int32_t st = firma_sidecar_stop(rt, "c-victim", "{\"grace_ms\":100}", &out);
    check_untrusted("stop", st, &out, "mode 0777");
    CHECK(alive(pid));
    st = firma_sidecar_gc_stale(rt, &out);
    check_untrusted("gc_stale", st, &out, "refusing to collect stale markers under ");
    CHECK_CALL_CONTAINS(firma_sidecar_list(rt, &out), FIRMA_OK, out, "\"sandbox_id\":\"c-victim\"");
    CHECK(h_exists(stale));

    if (chmod(rt, 0700) != 0)
        h_die("chmod");
    CHECK_CALL(firma_sidecar_gc_stale(rt, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "[\"c-stale\"]");
    firma_string_free(out);
    fixture_down(rt, pid);
}

/* A key given twice is refused, whichever value comes last: with the last
 * key winning, {"verify_identity":true,"verify_identity":false} passed a
 * validator that reads the first key and then signalled a process whose
 * identity cannot be proved. Nothing is signalled; the error names the key. */
static void test_duplicate_option_keys_are_refused_and_signal_nothing(void)
{
    char rt[PATH_MAX], marker[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    pid_t pid = h_pausing_child(true);
    h_write_marker(rt, "c-dup", "c-dup", pid, NULL); /* no identity recorded */
    h_path(marker, sizeof marker, "%s/run/c-dup", rt);
    static const char *const bad[][2] = {
        {"{\"verify_identity\":true,\"verify_identity\":false,\"signal\":9}", "verify_identity"},
        {"{\"verify_identity\":false,\"verify_identity\":false,\"signal\":9}", "verify_identity"},
        {"{\"verify_identity\":true,\"verify\\u005fidentity\":false,\"signal\":9}", "verify_identity"},
        {"{\"signal\":9,\"grace_ms\":0,\"signal\":\"KILL\"}", "signal"},
        {"{\"grace_ms\":1,\"grace_ms\":0,\"signal\":9}", "grace_ms"},
        {"{\"kill\":false,\"kill\":true,\"signal\":9}", "kill"},
    };
    check_invalid_options(rt, "c-dup", bad, sizeof bad / sizeof bad[0], "duplicate key");
    CHECK(alive(pid) && h_exists(marker));
    /* Once each, the same keys are fine: the opt-out alone is not refused. */
    if (!checked_fail_closed(rt, "c-dup", "{\"verify_identity\":false,\"signal\":9}", pid)) {
        char *out = NULL;
        CHECK_CALL(firma_sidecar_stop(rt, "c-dup", "{\"verify_identity\":false,\"signal\":9}", &out),
                   FIRMA_OK, out);
        CHECK_CONTAINS(out, "\"signals\":[\"SIGKILL\"],\"exited\":true");
        firma_string_free(out);
    }
    fixture_down(rt, pid);
}

int main(void)
{
    signal(SIGCHLD, SIG_DFL);
    long fd = syscall(SYS_pidfd_open, (long)getpid(), 0L);
    have_pidfd = fd >= 0;
    if (fd >= 0) {
        close((int)fd);
    } else {
        printf("NOTE: pidfd_open is unavailable here (%s): the signalling tests check that "
               "every stop fails closed instead\n", strerror(errno));
        fflush(stdout);
    }
    RUN(test_serving_sidecar_stopped_by_sigterm);
    RUN(test_ignoring_sigterm_killed_after_grace_or_left_with_kill_false);
    RUN(test_refusals_have_their_own_statuses_and_signal_nothing);
    RUN(test_dead_pid_collected_and_missing_marker_is_null);
    RUN(test_bad_options_are_invalid_arguments);
    RUN(test_a_marker_writable_by_others_is_nobodys_claim);
    RUN(test_another_pid_namespace_with_no_process_there_signals_nothing);
    RUN(test_another_users_marker_cannot_stop_a_root_process);
    RUN(test_untrusted_directory_refuses_stop_and_gc);
    RUN(test_duplicate_option_keys_are_refused_and_signal_nothing);
    return h_summary();
}
