/*
 * The conformance suite, C runner: every scenario of
 * tests/conformance/scenarios, laid down by firma-testkit, called through
 * the C ABI. The testkit hands over the plan in its line form
 *
 *   step <i> <op> x<hex runtime> x<hex id> x<hex dir> x<hex arg> <timeout_ms> <skip> <expected>
 *
 * and puts each answer (the library's JSON, success or error object) into
 * the canonical form the expected strings are in, so this runner only calls
 * and compares strings. Fixtures and normalisation live in the testkit;
 * its client is h_kit in harness.h.
 */
#include "harness.h"

#ifndef C_REPO_SCENARIOS
#define C_REPO_SCENARIOS C_BIN_DIR "/../../tests/conformance/scenarios"
#endif

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
                    const char *arg, uint32_t timeout_ms, char **out)
{
    /* arg: the step's JSON argument, passed on as it is. */
    if (strcmp(op, "list_filtered") == 0)
        return firma_sidecar_list_filtered(rt, arg, timeout_ms, out);
    if (strcmp(op, "inspect_filtered") == 0)
        return firma_sidecar_inspect_filtered(rt, arg, timeout_ms, out);
    if (strcmp(op, "wait") == 0)
        return firma_sidecar_wait(rt, arg, out);
    if (strcmp(op, "runtime_dir_state") == 0)
        return firma_runtime_dir_state(rt, out);
    if (strcmp(op, "list") == 0)
        return timeout_ms ? firma_sidecar_list_with_timeout(rt, timeout_ms, out)
                          : firma_sidecar_list(rt, out);
    if (strcmp(op, "get") == 0)
        return timeout_ms ? firma_sidecar_get_with_timeout(rt, id, timeout_ms, out)
                          : firma_sidecar_get(rt, id, out);
    if (strcmp(op, "gc_stale") == 0)
        return firma_sidecar_gc_stale(rt, out);
    if (strcmp(op, "inspect") == 0)
        return firma_sidecar_inspect(rt, timeout_ms, out);
    if (strcmp(op, "probe_entry") == 0)
        return timeout_ms ? firma_sidecar_probe_entry_with_timeout(dir, timeout_ms, out)
                          : firma_sidecar_probe_entry(dir, out);
    *out = NULL;
    return -1;
}

/* `text` as a JSON string, in malloc'd memory: what the testkit's
 * "canon ok" takes for an answer that is text (the metrics). */
