/*
 * src/cluster/redis.c's pub/sub against a real redis-server (tests/support/
 * redis_harness.h): 1,000 publications received in order across two
 * connections, the rules for (P)UNSUBSCRIBE, patterns, a subscriber freed
 * inside its own message callback, and CLIENT KILL with a reconnection that
 * subscribes again. Every test frees what it made, so the ASan leak check
 * covers the adapter and what it makes hiredis keep.
 */
#include "redis_harness.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(redis, .init = setup, .fini = teardown, .timeout = 60);

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
