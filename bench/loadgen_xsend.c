/*
 * The xsend mode of orr-loadgen: sends to Unique names across the nodes of a
 * cluster. P pairs: sender i (?name=s<i>) on the first of --ports, receiver i
 * (?name=r<i>) on the second (on the first as well when there is only one,
 * which measures the same-node path for comparison).
 *
 * The protocol (Orrery's testgear gear):
 *   sender    send:r<i>:<seq>:<ns>   -> sent:true | sent:false, in command order
 *   receiver  gets s<i>:<seq>:<ns>   (ns: the generator's clock at the send)
 *
 * Phases (the main thread moves them on, see loadgen.c):
 *   CONNECT  connect (loadgen_worker.c), then every connection sends to its
 *            own name (send:<me>:ready) and waits for both "<me>:ready" and
 *            sent:true: the registry answers a connection in the order of its
 *            operations, so its name's registration (which testgear starts
 *            when the connection opens) is done cluster-wide by then;
 *   RUN      each sender keeps --window sends in flight: a send is in flight
 *            until its receiver got it and the sender got its answer (or
 *            until the answer is sent:false); the next ones leave as soon as
 *            there is room, several in one write. A 1 s warm-up, the measured
 *            window (deliveries received in it count; latency from just
 *            before the send() to the recv() that brought it to the receiver,
 *            for messages sent in the window), then a drain: no more sends,
 *            every answer and delivery must arrive.
 *
 * Checks, counted as errors (the run goes on, exit status 1): sent:false
 * (refused); a delivery with a sequence number lower than one already
 * received (reordered or duplicated); a send answered sent:true that never
 * arrived by the end of the drain, or skipped by a later one (lost); a send
 * never answered. Fatal (the connection is lost and the run aborts): a
 * message that is not what the protocol says, a delivery never sent, more
 * answers than sends, a close, a reset, and no progress for --stall seconds.
 *
 * Threads: a pair's two connections are on the same thread (pair i on
 * thread i % T), so a pair's state needs no atomics.
 */
#include "loadgen.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define XS_MSG_MAX 256   /* longest message a connection accepts */
#define XS_FRAME_MAX 128 /* one send frame: "send:" + name (<= 48) + two numbers, header, mask */
#define XS_NAME_MAX 48
#define MAX_EVENTS 256

struct lg_xsend {
    const struct lg_opts *o;
    _Atomic int aborted; /* a connection lost or the run stuck: every thread stops */
};

struct xs_pair {
    struct lg_conn *s, *r;
    uint32_t idx;
    uint8_t dirty;         /* in the thread's list of pairs to pump */
    uint64_t sent;         /* sends written: the next one's seq */
    uint64_t answered;     /* sent:true|false read */
    uint64_t refused;      /* sent:false */
    uint64_t done;         /* sends complete (see advance) */
    uint64_t expect;       /* receiver: the highest seq received + 1 */
    uint64_t recv_new;     /* deliveries with seq >= expect */
    uint64_t reorder;      /* deliveries with seq < expect */
    uint8_t *refused_ring; /* per seq in [done, answered): answered sent:false */
    uint8_t *out;          /* send frames not yet taken by the socket */
    size_t out_len, out_off;
    char to[XS_NAME_MAX + 8]; /* "send:<prefix>r<i>:" */
    size_t to_len;
    char from[XS_NAME_MAX + 4]; /* "<prefix>s<i>:", what deliveries start with */
    size_t from_len;
};

struct lg_xs_thread {
    uint8_t *bufs; /* XS_MSG_MAX per connection, for messages split across reads */
    struct xs_pair *pairs;
    int np;
    struct xs_pair **dirty; /* pairs whose window moved since the last pump */
    int n_dirty;
    struct lg_conn *cur; /* the connection being fed, and when its bytes were read */
    uint64_t now;
    uint64_t t_ms, t_me, t_drain;
    int sending; /* RUN and before the end of the window */
    uint64_t progress, progress_ns;
};

struct lg_xsend *lg_xsend_new(const struct lg_opts *o) {
    struct lg_xsend *xs = calloc(1, sizeof *xs);
    if (xs) xs->o = o;
    return xs;
}

static struct xs_pair *pair_of(struct lg_thread *t, const struct lg_conn *c) {
    return &t->xs->pairs[(c - t->conns) / 2];
}

static int is_sender(const struct lg_thread *t, const struct lg_conn *c) {
    return ((c - t->conns) & 1) == 0;
}

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
    else
        snprintf(t->err, sizeof t->err, "%s%c%u: %s", t->sh->o->name_prefix,
                 c->gidx & 1 ? 'r' : 's', c->gidx / 2, what);
}

