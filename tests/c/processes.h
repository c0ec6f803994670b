/*
 * Real processes for the C stop tests: an example sidecar started and
 * stopped, a dead pid, a hand-written marker for a given process. The
 * conformance suite's fixtures come from firma-testkit; stop needs to act
 * on processes the test itself owns (to see them exit), so it starts them
 * here.
 */
#ifndef FIRMA_C_TEST_PROCESSES_H
#define FIRMA_C_TEST_PROCESSES_H

#include "harness.h"

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

/* A forked child that only waits for signals (ignoring SIGTERM when
 * ignore_term), killed when this process dies; returns once it is ready. */
static inline pid_t h_pausing_child(bool ignore_term)
{
    int fds[2];
    pid_t pid = h_fork_piped(fds);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (ignore_term)
            signal(SIGTERM, SIG_IGN);
        if (write(fds[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(fds[1]);
    char c;
    if (read(fds[0], &c, 1) != 1)
        h_die("child ready");
    close(fds[0]);
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
    pid_t pid = h_fork_piped(fds);
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


#endif
