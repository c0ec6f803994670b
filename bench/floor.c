/*
 * floor.c — the syscall floor for listing sidecar markers (BENCHMARKS.md).
 *
 * The least work any correct reader must do per marker, and nothing more:
 *
 *   openat(run, <id>, O_DIRECTORY|O_NOFOLLOW)          the marker dir
 *   openat(dir, "metadata.toml", O_NOFOLLOW|O_NONBLOCK) + fstat + read + close
 *   kill(pid, 0)                                      does the process exist
 *   open("/proc/<pid>/stat") + read + close           zombie? start time
 *   socket + connect (non-blocking) + close           via /proc/self/fd/<dir>/sidecar.sock
 *   fstatat(dir, "sidecar.pid", AT_SYMLINK_NOFOLLOW)  uptime
 *   close(dir)
 *
 * = 14 system calls per marker, plus getdents64 for the directory itself.
 * No parsing beyond the pid, no output beyond a count.
 *
 *   floor RUNTIME_DIR     list once, print "<markers> <alive> <connected>"
 *   floor --serve         the worker line protocol (worker.h), `list` only:
 *                         ENTRIES are markers, RUNNING connected sockets
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "worker.h"

struct counts {
    long markers;   /* metadata.toml read and a pid found */
    long alive;     /* kill(pid, 0) says the process exists */
    long connected; /* the socket accepted the connection */
};

/* The value of a top-level "pid = N" line, or 0. */
static long find_pid(const char *buf, size_t len) {
    size_t i = 0;
    while (i < len) {
        const char *line = buf + i;
        size_t rest = len - i;
        if (rest > 3 && memcmp(line, "pid", 3) == 0) {
            size_t j = 3;
            while (j < rest && line[j] == ' ') j++;
            if (j < rest && line[j] == '=') {
                j++;
                while (j < rest && line[j] == ' ') j++;
                long pid = 0;
                while (j < rest && line[j] >= '0' && line[j] <= '9' && pid < 0x7fffffff)
                    pid = pid * 10 + (line[j++] - '0');
                return pid;
            }
        }
        const char *nl = memchr(line, '\n', rest);
        if (!nl) break;
        i = (size_t)(nl - buf) + 1;
    }
    return 0;
}

static void probe_marker(int run, const char *name, struct counts *c) {
    int dir = openat(run, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0) return;

    char buf[4096];
    long pid = 0;
    int fd = openat(dir, "metadata.toml", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < (off_t)sizeof buf) {
            ssize_t n = read(fd, buf, (size_t)st.st_size + 1);
            if (n > 0) pid = find_pid(buf, (size_t)n);
        }
        close(fd);
    }
    if (pid <= 0) {
        close(dir);
        return;
    }
    c->markers++;

    if (kill((pid_t)pid, 0) == 0 || errno == EPERM) {
        c->alive++;

        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            (void)!read(fd, buf, sizeof buf);
            close(fd);
        }

        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/sidecar.sock", dir);
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s >= 0) {
            if (connect(s, (struct sockaddr *)&addr, sizeof addr) == 0) c->connected++;
            close(s);
        }
    }

    struct stat pst;
    (void)fstatat(dir, "sidecar.pid", &pst, AT_SYMLINK_NOFOLLOW);
    close(dir);
}

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static int list_once(const char *runtime_dir, struct counts *c) {
    memset(c, 0, sizeof *c);
    int rt = open(runtime_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rt < 0) return -1;
    int run = openat(rt, "run", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(rt);
    if (run < 0) return errno == ENOENT ? 0 : -1;
    static char dbuf[1 << 16];
    for (;;) {
        long n = syscall(SYS_getdents64, run, dbuf, sizeof dbuf);
        if (n < 0) {
            close(run);
            return -1;
        }
        if (n == 0) break;
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(dbuf + off);
            off += d->d_reclen;
            if (d->d_name[0] == '.') continue;
            if (d->d_type != DT_DIR && d->d_type != DT_UNKNOWN) continue;
            probe_marker(run, d->d_name, c);
        }
    }
    close(run);
    return 0;
}

static int list_timed(const char *dir, long *entries, long *running, long long *ns) {
    struct counts c;
    long long t0 = worker_now_ns();
    int rc = list_once(dir, &c);
    *ns = worker_now_ns() - t0;
    *entries = c.markers;
    *running = c.connected;
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--serve") == 0) return worker_serve(list_timed, NULL);
    if (argc != 2) {
        fprintf(stderr, "usage: floor RUNTIME_DIR | floor --serve\n");
        return 2;
    }
    struct counts c;
    if (list_once(argv[1], &c) != 0) {
        perror("floor");
        return 1;
    }
    printf("%ld %ld %ld\n", c.markers, c.alive, c.connected);
    return 0;
}