static void xs_lost(struct lg_thread *t, struct lg_conn *c, const char *why) {
    set_err(t, c, "%s", why);
    lg_conn_lost(t, c, why);
    atomic_store(&t->sh->xs->aborted, 1);
}

static void show(char *out, size_t cap, const uint8_t *p, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 5 < cap && i < 60; i++)
        out[k++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    if (n > 60 && k + 4 < cap) out[k++] = '.', out[k++] = '.', out[k++] = '.';
    out[k] = 0;
}

static int parse_u64(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    const uint8_t *s = *p;
    uint64_t x = 0;
    while (*p < end && **p >= '0' && **p <= '9' && *p - s < 20)
        x = x * 10 + (uint64_t)(*(*p)++ - '0');
    if (*p == s) return -1;
    *v = x;
    return 0;
}

static int is(const uint8_t *p, size_t n, const char *s) {
    size_t l = strlen(s);
    return n == l && !memcmp(p, s, l);
}

static void mark_dirty(struct lg_thread *t, struct xs_pair *p) {
    if (p->dirty) return;
    p->dirty = 1;
    t->xs->dirty[t->xs->n_dirty++] = p;
}

/* A send is complete once answered and, unless refused, received (or
 * skipped by a later one: lost). Answers come in order, and so must
 * deliveries, so both are prefixes of the sequence. */
static void advance(struct lg_thread *t, struct xs_pair *p) {
    uint64_t w = (uint64_t)t->sh->o->window, d = p->done;
    while (d < p->answered && (p->refused_ring[d % w] || d < p->expect))
        d++;
    if (d != p->done) {
        p->done = d;
        mark_dirty(t, p);
    }
}

/* ---- messages --------------------------------------------------------------- */

/* Before the run: the answer to send:<me>:ready and the message itself. */
static int on_ready_msg(struct lg_thread *t, struct lg_conn *c, const uint8_t *m, size_t n) {
    char me[XS_NAME_MAX + 16], txt[80];
    int ml = snprintf(me, sizeof me, "%s%c%u:ready", t->sh->o->name_prefix, c->gidx & 1 ? 'r' : 's',
                      c->gidx / 2);
    if (is(m, n, "sent:true") && !(c->joined & 1)) {
        c->joined |= 1;
    } else if (n == (size_t)ml && !memcmp(m, me, n) && !(c->joined & 2)) {
        c->joined |= 2;
    } else {
        show(txt, sizeof txt, m, n);
        set_err(t, c, "the send to its own name got '%s'", txt);
        return LG_RX_EMSG;
    }
    if (c->joined == 3) t->joined++;
    return 0;
}

static int on_answer(struct lg_thread *t, struct lg_conn *c, struct xs_pair *p, int ok) {
    struct lg_xs_thread *xt = t->xs;
    if (p->answered >= p->sent) {
        set_err(t, c, "more answers than sends (%" PRIu64 ")", p->sent);
        return LG_RX_EMSG;
    }
    p->refused_ring[p->answered % (uint64_t)t->sh->o->window] = (uint8_t)!ok;
    p->answered++;
    if (!ok) p->refused++;
    if (ok && xt->now >= xt->t_ms && xt->now < xt->t_me) t->xs_win_answers++;
    advance(t, p);
    return 0;
}

/* A delivery at a receiver: "<prefix>s<i>:<seq>:<ns>". */
static int on_delivery(struct lg_thread *t, struct lg_conn *c, struct xs_pair *p, const uint8_t *m,
                       size_t n) {
    struct lg_xs_thread *xt = t->xs;
    const uint8_t *q = m + p->from_len, *end = m + n;
    uint64_t seq, ns;
    char txt[80];
    if (n < p->from_len || memcmp(m, p->from, p->from_len) || parse_u64(&q, end, &seq) < 0 ||
        q == end || *q++ != ':' || parse_u64(&q, end, &ns) < 0 || q != end) {
        show(txt, sizeof txt, m, n);
        set_err(t, c, "unexpected message '%s'", txt);
        return LG_RX_EMSG;
    }
    if (seq >= p->sent) {
        set_err(t, c, "got send %" PRIu64 ", never sent (%" PRIu64 " sent)", seq, p->sent);
        return LG_RX_EMSG;
    }
    if (seq < p->expect) {
        p->reorder++;
        if (p->reorder == 1)
            set_err(t, c, "send %" PRIu64 " arrived after %" PRIu64 " (reordered or repeated)", seq,
                    p->expect - 1);
        return 0;
    }
    p->expect = seq + 1;
    p->recv_new++;
    if (xt->now >= xt->t_ms && xt->now < xt->t_me) t->win_msgs++;
    if (ns >= xt->t_ms && ns < xt->t_me && xt->now >= ns) lg_hist_add(t->lat, xt->now - ns);
    advance(t, p);
    return 0;
}

