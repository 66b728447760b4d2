/*
 * src/cluster/redis.c against a real redis-server (tests/support/
 * redis_harness.h): connect and PING, binary-safe arguments, 10,000
 * pipelined SET/GET answered in order, SELECT, the commands refused by rule,
 * and freeing with commands pending, from inside callbacks, while
 * connecting. Reconnection is in test_redis_reconnect.c, pub/sub in
 * test_redis_pubsub.c. Every test frees what it made, so the ASan leak check
 * covers the adapter and what it makes hiredis keep.
 */
#include "redis_harness.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

TestSuite(redis, .init = setup, .fini = teardown, .timeout = 60);

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

Test(redis, new_rejects_an_empty_address) {
    orr_redis_addr a = {.host = "", .path = ""};
    cr_assert_null(orr_redis_new(epfd, &a, "x", on_state, NULL));
}
