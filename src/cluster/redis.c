/*
 * A Redis connection on the caller's epoll loop (see redis.h).
 *
 * hiredis owns the socket and the protocol; this file owns time, interest
 * and lifetime. The rules that keep it safe:
 *   - hiredis frees a context by itself when the connection fails (inside
 *     redisAsyncHandleRead/Write), after calling every pending callback with
 *     NULL. The cleanup hook is the one signal that the context is going: it
 *     takes the fd out of epoll and forgets the context; what that means for
 *     the state machine is worked out in settle(), after hiredis returned.
 *   - We free a context ourselves (timeout, failed handshake, orr_redis_free)
 *     only when no hiredis call is on the stack: a close decided inside a
 *     callback is written to `drop` and carried out by settle().
 *   - Each entry point (on_event, tick, free) counts itself in `depth`;
 *     orr_redis_free inside a callback only marks the connection, and the
 *     outermost entry point frees it on its way out.
 *   - User callbacks of state changes run from settle(), never from inside
 *     hiredis; reply callbacks necessarily run inside it (hiredis calls them),
 *     where hiredis allows new commands.
 */
#include "cluster/redis.h"

#include "common/err.h"
#include "common/hash.h"
#include "common/list.h"
#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

/* A callback owed to the user. A command's record is freed by its
 * trampoline, which hiredis calls exactly once (with the reply, or NULL when
 * the context goes). A subscription's record is shared by the channels
 * subscribed with the same cb and priv and belongs to the link: hiredis may
 * call it any number of times, or never (a channel subscribed again drops
 * the old callback silently), so it is freed when the link is gone. */
typedef struct rcmd {
    orr_link link; /* r->pending (commands) or r->subs (subscriptions) */
    orr_redis *r;
    orr_redis_reply_cb cb;
    void *priv;
    bool done; /* the user had its last call: the reply, or NULL */
} rcmd;

/* The channels and patterns the link is subscribed to (or has a SUBSCRIBE in
 * flight for), so that every UNSUBSCRIBE names subscriptions that exist and
 * never removes the last one. hiredis 0.14 aborts the process (an assert)
 * when an unsubscribe reply arrives after one that brought the count to 0,
 * which an UNSUBSCRIBE of a channel already gone, or one without arguments,
 * can cause. A chained hash keyed by kind ('c' or 'p') and name. */
typedef struct chan {
    struct chan *next;
    uint64_t hash;
    bool marked; /* named by the UNSUBSCRIBE being checked */
    size_t len;  /* of key: kind, then the name */
    char key[];
} chan;

typedef struct chanset {
    chan **buckets;
    size_t nbuckets; /* a power of 2, or 0 */
    size_t n;
} chanset;

static uint64_t chan_hash(char kind, const char *name, size_t len) {
    return orr_fnv1a(ORR_FNV_OFFSET ^ (unsigned char)kind, name, len);
}

static chan **chan_slot(chanset *s, char kind, const char *name, size_t len) {
    if (!s->nbuckets) return NULL;
    uint64_t h = chan_hash(kind, name, len);
    chan **p = &s->buckets[h & (s->nbuckets - 1)];
    for (; *p; p = &(*p)->next)
        if ((*p)->hash == h && (*p)->len == len + 1 && (*p)->key[0] == kind &&
            memcmp((*p)->key + 1, name, len) == 0)
            return p;
    return NULL;
}

static void chan_add(chanset *s, char kind, const char *name, size_t len) {
    if (chan_slot(s, kind, name, len)) return;
    if (s->n >= s->nbuckets) { /* grow: load factor at most 1 */
        size_t nb = s->nbuckets ? 2 * s->nbuckets : 16;
        chan **b = orr_xcalloc(nb, sizeof *b);
        for (size_t i = 0; i < s->nbuckets; i++)
            for (chan *c = s->buckets[i], *next; c; c = next) {
                next = c->next;
                c->next = b[c->hash & (nb - 1)];
                b[c->hash & (nb - 1)] = c;
            }
        free(s->buckets);
        s->buckets = b;
        s->nbuckets = nb;
    }
    chan *c = orr_xmalloc(sizeof *c + len + 1);
    c->hash = chan_hash(kind, name, len);
    c->marked = false;
    c->len = len + 1;
    c->key[0] = kind;
    memcpy(c->key + 1, name, len);
    c->next = s->buckets[c->hash & (s->nbuckets - 1)];
    s->buckets[c->hash & (s->nbuckets - 1)] = c;
    s->n++;
}