static int on_msg(void *ctx, int opcode, const uint8_t *m, size_t n) {
    struct lg_thread *t = ctx;
    struct lg_conn *c = t->xs->cur;
    struct xs_pair *p = pair_of(t, c);
    char txt[80];
    if (opcode != 1) {
        set_err(t, c, "a binary message");
        return LG_RX_EMSG;
    }
    if (c->joined != 3) return on_ready_msg(t, c, m, n);
    if (!is_sender(t, c)) return on_delivery(t, c, p, m, n);
    if (is(m, n, "sent:true")) return on_answer(t, c, p, 1);
    if (is(m, n, "sent:false")) return on_answer(t, c, p, 0);
    show(txt, sizeof txt, m, n);
    set_err(t, c, "unexpected message '%s'", txt);
    return LG_RX_EMSG;
}

static void answer_ping(struct lg_thread *t, struct lg_conn *c) {
    struct xs_pair *p = pair_of(t, c);
    c->rx.pong_pending = 0;
    if (is_sender(t, c) && p->out_off < p->out_len) return; /* a frame is half written */
    uint8_t f[140];
    size_t n = lg_frame_build(f, 0xA, c->rx.pong, c->rx.pong_len, c->mask);
    if (send(c->fd, f, n, MSG_NOSIGNAL) != (ssize_t)n) xs_lost(t, c, "could not answer a ping");
}

void lg_xsend_readable(struct lg_thread *t, struct lg_conn *c) {
    if (c->state != LG_S_OPEN) return;
    ssize_t n = recv(c->fd, t->rbuf, t->rbuf_size, 0);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return;
        xs_lost(t, c, n ? strerror(errno) : "closed by the server");
        return;
    }
    t->xs->cur = c;
    t->xs->now = lg_now_ns();
    long k = lg_rx_feed(&c->rx, t->rbuf, (size_t)n);
    if (k < 0) {
        xs_lost(t, c,
                k == LG_RX_ELEN   ? "message too long"
                : k == LG_RX_EMSG ? "wrong message"
                                  : "protocol error");
        return;
    }
    if (c->rx.got_close) {
        char why[160], reason[80] = "";
        const uint8_t *r = c->rx.ctl;
        unsigned code = c->rx.ctl_len >= 2 ? (unsigned)(r[0] << 8 | r[1]) : 0;
        if (c->rx.ctl_len > 2) show(reason, sizeof reason, r + 2, c->rx.ctl_len - 2u);
        snprintf(why, sizeof why, "close frame from the server (%u %s)", code, reason);
        xs_lost(t, c, why);
        return;
    }
    if (c->rx.pong_pending) answer_ping(t, c);
}

/* ---- sending ------------------------------------------------------------------ */

static void flush_out(struct lg_thread *t, struct xs_pair *p) {
    struct lg_conn *c = p->s;
    ssize_t w = send(c->fd, p->out + p->out_off, p->out_len - p->out_off, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN) {
        xs_lost(t, c, strerror(errno));
        return;
    }
    if (w > 0) p->out_off += (size_t)w;
    lg_conn_arm(t, c, p->out_off < p->out_len);
}

/* Fills the pair's window: the sends that fit, in one write. */
static void pump(struct lg_thread *t, struct xs_pair *p, uint64_t now) {
    struct lg_conn *c = p->s;
    uint64_t w = (uint64_t)t->sh->o->window;
    if (c->state != LG_S_OPEN || p->r->state != LG_S_OPEN) return;
    if (p->out_off < p->out_len) return; /* the socket has not taken the last batch */
    uint64_t k = w - (p->sent - p->done);
    if (!k) return;
    p->out_len = p->out_off = 0;
    for (uint64_t i = 0; i < k; i++) {
        char cmd[XS_FRAME_MAX];
        memcpy(cmd, p->to, p->to_len);
        int n = (int)p->to_len + snprintf(cmd + p->to_len, sizeof cmd - p->to_len,
                                          "%" PRIu64 ":%" PRIu64, p->sent + i, now);
        p->out_len +=
            lg_frame_build(p->out + p->out_len, 0x1, (const uint8_t *)cmd, (size_t)n, c->mask);
    }
    p->sent += k;
    flush_out(t, p);
}

