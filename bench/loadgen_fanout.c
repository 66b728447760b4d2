/*
 * The fanout mode of orr-loadgen: M member connections join one group, one
 * more connection (the publisher, not a member) publishes to it, and every
 * member checks that it receives every publication exactly once, in order.
 *
 * The protocol (Orrery's testgear gear; bench/peers/ws-fanout for Node ws):
 *   member     join:<g>                -> joined:<g>
 *   publisher  publish:<g>:<seq>:<ns>  -> published:<members it reached>
 *   and every member receives <seq>:<ns> as a text message, where ns is the
 *   generator's clock when the publication was sent. With --pub-size N,
 *   publish:<g>:<seq>:<ns>:<pad> makes every delivery N bytes long (pad is
 *   JSON-like text). With --deflate the server compresses deliveries: every
 *   FO_SAMPLE-th member inflates and checks each of its messages, the
 *   others count them (in order, as the sampled members check).
 *
 * Phases (the main thread moves them on, see loadgen.c):
 *   CONNECT  connect (loadgen_worker.c), then every member joins;
 *   LATENCY  lat_pubs publications one at a time: the next one leaves when
 *            the last member got the previous one and its answer came back;
 *            latency = from the send until the last member received it;
 *   RUN      warm-up, then the measured window, with `window` publications
 *            in flight (one is in flight until every member got it and its
 *            published: answer came back); deliveries in the window count;
 *   drain    no more publications; every member must reach the total.
 *
 * Threads: the members are spread over the generator's threads; the
 * publisher is on one of them. Each publication has a slot in a shared ring:
 * its send time and an atomic count of the members that got it. The member
 * whose message makes the count reach M measures the latency and counts the
 * publication complete; on another thread than the publisher's it wakes that
 * thread through an eventfd. Publications complete in order (every member
 * receives them in order), so a slot is reused only when every member is
 * done with it.
 */
#include "loadgen.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FO_RING 4096     /* publication slots; more than any window */
#define FO_MSG_MAX 256   /* longest message a connection accepts, beyond --pub-size */
#define FO_FRAME_MAX 160 /* a publish frame: "publish:" + group (64) + two numbers */
#define FO_SAMPLE 64     /* --deflate: every 64th member inflates and checks its messages */
#define MAX_EVENTS 256

struct fo_slot {
    _Atomic uint64_t sent_ns;
    _Atomic uint32_t got; /* members that received it */
};

struct lg_fanout {
    const struct lg_opts *o;
    uint32_t members;
    char joined[FO_MSG_MAX]; /* the answer a join must get */
    size_t joined_len;
    size_t msg_max; /* longest message a connection accepts */
    uint8_t *pad;   /* --pub-size: the JSON-like text after <seq>:<ns>: */
    struct fo_slot ring[FO_RING];
    _Atomic uint64_t published; /* publications sent: the next one's seq */
    _Atomic uint64_t completed; /* publications every member got */
    _Atomic int lat_done;       /* the LATENCY phase is over */
    _Atomic int stopped;        /* no more publications: `published` is final */
    _Atomic int aborted;        /* a connection lost or a publication stuck */
    _Atomic uint64_t join_t0, join_t1;
    struct lg_thread *pub_thread; /* set in setup, read from the LATENCY phase on */
    int wake_fd;
    /* written by the publisher's thread, read by main after joining it */
    uint64_t lat_t0, lat_t1, win_pubs, answered;
};

/* One thread's part. */
struct lg_fo_thread {
    uint8_t *bufs;       /* FO_MSG_MAX per connection, for messages split across reads */
    struct lg_conn *cur; /* the connection being fed, and when its bytes were read */
    uint64_t now;
    int phase; /* as this thread last saw it; the window times are copies */
    uint64_t t_ms, t_me, t_drain;
    /* the publisher, on the thread that owns it */
    struct lg_conn *pub;
    uint8_t *out; /* publish frames not yet taken by the socket */
    uint8_t *cmd; /* one publish command being built */
    size_t out_len, out_off;
    uint64_t answered;
    uint64_t progress;    /* completed + answered when last seen to move */
    uint64_t progress_ns; /* and when */
};

