/*
 * The conformance suite, C runner: every scenario of
 * tests/conformance/scenarios, laid down by firma-testkit, called through
 * the C ABI. The testkit hands over the plan in its line form
 *
 *   step <i> <op> x<hex runtime> x<hex id> x<hex dir> <timeout_ms> <skip> <expected>
 *
 * and puts each answer (the library's JSON, success or error object) into
 * the canonical form the expected strings are in, so this runner only calls
 * and compares strings. Fixtures and normalisation live in the testkit.
 */
#include "harness.h"

#ifndef C_REPO_SCENARIOS
#define C_REPO_SCENARIOS C_BIN_DIR "/../../tests/conformance/scenarios"
#endif

typedef struct {
    pid_t pid;
    FILE *to;   /* the testkit's stdin */
    FILE *from; /* the testkit's stdout */
} kit;

static const char *testkit_path(void)
{
    const char *env = getenv("FIRMA_TESTKIT");
    return env && *env ? env : C_BIN_DIR "/firma-testkit";
}

static void kit_up(kit *k, const char *scenario)
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        h_die("pipe2");
    k->pid = fork();
    if (k->pid < 0)
        h_die("fork");
    if (k->pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        execl(testkit_path(), "firma-testkit", "up", "--lines", scenario, (char *)NULL);
        fprintf(stderr, "cannot exec %s: %s\n", testkit_path(), strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    k->to = fdopen(in[1], "w");
    k->from = fdopen(out[0], "r");
    if (!k->to || !k->from)
        h_die("fdopen");
}

static void kit_down(kit *k)
{
    int status;
    fclose(k->to);
    fclose(k->from);
    while (waitpid(k->pid, &status, 0) < 0 && errno == EINTR) {
    }
}

/* Reads one line (without its newline) into *buf; false at EOF. */
static bool read_line(FILE *f, char **buf, size_t *cap)
{
    ssize_t n = getline(buf, cap, f);
    if (n < 0)
        return false;
    if (n > 0 && (*buf)[n - 1] == '\n')
        (*buf)[n - 1] = '\0';
    return true;
}

/* Sends a request and returns the testkit's one-line answer (malloc'd). */
static char *ask(kit *k, const char *kind, const char *payload)
{
    char *line = NULL;
    size_t cap = 0;
    fprintf(k->to, "%s%s\n", kind, payload);
    fflush(k->to);
    if (!read_line(k->from, &line, &cap)) {
        free(line);
        return NULL;
    }
    return line;
}

/* Decodes "x<hex>" in place. */
static char *unhex(char *field)
{
    char *src = field + 1, *dst = field;
    if (field[0] != 'x')
        return NULL;
    while (src[0] && src[1]) {
        unsigned v;
        if (sscanf(src, "%2x", &v) != 1)
            return NULL;
        *dst++ = (char)v;
        src += 2;
    }
    *dst = '\0';
    return field;
}

static bool skipped_here(const char *skip)
{
    char copy[256];
    snprintf(copy, sizeof copy, "%s", skip);
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (strcmp(t, "c") == 0)
            return true;
    return false;
}

static int32_t call(const char *op, const char *rt, const char *id, const char *dir,
                    uint32_t timeout_ms, char **out)
{
    if (strcmp(op, "list") == 0)
        return timeout_ms ? firma_sidecar_list_with_timeout(rt, timeout_ms, out)
                          : firma_sidecar_list(rt, out);
    if (strcmp(op, "get") == 0)
        return timeout_ms ? firma_sidecar_get_with_timeout(rt, id, timeout_ms, out)
                          : firma_sidecar_get(rt, id, out);
    if (strcmp(op, "gc_stale") == 0)
        return firma_sidecar_gc_stale(rt, out);
    if (strcmp(op, "probe_entry") == 0)
        return timeout_ms ? firma_sidecar_probe_entry_with_timeout(dir, timeout_ms, out)
                          : firma_sidecar_probe_entry(dir, out);
    *out = NULL;
    return -1;
}

static void run_scenario(const char *path, const char *name)
{
    kit k;
    char *line = NULL;
    size_t cap = 0;
    bool ready = false;
    kit_up(&k, path);
    /* The plan first, whole: the testkit answers requests only after it. */
    char **steps = NULL;
    size_t n = 0;
    while (read_line(k.from, &line, &cap)) {
        if (strcmp(line, "ready") == 0) {
            ready = true;
            break;
        }
        steps = realloc(steps, (n + 1) * sizeof *steps);
        if (!steps)
            h_die("realloc");
        steps[n++] = strdup(line);
    }
    CHECK_MSG(ready, "%s: the testkit gave no plan (see its message above)", name);
    for (size_t s = 0; ready && s < n; s++) {
        char *save = NULL;
        char *f[9];
        int nf = 0;
        /* The expected answer is the rest of the line after 8 fields. */
        char *p = steps[s];
        for (nf = 0; nf < 8; nf++) {
            f[nf] = strtok_r(nf == 0 ? p : NULL, " ", &save);
            if (!f[nf])
                break;
        }
        f[8] = save;
        if (nf < 8 || strcmp(f[0], "step") != 0 || !f[8]) {
            h_failf(__FILE__, __LINE__, "%s: malformed plan line", name);
            continue;
        }
        const char *idx = f[1], *op = f[2], *skip = f[7], *expected = f[8];
        char *rt = unhex(f[3]), *id = unhex(f[4]), *dir = unhex(f[5]);
        uint32_t timeout_ms = (uint32_t)strtoul(f[6], NULL, 10);
        if (!rt || !id || !dir) {
            h_failf(__FILE__, __LINE__, "%s: bad hex in the plan", name);
            continue;
        }
        if (skipped_here(skip))
            continue;
        char *actual;
        if (strcmp(op, "disk") == 0) {
            actual = ask(&k, "disk ", idx);
        } else {
            char *json = NULL;
            int32_t st = call(op, rt, id, dir, timeout_ms, &json);
            if (st < 0) {
                h_failf(__FILE__, __LINE__, "%s: step %s: no C call for op %s", name, idx, op);
                continue;
            }
            actual = ask(&k, st == FIRMA_OK ? "canon ok " : "canon error ", json ? json : "null");
            firma_string_free(json);
        }
        if (!actual || strcmp(actual, expected) != 0)
            h_failf(__FILE__, __LINE__,
                    "scenario %s, step %s (%s %s%s) on c:\n      expected %s\n      actual   %s",
                    name, idx, op, id, dir, expected, actual ? actual : "(testkit gone)");
        free(actual);
    }
    for (size_t s = 0; s < n; s++)
        free(steps[s]);
    free(steps);
    free(line);
    kit_down(&k);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    DIR *d = opendir(C_REPO_SCENARIOS);
    if (!d)
        h_die(C_REPO_SCENARIOS);
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0) {
            names = realloc(names, (n + 1) * sizeof *names);
            if (!names)
                h_die("realloc");
            names[n++] = strdup(e->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    CHECK_MSG(n > 0, "no scenarios in %s", C_REPO_SCENARIOS);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        h_path(path, sizeof path, "%s/%s", C_REPO_SCENARIOS, names[i]);
        names[i][strlen(names[i]) - 5] = '\0';
        h_current_failures = 0;
        run_scenario(path, names[i]);
        if (h_current_failures == 0) {
            h_passed++;
            printf("ok - conformance %s\n", names[i]);
        } else {
            h_failed++;
            printf("FAIL - conformance %s\n", names[i]);
        }
        fflush(stdout);
        free(names[i]);
    }
    free(names);
    return h_summary();
}
