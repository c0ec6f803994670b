/*
 * A tiny test harness for the C ABI tests, plus real fixtures: temporary
 * runtime directories, real sidecar processes (target/release/
 * firma-example-sidecar, started with fork/exec and awaited by reading its
 * `ready` line), real dead pids and hand-written markers.
 *
 * Each test program prints one line per test ("ok - NAME" / "FAIL - NAME")
 * and closes with "summary: N passed, N failed"; scripts/c-test.sh adds the
 * programs' counts up.
 */
#ifndef FIRMA_C_TEST_HARNESS_H
#define FIRMA_C_TEST_HARNESS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "firma_stack.h"

#ifndef C_BIN_DIR
#error "compile with -DC_BIN_DIR=\"<absolute path of target/release>\""
#endif

/* ---- counting ---------------------------------------------------------- */

static int h_passed, h_failed, h_current_failures;

static inline void h_failf(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    h_current_failures++;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#define CHECK(cond)                                                     \
    do {                                                                \
        if (!(cond))                                                    \
            h_failf(__FILE__, __LINE__, "check failed: %s", #cond);     \
    } while (0)

#define CHECK_MSG(cond, ...)                                            \
    do {                                                                \
        if (!(cond))                                                    \
            h_failf(__FILE__, __LINE__, __VA_ARGS__);                   \
    } while (0)

/* Status and JSON: on mismatch both are printed. */
#define CHECK_CALL(call, want_status, json_var)                              \
    do {                                                                     \
        int32_t st_ = (call);                                                \
        if (st_ != (want_status))                                            \
            h_failf(__FILE__, __LINE__, "%s: status %d, want %d; json: %s",  \
                    #call, (int)st_, (int)(want_status),                     \
                    (json_var) ? (json_var) : "(NULL)");                     \
    } while (0)

#define CHECK_STREQ(got, want)                                               \
    do {                                                                     \
        const char *g_ = (got), *w_ = (want);                                \
        if (g_ == NULL || strcmp(g_, w_) != 0)                               \
            h_failf(__FILE__, __LINE__, "%s:\n      got  %s\n      want %s", \
                    #got, g_ ? g_ : "(NULL)", w_);                           \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                          \
    do {                                                                     \
        const char *h_ = (hay), *n_ = (needle);                              \
        if (h_ == NULL || strstr(h_, n_) == NULL)                            \
            h_failf(__FILE__, __LINE__, "%s does not contain %s: %s",       \
                    #hay, n_, h_ ? h_ : "(NULL)");                           \
    } while (0)

#define CHECK_LACKS(hay, needle)                                             \
    do {                                                                     \
        const char *h_ = (hay), *n_ = (needle);                              \
        if (h_ == NULL || strstr(h_, n_) != NULL)                            \
            h_failf(__FILE__, __LINE__, "%s contains %s: %s", #hay, n_,     \
                    h_ ? h_ : "(NULL)");                                     \
    } while (0)

#define RUN(test)                                                       \
    do {                                                                \
        h_current_failures = 0;                                         \
        test();                                                         \
        if (h_current_failures == 0) {                                  \
            h_passed++;                                                 \
            printf("ok - %s\n", #test);                                 \
        } else {                                                        \
            h_failed++;                                                 \
            printf("FAIL - %s\n", #test);                               \
        }                                                               \
        fflush(stdout);                                                 \
    } while (0)

static inline int h_summary(void)
{
    printf("summary: %d passed, %d failed\n", h_passed, h_failed);
    fflush(stdout);
    return h_failed == 0 ? 0 : 1;
}

/* Aborts the program: a fixture could not be set up. */
static inline void h_die(const char *what)
{
    fprintf(stderr, "fixture error: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* ---- small utilities ------------------------------------------------ */

static inline double h_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline bool h_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static inline void h_path(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        h_die("path");
    }
}

static inline void h_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        h_die(path);
    if (fputs(text, f) == EOF || fclose(f) != 0)
        h_die(path);
}

static inline void h_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d != NULL) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                char child[PATH_MAX];
                h_path(child, sizeof child, "%s/%s", path, e->d_name);
                h_rm_rf(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* A fresh runtime directory with an empty run/ (when with_run). */
static inline void h_runtime(char *buf, size_t size, bool with_run)
{
    h_path(buf, size, "/tmp/firma-ctest.XXXXXX");
    if (mkdtemp(buf) == NULL)
        h_die("mkdtemp");
    if (with_run) {
        char run[PATH_MAX];
        h_path(run, sizeof run, "%s/run", buf);
        if (mkdir(run, 0700) != 0)
            h_die(run);
    }
}

/* ---- processes ------------------------------------------------------ */

/* A pid that certainly belonged to a process that has exited and been
 * reaped (it may be reused later, which the marker's pid check handles). */
static inline pid_t h_dead_pid(void)
{
    pid_t pid = fork();
    if (pid < 0)
        h_die("fork");
    if (pid == 0)
        _exit(0);
    if (waitpid(pid, NULL, 0) != pid)
        h_die("waitpid");
    return pid;
}

/* Writes a marker by hand: run/<dir_name>/metadata.toml naming sandbox_id
 * and pid. `extra` is appended verbatim (may be NULL). */
static inline void h_write_marker(const char *runtime, const char *dir_name,
                           const char *sandbox_id, long pid, const char *extra)
{
    char path[PATH_MAX], text[4096];
    h_path(path, sizeof path, "%s/run", runtime);
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        h_die(path);
    h_path(path, sizeof path, "%s/run/%s", runtime, dir_name);
    if (mkdir(path, 0700) != 0)
        h_die(path);
    snprintf(text, sizeof text,
             "sandbox_id = \"%s\"\n"
             "agent_id = \"agent-c\"\n"
             "session_id = \"session-c\"\n"
             "authority_url = \"https://authority.example.invalid\"\n"
             "policy_bundle_version = \"sha256:c\"\n"
             "pid = %ld\n"
             "started_at = \"2026-01-02T03:04:05Z\"\n%s",
             sandbox_id, pid, extra ? extra : "");
    h_path(path, sizeof path, "%s/run/%s/metadata.toml", runtime, dir_name);
    h_write_file(path, text);
}

typedef struct {
    pid_t pid;
    char marker[PATH_MAX]; /* from its `ready <marker_dir>` line */
} h_sidecar;

/* Starts target/release/firma-example-sidecar and waits for its `ready`
 * line. mode: "serve", "wedged" or "no-socket"; tcp: NULL or an address. */
static inline void h_sidecar_start(h_sidecar *s, const char *runtime, const char *id,
                            const char *mode, const char *tcp)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        h_die("pipe");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        h_die("fork");
    if (pid == 0) {
        /* If the test dies, its sidecars die with it (no orphans in CI). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], STDOUT_FILENO);
        const char *argv[12];
        int n = 0;
        argv[n++] = C_BIN_DIR "/firma-example-sidecar";
        argv[n++] = "--runtime-dir";
        argv[n++] = runtime;
        argv[n++] = "--id";
        argv[n++] = id;
        argv[n++] = "--mode";
        argv[n++] = mode;
        if (tcp != NULL) {
            argv[n++] = "--tcp";
            argv[n++] = tcp;
        }
        argv[n] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    char line[PATH_MAX + 16];
    size_t len = 0;
    while (len + 1 < sizeof line) {
        ssize_t r = read(fds[0], line + len, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (line[len] == '\n')
            break;
        len++;
    }
    line[len] = '\0';
    close(fds[0]);
    if (strncmp(line, "ready ", 6) != 0) {
        fprintf(stderr, "sidecar %s did not get ready (got %s)\n", id, line);
        errno = EIO;
        h_die("sidecar start");
    }
    s->pid = pid;
    h_path(s->marker, sizeof s->marker, "%s", line + 6);
}

/* SIGTERM: the sidecar removes its marker and exits 0. Returns true then. */
static inline bool h_sidecar_stop(h_sidecar *s)
{
    int status = 0;
    kill(s->pid, SIGTERM);
    if (waitpid(s->pid, &status, 0) != s->pid)
        h_die("waitpid");
    s->pid = 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* SIGKILL; with reap, the pid is gone; without, it stays a zombie until
 * h_reap (waitid WNOWAIT waits for death without reaping). */
static inline void h_sidecar_kill(h_sidecar *s, bool reap)
{
    kill(s->pid, SIGKILL);
    if (reap) {
        if (waitpid(s->pid, NULL, 0) != s->pid)
            h_die("waitpid");
        s->pid = 0;
    } else {
        siginfo_t info;
        if (waitid(P_PID, (id_t)s->pid, &info, WEXITED | WNOWAIT) != 0)
            h_die("waitid");
    }
}

static inline void h_reap(h_sidecar *s)
{
    if (s->pid > 0 && waitpid(s->pid, NULL, 0) != s->pid)
        h_die("waitpid");
    s->pid = 0;
}

/* ---- JSON checks ------------------------------------------------------ */

/* The error object must be exactly
 *   {"code":"<code>","message":"<non-empty>","path":<null|"...">,"errno":<null|N>}
 * with the given code; want_path: -1 null, 1 a string, 0 either;
 * want_errno: -1 null, 0 any, else that number. */
static inline bool h_error_shape(const char *json, const char *code, int want_path,
                          int want_errno)
{
    char prefix[64];
    if (json == NULL)
        return false;
    snprintf(prefix, sizeof prefix, "{\"code\":\"%s\",\"message\":\"", code);
    if (strncmp(json, prefix, strlen(prefix)) != 0)
        return false;
    if (json[strlen(prefix)] == '"') /* empty message */
        return false;
    /* The last ,"path": and ,"errno": are the real keys (a message may
     * quote anything, but never after them). */
    const char *path = NULL, *p = json;
    while ((p = strstr(p, "\",\"path\":")) != NULL)
        path = p++;
    if (path == NULL)
        return false;
    path += strlen("\",\"path\":");
    const char *err = NULL;
    p = path;
    while ((p = strstr(p, ",\"errno\":")) != NULL)
        err = p++;
    if (err == NULL)
        return false;
    bool path_null = strncmp(path, "null,", 5) == 0;
    if (!path_null && path[0] != '"')
        return false;
    if ((want_path < 0 && !path_null) || (want_path > 0 && path_null))
        return false;
    err += strlen(",\"errno\":");
    if (strcmp(err, "null}") == 0)
        return want_errno <= 0;
    char *end = NULL;
    long n = strtol(err, &end, 10);
    if (end == err || strcmp(end, "}") != 0)
        return false;
    return want_errno == 0 || (want_errno > 0 && n == want_errno);
}

#endif