static void chan_clear(chanset *s) {
    for (size_t i = 0; i < s->nbuckets; i++)
        for (chan *c = s->buckets[i], *next; c; c = next) {
            next = c->next;
            free(c);
        }
    free(s->buckets);
    *s = (chanset){0};
}

enum link_state {
    LINK_NONE,       /* no context: waiting for the next attempt */
    LINK_CONNECTING, /* connect(2) and the handshake under way */
    LINK_UP,         /* the handshake answered */
};

struct orr_redis {
    orr_loop_handler handler; /* what the fd's epoll data.ptr points to */
    int epfd;
    orr_redis_addr addr;
    char name[64];
    char where[300]; /* the address as logs show it */
    orr_redis_state_cb state_cb;
    void *state_priv;

    redisAsyncContext *ac; /* the link; NULL between attempts */
    enum link_state state;
    int fd;          /* the fd registered in epfd, or -1 */
    uint32_t events; /* the interest registered for it */
    bool told_up;    /* the state callback's last word was "up" */
    bool up_news;    /* the handshake answered: say so once hiredis returned */

    int64_t deadline;    /* LINK_CONNECTING: when the attempt is abandoned */
    bool retry_armed;    /* LINK_NONE: retry_at is set */
    int64_t retry_at;    /* ... the next attempt */
    int64_t retry_delay; /* ... or, not armed: this long after the next tick */
    unsigned retries;    /* delays drawn since the link was last up */
    unsigned failed;     /* attempts that failed since then */
    uint64_t rng;

    char why[160];    /* why it is not up */
    char drop[160];   /* a close decided inside a hiredis call, carried out by settle() */
    char logged[160]; /* the last failure logged, so that repeats are not */

    orr_link pending;  /* commands whose callback is owed, in command order */
    orr_link subs;     /* the link's subscription records */
    chanset chans;     /* the link's channels and patterns, as subscribed so far */
    size_t n_pending;  /* replies owed, commands without a callback included */
    rcmd *running_sub; /* the subscription record whose callback is running */
    orr_redis_stats stats;
    int depth; /* entry points (on_event, tick, free) on the stack */
    bool freeing;
};

static const char *handshake_name(const orr_redis *r) {
    return r->addr.db ? "SELECT" : "PING";
}

/* xorshift64*: jitter only, nothing secret. */
static uint64_t rng_next(orr_redis *r) {
    uint64_t x = r->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* The delay before the next attempt: 100 ms doubling up to 5 s, drawn
 * between half and all of it. */
static int64_t next_backoff(orr_redis *r) {
    unsigned n = r->retries < 8 ? r->retries : 8;
    int64_t base = (int64_t)ORR_REDIS_BACKOFF_MIN_MS << n;
    if (base > ORR_REDIS_BACKOFF_MAX_MS) base = ORR_REDIS_BACKOFF_MAX_MS;
    r->retries++;
    return base / 2 + (int64_t)(rng_next(r) % (uint64_t)(base / 2 + 1));
}

static void set_why(char *dst, size_t n, const char *why) {
    snprintf(dst, n, "%s", why && why[0] ? why : "connection closed");
}

/* ---- the event library hooks hiredis calls ---- */

static void set_interest(orr_redis *r, uint32_t events) {
    if (!r->ac || events == r->events) return;
    int fd = r->ac->c.fd;
    struct epoll_event ev = {.events = events, .data.ptr = &r->handler};
    if (epoll_ctl(r->epfd, r->fd < 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) < 0) {
        /* Without the fd in epoll the link would hang: close it (not here,
         * hiredis is on the stack) and let backoff try again. */
        if (!r->drop[0]) snprintf(r->drop, sizeof r->drop, "epoll_ctl: %s", strerror(errno));
        return;
    }
    r->fd = fd;
    r->events = events;
}

static void ev_add_read(void *p) {
    orr_redis *r = p;
    set_interest(r, r->events | EPOLLIN);
}

static void ev_del_read(void *p) {
    orr_redis *r = p;
    set_interest(r, r->events & ~(uint32_t)EPOLLIN);
}

static void ev_add_write(void *p) {
    orr_redis *r = p;
    set_interest(r, r->events | EPOLLOUT);
}

static void ev_del_write(void *p) {
    orr_redis *r = p;
    set_interest(r, r->events & ~(uint32_t)EPOLLOUT);
}

/* The context is being freed (by hiredis after an error, or by us): the fd
 * is still open, so it can leave epoll properly. Later hiredis versions call
 * this twice; the second call finds nothing to do. */
static void ev_cleanup(void *p) {
    orr_redis *r = p;
    if (!r->ac) return;
    if (r->fd >= 0) epoll_ctl(r->epfd, EPOLL_CTL_DEL, r->fd, NULL);
    r->fd = -1;
    r->events = 0;
    const redisContext *c = &r->ac->c;
    set_why(r->why, sizeof r->why, r->drop[0] ? r->drop : c->err ? c->errstr : NULL);
    r->drop[0] = '\0';
    r->ac = NULL;
}

/* ---- reply trampolines ---- */

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    orr_redis *r = ac->data;
    rcmd *c = privdata;
    r->n_pending--;
    if (!c) return;
    if (!c->done) {
        c->done = true;
        orr_list_remove(&c->link);
        c->cb(r, reply, c->priv);
    }
    free(c);
}

