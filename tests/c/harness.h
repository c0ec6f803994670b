/*
 * A tiny test harness for the C ABI tests, plus real fixtures: temporary
 * runtime directories, and the core fixtures (live, zombie and dead
 * processes, endpoints, markers) laid down by firma-testkit, the one
 * fixture tool of every surface's tests.
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
#include <spawn.h>
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

/* One call's status and a needle in its JSON; the JSON is then freed and
 * json_var set back to NULL for the next call. */
#define CHECK_CALL_CONTAINS(call, want_status, json_var, needle)             \
    do {                                                                     \
        CHECK_CALL(call, want_status, json_var);                             \
        CHECK_CONTAINS(json_var, needle);                                    \
        firma_string_free(json_var);                                         \
        (json_var) = NULL;                                                   \
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

/* Forks with a close-on-exec pipe between parent and child (stdio flushed
 * first so nothing is written twice); dies if either fails. Returns fork()'s
 * value: the child writes fds[1], the parent closes it and reads fds[0]. */
static inline pid_t h_fork_piped(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        h_die("pipe");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        h_die("fork");
    return pid;
}

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

/* ---- core fixtures, from firma-testkit ------------------------------ */

/* A fixture laid down by firma-testkit (tests/conformance/README.md) from a
 * file of tests/conformance: live, zombie and dead processes, endpoints,
 * markers. Its plan arrives in line form: `place NAME xHEX` lines, `step`
 * lines (kept in steps[] for the conformance runner), then `ready`. It is
 * torn down by h_kit_down (or when this process dies). */
typedef struct {
    pid_t pid;
    FILE *to, *from;
    char **lines; /* the plan's place and step lines, "x<hex>" decoded by h_kit_place */
    size_t n_lines;
} h_kit;

/* One line without its newline into *buf (getline's buffer); false at EOF. */
static inline bool h_read_line(FILE *f, char **buf, size_t *cap)
{
    ssize_t n = getline(buf, cap, f);
    if (n < 0)
        return false;
    if (n > 0 && (*buf)[n - 1] == '\n')
        (*buf)[n - 1] = '\0';
    return true;
}

/* Decodes "x<hex>" in place; NULL when it is not that. */
static inline char *h_unhex(char *field)
{
    char *src = field + 1, *dst = field;
    if (field[0] != 'x')
        return NULL;
    for (unsigned v; src[0] && src[1]; src += 2) {
        if (sscanf(src, "%2x", &v) != 1)
            return NULL;
        *dst++ = (char)v;
    }
    *dst = '\0';
    return field;
}

/* Starts the testkit on tests/conformance/<file> (or an absolute path) and
 * reads its plan; false (with the testkit's message on stderr) when it
 * could not lay the fixture down. */
static inline bool h_kit_up(h_kit *k, const char *file)
{
    extern char **environ;
    const char *env = getenv("FIRMA_TESTKIT");
    const char *tool = env && *env ? env : C_BIN_DIR "/firma-testkit";
    char path[PATH_MAX];
    if (file[0] == '/')
        h_path(path, sizeof path, "%s", file);
    else
        h_path(path, sizeof path, "%s/../../tests/conformance/%s", C_BIN_DIR, file);
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        h_die("pipe2");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    char *argv[] = {(char *)tool, (char *)"up", (char *)"--lines", path, NULL};
    fflush(NULL);
    errno = posix_spawn(&k->pid, tool, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (errno != 0)
        h_die(tool);
    close(in[0]);
    close(out[1]);
    k->to = fdopen(in[1], "w");
    k->from = fdopen(out[0], "r");
    if (k->to == NULL || k->from == NULL)
        h_die("fdopen");
    k->lines = NULL;
    k->n_lines = 0;
    char *line = NULL;
    size_t cap = 0;
    bool ready = false;
    while (h_read_line(k->from, &line, &cap)) {
        if (strcmp(line, "ready") == 0) {
            ready = true;
            break;
        }
        char **more = realloc(k->lines, (k->n_lines + 1) * sizeof *more);
        if (more == NULL)
            h_die("realloc");
        k->lines = more;
        k->lines[k->n_lines++] = strdup(line);
    }
    free(line);
    return ready;
}

/* The value of placeholder `name` (e.g. "runtime", "run", "pid:live");
 * NULL when there is none. Valid until h_kit_down. */
static inline const char *h_kit_place(h_kit *k, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < k->n_lines; i++) {
        char *l = k->lines[i];
        if (strncmp(l, "place ", 6) == 0 && strncmp(l + 6, name, n) == 0 && l[6 + n] == ' ') {
            if (l[7 + n] == 'x')
                h_unhex(l + 7 + n);
            return l + 7 + n;
        }
    }
    return NULL;
}

/* Sends one request line and returns the one-line answer (malloc'd), or
 * NULL when the testkit is gone. */
static inline char *h_kit_ask(h_kit *k, const char *kind, const char *payload)
{
    char *line = NULL;
    size_t cap = 0;
    fprintf(k->to, "%s%s\n", kind, payload);
    fflush(k->to);
    if (!h_read_line(k->from, &line, &cap)) {
        free(line);
        return NULL;
    }
    return line;
}

/* Closes the testkit's stdin: it kills and reaps its processes, removes
 * its directory and exits. */
static inline void h_kit_down(h_kit *k)
{
    fclose(k->to);
    fclose(k->from);
    while (waitpid(k->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    for (size_t i = 0; i < k->n_lines; i++)
        free(k->lines[i]);
    free(k->lines);
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