struct lg_fanout *lg_fanout_new(const struct lg_opts *o) {
    struct lg_fanout *fo = calloc(1, sizeof *fo);
    if (!fo) return NULL;
    fo->o = o;
    fo->members = (uint32_t)o->conns;
    fo->joined_len = (size_t)snprintf(fo->joined, sizeof fo->joined, "joined:%s", o->group);
    fo->join_t0 = UINT64_MAX;
    fo->msg_max = FO_MSG_MAX + o->pub_size;
    fo->pad = malloc(o->pub_size + 1);
    fo->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fo->wake_fd < 0 || !fo->pad) {
        free(fo->pad);
        free(fo);
        return NULL;
    }
    lg_payload_fill(fo->pad, o->pub_size, 1);
    return fo;
}

static void atomic_min(_Atomic uint64_t *a, uint64_t v) {
    uint64_t cur = atomic_load(a);
    while (v < cur && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

static void atomic_max(_Atomic uint64_t *a, uint64_t v) {
    uint64_t cur = atomic_load(a);
    while (v > cur && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

static int is_pub(const struct lg_fanout *fo, const struct lg_conn *c) {
    return c->gidx == fo->members;
}

/* The first error of a thread, with the connection's name. */
static void set_err(struct lg_thread *t, const struct lg_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(struct lg_thread *t, const struct lg_conn *c, const char *fmt, ...) {
    if (t->err[0]) return;
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (!c)
        snprintf(t->err, sizeof t->err, "%s", what);
    else if (is_pub(t->sh->fo, c))
        snprintf(t->err, sizeof t->err, "publisher: %s", what);
    else
        snprintf(t->err, sizeof t->err, "member m%u: %s", c->gidx, what);
}

/* A lost connection ends the run for everybody: a publication can no longer
 * reach every member. */
static void fo_lost(struct lg_thread *t, struct lg_conn *c, const char *why) {
    set_err(t, c, "%s", why);
    lg_conn_lost(t, c, why);
    atomic_store(&t->sh->fo->aborted, 1);
}

/* A message shown in an error: printable, at most 60 bytes. */
static void show(char *out, size_t cap, const uint8_t *p, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 5 < cap && i < 60; i++)
        out[k++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    if (n > 60 && k + 4 < cap) out[k++] = '.', out[k++] = '.', out[k++] = '.';
    out[k] = 0;
}

/* "<digits>" at *p, up to `end` or `stop`; advances *p; -1 if none. */
static int parse_u64(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    const uint8_t *s = *p;
    uint64_t x = 0;
    while (*p < end && **p >= '0' && **p <= '9' && *p - s < 20)
        x = x * 10 + (uint64_t)(*(*p)++ - '0');
    if (*p == s) return -1;
    *v = x;
    return 0;
}

/* ---- members ---------------------------------------------------------------- */

/* The last member got publication `seq`. */
static void complete(struct lg_thread *t, uint64_t seq, uint64_t sent) {
    struct lg_fanout *fo = t->sh->fo;
    struct lg_fo_thread *ft = t->fo;
    uint64_t lat = ft->now > sent ? ft->now - sent : 0;
    if (seq < (uint64_t)t->sh->o->lat_pubs)
        lg_hist_add(t->lat, lat);
    else if (sent >= ft->t_ms && sent < ft->t_me)
        lg_hist_add(t->lat_load, lat);
    atomic_fetch_add(&fo->completed, 1);
    if (fo->pub_thread != t) {
        uint64_t one = 1;
        if (write(fo->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
            set_err(t, NULL, "eventfd: %s", strerror(errno));
    }
}

/* A publication at a member: "<seq>:<ns>", the next one it expects, sent
 * at ns. */
/* What follows <seq>:<ns> in a delivery is right: nothing, or with
 * --pub-size ':' and the pad up to pub_size bytes in all. */
static int padded(const struct lg_fanout *fo, const uint8_t *p, const uint8_t *q,
                  const uint8_t *end) {
    size_t prefix = (size_t)(q - p), size = fo->o->pub_size;
    if (size <= prefix + 1) return q == end;
    return (size_t)(end - p) == size && *q == ':' && !memcmp(q + 1, fo->pad, size - prefix - 1);
}

static int on_delivery(struct lg_thread *t, struct lg_conn *c, const uint8_t *p, size_t n);
static int delivered(struct lg_thread *t, struct lg_conn *c, uint64_t seq, uint64_t sent);

/* A compressed delivery (--deflate): a sampled member inflates and checks
 * it, the others count it as the next one. */
static int on_compressed(struct lg_thread *t, struct lg_conn *c, const uint8_t *p, size_t n) {
    struct lg_fanout *fo = t->sh->fo;
    if (c->gidx % FO_SAMPLE == 0) {
        if (lg_inflate(t, p, n, fo->msg_max, &p, &n) < 0) {
            set_err(t, c, "a compressed message does not inflate");
            return LG_RX_EMSG;
        }
        return on_delivery(t, c, p, n);
    }
    uint64_t seq = c->recvd;
    if (seq >= atomic_load(&fo->published)) {
        set_err(t, c, "publication %" PRIu64 " was never sent", seq);
        return LG_RX_EMSG;
    }
    return delivered(t, c, seq, atomic_load(&fo->ring[seq % FO_RING].sent_ns));
}

static int on_delivery(struct lg_thread *t, struct lg_conn *c, const uint8_t *p, size_t n) {
    struct lg_fanout *fo = t->sh->fo;
    const uint8_t *q = p, *end = p + n;
    uint64_t seq, ns;
    char txt[80];
    if (parse_u64(&q, end, &seq) < 0 || q == end || *q++ != ':' || parse_u64(&q, end, &ns) < 0 ||
        !padded(fo, p, q, end)) {
        show(txt, sizeof txt, p, n);
        set_err(t, c, "unexpected message '%s'", txt);
        return LG_RX_EMSG;
    }
    if (seq != c->recvd) {
        if (seq < c->recvd)
            set_err(t, c, "publication %" PRIu64 " again (expected %" PRIu64 ")", seq, c->recvd);
        else
            set_err(t, c, "publication %" PRIu64 " missing (got %" PRIu64 ")", c->recvd, seq);
        return LG_RX_EMSG;
    }
    if (seq >= atomic_load(&fo->published)) {
        set_err(t, c, "publication %" PRIu64 " was never sent", seq);
        return LG_RX_EMSG;
    }
    struct fo_slot *s = &fo->ring[seq % FO_RING];
    uint64_t sent = atomic_load(&s->sent_ns);
    if (ns != sent) {
        set_err(t, c, "publication %" PRIu64 " carries another send time", seq);
        return LG_RX_EMSG;
    }
    return delivered(t, c, seq, sent);
}

/* Publication seq (sent at `sent`) reached member c. */
static int delivered(struct lg_thread *t, struct lg_conn *c, uint64_t seq, uint64_t sent) {
    struct lg_fanout *fo = t->sh->fo;
    struct lg_fo_thread *ft = t->fo;
    c->recvd++;
    if (ft->now >= ft->t_ms && ft->now < ft->t_me) t->win_msgs++;
    if (atomic_fetch_add(&fo->ring[seq % FO_RING].got, 1) + 1 == fo->members)
        complete(t, seq, sent);
    return 0;
}

/* The publisher's answers: published:<members>, one per publication. */
static int on_answer(struct lg_thread *t, struct lg_conn *c, const uint8_t *p, size_t n) {
    struct lg_fanout *fo = t->sh->fo;
    struct lg_fo_thread *ft = t->fo;
    const uint8_t *q = p + 10, *end = p + n;
    uint64_t count;
    char txt[80];
    if (n < 10 || memcmp(p, "published:", 10) || parse_u64(&q, end, &count) < 0 || q != end) {
        show(txt, sizeof txt, p, n);
        set_err(t, c, "publish answered '%s'", txt);
        return LG_RX_EMSG;
    }
    if (count != fo->members) {
        set_err(t, c, "published:%" PRIu64 ", but %u members joined", count, fo->members);
        return LG_RX_EMSG;
    }
    if (++ft->answered > atomic_load(&fo->published)) {
        set_err(t, c, "more answers than publications");
        return LG_RX_EMSG;
    }
    return 0;
}

static int on_msg(void *ctx, int opcode, const uint8_t *p, size_t n) {
    struct lg_thread *t = ctx;
    struct lg_fanout *fo = t->sh->fo;
    struct lg_conn *c = t->fo->cur;
    char txt[80];
    if ((opcode & 0x0f) != 1) {
        set_err(t, c, "a binary message");
        return LG_RX_EMSG;
    }
    if (c->joined && (opcode & 0x40)) return on_compressed(t, c, p, n);
    if (opcode & 0x40 && lg_inflate(t, p, n, fo->msg_max, &p, &n) < 0) {
        set_err(t, c, "a compressed message does not inflate");
        return LG_RX_EMSG;
    }
    if (is_pub(fo, c)) return on_answer(t, c, p, n);
    if (c->joined) return on_delivery(t, c, p, n);
    if (n != fo->joined_len || memcmp(p, fo->joined, n)) {
        show(txt, sizeof txt, p, n);
        set_err(t, c, "join answered '%s'", txt);
        return LG_RX_EMSG;
    }
    c->joined = 1;
    t->joined++;
    atomic_max(&fo->join_t1, t->fo->now);
    return 0;
}

static void answer_ping(struct lg_thread *t, struct lg_conn *c) {
    struct lg_fo_thread *ft = t->fo;
    c->rx.pong_pending = 0;
    if (c == ft->pub && ft->out_off < ft->out_len) return; /* a frame is half written */
    uint8_t f[140];
    size_t n = lg_frame_build(f, 0xA, c->rx.pong, c->rx.pong_len, c->mask);
    if (send(c->fd, f, n, MSG_NOSIGNAL) != (ssize_t)n) fo_lost(t, c, "could not answer a ping");
}

void lg_fanout_readable(struct lg_thread *t, struct lg_conn *c) {
    if (c->state != LG_S_OPEN) return;
    ssize_t n = recv(c->fd, t->rbuf, t->rbuf_size, 0);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return;
        fo_lost(t, c, n ? strerror(errno) : "closed by the server");
        return;
    }
    t->fo->cur = c;
    t->fo->now = lg_now_ns();
    long k = lg_rx_feed(&c->rx, t->rbuf, (size_t)n);
    if (k < 0) {
        fo_lost(t, c,
                k == LG_RX_ELEN   ? "message too long"
                : k == LG_RX_EMSG ? "wrong message"
                                  : "protocol error");
        return;
    }
    if (c->rx.got_close) {
        char why[160];
        const uint8_t *r = c->rx.ctl;
        unsigned code = c->rx.ctl_len >= 2 ? (unsigned)(r[0] << 8 | r[1]) : 0;
        char reason[80] = "";
        if (c->rx.ctl_len > 2) show(reason, sizeof reason, r + 2, c->rx.ctl_len - 2u);
        snprintf(why, sizeof why, "close frame from the server (%u %s)", code, reason);
        fo_lost(t, c, why);
        return;
    }
    if (c->rx.pong_pending) answer_ping(t, c);
}

/* ---- set-up and joins ------------------------------------------------------- */

int lg_fanout_setup(struct lg_thread *t) {
    struct lg_fanout *fo = t->sh->fo;
    struct lg_fo_thread *ft = calloc(1, sizeof *ft);
    if (!ft) return -1;
    t->fo = ft;
    for (int i = 0; i < t->n; i++) /* before anything can fail: teardown closes them */
        t->conns[i].fd = -1;
    ft->phase = LG_P_CONNECT;
    ft->t_ms = ft->t_me = ft->t_drain = UINT64_MAX;
    ft->bufs = malloc((t->n > 0 ? (size_t)t->n : 1) * fo->msg_max);
    if (!ft->bufs) return -1;
    for (int i = 0; i < t->n; i++) {
        struct lg_conn *c = &t->conns[i];
        uint32_t m = (uint32_t)lg_rand64();
        memcpy(c->mask, &m, 4);
        lg_rx_init_msgs(&c->rx, fo->msg_max, ft->bufs + (size_t)i * fo->msg_max, on_msg, t);
        if (!is_pub(fo, c)) continue;
        ft->pub = c;
        fo->pub_thread = t;
        ft->out = malloc((size_t)t->sh->o->window * (FO_FRAME_MAX + 16 + fo->msg_max));
        ft->cmd = malloc(FO_FRAME_MAX + fo->msg_max);
        if (!ft->out || !ft->cmd) return -1;
    }
    return 0;
}

void lg_fanout_teardown(struct lg_thread *t) {
    if (!t->fo) return;
    free(t->fo->bufs);
    free(t->fo->out);
    free(t->fo->cmd);
    free(t->fo);
    t->fo = NULL;
}

/* Waits for events at most timeout_ns and handles them. */
static void fo_poll(struct lg_thread *t, int64_t timeout_ns) {
    struct epoll_event evs[MAX_EVENTS];
    if (timeout_ns < 0) timeout_ns = 0;
    struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000),
                          .tv_nsec = (long)(timeout_ns % 1000000000)};
    int n = epoll_pwait2(t->ep, evs, MAX_EVENTS, &ts, NULL);
    for (int i = 0; i < n; i++) {
        struct lg_conn *c = evs[i].data.ptr;
        if (!c) { /* the wake-up eventfd: the loop looks at the counters next */
            uint64_t v;
            if (read(t->sh->fo->wake_fd, &v, sizeof v) < 0) {
            }
            continue;
        }
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) lg_fanout_readable(t, c);
        if (c == t->fo->pub && c->state == LG_S_OPEN && (evs[i].events & EPOLLOUT)) {
            ssize_t k = send(c->fd, t->fo->out + t->fo->out_off, t->fo->out_len - t->fo->out_off,
                             MSG_NOSIGNAL);
            if (k < 0 && errno != EAGAIN) fo_lost(t, c, strerror(errno));
            if (k > 0) t->fo->out_off += (size_t)k;
            if (c->state == LG_S_OPEN && t->fo->out_off == t->fo->out_len) lg_conn_arm(t, c, 0);
        }
    }
}

/* Every member of this thread sends join:<g>; returns once all are answered. */
int lg_fanout_join(struct lg_thread *t) {
    struct lg_fanout *fo = t->sh->fo;
    const struct lg_opts *o = t->sh->o;
    uint8_t cmd[FO_MSG_MAX], f[FO_MSG_MAX + 16];
    int len = snprintf((char *)cmd, sizeof cmd, "join:%s", o->group);
    int want = 0;
    atomic_min(&fo->join_t0, lg_now_ns());
    for (int i = 0; i < t->n; i++) {
        struct lg_conn *c = &t->conns[i];
        if (is_pub(fo, c)) continue;
        want++;
        size_t fl = lg_frame_build(f, 0x1, cmd, (size_t)len, c->mask);
        if (send(c->fd, f, fl, MSG_NOSIGNAL) != (ssize_t)fl) {
            fo_lost(t, c, "could not send the join");
            return want - t->joined;
        }
    }
    uint64_t deadline = lg_now_ns() + (uint64_t)(o->connect_timeout * 1e9);
    while (t->joined < want) {
        if (t->errors || atomic_load(&fo->aborted) || atomic_load(&t->sh->interrupted))
            return want - t->joined;
        if (lg_now_ns() > deadline) {
            set_err(t, NULL, "%d of %d joins not answered after %.0f s", want - t->joined, want,
                    o->connect_timeout);
            return want - t->joined;
        }
        fo_poll(t, 50 * 1000000);
    }
    return 0;
}

/* ---- the publisher ---------------------------------------------------------- */

/* publish:<g>:<seq>:<ns>[:<pad>] into cmd (FO_FRAME_MAX + msg_max bytes):
 * its length. */
static size_t publication(const struct lg_fanout *fo, uint8_t *cmd, uint64_t seq, uint64_t ns) {
    int g = snprintf((char *)cmd, FO_FRAME_MAX, "publish:%s:", fo->o->group);
    int n =
        g + snprintf((char *)cmd + g, FO_FRAME_MAX - (size_t)g, "%" PRIu64 ":%" PRIu64, seq, ns);
    size_t size = fo->o->pub_size, have = (size_t)(n - g);
    if (size <= have + 1) return (size_t)n;
    cmd[n] = ':';
    memcpy(cmd + n + 1, fo->pad, size - have - 1);
    return (size_t)g + size;
}

/* Sends publications until `limit` are in flight (or `last` is reached). */
static void publish(struct lg_thread *t, uint64_t limit, uint64_t last) {
    struct lg_fanout *fo = t->sh->fo;
    struct lg_fo_thread *ft = t->fo;
    struct lg_conn *c = ft->pub;
    if (ft->out_off < ft->out_len) return; /* the socket has not taken the last batch */
    uint64_t pubd = atomic_load(&fo->published), done = atomic_load(&fo->completed);
    if (ft->answered < done) done = ft->answered;
    uint64_t k = pubd - done < limit ? limit - (pubd - done) : 0;
    if (pubd + k > last) k = last - pubd;
    if (!k) return;
    /* One send for the batch; every publication in it carries the same time. */
    uint64_t now = lg_now_ns();
    ft->out_len = ft->out_off = 0;
    for (uint64_t i = 0; i < k; i++) {
        size_t n = publication(fo, ft->cmd, pubd + i, now);
        struct fo_slot *s = &fo->ring[(pubd + i) % FO_RING];
        atomic_store(&s->got, 0);
        atomic_store(&s->sent_ns, now);
        ft->out_len += lg_frame_build(ft->out + ft->out_len, 0x1, ft->cmd, n, c->mask);
    }
    if (!fo->lat_t0) fo->lat_t0 = now;
    if (now >= ft->t_ms && now < ft->t_me) fo->win_pubs += k;
    atomic_store(&fo->published, pubd + k); /* after the slots: members read them */
    ssize_t w = send(c->fd, ft->out, ft->out_len, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN) {
        fo_lost(t, c, strerror(errno));
        return;
    }
    if (w > 0) ft->out_off = (size_t)w;
    if (ft->out_off < ft->out_len) lg_conn_arm(t, c, 1);
}

/* A publication that makes no progress for --stall seconds ends the run. */
static void check_stall(struct lg_thread *t, uint64_t now) {
    struct lg_fanout *fo = t->sh->fo;
    struct lg_fo_thread *ft = t->fo;
    uint64_t done = atomic_load(&fo->completed), pubd = atomic_load(&fo->published);
    if (done + ft->answered != ft->progress || (done == pubd && ft->answered == pubd)) {
        ft->progress = done + ft->answered;
        ft->progress_ns = now;
        return;
    }
    if (now - ft->progress_ns < (uint64_t)(t->sh->o->stall * 1e9)) return;
    uint32_t got = atomic_load(&fo->ring[done % FO_RING].got);
    set_err(t, NULL,
            "publication %" PRIu64 " stuck: %u of %u members got it, %" PRIu64 " of %" PRIu64
            " answers, nothing for %.0f s",
            done, got, fo->members, ft->answered, pubd, t->sh->o->stall);
    t->errors++;
    atomic_store(&fo->aborted, 1);
}

static void publisher_step(struct lg_thread *t, uint64_t now) {
    struct lg_fanout *fo = t->sh->fo;
    struct lg_fo_thread *ft = t->fo;
    const struct lg_opts *o = t->sh->o;
    if (ft->pub->state != LG_S_OPEN) return;
    check_stall(t, now);
    if (ft->phase == LG_P_LATENCY) {
        uint64_t last = (uint64_t)o->lat_pubs;
        if (atomic_load(&fo->completed) == last && ft->answered == last) {
            if (!atomic_load(&fo->lat_done)) {
                fo->lat_t1 = now;
                atomic_store(&fo->lat_done, 1);
            }
            return;
        }
        publish(t, 1, last);
        return;
    }
    if (ft->phase != LG_P_RUN || atomic_load(&fo->stopped)) return;
    if (now >= ft->t_me || atomic_load(&t->sh->interrupted)) {
        fo->answered = ft->answered; /* so far; final after the drain */
        atomic_store(&fo->stopped, 1);
        return;
    }
    publish(t, (uint64_t)o->window, UINT64_MAX);
}

/* ---- the run ---------------------------------------------------------------- */

/* After the publisher stopped: true once this thread's members have every
 * publication (and the publisher every answer), or the drain is over, in
 * which case the members short of the total are errors. */
static int drained(struct lg_thread *t, uint64_t now) {
    struct lg_fanout *fo = t->sh->fo;
    struct lg_fo_thread *ft = t->fo;
    uint64_t total = atomic_load(&fo->published);
    int short_n = 0;
    const struct lg_conn *first = NULL;
    if (ft->pub && ft->pub->state == LG_S_OPEN && ft->answered < total) {
        if (now < ft->t_drain) return 0;
        set_err(t, ft->pub, "%" PRIu64 " of %" PRIu64 " publications answered", ft->answered,
                total);
        t->errors++;
    }
    for (int i = 0; i < t->n; i++) {
        const struct lg_conn *c = &t->conns[i];
        if (c == ft->pub || c->state != LG_S_OPEN || c->recvd == total) continue;
        if (now < ft->t_drain) return 0;
        if (!first) first = c;
        short_n++;
    }
    if (first) {
        set_err(t, first,
                "got %" PRIu64 " of %" PRIu64 " publications (%d members of this thread short)",
                first->recvd, total, short_n);
        t->errors += (uint64_t)short_n;
    }
    return 1;
}

void lg_fanout_run(struct lg_thread *t) {
    struct lg_fanout *fo = t->sh->fo;
    struct lg_fo_thread *ft = t->fo;
    struct lg_shared *sh = t->sh;
    if (ft->pub) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(t->ep, EPOLL_CTL_ADD, fo->wake_fd, &ev);
        ft->progress_ns = lg_now_ns();
    }
    for (;;) {
        uint64_t now = lg_now_ns();
        int phase = atomic_load(&sh->phase);
        if (phase != ft->phase) {
            ft->phase = phase;
            if (phase == LG_P_RUN) {
                ft->t_ms = sh->t_ms;
                ft->t_me = sh->t_me;
                ft->t_drain = sh->t_drain;
            }
        }
        if (phase == LG_P_STOP || atomic_load(&fo->aborted)) break;
        if (atomic_load(&sh->interrupted) && phase != LG_P_RUN) break;
        if (ft->pub) publisher_step(t, now);
        if (atomic_load(&fo->stopped) && drained(t, now)) break;
        int64_t timeout = 10 * 1000000;
        if (phase == LG_P_RUN && now < ft->t_me && (int64_t)(ft->t_me - now) < timeout)
            timeout = (int64_t)(ft->t_me - now);
        fo_poll(t, timeout);
    }
    if (ft->pub) fo->answered = ft->answered;
}

/* ---- for the main thread ---------------------------------------------------- */

int lg_fanout_wait_latency(struct lg_fanout *fo, const _Atomic int *interrupted) {
    while (!atomic_load(&fo->lat_done)) {
        if (atomic_load(&fo->aborted) || atomic_load(interrupted)) return -1;
        lg_sleep_until(lg_now_ns() + 1000000);
    }
    return 0;
}

void lg_fanout_stats(const struct lg_fanout *fo, struct lg_fanout_stats *out) {
    uint64_t j0 = atomic_load(&fo->join_t0), j1 = atomic_load(&fo->join_t1);
    *out = (struct lg_fanout_stats){
        .pubs = atomic_load(&fo->published),
        .win_pubs = fo->win_pubs,
        .answered = fo->answered,
        .lat_phase_s = fo->lat_t1 > fo->lat_t0 ? (double)(fo->lat_t1 - fo->lat_t0) / 1e9 : 0,
        .join_s = j1 > j0 && j0 != UINT64_MAX ? (double)(j1 - j0) / 1e9 : 0,
        .lat_done = atomic_load(&fo->lat_done),
        .aborted = atomic_load(&fo->aborted),
    };
}
