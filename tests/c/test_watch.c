/*
 * The watch functions of the C ABI over real sidecars: open/next/fd/close,
 * the event objects, the pollable descriptor, SIGKILL seen as gone (or
 * changed to stopped when read-only), bad arguments, next called from
 * two threads at once on one watcher (serialized), a timeout honoured while
 * another thread waits with none, and a fork() child refused with
 * FIRMA_FORKED while the parent's stream goes on.
 */
#include <poll.h>
#include <pthread.h>

#include "processes.h"

/* Takes events until one is of `kind` (and about `id`, unless NULL), for
 * at most `seconds`. Returns it (free with firma_string_free) or NULL. */
static char *wait_event(firma_watch *w, const char *kind, const char *id, double seconds)
{
    char want_kind[64], want_id[300];
    snprintf(want_kind, sizeof want_kind, "{\"event\":\"%s\"", kind);
    if (id != NULL)
        snprintf(want_id, sizeof want_id, "\"sandbox_id\":\"%s\"", id);
    double end = h_now() + seconds;
    while (h_now() < end) {
        char *ev = NULL;
        int32_t st = firma_watch_next(w, 100, &ev);
        if (st != FIRMA_OK) {
            fprintf(stderr, "    firma_watch_next: %d %s\n", (int)st, ev ? ev : "(NULL)");
            firma_string_free(ev);
            return NULL;
        }
        if (strncmp(ev, want_kind, strlen(want_kind)) == 0 &&
            (id == NULL || strstr(ev, want_id) != NULL))
            return ev;
        firma_string_free(ev);
    }
    return NULL;
}

