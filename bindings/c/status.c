/*
 * status: a small example supervisor over the firma-stack C ABI, reading
 * every answer of the library with jansson (Debian: libjansson-dev).
 *
 *   status [OPTIONS]                 live sidecars (a table)
 *   status [OPTIONS] get ID          one sidecar
 *   status [OPTIONS] gc              collect stopped sidecars' markers
 *   status [OPTIONS] inspect         every marker, with its verdict, reason
 *                                    and the nested sidecar / error objects
 *   status [OPTIONS] watch [N]       print the first N events (default: until
 *                                    `synced`), waiting --timeout-ms for each
 *   status [OPTIONS] stop ID         stop a sidecar safely, print the outcome
 *
 *   OPTIONS: --runtime-dir DIR, --timeout-ms MS (probe timeout; for watch,
 *            the wait for each event), --grace-ms MS (stop), --json (print
 *            the library's JSON as it is)
 *
 * Exit status: 0 success, 1 `get`/`stop` found no such sidecar or `watch`
 * timed out, 2 an error (the error object's code and message on stderr).
 * Build it with
 *   cc status.c $(pkg-config --cflags --libs firma_stack jansson)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "firma_stack.h"

/* ---- reading the library's JSON ------------------------------------- */

/* The string member KEY of OBJ, or "-" when it is null or missing. */
static const char *str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : "-";
}

/* Parses the library's answer and frees it: the library's strings are freed
 * with firma_string_free only, so jansson works on its own copy. NULL (with
 * the reason on stderr) if it is not JSON. */
static json_t *take(char *answer)
{
    json_error_t error;
    json_t *v = json_loads(answer, JSON_DECODE_ANY, &error);
    if (v == NULL)
        fprintf(stderr, "status: the library answered something that is not JSON (%s): %s\n",
                error.text, answer);
    firma_string_free(answer);
    return v;
}

/* On failure the library hands back an error object
 * {"code","message","path","errno"}: show it. */
static int report_error(const char *what, int32_t status, char *answer)
{
    json_t *err = answer != NULL ? take(answer) : NULL;
    if (json_is_object(err)) {
        fprintf(stderr, "status: %s failed (%s, status %d): %s", what, str(err, "code"),
                (int)status, str(err, "message"));
        json_t *errno_v = json_object_get(err, "errno");
        if (json_is_integer(errno_v))
            fprintf(stderr, " [errno %" JSON_INTEGER_FORMAT "]", json_integer_value(errno_v));
        fputc('\n', stderr);
    } else {
        fprintf(stderr, "status: %s failed (status %d)\n", what, (int)status);
    }
    json_decref(err);
    return 2;
}

static int unexpected(const char *what, json_t *v)
{
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    fprintf(stderr, "status: unexpected %s from the library: %s\n", what, text ? text : "?");
    free(text);
    json_decref(v);
    return 2;
}

/* ---- output --------------------------------------------------------- */

static void human_uptime(const json_t *secs, char *buf, size_t size)
{
    if (!json_is_integer(secs)) {
        snprintf(buf, size, "-");
        return;
    }
    unsigned long long s = (unsigned long long)json_integer_value(secs);
    if (s < 60)
        snprintf(buf, size, "%llus", s);
    else if (s < 3600)
        snprintf(buf, size, "%llum %llus", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, size, "%lluh %llum", s / 3600, s / 60 % 60);
    else
        snprintf(buf, size, "%llud %lluh", s / 86400, s / 3600 % 24);
}

static void print_header(void)
{
    printf("%-24s %-16s %-10s %-8s %-8s %s\n", "SANDBOX", "AGENT", "STATE", "PID", "UPTIME",
           "LISTEN");
}

/* One sidecar object (the entries of list/get, inspect's `entry`, the
 * `entry` of watch events). */
static void print_row(const json_t *e)
{
    char up[32], pid[24] = "-";
    human_uptime(json_object_get(e, "uptime_secs"), up, sizeof up);
    json_t *p = json_object_get(e, "pid");
    if (json_is_integer(p))
        snprintf(pid, sizeof pid, "%" JSON_INTEGER_FORMAT, json_integer_value(p));
    printf("%-24s %-16s %-10s %-8s %-8s %s\n", str(e, "sandbox_id"), str(e, "agent_id"),
           str(e, "state"), pid, up, str(e, "listen"));
}

/* Prints ANSWER as it is for --json; true when it did (and freed it). */
static bool print_json(bool json_out, char *answer)
{
    if (!json_out)
        return false;
    puts(answer);
    firma_string_free(answer);
    return true;
}

/* The answer of a call, parsed for a table: NULL with *rc set when the call
 * failed (its error object reported, 2), --json printed it, or it is not
 * what the command shows: an array, or with `one` an object or null (the
 * JSON null of a missing marker sets *rc to 1). */
