/*
 * status: a small example supervisor over the firma-stack C ABI.
 *
 *   status [--runtime-dir DIR] [--timeout-ms MS] [--json]   live sidecars
 *   status [--runtime-dir DIR] [--timeout-ms MS] get ID     one sidecar
 *   status [--runtime-dir DIR] gc                           collect stopped
 *
 * Exit status: 0 success, 1 `get` found no such sidecar, 2 an error (the
 * error object's message on stderr). Build it with
 *   cc status.c $(pkg-config --cflags --libs firma_stack)
 *
 * The library answers in JSON; this file carries a reader for exactly the
 * shapes it returns (an array or one object of flat string/number/null
 * fields, or an array of strings), which keeps the example dependency-free.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firma_stack.h"

/* ---- a minimal reader for the library's flat JSON ------------------- */

#define MAX_FIELDS 16

typedef struct {
    char *key;
    char *value; /* decoded string, or the literal text of a number/null */
    bool is_string;
} field;

typedef struct {
    field fields[MAX_FIELDS];
    int n;
} object;

static void skip_ws(const char **p)
{
    while (**p == ' ' || **p == '\n' || **p == '\r' || **p == '\t')
        (*p)++;
}

static void put_utf8(char **o, unsigned cp)
{
    if (cp < 0x80) {
        *(*o)++ = (char)cp;
    } else if (cp < 0x800) {
        *(*o)++ = (char)(0xC0 | (cp >> 6));
        *(*o)++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *(*o)++ = (char)(0xE0 | (cp >> 12));
        *(*o)++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *(*o)++ = (char)(0x80 | (cp & 0x3F));
    }
}

/* Reads a JSON string at *p (which is at the opening quote); returns a
 * malloc'd decoded copy, or NULL on malformed input. Surrogate pairs are
 * shown as U+FFFD: good enough for display. */
static char *read_string(const char **p)
{
    if (**p != '"')
        return NULL;
    (*p)++;
    char *out = malloc(strlen(*p) * 3 + 1), *o = out;
    if (out == NULL)
        return NULL;
    while (**p && **p != '"') {
        char c = *(*p)++;
        if (c != '\\') {
            *o++ = c;
            continue;
        }
        c = *(*p)++;
        switch (c) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
            unsigned cp = 0;
            for (int i = 0; i < 4; i++) {
                char h = *(*p)++;
                cp = cp * 16 + (unsigned)(h >= 'a' ? h - 'a' + 10 : h >= 'A' ? h - 'A' + 10 : h - '0');
            }
            put_utf8(&o, cp >= 0xD800 && cp <= 0xDFFF ? 0xFFFD : cp);
            break;
        }
        case '\0': free(out); return NULL;
        default: *o++ = c; break; /* \" \\ \/ */
        }
    }
    if (**p != '"') {
        free(out);
        return NULL;
    }
    (*p)++;
    *o = '\0';
    return out;
}

/* Reads a scalar that is not a string (number, null, true, false). */
static char *read_literal(const char **p)
{
    const char *start = *p;
    while (**p && strchr(",}] \n\r\t", **p) == NULL)
        (*p)++;
    if (*p == start)
        return NULL;
    char *out = malloc((size_t)(*p - start) + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, start, (size_t)(*p - start));
    out[*p - start] = '\0';
    return out;
}

static void free_object(object *obj)
{
    for (int i = 0; i < obj->n; i++) {
        free(obj->fields[i].key);
        free(obj->fields[i].value);
    }
    obj->n = 0;
}

static bool read_object(const char **p, object *obj)
{
    obj->n = 0;
    skip_ws(p);
    if (**p != '{')
        return false;
    (*p)++;
    skip_ws(p);
    if (**p == '}') {
        (*p)++;
        return true;
    }
    for (;;) {
        skip_ws(p);
        if (obj->n == MAX_FIELDS)
            return false;
        field *f = &obj->fields[obj->n];
        f->key = read_string(p);
        if (f->key == NULL)
            return false;
        f->value = NULL;
        obj->n++;
        skip_ws(p);
        if (**p != ':')
            return false;
        (*p)++;
        skip_ws(p);
        f->is_string = **p == '"';
        f->value = f->is_string ? read_string(p) : read_literal(p);
        if (f->value == NULL)
            return false;
        skip_ws(p);
        if (**p == ',') {
            (*p)++;
            continue;
        }
        if (**p == '}') {
            (*p)++;
            return true;
        }
        return false;
    }
}

static const char *get_field(const object *obj, const char *key)
{
    for (int i = 0; i < obj->n; i++)
        if (strcmp(obj->fields[i].key, key) == 0)
            return obj->fields[i].value;
    return "?";
}

/* ---- output --------------------------------------------------------- */