static void on_sub(redisAsyncContext *ac, void *reply, void *privdata) {
    (void)ac;
    rcmd *s = privdata;
    orr_redis *r = s->r;
    if (s->done) return;
    if (!reply) {
        s->done = true;
        s->cb(r, NULL, s->priv);
        return;
    }
    rcmd *outer = r->running_sub;
    r->running_sub = s;
    s->cb(r, reply, s->priv);
    r->running_sub = outer;
    /* It called orr_redis_free, which left its NULL for now. */
    if (r->freeing && !s->done) {
        s->done = true;
        s->cb(r, NULL, s->priv);
    }
}

static void on_handshake(redisAsyncContext *ac, void *reply, void *privdata) {
    (void)ac;
    orr_redis *r = privdata;
    const redisReply *rep = reply;
    if (!rep || r->state != LINK_CONNECTING) return; /* NULL: the link is going anyway */
    if (rep->type == REDIS_REPLY_ERROR) {
        if (!r->drop[0])
            snprintf(r->drop, sizeof r->drop, "%s: %s", handshake_name(r),
                     rep->str ? rep->str : "");
        return;
    }
    r->state = LINK_UP;
    r->up_news = true;
}

/* ---- the link's life ---- */

static void log_failure(orr_redis *r) {
    if (strcmp(r->why, r->logged) == 0) return;
    orr_log(ORR_LOG_WARN, NULL,
            "redis %s: cannot connect to %s: %s; retrying with backoff (%d ms to %d s)", r->name,
            r->where, r->why, ORR_REDIS_BACKOFF_MIN_MS, ORR_REDIS_BACKOFF_MAX_MS / 1000);
    snprintf(r->logged, sizeof r->logged, "%s", r->why);
}

static void schedule_retry(orr_redis *r) {
    r->state = LINK_NONE;
    r->retry_armed = false;
    r->retry_delay = next_backoff(r);
}

static void attempt_failed(orr_redis *r, const char *why) {
    r->failed++;
    set_why(r->why, sizeof r->why, why);
    schedule_retry(r);
    if (!r->freeing) log_failure(r);
}

static void attempt(orr_redis *r, int64_t now) {
    r->stats.attempts++;
    redisAsyncContext *ac = r->addr.path[0] ? redisAsyncConnectUnix(r->addr.path)
                                            : redisAsyncConnect(r->addr.host, r->addr.port);
    if (!ac) {
        attempt_failed(r, "out of memory");
        return;
    }
    if (ac->err) { /* refused at once (a unix path nobody listens on, ...) */
        char why[sizeof r->why];
        set_why(why, sizeof why, ac->errstr);
        redisAsyncFree(ac); /* not connected, no hooks, no callbacks: closes the fd */
        attempt_failed(r, why);
        return;
    }
    r->ac = ac;
    r->fd = -1;
    r->events = 0;
    r->state = LINK_CONNECTING;
    r->deadline = now + ORR_REDIS_CONNECT_TIMEOUT_MS;
    ac->data = r;
    ac->ev.data = r;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    if (!r->addr.path[0] && redisEnableKeepAlive(&ac->c) != REDIS_OK) {
        set_why(r->drop, sizeof r->drop, ac->c.errstr);
        return;
    }
    /* Queued before connect(2) completes: hiredis writes it on the first
     * writable event, which is also how it learns the connection is made.
     * Its answer, not the connect, makes the link up: Redis is there, speaks
     * RESP, took us (no NOAUTH, no "max clients") and uses the database. */
    int rc = r->addr.db ? redisAsyncCommand(ac, on_handshake, r, "SELECT %d", r->addr.db)
                        : redisAsyncCommand(ac, on_handshake, r, "PING");
    if (rc != REDIS_OK && !r->drop[0])
        set_why(r->drop, sizeof r->drop, "cannot queue the handshake");
}

