/*
 * The writer, selecting and waiting through the C ABI, over real processes:
 * a marker written by firma_marker_create for a live child is listed
 * running and `firma sidecar stop` (another process, the CLI) verifies and
 * stops it; the marker of the calling process records this process; bad
 * input is refused naming the field and writes nothing;
 * firma_marker_remove; firma_sidecar_list_filtered / inspect_filtered,
 * firma_sidecar_wait and firma_runtime_dir_state.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include "processes.h"

/* A listening Unix socket at path (the endpoint a probe connects to; the
 * backlog accepts the probe's connection without an accept). */
static int listen_at(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    h_path(a.sun_path, sizeof a.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0)
        h_die(path);
    return fd;
}

/* A fresh runtime directory in rt (with run/ when with_run) and a socket
 * listening at sock, <rt>/<name>; returns the socket. */
static int runtime_serving(char *rt, char *sock, bool with_run, const char *name)
{
    h_runtime(rt, PATH_MAX, with_run);
    h_path(sock, PATH_MAX, "%s/%s", rt, name);
    return listen_at(sock);
}

/* The marker object for id, pid (0: left out, the calling process) and
 * listen. */
static void marker_json(char *buf, size_t size, const char *id, pid_t pid, const char *listen)
{
    char pid_part[32] = "";
    if (pid > 0)
        snprintf(pid_part, sizeof pid_part, ",\"pid\":%d", (int)pid);
    snprintf(buf, size,
             "{\"sandbox_id\":\"%s\",\"agent_id\":\"agent-c\",\"session_id\":\"session-c\","
             "\"authority_url\":\"https://authority.example.invalid\","
             "\"policy_bundle_version\":\"1\",\"listen\":\"%s\"%s}",
             id, listen, pid_part);
}

/* `firma --runtime-dir rt sidecar stop id --json`'s exit status. */
static int cli_stop(const char *rt, const char *id)
{
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof cmd, "'%s/firma' --runtime-dir '%s' sidecar stop --grace-ms 5000 --json '%s' >/dev/null",
             C_BIN_DIR, rt, id);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_a_marker_from_c_is_running_and_the_cli_stops_it(void)
{
    char rt[PATH_MAX], sock[PATH_MAX], json[1024], *out = NULL;
    int lfd = runtime_serving(rt, sock, false, "c-1.sock");
    pid_t child = h_pausing_child(false);
    marker_json(json, sizeof json, "c-1", child, sock);
    CHECK_CALL(firma_marker_create(rt, json, &out), FIRMA_OK, out);
    char want[PATH_MAX + 4];
    h_path(want, sizeof want, "\"%s/run/c-1\"", rt);
    CHECK_STREQ(out, want);
    firma_string_free(out);

    CHECK_CALL(firma_sidecar_list(rt, &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"sandbox_id\":\"c-1\"");
    CHECK_CONTAINS(out, "\"state\":\"running\"");
    firma_string_free(out);
    /* The identity stop verifies was recorded. */
    char meta[PATH_MAX], text[4096] = "";
    h_path(meta, sizeof meta, "%s/run/c-1/metadata.toml", rt);
    FILE *f = fopen(meta, "r");
    if (f != NULL) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = '\0';
        fclose(f);
    }
    CHECK_CONTAINS(text, "boot_id = ");
    CHECK_CONTAINS(text, "pid_start_ticks = ");
    CHECK_CONTAINS(text, "pid_ns_inode = ");

    CHECK(cli_stop(rt, "c-1") == 0);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %d", status);
    CHECK(!h_exists(meta));
    close(lfd);
    h_rm_rf(rt);
}

