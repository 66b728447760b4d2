/*
 * src/cluster/redis.c against a real redis-server: each test starts its own
 * on a unix socket in a temporary directory and drives a small epoll loop of
 * its own (events to the handlers, a tick every TICK_MS), as the cluster
 * thread does. Covered: connect and PING, binary-safe arguments, 10,000
 * pipelined SET/GET answered in order, SELECT, a server killed and
 * restarted, CLIENT KILL, a path nobody listens on (no busy loop), a server
 * that never answers (the 2 s limit), a refused SELECT, pub/sub across two
 * connections and across a reconnection, the commands refused by rule, and
 * freeing with commands pending, from inside callbacks, while connecting.
 * Every test frees what it made, so the ASan leak check covers the adapter
 * and what it makes hiredis keep.
 */
#include "cluster/redis.h"

#include "common/log.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 50

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the test's own redis-server ---- */

static char dir[64];
static char sock_path[100];
static pid_t server_pid = -1;

/* port 0: the unix socket only. */
static void server_start_tcp(int port) {
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

static void server_start(void) {
    server_start_tcp(0);
}

static void server_kill(int sig) {
    if (server_pid <= 0) return;
    kill(server_pid, sig);
    waitpid(server_pid, NULL, 0);
    server_pid = -1;
}

/* A command on a connection of its own (blocking hiredis), for what the
 * tests do behind the adapter's back. The caller frees the reply. */
static redisReply *admin(const char *fmt, ...) {
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

static void track(orr_redis *r) {
    for (size_t i = 0; i < 4; i++)
        if (!ticked[i]) {
            ticked[i] = r;
            return;
        }
    cr_assert_fail("too many connections");
}

static void untrack(orr_redis *r) {
    for (size_t i = 0; i < 4; i++)
        if (ticked[i] == r) ticked[i] = NULL;
}

static void free_conn(orr_redis *r) {
    untrack(r);
    orr_redis_free(r);
}

static int loop_pass(int wait_ms) {
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

static void run_for(int ms) {
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

static void on_state(orr_redis *r, int up, const char *why, void *priv) {
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

static orr_redis *conn_new_at(const char *path, int db, watch *w) {
    orr_redis_addr a = {.db = db};
    snprintf(a.path, sizeof a.path, "%s", path);
    orr_redis *r = orr_redis_new(epfd, &a, "test", on_state, w);
    cr_assert_not_null(r);
    track(r);
    return r;
}

static orr_redis *conn_new(int db, watch *w) {
    return conn_new_at(sock_path, db, w);
}

static orr_redis *conn_up(int db, watch *w) {
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

static void describe(const redisReply *rep, char *out, size_t n, size_t *len) {
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

static void on_got(orr_redis *r, redisReply *rep, void *priv) {
    (void)r;
    got *g = priv;
    g->n++;
    if (!rep) g->nulls++;
    describe(rep, g->last, sizeof g->last, &g->last_len);
}

static int cmd(orr_redis *r, got *g, const char *a0, const char *a1, const char *a2) {
    const char *argv[3] = {a0, a1, a2};
    int argc = a2 ? 3 : a1 ? 2 : 1;
    return orr_redis_command(r, g ? on_got : NULL, g, argc, argv, NULL);
}

/* One command, answered: its reply as text. */
static const char *roundtrip(orr_redis *r, const char *a0, const char *a1, const char *a2) {
    static got g;
    memset(&g, 0, sizeof g);
    cr_assert_eq(cmd(r, &g, a0, a1, a2), 0, "%s refused", a0);
    cr_assert(RUN_UNTIL(g.n == 1, 3000), "no reply to %s", a0);
    return g.last;
}

/* ---- fixture ---- */

static void setup(void) {
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

static void teardown(void) {
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

TestSuite(redis, .init = setup, .fini = teardown, .timeout = 60);

/* ---- tests ---- */

Test(redis, connect_ping_and_binary_arguments) {
    server_start();
    watch w = {0};
    orr_redis *r = conn_new(0, &w);
    cr_assert_not(orr_redis_is_up(r));
    cr_assert_str_eq(orr_redis_why(r), "connecting");
    cr_assert_eq(cmd(r, NULL, "PING", NULL, NULL), ORR_EAGAIN, "accepted before up");
    cr_assert(RUN_UNTIL(w.ups == 1, 3000), "not up: %s", orr_redis_why(r));
    cr_assert(orr_redis_is_up(r));
    cr_assert_str_eq(orr_redis_why(r), "");

    cr_assert_str_eq(roundtrip(r, "PING", NULL, NULL), "S:PONG");

    /* NUL, CR and LF inside arguments go through untouched. */
    static const char key[] = "k\0\r\n", val[] = "v\0a\r\nb\0";
    const char *set[] = {"SET", key, val};
    size_t setlen[] = {3, sizeof key - 1, sizeof val - 1};
    got g = {0};
    cr_assert_eq(orr_redis_command(r, on_got, &g, 3, set, setlen), 0);
    const char *get[] = {"GET", key};
    size_t getlen[] = {3, sizeof key - 1};
    got g2 = {0};
    cr_assert_eq(orr_redis_command(r, on_got, &g2, 2, get, getlen), 0);
    cr_assert_eq(orr_redis_pending(r), 2);
    cr_assert(RUN_UNTIL(g2.n == 1, 3000));
    cr_assert_str_eq(g.last, "S:OK");
    cr_assert_eq(g2.last_len, 2 + sizeof val - 1);
    cr_assert_eq(memcmp(g2.last + 2, val, sizeof val - 1), 0, "value changed on the way");
    cr_assert_eq(orr_redis_pending(r), 0);

    /* Fire and forget: counted while owed, no callback. */
    cr_assert_eq(cmd(r, NULL, "SET", "quiet", "1"), 0);
    cr_assert_eq(orr_redis_pending(r), 1);
    cr_assert(RUN_UNTIL(orr_redis_pending(r) == 0, 3000));
    cr_assert_str_eq(roundtrip(r, "GET", "quiet", NULL), "$:1");

    orr_redis_stats st;
    orr_redis_get_stats(r, &st);
    cr_assert_eq(st.attempts, 1);
    cr_assert_eq(st.ups, 1);
    cr_assert_eq(st.losses, 0);
    free_conn(r);
    cr_assert_eq(w.downs, 0, "freeing is not a down");
}

typedef struct order {
    int next; /* the index the next reply must have */
    int bad;  /* replies out of order or wrong */
    char first_bad[400];
} order;

typedef struct tagged {
    order *o;
    int index;
} tagged;

#define PIPELINED 10000

static tagged tags[2 * PIPELINED];

static void on_ordered(orr_redis *r, redisReply *rep, void *priv) {
    (void)r;
    tagged *t = priv;
    order *o = t->o;
    char want[64];
    int i = t->index / 2;
    if (t->index % 2 == 0)
        snprintf(want, sizeof want, "S:OK");
    else
        snprintf(want, sizeof want, "$:value-%d", i);
    char text[256];
    size_t len;
    describe(rep, text, sizeof text, &len);
    if (t->index != o->next || strcmp(text, want) != 0) {
        if (!o->bad)
            snprintf(o->first_bad, sizeof o->first_bad, "reply %d (expected %d): %s, want %s",
                     t->index, o->next, text, want);
        o->bad++;
    }
    o->next++;
}

Test(redis, pipelines_ten_thousand_set_get_in_order) {
    server_start();
    watch w = {0};
    orr_redis *r = conn_up(0, &w);
    order o = {0};
    char key[32], val[32];
    /* All queued in one pass: nothing is written until the loop runs. */
    for (int i = 0; i < PIPELINED; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        snprintf(val, sizeof val, "value-%d", i);
        const char *set[] = {"SET", key, val};
        const char *get[] = {"GET", key};
        tags[2 * i] = (tagged){&o, 2 * i};
        tags[2 * i + 1] = (tagged){&o, 2 * i + 1};
        cr_assert_eq(orr_redis_command(r, on_ordered, &tags[2 * i], 3, set, NULL), 0);
        cr_assert_eq(orr_redis_command(r, on_ordered, &tags[2 * i + 1], 2, get, NULL), 0);
    }
    cr_assert_eq(orr_redis_pending(r), 2 * PIPELINED);
    cr_assert_eq(o.next, 0);
    int64_t t0 = now_ms();
    cr_assert(RUN_UNTIL(o.next == 2 * PIPELINED, 10000), "%d replies", o.next);
    cr_assert_eq(o.bad, 0, "%d bad replies, first: %s", o.bad, o.first_bad);
    cr_assert_eq(orr_redis_pending(r), 0);
    cr_log_info("20,000 pipelined commands answered in %lld ms", (long long)(now_ms() - t0));
    free_conn(r);
}

Test(redis, selects_the_database_before_up) {
    server_start();
    watch w = {0};
    orr_redis *r = conn_up(5, &w);
    cr_assert_str_eq(roundtrip(r, "SET", "where", "db5"), "S:OK");
    redisContext *c = redisConnectUnix(sock_path);
    cr_assert(c && !c->err);
    redisReply *rep = redisCommand(c, "SELECT 5");
    freeReplyObject(rep);
    rep = redisCommand(c, "GET where");
    cr_assert_eq(rep->type, REDIS_REPLY_STRING);
    cr_assert_str_eq(rep->str, "db5");
    freeReplyObject(rep);
    rep = redisCommand(c, "SELECT 0");
    freeReplyObject(rep);
    rep = redisCommand(c, "GET where");
    cr_assert_eq(rep->type, REDIS_REPLY_NIL, "written to database 0 too");
    freeReplyObject(rep);
    redisFree(c);

    /* SELECT belongs to the adapter: a command cannot move the connection. */
    cr_assert_eq(cmd(r, NULL, "select", "0", NULL), ORR_ENOTSUP);
    free_conn(r);
}

Test(redis, a_refused_select_is_a_failed_attempt) {
    server_start(); /* 16 databases: 99 does not exist */
    watch w = {0};
    orr_redis *r = conn_new(99, &w);
    run_for(700);
    cr_assert_eq(w.ups, 0);
    cr_assert(strstr(orr_redis_why(r), "SELECT: ERR DB index is out of range"), "why: %s",
              orr_redis_why(r));
    orr_redis_stats st;
    orr_redis_get_stats(r, &st);
    cr_assert(st.attempts >= 2 && st.attempts <= 8, "%llu attempts in 700 ms",
              (unsigned long long)st.attempts);
    free_conn(r);
}

static int blpop_seq;

static void on_blpop(orr_redis *r, redisReply *rep, void *priv) {
    got *g = priv;
    on_got(r, rep, priv);
    blpop_seq = g->n;
}

Test(redis, server_killed_and_restarted) {
    server_start();
    watch w = {.seq = &blpop_seq};
    orr_redis *r = conn_up(2, &w);
    cr_assert_str_eq(roundtrip(r, "SET", "before", "1"), "S:OK");

    /* Owed when the server dies: answered NULL, before the down. */
    got g = {0};
    const char *blpop[] = {"BLPOP", "nothing", "0"};
    cr_assert_eq(orr_redis_command(r, on_blpop, &g, 3, blpop, NULL), 0);
    run_for(100);
    cr_assert_eq(g.n, 0);
    server_kill(SIGKILL);
    cr_assert(RUN_UNTIL(w.downs == 1, 3000), "no down");
    cr_assert_eq(g.n, 1);
    cr_assert_eq(g.nulls, 1);
    cr_assert_eq(w.seq_at_down, 1, "the NULL reply must come before the down");
    cr_assert_not(orr_redis_is_up(r));
    cr_assert_eq(cmd(r, NULL, "PING", NULL, NULL), ORR_EAGAIN);
    cr_assert_neq(orr_redis_why(r)[0], '\0');
    cr_log_info("down: %s", w.why);

    /* Down for a while: a few attempts, not a storm. */
    run_for(600);
    orr_redis_stats st;
    orr_redis_get_stats(r, &st);
    cr_assert(st.attempts >= 2 && st.attempts <= 7, "%llu attempts after 600 ms down",
              (unsigned long long)st.attempts);
    cr_assert_eq(w.ups, 1);

    server_start();
    int64_t restarted = now_ms();
    cr_assert(RUN_UNTIL(w.ups == 2, 6000), "not up again: %s", orr_redis_why(r));
    cr_log_info("up again %lld ms after the restart", (long long)(w.up_at - restarted));
    /* The new connection is in database 2 again (the data itself died with the server). */
    cr_assert_str_eq(roundtrip(r, "SET", "after", "1"), "S:OK");
    redisContext *c = redisConnectUnix(sock_path);
    redisReply *rep = redisCommand(c, "SELECT 2");
    freeReplyObject(rep);
    rep = redisCommand(c, "GET after");
    cr_assert_eq(rep->type, REDIS_REPLY_STRING);
    freeReplyObject(rep);
    redisFree(c);
    orr_redis_get_stats(r, &st);
    cr_assert_eq(st.ups, 2);
    cr_assert_eq(st.losses, 1);
    free_conn(r);
}

/* A subscriber that subscribes again every time it comes up. */
typedef struct subscriber {
    watch w;
    int subscribed; /* subscribe confirmations less unsubscribe ones */
    int confirms;   /* both */
    int messages;
    int nulls;
    char last[128];
    int next_seq; /* messages "m<seq>" must arrive in order */
    int out_of_order;
    bool free_on_bye;
    orr_redis *self;
    int after_free; /* callbacks after its own orr_redis_free returned */
    bool freed;
} subscriber;

static void on_message(orr_redis *r, redisReply *rep, void *priv) {
    subscriber *s = priv;
    if (s->freed) s->after_free++;
    if (!rep) {
        s->nulls++;
        return;
    }
    cr_assert_eq(rep->type, REDIS_REPLY_ARRAY);
    const char *kind = rep->element[0]->str;
    if (strcmp(kind, "subscribe") == 0 || strcmp(kind, "psubscribe") == 0) {
        s->confirms++;
        s->subscribed++;
        return;
    }
    if (strcmp(kind, "unsubscribe") == 0 || strcmp(kind, "punsubscribe") == 0) {
        s->confirms++;
        s->subscribed--;
        return;
    }
    const redisReply *payload = rep->element[rep->elements - 1];
    s->messages++;
    snprintf(s->last, sizeof s->last, "%s %s %.*s", kind, rep->element[rep->elements - 2]->str,
             (int)payload->len, payload->str);
    int seq;
    if (sscanf(payload->str, "m%d", &seq) == 1) {
        if (seq != s->next_seq) s->out_of_order++;
        s->next_seq = seq + 1;
    }
    if (s->free_on_bye && strcmp(payload->str, "bye") == 0) {
        untrack(r);
        orr_redis_free(r);
        /* Its own NULL waits until this callback returns. */
        cr_assert_eq(s->nulls, 0);
        s->freed = true;
    }
}

static void on_sub_state(orr_redis *r, int up, const char *why, void *priv) {
    subscriber *s = priv;
    on_state(r, up, why, &s->w);
    if (!up) return;
    const char *argv[] = {"SUBSCRIBE", "ch1", "ch2"};
    cr_assert_eq(orr_redis_command(r, on_message, s, 3, argv, NULL), 0);
}

static orr_redis *subscriber_new(subscriber *s) {
    orr_redis_addr a = {.db = 0};
    snprintf(a.path, sizeof a.path, "%s", sock_path);
    orr_redis *r = orr_redis_new(epfd, &a, "sub", on_sub_state, s);
    s->self = r;
    track(r);
    return r;
}

Test(redis, pubsub_in_order_across_connections) {
    server_start();
    subscriber s = {0};
    orr_redis *sub = subscriber_new(&s);
    watch pw = {0};
    orr_redis *pub = conn_up(0, &pw);
    cr_assert(RUN_UNTIL(s.subscribed == 2, 3000), "subscribed to %d", s.subscribed);

    /* 1,000 publications in one pipeline, alternating channels. */
    got g = {0};
    char msg[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(msg, sizeof msg, "m%d", i);
        cr_assert_eq(cmd(pub, &g, "PUBLISH", i % 2 ? "ch2" : "ch1", msg), 0);
    }
    cr_assert(RUN_UNTIL(s.messages == 1000, 5000), "%d messages", s.messages);
    cr_assert_eq(s.out_of_order, 0);
    cr_assert_str_eq(g.last, ":1", "receivers per publication");
    cr_assert_str_eq(s.last, "message ch2 m999");

    /* A subscribed connection takes only (P)SUBSCRIBE / (P)UNSUBSCRIBE. */
    cr_assert_eq(cmd(sub, NULL, "PING", NULL, NULL), ORR_ESTATE);
    got bad = {0};
    cr_assert_eq(cmd(sub, &bad, "UNSUBSCRIBE", "ch2", NULL), ORR_EINVAL, "UNSUBSCRIBE with cb");
    const char *nocb[] = {"SUBSCRIBE", "x"};
    cr_assert_eq(orr_redis_command(sub, NULL, NULL, 2, nocb, NULL), ORR_EINVAL);
    /* UNSUBSCRIBE names subscriptions that exist, once, and keeps at least one. */
    cr_assert_eq(cmd(sub, NULL, "UNSUBSCRIBE", NULL, NULL), ORR_EINVAL);
    cr_assert_eq(cmd(sub, NULL, "UNSUBSCRIBE", "nosuch", NULL), ORR_ENOTFOUND);
    cr_assert_eq(cmd(sub, NULL, "UNSUBSCRIBE", "ch2", "ch2"), ORR_ENOTFOUND);
    cr_assert_eq(cmd(sub, NULL, "PUNSUBSCRIBE", "ch2", NULL), ORR_ENOTFOUND, "not a pattern");
    cr_assert_eq(cmd(sub, NULL, "UNSUBSCRIBE", "ch1", "ch2"), ORR_ESTATE, "the last ones");
    cr_assert_eq(cmd(sub, NULL, "UNSUBSCRIBE", "ch2", NULL), 0);
    cr_assert_eq(cmd(sub, NULL, "UNSUBSCRIBE", "ch2", NULL), ORR_ENOTFOUND, "gone already");
    cr_assert_eq(cmd(sub, NULL, "UNSUBSCRIBE", "ch1", NULL), ORR_ESTATE, "the last one");
    cr_assert(RUN_UNTIL(s.subscribed == 1, 3000));
    cr_assert_str_eq(roundtrip(pub, "PUBLISH", "ch2", "lost"), ":0");
    cr_assert_str_eq(roundtrip(pub, "PUBLISH", "ch1", "m1000"), ":1");
    cr_assert(RUN_UNTIL(s.messages == 1001, 3000));

    /* The same (cb, priv) for a pattern: pmessages to the same callback. Then
     * the channel can go, and back and forth in one pass. */
    int confirms = s.confirms;
    const char *psub[] = {"PSUBSCRIBE", "pat.*"};
    cr_assert_eq(orr_redis_command(sub, on_message, &s, 2, psub, NULL), 0);
    cr_assert_eq(cmd(sub, NULL, "UNSUBSCRIBE", "ch1", NULL), 0);
    const char *resub[] = {"SUBSCRIBE", "ch1"};
    cr_assert_eq(orr_redis_command(sub, on_message, &s, 2, resub, NULL), 0);
    cr_assert_eq(cmd(sub, NULL, "UNSUBSCRIBE", "ch1", NULL), 0);
    cr_assert_eq(cmd(sub, NULL, "PUNSUBSCRIBE", "pat.*", NULL), ORR_ESTATE, "the last one");
    cr_assert(RUN_UNTIL(s.confirms == confirms + 4, 3000), "%d", s.confirms);
    cr_assert_eq(s.subscribed, 1);
    cr_assert_str_eq(roundtrip(pub, "PUBLISH", "ch1", "lost"), ":0");
    cr_assert_str_eq(roundtrip(pub, "PUBLISH", "pat.x", "m1001"), ":1");
    cr_assert(RUN_UNTIL(s.messages == 1002, 3000));
    cr_assert_str_eq(s.last, "pmessage pat.x m1001");
    cr_assert_eq(s.out_of_order, 0);

    /* Freed inside its own message callback: one NULL, right after it returns, then nothing. */
    s.free_on_bye = true;
    cr_assert_str_eq(roundtrip(pub, "PUBLISH", "pat.bye", "bye"), ":1");
    cr_assert(RUN_UNTIL(s.freed, 3000));
    cr_assert_eq(s.nulls, 1);
    cr_assert_eq(s.after_free, 1, "only the NULL after the free");
    /* The socket was closed: Redis forgets the subscriber (when it notices). */
    long long numpat = -1;
    for (int64_t end = now_ms() + 2000; numpat != 0 && now_ms() < end; usleep(5000)) {
        redisReply *rep = admin("PUBSUB NUMPAT");
        numpat = rep->integer;
        freeReplyObject(rep);
    }
    cr_assert_eq(numpat, 0, "the subscriber's socket is still open");
    cr_assert_str_eq(roundtrip(pub, "PUBLISH", "pat.x", "m9999"), ":0");
    run_for(100);
    cr_assert_eq(s.after_free, 1);
    cr_assert_eq(s.w.downs, 0);
    (void)sub;
    free_conn(pub);
}

Test(redis, client_kill_reconnects_and_resubscribes) {
    server_start();
    subscriber s = {0};
    orr_redis *sub = subscriber_new(&s);
    watch w = {0};
    orr_redis *r = conn_up(0, &w);
    cr_assert(RUN_UNTIL(s.subscribed == 2, 3000));

    /* Kill both from a third connection. */
    got g = {0};
    cr_assert_eq(cmd(r, &g, "CLIENT", "ID", NULL), 0);
    cr_assert(RUN_UNTIL(g.n == 1, 3000));
    long long rid = atoll(g.last + 1);
    redisReply *rep = admin("CLIENT KILL TYPE pubsub");
    cr_assert_eq(rep->type, REDIS_REPLY_INTEGER);
    cr_assert_eq(rep->integer, 1);
    freeReplyObject(rep);
    rep = admin("CLIENT KILL ID %lld", rid);
    cr_assert_eq(rep->integer, 1);
    freeReplyObject(rep);

    cr_assert(RUN_UNTIL(w.downs == 1 && s.w.downs == 1, 3000), "no down");
    cr_assert_str_eq(w.why, "Server closed the connection");
    cr_assert_eq(s.nulls, 1, "the subscription ends once, with NULL");
    cr_assert(RUN_UNTIL(w.ups == 2 && s.w.ups == 2 && s.subscribed == 4, 3000), "not back: %s / %s",
              orr_redis_why(r), orr_redis_why(sub));
    /* Backoff: not at once (at least half of 100 ms), but soon. */
    cr_assert_geq(w.up_at - w.down_at, 45);
    cr_assert_leq(w.up_at - w.down_at, 1000);

    cr_assert_str_eq(roundtrip(r, "PUBLISH", "ch1", "m0"), ":1");
    cr_assert(RUN_UNTIL(s.messages == 1, 3000));
    cr_assert_str_eq(s.last, "message ch1 m0");
    free_conn(sub);
    cr_assert_eq(s.nulls, 2);
    free_conn(r);
}

Test(redis, nobody_listening_retries_without_busy_looping) {
    watch w = {0};
    char path[100];
    snprintf(path, sizeof path, "%s/nobody.sock", dir);
    orr_redis *r = conn_new_at(path, 0, &w);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    run_for(1000);
    getrusage(RUSAGE_SELF, &ru1);
    orr_redis_stats st;
    orr_redis_get_stats(r, &st);
    cr_log_info("%llu attempts in 1 s", (unsigned long long)st.attempts);
    cr_assert(st.attempts >= 3 && st.attempts <= 8, "%llu attempts in 1 s",
              (unsigned long long)st.attempts);
    long cpu_us = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1000000L +
                  (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
                  (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1000000L +
                  (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
    cr_assert_lt(cpu_us, 200000, "%ld us of CPU in 1 s of retrying", cpu_us);
    cr_assert(strstr(orr_redis_why(r), "No such file"), "why: %s", orr_redis_why(r));
    cr_assert_eq(w.ups + w.downs, 0, "failed attempts are not state changes");

    /* A socket file nobody listens on any more: refused, same rhythm. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    run_for(2200); /* past the next attempt, whatever the draw */
    cr_assert(strstr(orr_redis_why(r), "refused"), "why: %s", orr_redis_why(r));
    free_conn(r);
}

Test(redis, an_attempt_without_answer_is_abandoned_after_2s) {
    /* Listens, never accepts: connect(2) succeeds, the PING is never answered. */
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(lfd, 16), 0);
    watch w = {0};
    orr_redis *r = conn_new(0, &w);
    run_for(1500);
    cr_assert_str_eq(orr_redis_why(r), "connecting");
    orr_redis_stats st;
    orr_redis_get_stats(r, &st);
    cr_assert_eq(st.attempts, 1);
    run_for(1000);
    cr_assert_str_eq(orr_redis_why(r), "no answer within 2000 ms");
    orr_redis_get_stats(r, &st);
    cr_assert_eq(st.attempts, 2, "retried after the backoff");
    cr_assert_eq(w.ups + w.downs, 0);
    /* Freed while connecting: nothing owed, nothing called. */
    free_conn(r);
    close(lfd);
}

typedef struct counted {
    int calls, nulls;
    int *after_free; /* incremented when called after the free returned */
    bool *freed;
} counted;

static void on_counted(orr_redis *r, redisReply *rep, void *priv) {
    (void)r;
    counted *c = priv;
    c->calls++;
    if (!rep) c->nulls++;
    if (*c->freed) (*c->after_free)++;
}

Test(redis, free_with_commands_pending) {
    server_start();
    watch w = {0};
    orr_redis *r = conn_up(0, &w);
    bool freed = false;
    int after = 0;
    counted c = {.after_free = &after, .freed = &freed};
    const char *blpop[] = {"BLPOP", "never", "0"};
    cr_assert_eq(orr_redis_command(r, on_counted, &c, 3, blpop, NULL), 0);
    run_for(100); /* the BLPOP is on the server, waiting */
    const char *get[] = {"GET", "x"};
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(orr_redis_command(r, on_counted, &c, 2, get, NULL), 0);
    free_conn(r);
    freed = true;
    cr_assert_eq(c.calls, 1001, "every callback told before free returns");
    cr_assert_eq(c.nulls, 1001);
    run_for(200);
    cr_assert_eq(after, 0);
    cr_assert_eq(w.downs, 0);
    struct epoll_event ev;
    cr_assert_eq(epoll_wait(epfd, &ev, 1, 0), 0, "the fd is still in epoll");
}

/* Frees its connection from inside the first reply. */
typedef struct freer {
    orr_redis *r;
    int calls, nulls;
    int during_free; /* calls while its orr_redis_free ran */
    bool in_free, freed;
    int after_free;
} freer;

static void on_free_first(orr_redis *r, redisReply *rep, void *priv) {
    freer *f = priv;
    f->calls++;
    if (!rep) f->nulls++;
    if (f->in_free) f->during_free++;
    if (f->freed) f->after_free++;
    if (f->calls == 1) {
        cr_assert_not_null(rep);
        f->in_free = true;
        untrack(r);
        orr_redis_free(r);
        f->in_free = false;
        f->freed = true;
        cr_assert_eq(orr_redis_command(r, NULL, NULL, 1, (const char *[]){"PING"}, NULL),
                     ORR_ECLOSED, "r stays valid until the callback returns");
    }
}

static void on_told(orr_redis *r, redisReply *rep, void *priv) {
    (void)r;
    freer *f = priv;
    f->calls++;
    if (!rep) f->nulls++;
    if (f->freed) f->after_free++;
}

static void on_up_then_free(orr_redis *r, int up, const char *why, void *priv) {
    (void)why;
    freer *f = priv;
    if (!up) {
        f->after_free += 100; /* no down after a free */
        return;
    }
    const char *get[] = {"GET", "x"};
    cr_assert_eq(orr_redis_command(r, on_told, f, 2, get, NULL), 0);
    cr_assert_eq(orr_redis_command(r, on_told, f, 2, get, NULL), 0);
    f->in_free = true;
    untrack(r);
    orr_redis_free(r);
    f->in_free = false;
    f->freed = true;
}

Test(redis, free_inside_callbacks) {
    server_start();
    /* From a reply: the two commands after it are told NULL before free returns. */
    watch w = {0};
    orr_redis *r = conn_up(0, &w);
    freer f = {.r = r};
    const char *get[] = {"GET", "x"};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(orr_redis_command(r, on_free_first, &f, 2, get, NULL), 0);
    cr_assert(RUN_UNTIL(f.freed, 3000));
    cr_assert_eq(f.calls, 3);
    cr_assert_eq(f.nulls, 2);
    cr_assert_eq(f.during_free, 2);
    run_for(200);
    cr_assert_eq(f.after_free, 0);
    cr_assert_eq(w.downs, 0);

    /* From the state callback, with commands just queued. */
    freer f2 = {0};
    orr_redis_addr a = {.db = 0};
    snprintf(a.path, sizeof a.path, "%s", sock_path);
    orr_redis *r2 = orr_redis_new(epfd, &a, "upfree", on_up_then_free, &f2);
    track(r2);
    cr_assert(RUN_UNTIL(f2.freed, 3000));
    cr_assert_eq(f2.calls, 2);
    cr_assert_eq(f2.nulls, 2);
    run_for(200);
    cr_assert_eq(f2.after_free, 0);
    struct epoll_event ev;
    cr_assert_eq(epoll_wait(epfd, &ev, 1, 0), 0, "an fd is still in epoll");
}

Test(redis, refuses_commands_it_cannot_pair) {
    server_start();
    watch w = {0};
    orr_redis *r = conn_up(0, &w);
    static const char *const refused[][2] = {{"MONITOR", NULL},      {"ssubscribe", "x"},
                                             {"SUNSUBSCRIBE", NULL}, {"HELLO", "3"},
                                             {"RESET", NULL},        {"client", "REPLY"}};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        cr_assert_eq(cmd(r, NULL, refused[i][0], refused[i][1], NULL), ORR_ENOTSUP, "%s accepted",
                     refused[i][0]);
    cr_assert_eq(orr_redis_command(r, NULL, NULL, 0, NULL, NULL), ORR_EINVAL);
    cr_assert_eq(cmd(r, NULL, "UNSUBSCRIBE", NULL, NULL), ORR_EINVAL, "no names");
    cr_assert_eq(cmd(r, NULL, "UNSUBSCRIBE", "x", NULL), ORR_ESTATE, "not subscribed");
    /* SUBSCRIBE without a channel is a plain command: Redis answers an error. */
    cr_assert(strncmp(roundtrip(r, "SUBSCRIBE", NULL, NULL), "E:ERR wrong number", 18) == 0);
    /* Still usable. */
    cr_assert_str_eq(roundtrip(r, "CLIENT", "GETNAME", NULL), "-");
    free_conn(r);
}

/* A loopback port nobody listens on (free a moment ago). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

Test(redis, tcp_refused_then_connects) {
    int port = free_port();
    watch w = {0};
    orr_redis_addr a = {.host = "127.0.0.1", .port = (uint16_t)port, .db = 1};
    orr_redis *r = orr_redis_new(epfd, &a, "tcp", on_state, &w);
    track(r);
    run_for(400);
    cr_assert_eq(w.ups, 0);
    cr_assert_str_eq(orr_redis_why(r), "Connection refused");
    orr_redis_stats st;
    orr_redis_get_stats(r, &st);
    cr_assert_geq(st.attempts, 2);
    server_start_tcp(port);
    cr_assert(RUN_UNTIL(w.ups == 1, 6000), "not up: %s", orr_redis_why(r));
    cr_assert_str_eq(roundtrip(r, "SET", "tcp", "1"), "S:OK");
    redisReply *rep = admin("CLIENT LIST TYPE normal");
    cr_assert(strstr(rep->str, "db=1"), "%s", rep->str);
    freeReplyObject(rep);
    free_conn(r);
}

Test(redis, new_rejects_an_empty_address) {
    orr_redis_addr a = {.host = "", .path = ""};
    cr_assert_null(orr_redis_new(epfd, &a, "x", on_state, NULL));
}