/* Tells every subscription record not told yet that it is over, and frees
 * them: the link is gone, nothing refers to them any more. */
static void end_subs(orr_redis *r) {
    chan_clear(&r->chans);
    orr_link *l;
    while ((l = orr_list_front(&r->subs))) {
        rcmd *s = ORR_CONTAINER_OF(l, rcmd, link);
        orr_list_remove(l);
        if (!s->done) {
            s->done = true;
            s->cb(r, NULL, s->priv);
        }
        free(s);
    }
}

static void link_gone(orr_redis *r) {
    bool was_up = r->told_up;
    r->told_up = false;
    r->up_news = false;
    schedule_retry(r);
    end_subs(r);
    if (r->freeing) return;
    if (!was_up) {
        r->failed++;
        log_failure(r);
        return;
    }
    orr_log(ORR_LOG_WARN, NULL, "redis %s: connection to %s lost: %s; reconnecting", r->name,
            r->where, r->why);
    snprintf(r->logged, sizeof r->logged, "%s", r->why);
    r->stats.losses++;
    r->state_cb(r, 0, r->why, r->state_priv);
}

static void went_up(orr_redis *r) {
    unsigned failed = r->failed;
    r->retries = 0;
    r->failed = 0;
    r->why[0] = '\0';
    r->logged[0] = '\0';
    r->told_up = true;
    r->stats.ups++;
    if (failed)
        orr_log(ORR_LOG_INFO, NULL, "redis %s: connected to %s (db %d) after %u failed attempt%s",
                r->name, r->where, r->addr.db, failed, failed == 1 ? "" : "s");
    else
        orr_log(ORR_LOG_INFO, NULL, "redis %s: connected to %s (db %d)", r->name, r->where,
                r->addr.db);
    r->state_cb(r, 1, "", r->state_priv);
}

/* After a hiredis call returned, at the outermost entry point: carry out a
 * close decided meanwhile, then turn what happened to the link into state
 * changes and tell the user. */
static void settle(orr_redis *r) {
    if (r->ac && r->drop[0]) redisAsyncFree(r->ac); /* callbacks get NULL; cleanup forgets it */
    if (!r->ac && r->state != LINK_NONE) link_gone(r);
    if (r->up_news && !r->freeing) {
        r->up_news = false;
        if (r->state == LINK_UP) went_up(r);
    }
}

static void destroy(orr_redis *r) {
    if (r->ac) {
        /* Every callback was told already (fail_all): the trampolines only
         * free their records now. */
        r->depth++;
        redisAsyncFree(r->ac);
        r->depth--;
    }
    end_subs(r);
    free(r);
}

static void leave(orr_redis *r) {
    if (--r->depth == 0 && r->freeing) destroy(r);
}

static void on_event(orr_loop_handler *h, uint32_t events) {
    orr_redis *r = ORR_CONTAINER_OF(h, orr_redis, handler);
    redisAsyncContext *ac = r->ac;
    if (r->depth || !ac) return; /* an event fetched before the link went */
    r->depth++;
    /* Read first: replies run their callbacks, which may queue commands that
     * a writable event then sends together. EPOLLERR/EPOLLHUP go to the read
     * side, where hiredis finds the error (or a failed connect). */
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) redisAsyncHandleRead(ac);
    if ((events & EPOLLOUT) && r->ac == ac && !r->freeing) redisAsyncHandleWrite(ac);
    if (!r->freeing) settle(r);
    leave(r);
}

/* ---- public ---- */