static void test_the_calling_process_by_default_and_remove(void)
{
    char rt[PATH_MAX], sock[PATH_MAX], json[1024], *out = NULL;
    int lfd = runtime_serving(rt, sock, true, "self.sock");
    marker_json(json, sizeof json, "self-1", 0, sock);
    CHECK_CALL(firma_marker_create(rt, json, &out), FIRMA_OK, out);
    firma_string_free(out);
    char want[64];
    snprintf(want, sizeof want, "\"pid\":%d,", (int)getpid());
    CHECK_CALL(firma_sidecar_get(rt, "self-1", &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, want);
    CHECK_CONTAINS(out, "\"state\":\"running\"");
    firma_string_free(out);
    /* An existing marker is never overwritten. */
    CHECK_CALL(firma_marker_create(rt, json, &out), FIRMA_IO, out);
    CHECK_MSG(h_error_shape(out, "io", 1, -1), "%s", out ? out : "(NULL)");
    CHECK_CONTAINS(out, "marker already exists");
    firma_string_free(out);
    CHECK_CALL(firma_marker_remove(rt, "self-1", &out), FIRMA_OK, out);
    CHECK_STREQ(out, "true");
    firma_string_free(out);
    CHECK_CALL(firma_marker_remove(rt, "self-1", &out), FIRMA_OK, out);
    CHECK_STREQ(out, "false");
    firma_string_free(out);
    CHECK_CALL_CONTAINS(firma_marker_remove(rt, "../x", &out), FIRMA_INVALID_ARGUMENT, out,
                        "sandbox id");
    close(lfd);
    h_rm_rf(rt);
}

static void test_bad_input_names_the_field_and_writes_nothing(void)
{
    char base[PATH_MAX], rt[PATH_MAX], json[1024], *out = NULL;
    h_runtime(base, sizeof base, false);
    h_path(rt, sizeof rt, "%s/not-yet", base);
    static const struct {
        const char *json, *needle;
    } bad[] = {
        {"{\"sandbox_id\":\"../x\",\"agent_id\":\"a\",\"session_id\":\"s\",\"authority_url\":\"u\","
         "\"policy_bundle_version\":\"1\"}", "sandbox id"},
        {"{\"sandbox_id\":\"ok\",\"agent_id\":\"a\",\"session_id\":\"s\",\"authority_url\":\"u\","
         "\"policy_bundle_version\":\"1\",\"listen\":\"relative/sidecar.sock\"}", "listen"},
        {"{\"sandbox_id\":\"ok\",\"agent_id\":\"a\",\"session_id\":\"s\",\"authority_url\":\"u\","
         "\"policy_bundle_version\":\"1\",\"pid\":0}", "pid"},
        {"{\"sandbox_id\":\"ok\",\"agent_id\":\"a\"}", "missing key \\\"session_id\\\""},
        {"{\"sandbox_id\":\"ok\",\"sandbox_id\":\"ok\"}", "duplicate key \\\"sandbox_id\\\""},
        {"{\"sandbox_id\":\"ok\",\"boot_id\":\"b\"}", "unknown key \\\"boot_id\\\""},
        {"[]", "marker_json"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_CALL_CONTAINS(firma_marker_create(rt, bad[i].json, &out), FIRMA_INVALID_ARGUMENT,
                            out, bad[i].needle);
    }
    CHECK_CALL(firma_marker_create(rt, NULL, &out), FIRMA_INVALID_ARGUMENT, out);
    firma_string_free(out);
    /* A pid with no process: the identity cannot be recorded. */
    marker_json(json, sizeof json, "ok", h_dead_pid(), "/tmp/x.sock");
    CHECK_CALL(firma_marker_create(rt, json, &out), FIRMA_IO, out);
    CHECK_MSG(h_error_shape(out, "io", 1, ESRCH), "%s", out ? out : "(NULL)");
    firma_string_free(out);
    /* Nothing was written: no run/, not even the runtime directory... */
    char run[PATH_MAX];
    h_path(run, sizeof run, "%s/run", rt);
    CHECK(!h_exists(run));
    /* ...and an empty path is no directory at all. */
    marker_json(json, sizeof json, "ok", getpid(), "/tmp/x.sock");
    CHECK_CALL_CONTAINS(firma_marker_create("", json, &out), FIRMA_INVALID_ARGUMENT, out,
                        "runtime_dir");
    h_rm_rf(base);
}

static void test_filters_wait_and_the_runtime_dir_state(void)
{
    char rt[PATH_MAX], sock[PATH_MAX], json[1024], *out = NULL;
    int lfd = runtime_serving(rt, sock, true, "w.sock");
    pid_t a = h_pausing_child(false), b = h_pausing_child(false);
    marker_json(json, sizeof json, "w-a", a, sock);
    CHECK_CALL(firma_marker_create(rt, json, &out), FIRMA_OK, out);
    firma_string_free(out);
    /* w-b's endpoint is missing: unhealthy. */
    marker_json(json, sizeof json, "w-b", b, "/nonexistent/w-b.sock");
    CHECK_CALL(firma_marker_create(rt, json, &out), FIRMA_OK, out);
    firma_string_free(out);

    CHECK_CALL(firma_sidecar_list_filtered(rt, "{\"states\":[\"unhealthy\"]}", 0, &out), FIRMA_OK,
               out);
    CHECK_CONTAINS(out, "\"w-b\"");
    CHECK_LACKS(out, "\"w-a\"");
    firma_string_free(out);
    CHECK_CALL(firma_sidecar_list_filtered(rt, NULL, 0, &out), FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"w-a\"");
    CHECK_CONTAINS(out, "\"w-b\"");
    firma_string_free(out);
    CHECK_CALL(firma_sidecar_inspect_filtered(rt, "{\"reasons\":[\"serving\"]}", 0, &out),
               FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"name\":\"w-a\"");
    CHECK_LACKS(out, "\"name\":\"w-b\"");
    firma_string_free(out);
    CHECK_CALL_CONTAINS(firma_sidecar_list_filtered(rt, "{\"states\":[],\"states\":[\"running\"]}",
                                                    0, &out),
                        FIRMA_INVALID_ARGUMENT, out, "duplicate key \\\"states\\\"");
    CHECK_CALL_CONTAINS(firma_sidecar_list_filtered(rt, "{\"states\":[\"fine\"]}", 0, &out),
                        FIRMA_INVALID_ARGUMENT, out, "filter");

    CHECK_CALL(firma_sidecar_wait(rt, "{\"sandbox_ids\":[\"w-a\"],\"for\":\"running\"}", &out),
               FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"met\":true");
    firma_string_free(out);
    /* Not met within 0 ms: an answer, not an error. */
    CHECK_CALL(firma_sidecar_wait(rt, "{\"sandbox_ids\":[\"w-a\",\"none\"],\"for\":\"gone\","
                                      "\"timeout_ms\":0}", &out),
               FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"met\":false");
    CHECK_CONTAINS(out, "{\"sandbox_id\":\"none\",\"state\":null,\"met\":true}");
    firma_string_free(out);
    /* An exit is seen through the pidfd, well within the bound. */
    kill(a, SIGKILL);
    CHECK_CALL(firma_sidecar_wait(rt, "{\"sandbox_ids\":[\"w-a\"],\"for\":\"gone\","
                                      "\"timeout_ms\":30000}", &out),
               FIRMA_OK, out);
    CHECK_CONTAINS(out, "\"met\":true");
    firma_string_free(out);
    waitpid(a, NULL, 0);
    CHECK_CALL_CONTAINS(firma_sidecar_wait(rt, "{\"sandbox_ids\":[],\"for\":\"gone\"}", &out),
                        FIRMA_INVALID_ARGUMENT, out, "sandbox_ids");
    CHECK_CALL_CONTAINS(firma_sidecar_wait(rt, "{\"sandbox_ids\":[\"w-a\"]}", &out),
                        FIRMA_INVALID_ARGUMENT, out, "missing key \\\"for\\\"");

    CHECK_CALL(firma_runtime_dir_state(rt, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "\"present\"");
    firma_string_free(out);
    char missing[PATH_MAX];
    h_path(missing, sizeof missing, "%s/typo", rt);
    CHECK_CALL(firma_runtime_dir_state(missing, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "\"missing\"");
    firma_string_free(out);
    CHECK_CALL(firma_runtime_dir_state(sock, &out), FIRMA_OK, out);
    CHECK_STREQ(out, "\"unreadable\"");
    firma_string_free(out);

    kill(b, SIGKILL);
    waitpid(b, NULL, 0);
    close(lfd);
    h_rm_rf(rt);
}

int main(void)
{
    signal(SIGCHLD, SIG_DFL);
    RUN(test_a_marker_from_c_is_running_and_the_cli_stops_it);
    RUN(test_the_calling_process_by_default_and_remove);
    RUN(test_bad_input_names_the_field_and_writes_nothing);
    RUN(test_filters_wait_and_the_runtime_dir_state);
    return h_summary();
}