static json_t *for_table(const char *what, int32_t st, char *answer, bool json_out, bool one,
                         int *rc)
{
    if (st != FIRMA_OK) {
        *rc = report_error(what, st, answer);
        return NULL;
    }
    *rc = one && strcmp(answer, "null") == 0 ? 1 : 0;
    if (print_json(json_out, answer))
        return NULL;
    json_t *v = take(answer);
    if (one ? json_is_object(v) || json_is_null(v) : json_is_array(v))
        return v;
    *rc = unexpected(what, v);
    return NULL;
}

/* ---- commands ------------------------------------------------------- */

/* Shows an array answer (NULL DIR: the default runtime directory): each
 * element printed by PRINT, given its index, or NONE when there is none.
 * The exit status: 0, or as for_table when it shows nothing. */
static int show_array(const char *what, int32_t st, char *answer, bool json_out, const char *dir,
                      void (*print)(size_t i, const json_t *e), void (*none)(const char *dir))
{
    int rc;
    json_t *rows = for_table(what, st, answer, json_out, false, &rc);
    if (rows == NULL)
        return rc;
    size_t i;
    json_t *e;
    json_array_foreach(rows, i, e) print(i, e);
    if (json_array_size(rows) == 0)
        none(dir);
    json_decref(rows);
    return 0;
}

/* list: a table of sidecars under a header. */
static void list_row(size_t i, const json_t *e)
{
    if (i == 0)
        print_header();
    print_row(e);
}

static void no_live_sidecars(const char *dir)
{
    char *def = NULL;
    if (dir == NULL && firma_default_runtime_dir(&def) == FIRMA_OK)
        printf("no live sidecars in %s\n", def);
    else
        printf("no live sidecars in %s\n", dir ? dir : "the default runtime dir");
    firma_string_free(def);
}

static int cmd_list(const char *dir, uint32_t timeout_ms, bool json_out)
{
    char *answer = NULL;
    int32_t st = firma_sidecar_list_with_timeout(dir, timeout_ms, &answer);
    return show_array("list", st, answer, json_out, dir, list_row, no_live_sidecars);
}

static int cmd_get(const char *dir, uint32_t timeout_ms, const char *id, bool json_out)
{
    char *answer = NULL;
    int rc;
    int32_t st = firma_sidecar_get_with_timeout(dir, id, timeout_ms, &answer);
    json_t *e = for_table("get", st, answer, json_out, true, &rc);
    if (e == NULL)
        return rc;
    if (json_is_null(e)) {
        fprintf(stderr, "status: no sidecar %s\n", id);
    } else {
        print_header();
        print_row(e);
    }
    json_decref(e);
    return rc;
}

/* gc: one line per removed marker. */
static void gc_row(size_t i, const json_t *id)
{
    (void)i;
    printf("removed %s\n", json_string_value(id));
}

static void no_stale_markers(const char *dir)
{
    (void)dir;
    printf("no stale markers\n");
}

static int cmd_gc(const char *dir, bool json_out)
{
    char *answer = NULL;
    int32_t st = firma_sidecar_gc_stale(dir, &answer);
    return show_array("gc", st, answer, json_out, dir, gc_row, no_stale_markers);
}

/* inspect: one line per marker (name, verdict, state, reason, detail), then
 * its nested sidecar object or, for a broken marker, its error object. */
static void inspect_row(size_t i, const json_t *r)
{
    (void)i;
    printf("%s: %s, state %s, reason %s (%s)\n", str(r, "name"), str(r, "verdict"),
           str(r, "state"), str(r, "reason"), str(r, "detail"));
    json_t *entry = json_object_get(r, "entry"), *err = json_object_get(r, "error");
    if (json_is_object(entry)) {
        printf("  ");
        print_row(entry);
    }
    if (json_is_object(err))
        printf("  error %s: %s (path %s)\n", str(err, "code"), str(err, "message"),
               str(err, "path"));
}

static void no_markers(const char *dir)
{
    (void)dir;
    printf("no markers\n");
}

static int cmd_inspect(const char *dir, uint32_t timeout_ms, bool json_out)
{
    char *answer = NULL;
    int32_t st = firma_sidecar_inspect(dir, timeout_ms, &answer);
    return show_array("inspect", st, answer, json_out, dir, inspect_row, no_markers);
}

