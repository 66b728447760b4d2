/*
 * Test support for src/cluster/redis.c: each test starts its own
 * redis-server on a unix socket in a temporary directory (server_start,
 * server_kill, admin for commands behind the adapter's back) and drives a
 * small epoll loop of its own (events to the handlers, a tick every TICK_MS),
 * as the cluster thread does. Connections record their state changes in a
 * `watch` and their replies as text in a `got`. setup and teardown are the
 * suite's .init and .fini. Header-only, for tests/unit/test_redis*.c.
 */
#ifndef ORR_TEST_REDIS_HARNESS_H
#define ORR_TEST_REDIS_HARNESS_H

#include "cluster/redis.h"

#include "common/log.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 50

static inline int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the test's own redis-server ---- */

static char dir[64];
static char sock_path[100];
static pid_t server_pid = -1;

/* port 0: the unix socket only. */
static inline void server_start_tcp(int port) {
    char log_path[160], port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(log_path, sizeof log_path, "%s/redis.log", dir);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        execlp("redis-server", "redis-server", "--port", port_s, "--bind", "127.0.0.1",
               "--unixsocket", sock_path, "--unixsocketperm", "700", "--save", "", "--appendonly",
               "no", "--daemonize", "no", "--dir", dir, "--logfile", log_path, (char *)NULL);
        _exit(127);
    }
    server_pid = pid;
    int64_t deadline = now_ms() + 5000;
    for (;;) {
        redisContext *c = redisConnectUnix(sock_path);
        redisReply *rep = c && !c->err ? redisCommand(c, "PING") : NULL;
        bool ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep) freeReplyObject(rep);
        if (c) redisFree(c);
        if (ok) return;
        cr_assert(now_ms() < deadline, "redis-server did not start (see %s)", log_path);
        usleep(10 * 1000);
    }
}

static inline void server_start(void) {
    server_start_tcp(0);
}

static inline void server_kill(int sig) {
    if (server_pid <= 0) return;
    kill(server_pid, sig);
    waitpid(server_pid, NULL, 0);
    server_pid = -1;
}

/* A command on a connection of its own (blocking hiredis), for what the
 * tests do behind the adapter's back. The caller frees the reply. */
static inline redisReply *admin(const char *fmt, ...) {
    redisContext *c = redisConnectUnix(sock_path);
    cr_assert(c && !c->err, "admin connect: %s", c ? c->errstr : "out of memory");
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert(rep, "admin command: %s", c->errstr);
    redisFree(c);
    return rep;
}

/* ---- the loop ---- */

static int epfd = -1;
static orr_redis *ticked[4]; /* what each tick reaches */
static int64_t last_tick;

static inline void track(orr_redis *r) {
    for (size_t i = 0; i < 4; i++)
        if (!ticked[i]) {
            ticked[i] = r;
            return;
        }
    cr_assert_fail("too many connections");
}

static inline void untrack(orr_redis *r) {
    for (size_t i = 0; i < 4; i++)
        if (ticked[i] == r) ticked[i] = NULL;
}

static inline void free_conn(orr_redis *r) {
    untrack(r);
    orr_redis_free(r);
}

static inline int loop_pass(int wait_ms) {
    struct epoll_event evs[16];
    int n = epoll_wait(epfd, evs, 16, wait_ms);
    for (int i = 0; i < n; i++) {
        orr_loop_handler *h = evs[i].data.ptr;
        h->on_event(h, evs[i].events);
    }
    int64_t t = now_ms();
    if (t - last_tick >= TICK_MS) {
        last_tick = t;
        for (size_t i = 0; i < 4; i++)
            if (ticked[i]) orr_redis_tick(ticked[i], t);
    }
    return n < 0 ? 0 : n;
}

static inline void run_for(int ms) {
    int64_t end = now_ms() + ms;
    for (int64_t t; (t = now_ms()) < end;)
        loop_pass((int)(end - t < TICK_MS ? end - t : TICK_MS));
}

#define RUN_UNTIL(cond, ms)                                                                        \
    ({                                                                                             \
        int64_t end_ = now_ms() + (ms);                                                            \
        while (!(cond) && now_ms() < end_)                                                         \
            loop_pass(TICK_MS);                                                                    \
        (cond);                                                                                    \
    })

/* ---- what a connection saw ---- */