orr_redis *orr_redis_new(int epfd, const orr_redis_addr *addr, const char *name,
                         orr_redis_state_cb cb, void *priv) {
    if (!addr || (!addr->path[0] && !addr->host[0]) || !cb) return NULL;
    orr_redis *r = orr_xcalloc(1, sizeof *r);
    r->handler.on_event = on_event;
    r->epfd = epfd;
    r->addr = *addr;
    snprintf(r->name, sizeof r->name, "%s", name ? name : "");
    if (addr->path[0])
        snprintf(r->where, sizeof r->where, "unix:%s", addr->path);
    else if (strchr(addr->host, ':'))
        snprintf(r->where, sizeof r->where, "[%s]:%u", addr->host, addr->port);
    else
        snprintf(r->where, sizeof r->where, "%s:%u", addr->host, addr->port);
    r->state_cb = cb;
    r->state_priv = priv;
    r->fd = -1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    r->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)r ^
             ((uint64_t)getpid() << 40);
    if (!r->rng) r->rng = 1;
    orr_list_init(&r->pending);
    orr_list_init(&r->subs);
    return r;
}

/* orr_redis_free: every callback still owed gets its NULL now, in command
 * order, then the subscriptions (but the one running: on_sub tells it when
 * it returns). Records stay allocated until hiredis lets go of them. */
static void fail_all(orr_redis *r) {
    orr_link *l;
    while ((l = orr_list_front(&r->pending))) {
        rcmd *c = ORR_CONTAINER_OF(l, rcmd, link);
        orr_list_remove(l);
        c->done = true;
        c->cb(r, NULL, c->priv);
    }
    for (l = r->subs.next; l != &r->subs; l = l->next) {
        rcmd *s = ORR_CONTAINER_OF(l, rcmd, link);
        if (s->done || s == r->running_sub) continue;
        s->done = true;
        s->cb(r, NULL, s->priv);
    }
}

void orr_redis_free(orr_redis *r) {
    if (!r || r->freeing) return;
    r->freeing = true;
    r->depth++;
    orr_log(ORR_LOG_INFO, NULL, "redis %s: closed", r->name);
    fail_all(r);
    leave(r);
}

void orr_redis_tick(orr_redis *r, int64_t now_ms) {
    if (r->depth || r->freeing) return;
    r->depth++;
    switch (r->state) {
    case LINK_NONE:
        if (!r->retry_armed) {
            r->retry_at = now_ms + r->retry_delay;
            r->retry_armed = true;
        }
        if (now_ms >= r->retry_at) attempt(r, now_ms);
        break;
    case LINK_CONNECTING:
        if (now_ms >= r->deadline && !r->drop[0])
            snprintf(r->drop, sizeof r->drop, "no answer within %d ms",
                     ORR_REDIS_CONNECT_TIMEOUT_MS);
        break;
    case LINK_UP:
        break;
    }
    if (!r->freeing) settle(r);
    leave(r);
}

bool orr_redis_is_up(const orr_redis *r) {
    return r && !r->freeing && r->told_up && r->ac &&
           !(r->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING));
}

const char *orr_redis_why(const orr_redis *r) {
    if (orr_redis_is_up(r)) return "";
    return r->why[0] ? r->why : "connecting";
}

void orr_redis_get_stats(const orr_redis *r, orr_redis_stats *out) {
    *out = r->stats;
}

size_t orr_redis_pending(const orr_redis *r) {
    return r->n_pending;
}

/* ---- commands ---- */

enum cmd_kind { CMD_PLAIN, CMD_SUB, CMD_UNSUB, CMD_REFUSED };

static bool is_name(const char *s, size_t n, const char *name) {
    return n == strlen(name) && strncasecmp(s, name, n) == 0;
}

/* Mirrors how hiredis 0.14 routes replies: "subscribe" with at least one
 * channel registers per-channel callbacks, "unsubscribe" none at all. */
static enum cmd_kind classify(int argc, const char **argv, const size_t *argvlen) {
    const char *c = argv[0];
    size_t n = argvlen ? argvlen[0] : strlen(c);
    if (is_name(c, n, "subscribe") || is_name(c, n, "psubscribe"))
        return argc >= 2 ? CMD_SUB : CMD_PLAIN;
    if (is_name(c, n, "unsubscribe") || is_name(c, n, "punsubscribe")) return CMD_UNSUB;
    static const char *const refused[] = {"monitor", "ssubscribe", "sunsubscribe",
                                          "hello",   "select",     "reset"};
    for (size_t i = 0; i < ORR_ARRAY_LEN(refused); i++)
        if (is_name(c, n, refused[i])) return CMD_REFUSED;
    if (argc >= 2 && is_name(c, n, "client") &&
        is_name(argv[1], argvlen ? argvlen[1] : strlen(argv[1]), "reply"))
        return CMD_REFUSED;
    return CMD_PLAIN;
}