/* watch: the first `count` events (0: up to and including `synced`). */
static int cmd_watch(const char *dir, uint32_t timeout_ms, long count, bool json_out)
{
    struct firma_watch *w = NULL;
    char *answer = NULL;
    int32_t st = firma_watch_open(dir, NULL, &w, &answer);
    if (st != FIRMA_OK)
        return report_error("watch", st, answer);
    int32_t wait_ms = timeout_ms ? (int32_t)timeout_ms : 5000;
    int rc = 0;
    for (long n = 0; count == 0 || n < count; n++) {
        st = firma_watch_next(w, wait_ms, &answer);
        if (st != FIRMA_OK) {
            rc = report_error("watch", st, answer);
            break;
        }
        if (strcmp(answer, "null") == 0) {
            fprintf(stderr, "status: no event within %d ms\n", (int)wait_ms);
            firma_string_free(answer);
            rc = 1;
            break;
        }
        if (json_out) {
            puts(answer);
            firma_string_free(answer);
            continue;
        }
        json_t *ev = take(answer);
        const char *kind = str(ev, "event");
        if (strcmp(kind, "appeared") == 0 || strcmp(kind, "changed") == 0) {
            json_t *entry = json_object_get(ev, "entry");
            printf("%s %s %s", str(ev, "at"), kind, str(ev, "sandbox_id"));
            printf(" %s", str(entry, "state"));
            if (strcmp(kind, "changed") == 0)
                printf(" (was %s)", str(ev, "previous"));
            printf("\n  ");
            print_row(entry);
        } else if (strcmp(kind, "gone") == 0) {
            printf("%s gone %s (%s)\n", str(ev, "at"), str(ev, "sandbox_id"), str(ev, "reason"));
        } else if (strcmp(kind, "resync") == 0) {
            printf("%s resync (%s)\n", str(ev, "at"), str(ev, "reason"));
        } else {
            printf("%s %s\n", str(ev, "at"), kind);
        }
        bool synced = strcmp(kind, "synced") == 0;
        json_decref(ev);
        fflush(stdout);
        if (count == 0 && synced)
            break;
    }
    firma_watch_close(w);
    return rc;
}

static int cmd_stop(const char *dir, const char *id, long grace_ms, bool json_out)
{
    char options[64], *answer = NULL;
    if (grace_ms >= 0)
        snprintf(options, sizeof options, "{\"grace_ms\":%ld}", grace_ms);
    int rc;
    int32_t st = firma_sidecar_stop(dir, id, grace_ms >= 0 ? options : NULL, &answer);
    json_t *out = for_table("stop", st, answer, json_out, true, &rc);
    if (out == NULL)
        return rc;
    if (json_is_null(out)) {
        fprintf(stderr, "status: no sidecar %s\n", id);
        json_decref(out);
        return 1;
    }
    printf("stop %s (pid %" JSON_INTEGER_FORMAT "): sent", str(out, "sandbox_id"),
           json_integer_value(json_object_get(out, "pid")));
    size_t i;
    json_t *sig;
    json_array_foreach(json_object_get(out, "signals"), i, sig) printf(" %s", json_string_value(sig));
    if (json_array_size(json_object_get(out, "signals")) == 0)
        printf(" nothing");
    printf("; %s, %s, %s, waited %" JSON_INTEGER_FORMAT " ms\n",
           json_is_true(json_object_get(out, "exited")) ? "exited" : "still running",
           json_is_true(json_object_get(out, "killed")) ? "killed" : "not killed",
           json_is_true(json_object_get(out, "collected")) ? "marker collected" : "marker kept",
           json_integer_value(json_object_get(out, "waited_ms")));
    json_decref(out);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: status [--runtime-dir DIR] [--timeout-ms MS] [--grace-ms MS] [--json]\n"
                    "              [get ID | gc | inspect | watch [N] | stop ID]\n");
    return 2;
}

static bool number(const char *s, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *command = "list", *id = NULL;
    uint32_t timeout_ms = 0; /* the library's default */
    long grace_ms = -1, count = 0;
    bool json_out = false;
    unsigned long v;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runtime-dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
            if (!number(argv[++i], 600000, &v) || v == 0)
                return usage();
            timeout_ms = (uint32_t)v;
        } else if (strcmp(argv[i], "--grace-ms") == 0 && i + 1 < argc) {
            if (!number(argv[++i], 600000, &v))
                return usage();
            grace_ms = (long)v;
        } else if (strcmp(argv[i], "--json") == 0) {
            json_out = true;
        } else if ((strcmp(argv[i], "get") == 0 || strcmp(argv[i], "stop") == 0) && i + 1 < argc) {
            command = argv[i];
            id = argv[++i];
        } else if (strcmp(argv[i], "gc") == 0 || strcmp(argv[i], "inspect") == 0) {
            command = argv[i];
        } else if (strcmp(argv[i], "watch") == 0) {
            command = argv[i];
            if (i + 1 < argc && number(argv[i + 1], 1000000, &v))
                count = (long)v, i++;
        } else {
            return usage();
        }
    }
    if (firma_abi_version() != FIRMA_ABI_VERSION) {
        fprintf(stderr, "status: built for C ABI %d, loaded library has %u\n",
                FIRMA_ABI_VERSION, (unsigned)firma_abi_version());
        return 2;
    }
    if (strcmp(command, "get") == 0)
        return cmd_get(dir, timeout_ms, id, json_out);
    if (strcmp(command, "gc") == 0)
        return cmd_gc(dir, json_out);
    if (strcmp(command, "inspect") == 0)
        return cmd_inspect(dir, timeout_ms, json_out);
    if (strcmp(command, "watch") == 0)
        return cmd_watch(dir, timeout_ms, count, json_out);
    if (strcmp(command, "stop") == 0)
        return cmd_stop(dir, id, grace_ms, json_out);
    return cmd_list(dir, timeout_ms, json_out);
}