static void pump_dirty(struct lg_thread *t, uint64_t now) {
    struct lg_xs_thread *xt = t->xs;
    for (int i = 0; i < xt->n_dirty; i++) {
        struct xs_pair *p = xt->dirty[i];
        p->dirty = 0;
        if (xt->sending) pump(t, p, now);
    }
    xt->n_dirty = 0;
}

/* ---- set-up and the ready check ------------------------------------------------ */

int lg_xsend_setup(struct lg_thread *t) {
    const struct lg_opts *o = t->sh->o;
    struct lg_xs_thread *xt = calloc(1, sizeof *xt);
    if (!xt) return -1;
    t->xs = xt;
    for (int i = 0; i < t->n; i++) /* before anything can fail: teardown closes them */
        t->conns[i].fd = -1;
    xt->t_ms = xt->t_me = xt->t_drain = UINT64_MAX;
    xt->np = t->n / 2;
    xt->bufs = malloc((t->n > 0 ? (size_t)t->n : 1) * XS_MSG_MAX);
    xt->pairs = calloc(xt->np > 0 ? (size_t)xt->np : 1, sizeof *xt->pairs);
    xt->dirty = calloc(xt->np > 0 ? (size_t)xt->np : 1, sizeof *xt->dirty);
    if (!xt->bufs || !xt->pairs || !xt->dirty) return -1;
    for (int i = 0; i < t->n; i++) {
        struct lg_conn *c = &t->conns[i];
        uint32_t m = (uint32_t)lg_rand64();
        memcpy(c->mask, &m, 4);
        lg_rx_init_msgs(&c->rx, XS_MSG_MAX, xt->bufs + (size_t)i * XS_MSG_MAX, on_msg, t);
    }
    for (int i = 0; i < xt->np; i++) {
        struct xs_pair *p = &xt->pairs[i];
        p->s = &t->conns[2 * i];
        p->r = &t->conns[2 * i + 1];
        p->idx = p->s->gidx / 2;
        p->to_len = (size_t)snprintf(p->to, sizeof p->to, "send:%sr%u:", o->name_prefix, p->idx);
        p->from_len = (size_t)snprintf(p->from, sizeof p->from, "%ss%u:", o->name_prefix, p->idx);
        p->refused_ring = calloc((size_t)o->window, 1);
        p->out = malloc((size_t)o->window * XS_FRAME_MAX);
        if (!p->refused_ring || !p->out) return -1;
    }
    return 0;
}

void lg_xsend_teardown(struct lg_thread *t) {
    struct lg_xs_thread *xt = t->xs;
    if (!xt) return;
    for (int i = 0; xt->pairs && i < xt->np; i++) {
        free(xt->pairs[i].refused_ring);
        free(xt->pairs[i].out);
    }
    free(xt->pairs);
    free(xt->dirty);
    free(xt->bufs);
    free(xt);
    t->xs = NULL;
}

/* Waits for events at most timeout_ns and handles them. */
static void xs_poll(struct lg_thread *t, int64_t timeout_ns) {
    struct epoll_event evs[MAX_EVENTS];
    if (timeout_ns < 0) timeout_ns = 0;
    struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000),
                          .tv_nsec = (long)(timeout_ns % 1000000000)};
    int n = epoll_pwait2(t->ep, evs, MAX_EVENTS, &ts, NULL);
    for (int i = 0; i < n; i++) {
        struct lg_conn *c = evs[i].data.ptr;
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) lg_xsend_readable(t, c);
        if (c->state == LG_S_OPEN && (evs[i].events & EPOLLOUT) && is_sender(t, c)) {
            struct xs_pair *p = pair_of(t, c);
            if (p->out_off < p->out_len)
                flush_out(t, p);
            else
                lg_conn_arm(t, c, 0);
            if (p->out_off == p->out_len) mark_dirty(t, p);
        }
    }
}

