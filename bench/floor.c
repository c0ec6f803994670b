/*
 * floor.c — the syscall floor for listing sidecar markers (issue 6).
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
 *   floor --serve         the worker line protocol of bench/src/run.rs:
 *                         "list DIR REPS" -> "ok ENTRIES RUNNING ns..."
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

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int serve(void) {
    char line[8192];
    while (fgets(line, sizeof line, stdin)) {
        char dir[4096];
        int reps = 1;
        if (sscanf(line, "list %4095s %d", dir, &reps) == 2 && reps > 0) {
            struct counts c = {0};
            long long *t = calloc((size_t)reps, sizeof *t);
            int failed = t == NULL;
            for (int i = 0; !failed && i < reps; i++) {
                long long t0 = now_ns();
                if (list_once(dir, &c) != 0) failed = 1;
                t[i] = now_ns() - t0;
            }
            if (failed) {
                printf("err cannot list %s\n", dir);
            } else {
                printf("ok %ld %ld", c.markers, c.connected);
                for (int i = 0; i < reps; i++) printf(" %lld", t[i]);
                printf("\n");
            }
            free(t);
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        } else {
            printf("err unknown request\n");
        }
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--serve") == 0) return serve();
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