static char *json_string(const char *text)
{
    size_t len = strlen(text), o = 0;
    char *out = malloc(len * 6 + 3);
    if (!out)
        h_die("malloc");
    out[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
            out[o++] = (char)*p;
        } else if (*p < 0x20) {
            o += (size_t)sprintf(out + o, "\\u%04x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

/* firma_render_metrics with collection on, in the text format 0.0.4. */
static int32_t render_metrics(const char *rt, uint32_t timeout_ms, char **out)
{
    char opts[80];
    if (timeout_ms)
        snprintf(opts, sizeof opts, "{\"format\":\"text\",\"timeout_ms\":%u}", timeout_ms);
    else
        snprintf(opts, sizeof opts, "{\"format\":\"text\"}");
    return firma_render_metrics(rt, opts, out);
}

/* A read-only watcher's events up to and including "synced", as one JSON
 * array in malloc'd memory (NULL on failure, with the error in *err). */
static char *watch_synced(const char *rt, uint32_t timeout_ms, char **err)
{
    char opts[64];
    if (timeout_ms)
        snprintf(opts, sizeof opts, "{\"collect\":false,\"timeout_ms\":%u}", timeout_ms);
    else
        snprintf(opts, sizeof opts, "{\"collect\":false}");
    struct firma_watch *w = NULL;
    *err = NULL;
    if (firma_watch_open(rt, opts, &w, err) != FIRMA_OK)
        return NULL;
    size_t cap = 256, len = 1;
    char *arr = malloc(cap);
    if (!arr)
        h_die("malloc");
    arr[0] = '[';
    for (int n = 0;; n++) {
        char *ev = NULL;
        if (firma_watch_next(w, 30000, &ev) != FIRMA_OK || !ev || strcmp(ev, "null") == 0) {
            firma_string_free(ev);
            free(arr);
            arr = NULL;
            break;
        }
        size_t need = len + strlen(ev) + 3;
        if (need > cap) {
            cap = need * 2;
            arr = realloc(arr, cap);
            if (!arr)
                h_die("realloc");
        }
        if (n > 0)
            arr[len++] = ',';
        memcpy(arr + len, ev, strlen(ev));
        len += strlen(ev);
        bool done = strstr(ev, "\"event\":\"synced\"") != NULL;
        firma_string_free(ev);
        if (done) {
            arr[len++] = ']';
            arr[len] = '\0';
            break;
        }
    }
    firma_watch_close(w);
    return arr;
}

static void run_scenario(const char *path, const char *name)
{
    h_kit k;
    bool ready = h_kit_up(&k, path);
    CHECK_MSG(ready, "%s: the testkit gave no plan (see its message above)", name);
    for (size_t s = 0; ready && s < k.n_lines; s++) {
        if (strncmp(k.lines[s], "step ", 5) != 0)
            continue;
        char *save = NULL;
        char *f[10];
        int nf;
        /* The expected answer is the rest of the line after 9 fields. */
        for (nf = 0; nf < 9; nf++) {
            f[nf] = strtok_r(nf == 0 ? k.lines[s] : NULL, " ", &save);
            if (!f[nf])
                break;
        }
        f[9] = save;
        if (nf < 9 || !f[9]) {
            h_failf(__FILE__, __LINE__, "%s: malformed plan line", name);
            continue;
        }
        const char *idx = f[1], *op = f[2], *skip = f[8], *expected = f[9];
        char *rt = h_unhex(f[3]), *id = h_unhex(f[4]), *dir = h_unhex(f[5]), *arg = h_unhex(f[6]);
        uint32_t timeout_ms = (uint32_t)strtoul(f[7], NULL, 10);
        if (!rt || !id || !dir || !arg) {
            h_failf(__FILE__, __LINE__, "%s: bad hex in the plan", name);
            continue;
        }
        if (skipped_here(skip))
            continue;
        char *actual;
        if (strcmp(op, "disk") == 0) {
            actual = h_kit_ask(&k, "disk ", idx);
        } else if (strcmp(op, "watch_synced") == 0) {
            char *err = NULL;
            char *events = watch_synced(rt, timeout_ms, &err);
            actual = events ? h_kit_ask(&k, "canon ok ", events)
                            : h_kit_ask(&k, "canon error ", err ? err : "null");
            free(events);
            firma_string_free(err);
        } else if (strcmp(op, "metrics") == 0) {
            char *text = NULL;
            int32_t st = render_metrics(rt, timeout_ms, &text);
            char *json = st == FIRMA_OK ? json_string(text) : NULL;
            actual = h_kit_ask(&k, st == FIRMA_OK ? "canon ok " : "canon error ",
                               json ? json : text ? text : "null");
            free(json);
            firma_string_free(text);
        } else {
            char *json = NULL;
            int32_t st = call(op, rt, id, dir, arg, timeout_ms, &json);
            if (st < 0) {
                h_failf(__FILE__, __LINE__, "%s: step %s: no C call for op %s", name, idx, op);
                continue;
            }
            actual = h_kit_ask(&k, st == FIRMA_OK ? "canon ok " : "canon error ",
                               json ? json : "null");
            firma_string_free(json);
        }
        if (!actual || strcmp(actual, expected) != 0)
            h_failf(__FILE__, __LINE__,
                    "scenario %s, step %s (%s %s%s) on c:\n      expected %s\n      actual   %s",
                    name, idx, op, id, dir, expected, actual ? actual : "(testkit gone)");
        free(actual);
    }
    h_kit_down(&k);
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
