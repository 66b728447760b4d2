/*
 * src/cluster/redis.c losing and finding its server (tests/support/
 * redis_harness.h): a refused SELECT, a server killed and restarted, a path
 * nobody listens on (no busy loop), a server that never answers (the 2 s
 * limit), and a TCP port refused until a server starts on it. Every test
 * frees what it made, so the ASan leak check covers the adapter and what it
 * makes hiredis keep.
 */
#include "redis_harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

TestSuite(redis, .init = setup, .fini = teardown, .timeout = 60);

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