static void test_open_rejects_bad_arguments(void)
{
    char rt[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    firma_watch *w = (firma_watch *)0x1;
    char *err = NULL;
    CHECK(firma_watch_open(rt, NULL, NULL, &err) == FIRMA_INVALID_ARGUMENT);
    CHECK(err == NULL);
    CHECK(firma_watch_open(rt, NULL, &w, NULL) == FIRMA_INVALID_ARGUMENT);
    CHECK(w == (firma_watch *)0x1);

    CHECK_CALL(firma_watch_open(rt, "{\"probe_interval_ms\":0}", &w, &err),
               FIRMA_INVALID_ARGUMENT, err);
    CHECK(w == NULL);
    CHECK_CONTAINS(err, "\"code\":\"invalid_argument\"");
    CHECK_CONTAINS(err, "probe_interval");
    firma_string_free(err);

    CHECK_CALL(firma_watch_open(rt, "{\"probe_interval\":5}", &w, &err),
               FIRMA_INVALID_ARGUMENT, err);
    CHECK_CONTAINS(err, "options_json");
    firma_string_free(err);

    /* Each key once: with the last one winning, a validator reading the
     * first "collect" would have approved a watcher that collects. */
    const char *dups[][2] = {
        {"{\"collect\":false,\"collect\":true}", "collect"},
        {"{\"collect\":false,\"coll\\u0065ct\":true}", "collect"},
        {"{\"timeout_ms\":100,\"timeout_ms\":100}", "timeout_ms"},
        {"{\"probe_interval_ms\":50,\"collect\":false,\"probe_interval_ms\":60}", "probe_interval_ms"},
        {"{\"rescan_interval_ms\":null,\"rescan_interval_ms\":1000}", "rescan_interval_ms"},
    };
    for (size_t i = 0; i < sizeof dups / sizeof dups[0]; i++) {
        w = (firma_watch *)0x1;
        err = NULL;
        CHECK_CALL(firma_watch_open(rt, dups[i][0], &w, &err), FIRMA_INVALID_ARGUMENT, err);
        CHECK(w == NULL);
        CHECK_CONTAINS(err, "\"code\":\"invalid_argument\"");
        CHECK_CONTAINS(err, "duplicate key");
        CHECK_CONTAINS(err, dups[i][1]);
        firma_string_free(err);
    }

    char *ev = NULL;
    CHECK(firma_watch_next(NULL, 0, &ev) == FIRMA_INVALID_ARGUMENT);
    CHECK_CONTAINS(ev, "watch is NULL");
    firma_string_free(ev);
    CHECK(firma_watch_fd(NULL) == -1);
    firma_watch_close(NULL);
    h_rm_rf(rt);
}

static bool poll_in(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static void test_stream_appeared_synced_gone(void)
{
    char rt[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    h_sidecar a, b;
    h_sidecar_start(&a, rt, "c-alpha", "serve", NULL);

    firma_watch *w = NULL;
    char *err = NULL;
    /* A generous probe timeout: under valgrind everything is slow. */
    CHECK_CALL(firma_watch_open(rt, "{\"probe_interval_ms\":500,\"timeout_ms\":3000}", &w, &err),
               FIRMA_OK, err);
    CHECK(err == NULL);
    if (w == NULL)
        return;
    int fd = firma_watch_fd(w);
    CHECK(fd >= 0);
    CHECK_MSG(poll_in(fd, 2000), "queued initial events must make the fd readable");

    char *ev = wait_event(w, "appeared", "c-alpha", 5);
    CHECK_MSG(ev != NULL, "no appeared for c-alpha");
    CHECK_CONTAINS(ev, "\"state\":\"running\"");
    CHECK_CONTAINS(ev, "\"at\":\"20");
    firma_string_free(ev);
    ev = wait_event(w, "synced", NULL, 5);
    CHECK_MSG(ev != NULL, "no synced");
    firma_string_free(ev);

    /* Once nothing is pending a zero timeout answers the literal null.
     * (Where pidfds are unavailable — valgrind does not know pidfd_open —
     * a resync saying so and its synced come first.) */
    for (int i = 0; i < 10; i++) {
        ev = NULL;
        CHECK_CALL(firma_watch_next(w, 0, &ev), FIRMA_OK, ev);
        bool done = ev != NULL && strcmp(ev, "null") == 0;
        if (!done) {
            CHECK_MSG(strstr(ev, "{\"event\":\"resync\"") == ev ||
                          strstr(ev, "{\"event\":\"synced\"") == ev,
                      "unexpected event %s", ev);
            if (strstr(ev, "{\"event\":\"resync\"") == ev)
                fprintf(stderr, "    note: %s\n", ev);
        }
        firma_string_free(ev);
        if (done)
            break;
        CHECK_MSG(i < 9, "the stream never went quiet");
    }

    h_sidecar_start(&b, rt, "c-beta", "serve", NULL);
    CHECK_MSG(poll_in(fd, 5000), "a new marker must make the fd readable");
    ev = wait_event(w, "appeared", "c-beta", 5);
    CHECK_MSG(ev != NULL, "no appeared for c-beta");
    firma_string_free(ev);

    h_sidecar_kill(&b, true);
    ev = wait_event(w, "gone", "c-beta", 5);
    CHECK_MSG(ev != NULL, "no gone for the SIGKILLed c-beta");
    CHECK_CONTAINS(ev, "\"reason\":\"collected\"");
    firma_string_free(ev);

    firma_watch_close(w);
    CHECK(h_sidecar_stop(&a));
    h_rm_rf(rt);
}

static void test_read_only_watch_reports_stopped(void)
{
    char rt[PATH_MAX], marker[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    h_sidecar s;
    h_sidecar_start(&s, rt, "c-victim", "serve", NULL);
    firma_watch *w = NULL;
    char *err = NULL;
    CHECK_CALL(firma_watch_open(rt, "{\"collect\":false,\"timeout_ms\":100}", &w, &err),
               FIRMA_OK, err);
    if (w == NULL)
        return;
    char *ev = wait_event(w, "synced", NULL, 5);
    CHECK(ev != NULL);
    firma_string_free(ev);
    h_sidecar_kill(&s, false);
    ev = wait_event(w, "changed", "c-victim", 5);
    CHECK_MSG(ev != NULL, "no changed for c-victim");
    CHECK_CONTAINS(ev, "\"previous\":\"running\"");
    CHECK_CONTAINS(ev, "\"state\":\"stopped\"");
    firma_string_free(ev);
    h_reap(&s);
    h_path(marker, sizeof marker, "%s/run/c-victim", rt);
    CHECK_MSG(h_exists(marker), "a read-only watcher removed a marker");
    firma_watch_close(w);
    h_rm_rf(rt);
}

struct waiter {
    firma_watch *w;
    char *event;
};

static void *wait_for_appeared(void *arg)
{
    struct waiter *wt = arg;
    wt->event = wait_event(wt->w, "appeared", "c-late", 3);
    return NULL;
}

static void test_next_from_two_threads_is_serialized(void)
{
    char rt[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    firma_watch *w = NULL;
    char *err = NULL;
    CHECK_CALL(firma_watch_open(rt, NULL, &w, &err), FIRMA_OK, err);
    if (w == NULL)
        return;
    char *ev = wait_event(w, "synced", NULL, 5);
    firma_string_free(ev);
    struct waiter one = {.w = w}, two = {.w = w};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, wait_for_appeared, &one);
    pthread_create(&t2, NULL, wait_for_appeared, &two);
    h_sidecar s;
    h_sidecar_start(&s, rt, "c-late", "serve", NULL);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    /* Exactly one of the two threads got the one event. */
    CHECK((one.event != NULL) + (two.event != NULL) == 1);
    firma_string_free(one.event);
    firma_string_free(two.event);
    firma_watch_close(w);
    CHECK(h_sidecar_stop(&s));
    h_rm_rf(rt);
}

/* A live marker written by hand, naming this test process: something for
 * the watcher to report as appeared, without starting a process (a sidecar
 * started from a short-lived thread would die with it: PR_SET_PDEATHSIG). */
struct late_marker {
    const char *rt, *id;
    unsigned delay_ms;
};

static void *write_late_marker(void *arg)
{
    struct late_marker *m = arg;
    usleep(m->delay_ms * 1000u);
    h_write_marker(m->rt, m->id, m->id, (long)getpid(), NULL);
    return NULL;
}

struct forever {
    firma_watch *w;
    int32_t status;
    char *event;
};

/* firma_watch_next with no timeout: returns with the next event. */
static void *next_forever(void *arg)
{
    struct forever *f = arg;
    f->status = firma_watch_next(f->w, -1, &f->event);
    return NULL;
}

/* Opens a watcher of an empty `rt` and takes its initial synced. */
static firma_watch *open_synced(const char *rt)
{
    firma_watch *w = NULL;
    char *err = NULL;
    CHECK_CALL(firma_watch_open(rt, "{\"timeout_ms\":3000}", &w, &err), FIRMA_OK, err);
    firma_string_free(err);
    if (w == NULL)
        return NULL;
    char *ev = wait_event(w, "synced", NULL, 10);
    CHECK_MSG(ev != NULL, "no synced");
    firma_string_free(ev);
    return w;
}

/* A synced watcher of a fresh runtime dir `rt` (runtime_len bytes), with a
 * thread `*th` in firma_watch_next(w, -1) for `holder` by the time it
 * returns; NULL when the watcher could not be opened (reported). */
static firma_watch *open_held(char *rt, size_t runtime_len, struct forever *holder, pthread_t *th)
{
    h_runtime(rt, runtime_len, true);
    firma_watch *w = open_synced(rt);
    if (w == NULL)
        return NULL;
    *holder = (struct forever){.w = w};
    pthread_create(th, NULL, next_forever, holder);
    usleep(300 * 1000); /* the holder is inside firma_watch_next by now */
    return w;
}

/* Joins the holder's thread `th`: its next(-1) answered FIRMA_OK with an
 * appeared event containing `id_field` (the "sandbox_id" key and value). */
static void check_held_appeared(struct forever *holder, pthread_t th, const char *id_field)
{
    pthread_join(th, NULL);
    CHECK_CALL(holder->status, FIRMA_OK, holder->event);
    CHECK_CONTAINS(holder->event, "{\"event\":\"appeared\"");
    CHECK_CONTAINS(holder->event, id_field);
    firma_string_free(holder->event);
}

/* A thread in firma_watch_next(w, -1) does not hold the watcher: another
 * thread's firma_watch_next(w, 100) answers null in about 100 ms, not when
 * the first one gets its event (a marker written 3 s later). */
static void test_next_honours_its_timeout_while_another_thread_waits(void)
{
    char rt[PATH_MAX];
    struct forever holder;
    pthread_t th, tl;
    firma_watch *w = open_held(rt, sizeof rt, &holder, &th);
    if (w == NULL)
        return;
    struct late_marker late = {.rt = rt, .id = "c-wake", .delay_ms = 3000};
    pthread_create(&tl, NULL, write_late_marker, &late);

    char *ev = NULL;
    double t0 = h_now();
    CHECK_CALL(firma_watch_next(w, 100, &ev), FIRMA_OK, ev);
    double took = h_now() - t0;
    CHECK_STREQ(ev, "null");
    firma_string_free(ev);
    /* A bound, not a speed claim: 100 ms asked, 1.5 s allowed (valgrind). */
    CHECK_MSG(took >= 0.09 && took < 1.5, "next(100 ms) took %.3f s behind a next(-1)", took);

    pthread_join(tl, NULL);
    check_held_appeared(&holder, th, "\"sandbox_id\":\"c-wake\"");
    firma_watch_close(w);
    h_rm_rf(rt);
}

/* After fork(), the child's firma_watch_next returns FIRMA_FORKED at once
 * (it must not wait for a lock a parent thread held at the fork, nor read
 * the shared descriptors), the child may close its copy, and the parent's
 * waiting thread still gets the next event. */
static void test_fork_child_gets_forked_and_parent_keeps_its_stream(void)
{
    char rt[PATH_MAX];
    struct forever holder;
    pthread_t th;
    firma_watch *w = open_held(rt, sizeof rt, &holder, &th);
    if (w == NULL)
        return;

    pid_t child = fork();
    if (child < 0)
        h_die("fork");
    if (child == 0) {
        char *ev = NULL;
        double t0 = h_now();
        int32_t st = firma_watch_next(w, 100, &ev);
        double took = h_now() - t0;
        int rc = 0;
        if (st != FIRMA_FORKED || ev == NULL || strstr(ev, "\"code\":\"forked\"") == NULL ||
            strstr(ev, "fork") == NULL) {
            fprintf(stderr, "    child: status %d, %s\n", (int)st, ev ? ev : "(NULL)");
            rc = 1;
        } else if (took > 1.0) {
            fprintf(stderr, "    child: FIRMA_FORKED after %.3f s\n", took);
            rc = 2;
        }
        firma_string_free(ev);
        if (firma_watch_fd(w) < 0)
            rc = 3;
        firma_watch_close(w); /* the child's copies only */
        _exit(rc);
    }
    int status = 0;
    pid_t got = 0;
    for (double end = h_now() + 10; (got = waitpid(child, &status, WNOHANG)) == 0 && h_now() < end;)
        usleep(10 * 1000);
    if (got == 0) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        CHECK_MSG(false, "the fork() child hung in firma_watch_next (killed after 10 s)");
    } else {
        CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the fork() child failed (status %#x, see above)", status);
    }

    /* The parent's stream goes on: its waiting thread gets the next event. */
    h_write_marker(rt, "c-after-fork", "c-after-fork", (long)getpid(), NULL);
    check_held_appeared(&holder, th, "\"sandbox_id\":\"c-after-fork\"");
    char *ev = NULL;
    CHECK_CALL(firma_watch_next(w, 0, &ev), FIRMA_OK, ev);
    firma_string_free(ev);
    firma_watch_close(w);
    h_rm_rf(rt);
}

/* A failed firma_watch_next is not the end of the stream: run/ replaced by
 * a symlink for half a second (every scan refuses it: an error status),
 * then put back; a marker written afterwards is still delivered. */
static void test_a_failed_next_is_not_the_end_of_the_stream(void)
{
    char rt[PATH_MAX], run[PATH_MAX], real[PATH_MAX];
    h_runtime(rt, sizeof rt, true);
    firma_watch *w = NULL;
    char *err = NULL;
    CHECK_CALL(firma_watch_open(rt, "{\"probe_interval_ms\":100,\"timeout_ms\":3000}", &w, &err),
               FIRMA_OK, err);
    firma_string_free(err);
    if (w == NULL)
        return;
    char *ev = wait_event(w, "synced", NULL, 10);
    CHECK_MSG(ev != NULL, "no synced");
    firma_string_free(ev);
    h_path(run, sizeof run, "%s/run", rt);
    h_path(real, sizeof real, "%s/run.real", rt);
    if (rename(run, real) != 0 || symlink(real, run) != 0)
        h_die("swapping run/ for a symlink");
    int failures = 0;
    for (double end = h_now() + 0.5; h_now() < end;) {
        ev = NULL;
        if (firma_watch_next(w, 50, &ev) != FIRMA_OK) {
            CHECK_CONTAINS(ev, "\"code\":");
            failures++;
        }
        firma_string_free(ev);
    }
    if (unlink(run) != 0 || rename(real, run) != 0)
        h_die("putting run/ back");
    CHECK_MSG(failures > 0, "no failure while run/ was a symlink: the test proves nothing");
    h_write_marker(rt, "c-after-swap", "c-after-swap", (long)getpid(), NULL);
    ev = wait_event(w, "appeared", "c-after-swap", 10);
    CHECK_MSG(ev != NULL, "no appeared after run/ came back");
    firma_string_free(ev);
    firma_watch_close(w);
    h_rm_rf(rt);
}

int main(void)
{
    signal(SIGCHLD, SIG_DFL);
    RUN(test_open_rejects_bad_arguments);
    RUN(test_stream_appeared_synced_gone);
    RUN(test_read_only_watch_reports_stopped);
    RUN(test_next_from_two_threads_is_serialized);
    RUN(test_next_honours_its_timeout_while_another_thread_waits);
    RUN(test_fork_child_gets_forked_and_parent_keeps_its_stream);
    RUN(test_a_failed_next_is_not_the_end_of_the_stream);
    return h_summary();
}