typedef struct watch {
    int ups, downs;
    char why[200];
    int64_t up_at, down_at;
    int seq_at_down; /* replies seen when the down came */
    int *seq;        /* a reply counter to read at down, or NULL */
} watch;

static inline void on_state(orr_redis *r, int up, const char *why, void *priv) {
    watch *w = priv;
    cr_assert_eq(up, orr_redis_is_up(r), "is_up disagrees with the state callback");
    if (up) {
        w->ups++;
        w->up_at = now_ms();
        cr_assert_str_eq(why, "");
    } else {
        w->downs++;
        w->down_at = now_ms();
        snprintf(w->why, sizeof w->why, "%s", why);
        cr_assert(why[0], "down without a reason");
        if (w->seq) w->seq_at_down = *w->seq;
    }
}

static inline orr_redis *conn_new_at(const char *path, int db, watch *w) {
    orr_redis_addr a = {.db = db};
    snprintf(a.path, sizeof a.path, "%s", path);
    orr_redis *r = orr_redis_new(epfd, &a, "test", on_state, w);
    cr_assert_not_null(r);
    track(r);
    return r;
}

static inline orr_redis *conn_new(int db, watch *w) {
    return conn_new_at(sock_path, db, w);
}

static inline orr_redis *conn_up(int db, watch *w) {
    orr_redis *r = conn_new(db, w);
    cr_assert(RUN_UNTIL(w->ups == 1, 3000), "not up: %s", orr_redis_why(r));
    return r;
}

/* Replies kept as text: "S:OK", "$:value", ":3", "E:ERR ...", "*2", "-" for nil, "NULL". */
typedef struct got {
    int n;
    char last[256];
    size_t last_len;
    int nulls;
} got;

static inline void describe(const redisReply *rep, char *out, size_t n, size_t *len) {
    if (!rep) {
        *len = (size_t)snprintf(out, n, "NULL");
        return;
    }
    switch (rep->type) {
    case REDIS_REPLY_STATUS:
        *len = (size_t)snprintf(out, n, "S:%s", rep->str);
        break;
    case REDIS_REPLY_ERROR:
        *len = (size_t)snprintf(out, n, "E:%s", rep->str);
        break;
    case REDIS_REPLY_INTEGER:
        *len = (size_t)snprintf(out, n, ":%lld", rep->integer);
        break;
    case REDIS_REPLY_NIL:
        *len = (size_t)snprintf(out, n, "-");
        break;
    case REDIS_REPLY_ARRAY:
        *len = (size_t)snprintf(out, n, "*%zu", rep->elements);
        break;
    case REDIS_REPLY_STRING:
        out[0] = '$';
        out[1] = ':';
        *len = 2 + (rep->len < n - 3 ? rep->len : n - 3);
        memcpy(out + 2, rep->str, *len - 2);
        out[*len] = '\0';
        break;
    default:
        *len = (size_t)snprintf(out, n, "?%d", rep->type);
    }
}

static inline void on_got(orr_redis *r, redisReply *rep, void *priv) {
    (void)r;
    got *g = priv;
    g->n++;
    if (!rep) g->nulls++;
    describe(rep, g->last, sizeof g->last, &g->last_len);
}

static inline int cmd(orr_redis *r, got *g, const char *a0, const char *a1, const char *a2) {
    const char *argv[3] = {a0, a1, a2};
    int argc = a2 ? 3 : a1 ? 2 : 1;
    return orr_redis_command(r, g ? on_got : NULL, g, argc, argv, NULL);
}

/* One command, answered: its reply as text. */
static inline const char *roundtrip(orr_redis *r, const char *a0, const char *a1, const char *a2) {
    static got g;
    memset(&g, 0, sizeof g);
    cr_assert_eq(cmd(r, &g, a0, a1, a2), 0, "%s refused", a0);
    cr_assert(RUN_UNTIL(g.n == 1, 3000), "no reply to %s", a0);
    return g.last;
}

/* ---- fixture ---- */

static inline void setup(void) {
    signal(SIGPIPE, SIG_IGN);
    if (!getenv("ORR_TEST_LOG")) orr_log_set_level(ORR_LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/orr-redis-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(sock_path, sizeof sock_path, "%s/r.sock", dir);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    cr_assert_geq(epfd, 0);
    memset(ticked, 0, sizeof ticked);
    last_tick = 0;
}

static inline void teardown(void) {
    server_kill(SIGTERM);
    if (epfd >= 0) close(epfd);
    epfd = -1;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[400];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
}

#endif