static int plain_command(orr_redis *r, orr_redis_reply_cb cb, void *priv, int argc,
                         const char **argv, const size_t *argvlen) {
    rcmd *c = NULL;
    if (cb) {
        c = orr_xcalloc(1, sizeof *c);
        c->r = r;
        c->cb = cb;
        c->priv = priv;
        orr_list_push_back(&r->pending, &c->link);
    }
    if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, argvlen) != REDIS_OK) {
        if (c) {
            orr_list_remove(&c->link);
            free(c);
        }
        return ORR_ENOMEM;
    }
    r->n_pending++;
    return 0;
}

static int subscribe(orr_redis *r, orr_redis_reply_cb cb, void *priv, int argc, const char **argv,
                     const size_t *argvlen) {
    rcmd *s = NULL;
    for (orr_link *l = r->subs.next; l != &r->subs; l = l->next) {
        rcmd *t = ORR_CONTAINER_OF(l, rcmd, link);
        if (t->cb == cb && t->priv == priv && !t->done) {
            s = t;
            break;
        }
    }
    bool fresh = !s;
    if (fresh) {
        s = orr_xcalloc(1, sizeof *s);
        s->r = r;
        s->cb = cb;
        s->priv = priv;
        orr_list_push_back(&r->subs, &s->link);
    }
    if (redisAsyncCommandArgv(r->ac, on_sub, s, argc, argv, argvlen) != REDIS_OK) {
        if (fresh) {
            orr_list_remove(&s->link);
            free(s);
        }
        return ORR_ENOMEM;
    }
    char kind = tolower((unsigned char)argv[0][0]) == 'p' ? 'p' : 'c';
    for (int i = 1; i < argc; i++)
        chan_add(&r->chans, kind, argv[i], argvlen ? argvlen[i] : strlen(argv[i]));
    return 0;
}

/* Every name must be subscribed, once, and at least one subscription must
 * remain (see chanset): checked for all names before anything changes. */
static int unsubscribe(orr_redis *r, int argc, const char **argv, const size_t *argvlen) {
    char kind = tolower((unsigned char)argv[0][0]) == 'p' ? 'p' : 'c';
    int rc = 0, i;
    for (i = 1; i < argc; i++) {
        chan **p = chan_slot(&r->chans, kind, argv[i], argvlen ? argvlen[i] : strlen(argv[i]));
        if (!p || (*p)->marked) {
            rc = ORR_ENOTFOUND;
            break;
        }
        (*p)->marked = true;
    }
    if (rc == 0 && (size_t)(argc - 1) >= r->chans.n) rc = ORR_ESTATE;
    if (rc == 0 && redisAsyncCommandArgv(r->ac, NULL, NULL, argc, argv, argvlen) != REDIS_OK)
        rc = ORR_ENOMEM;
    /* Undo the marks; on success the names go. */
    for (int j = 1; j < i; j++) {
        chan **p = chan_slot(&r->chans, kind, argv[j], argvlen ? argvlen[j] : strlen(argv[j]));
        if (!p) continue; /* a duplicate already removed */
        chan *c = *p;
        if (rc == 0) {
            *p = c->next;
            free(c);
            r->chans.n--;
        } else {
            c->marked = false;
        }
    }
    return rc;
}

int orr_redis_command(orr_redis *r, orr_redis_reply_cb cb, void *priv, int argc, const char **argv,
                      const size_t *argvlen) {
    if (r->freeing) return ORR_ECLOSED;
    if (argc < 1 || !argv) return ORR_EINVAL;
    if (!orr_redis_is_up(r)) return ORR_EAGAIN;
    bool subscribed = r->ac->c.flags & REDIS_SUBSCRIBED;
    switch (classify(argc, argv, argvlen)) {
    case CMD_REFUSED:
        return ORR_ENOTSUP;
    case CMD_UNSUB:
        if (cb || argc < 2) return ORR_EINVAL;
        if (!subscribed) return ORR_ESTATE;
        return unsubscribe(r, argc, argv, argvlen);
    case CMD_SUB:
        if (!cb) return ORR_EINVAL;
        return subscribe(r, cb, priv, argc, argv, argvlen);
    case CMD_PLAIN:
        break;
    }
    if (subscribed) return ORR_ESTATE;
    return plain_command(r, cb, priv, argc, argv, argvlen);
}