int lg_xsend_ready(struct lg_thread *t) {
    const struct lg_opts *o = t->sh->o;
    uint8_t cmd[XS_MSG_MAX], f[XS_MSG_MAX + 16];
    for (int i = 0; i < t->n; i++) {
        struct lg_conn *c = &t->conns[i];
        int len = snprintf((char *)cmd, sizeof cmd, "send:%s%c%u:ready", o->name_prefix,
                           c->gidx & 1 ? 'r' : 's', c->gidx / 2);
        size_t fl = lg_frame_build(f, 0x1, cmd, (size_t)len, c->mask);
        if (send(c->fd, f, fl, MSG_NOSIGNAL) != (ssize_t)fl) {
            xs_lost(t, c, "could not send to its own name");
            return t->n - t->joined;
        }
    }
    uint64_t deadline = lg_now_ns() + (uint64_t)(o->connect_timeout * 1e9);
    while (t->joined < t->n) {
        if (t->errors || atomic_load(&t->sh->xs->aborted) || atomic_load(&t->sh->interrupted))
            return t->n - t->joined;
        if (lg_now_ns() > deadline) {
            set_err(t, NULL, "%d of %d connections not ready (own name) after %.0f s",
                    t->n - t->joined, t->n, o->connect_timeout);
            return t->n - t->joined;
        }
        xs_poll(t, 50 * 1000000);
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------------- */

/* Nothing completed for --stall seconds while sends are in flight. */
static void check_stall(struct lg_thread *t, uint64_t now) {
    struct lg_xs_thread *xt = t->xs;
    uint64_t done = 0, sent = 0;
    const struct xs_pair *worst = NULL;
    for (int i = 0; i < xt->np; i++) {
        const struct xs_pair *p = &xt->pairs[i];
        done += p->done;
        sent += p->sent;
        if (p->sent > p->done && !worst) worst = p;
    }
    if (done != xt->progress || done == sent) {
        xt->progress = done;
        xt->progress_ns = now;
        return;
    }
    if (now - xt->progress_ns < (uint64_t)(t->sh->o->stall * 1e9)) return;
    set_err(t, worst ? worst->s : NULL,
            "stuck: %" PRIu64 " sent, %" PRIu64 " answered, receiver at %" PRIu64
            ", nothing for %.0f s",
            worst ? worst->sent : 0, worst ? worst->answered : 0, worst ? worst->expect : 0,
            t->sh->o->stall);
    t->errors++;
    atomic_store(&t->sh->xs->aborted, 1);
}

static int drained(const struct lg_thread *t) {
    const struct lg_xs_thread *xt = t->xs;
    for (int i = 0; i < xt->np; i++) {
        const struct xs_pair *p = &xt->pairs[i];
        if (p->s->state == LG_S_OPEN && p->r->state == LG_S_OPEN && p->done < p->sent) return 0;
    }
    return 1;
}

/* The counts of the run, and its errors. */
static void tally(struct lg_thread *t) {
    struct lg_xs_thread *xt = t->xs;
    uint64_t lost = 0, unanswered = 0, refused = 0, reorder = 0;
    const struct xs_pair *first = NULL;
    for (int i = 0; i < xt->np; i++) {
        const struct xs_pair *p = &xt->pairs[i];
        t->xs_sent += p->sent;
        t->xs_answered += p->answered;
        t->xs_received += p->recv_new;
        uint64_t l = p->sent - p->refused > p->recv_new ? p->sent - p->refused - p->recv_new : 0;
        if ((l || p->answered < p->sent || p->refused) && !first) first = p;
        lost += l;
        unanswered += p->sent - p->answered;
        refused += p->refused;
        reorder += p->reorder;
    }
    t->xs_lost = lost;
    t->xs_refused = refused;
    t->xs_reorder = reorder;
    t->errors += lost + unanswered + refused + reorder;
    if (first)
        set_err(t, first->s,
                "%" PRIu64 " sent, %" PRIu64 " answered (%" PRIu64 " sent:false), %" PRIu64
                " received",
                first->sent, first->answered, first->refused, first->recv_new);
}

void lg_xsend_run(struct lg_thread *t) {
    struct lg_xs_thread *xt = t->xs;
    struct lg_shared *sh = t->sh;
    xt->t_ms = sh->t_ms;
    xt->t_me = sh->t_me;
    xt->t_drain = sh->t_drain;
    xt->sending = 1;
    xt->progress_ns = lg_now_ns();
    for (int i = 0; i < xt->np; i++)
        mark_dirty(t, &xt->pairs[i]);
    for (;;) {
        uint64_t now = lg_now_ns();
        if (atomic_load(&sh->xs->aborted) || atomic_load(&sh->phase) == LG_P_STOP) break;
        if (xt->sending && (now >= xt->t_me || atomic_load(&sh->interrupted))) xt->sending = 0;
        pump_dirty(t, now);
        if (!xt->sending && (drained(t) || now >= xt->t_drain || atomic_load(&sh->interrupted)))
            break;
        check_stall(t, now);
        int64_t timeout = 10 * 1000000;
        if (xt->sending && (int64_t)(xt->t_me - now) < timeout) timeout = (int64_t)(xt->t_me - now);
        xs_poll(t, timeout);
    }
    uint64_t end = lg_now_ns();
    t->drain_ns = end > xt->t_me ? end - xt->t_me : 0;
    tally(t);
}