static void human_uptime(const char *secs, char *buf, size_t size)
{
    if (strcmp(secs, "null") == 0) {
        snprintf(buf, size, "-");
        return;
    }
    unsigned long long s = strtoull(secs, NULL, 10);
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

static void print_row(const object *e)
{
    char up[32];
    human_uptime(get_field(e, "uptime_secs"), up, sizeof up);
    printf("%-24s %-16s %-10s %-8s %-8s %s\n", get_field(e, "sandbox_id"),
           get_field(e, "agent_id"), get_field(e, "state"), get_field(e, "pid"), up,
           get_field(e, "listen"));
}

/* On failure the library hands back an error object: show its message. */
static int report_error(const char *what, int32_t status, char *json)
{
    object err;
    const char *p = json;
    if (json != NULL && read_object(&p, &err)) {
        fprintf(stderr, "status: %s failed (%s, status %d): %s\n", what, get_field(&err, "code"),
                (int)status, get_field(&err, "message"));
        free_object(&err);
    } else {
        fprintf(stderr, "status: %s failed (status %d)\n", what, (int)status);
    }
    firma_string_free(json);
    return 2;
}

static int bad_json(char *json)
{
    fprintf(stderr, "status: unexpected JSON from the library: %s\n", json);
    firma_string_free(json);
    return 2;
}

/* The common start of a command whose answer is a JSON array: true when
 * nothing is left to do, with the exit code in *rc (the call failed and the
 * error was reported, or --json printed the answer as is); else the caller
 * prints the array for people and frees it. */
static bool answered(const char *what, int32_t st, char *json, bool json_out, int *rc)
{
    if (st != FIRMA_OK) {
        *rc = report_error(what, st, json);
        return true;
    }
    if (json_out) {
        puts(json);
        firma_string_free(json);
        *rc = 0;
        return true;
    }
    return false;
}

static int cmd_list(const char *dir, uint32_t timeout_ms, bool json_out)
{
    char *json = NULL;
    int rc;
    int32_t st = firma_sidecar_list_with_timeout(dir, timeout_ms, &json);
    if (answered("list", st, json, json_out, &rc))
        return rc;
    const char *p = json;
    skip_ws(&p);
    if (*p++ != '[')
        return bad_json(json);
    skip_ws(&p);
    int count = 0;
    while (*p == '{') {
        object e;
        if (!read_object(&p, &e)) {
            free_object(&e);
            return bad_json(json);
        }
        if (count++ == 0)
            print_header();
        print_row(&e);
        free_object(&e);
        skip_ws(&p);
        if (*p == ',')
            p++;
        skip_ws(&p);
    }
    if (*p != ']')
        return bad_json(json);
    if (count == 0) {
        char *def = NULL;
        if (dir == NULL && firma_default_runtime_dir(&def) == FIRMA_OK)
            printf("no live sidecars in %s\n", def);
        else
            printf("no live sidecars in %s\n", dir ? dir : "the default runtime dir");
        firma_string_free(def);
    }
    firma_string_free(json);
    return 0;
}

static int cmd_get(const char *dir, uint32_t timeout_ms, const char *id, bool json_out)
{
    char *json = NULL;
    int32_t st = firma_sidecar_get_with_timeout(dir, id, timeout_ms, &json);
    if (st != FIRMA_OK)
        return report_error("get", st, json);
    int rc = strcmp(json, "null") == 0 ? 1 : 0;
    if (json_out) {
        puts(json);
    } else if (rc == 1) {
        fprintf(stderr, "status: no sidecar %s\n", id);
    } else {
        object e;
        const char *p = json;
        if (!read_object(&p, &e)) {
            free_object(&e);
            return bad_json(json);
        }
        print_header();
        print_row(&e);
        free_object(&e);
    }
    firma_string_free(json);
    return rc;
}

static int cmd_gc(const char *dir, bool json_out)
{
    char *json = NULL;
    int rc;
    int32_t st = firma_sidecar_gc_stale(dir, &json);
    if (answered("gc", st, json, json_out, &rc))
        return rc;
    const char *p = json + 1; /* after '[' */
    int count = 0;
    while (*p == '"') {
        char *id = read_string(&p);
        if (id == NULL)
            return bad_json(json);
        printf("removed %s\n", id);
        free(id);
        count++;
        if (*p == ',')
            p++;
    }
    if (count == 0)
        printf("no stale markers\n");
    firma_string_free(json);
    return 0;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: status [--runtime-dir DIR] [--timeout-ms MS] [--json] [get ID | gc]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *command = "list", *id = NULL;
    uint32_t timeout_ms = 0; /* the library's default */
    bool json_out = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runtime-dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
            char *end = NULL;
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end != '\0' || v == 0 || v > 600000)
                return usage();
            timeout_ms = (uint32_t)v;
        } else if (strcmp(argv[i], "--json") == 0) {
            json_out = true;
        } else if (strcmp(argv[i], "get") == 0 && i + 1 < argc) {
            command = "get";
            id = argv[++i];
        } else if (strcmp(argv[i], "gc") == 0) {
            command = "gc";
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
    return cmd_list(dir, timeout_ms, json_out);
}
