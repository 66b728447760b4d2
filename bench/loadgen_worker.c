/*
 * One thread of orr-loadgen: its own epoll, its own connections, its own
 * counters; threads share nothing but the read-only options and the clock
 * marks the main thread sets. The modes:
 *   closed  one frame in flight per connection: each echo sends the next;
 *   flood   whole buffers of frames whenever a socket takes them;
 *   rate    each connection sends on a fixed schedule, spread evenly;
 *   idle    connections are opened and held;
 *   fanout  connect here, everything else in loadgen_fanout.c;
 *   xsend   connect here, everything else in loadgen_xsend.c.
 */
#include "loadgen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define RBUF_SIZE (256 * 1024)
#define FLOOD_MASKS 8

enum stage { ST_WAIT, ST_RUN, ST_STOP };

struct loop {
    struct lg_thread *t;
    const struct lg_opts *o;
    enum stage stage;
    uint64_t t_ms, t_me;
    double period_ns; /* rate: between two sends of one connection */
};

static void lost(struct loop *l, struct lg_conn *c, const char *why) {
    lg_conn_lost(l->t, c, why);
}

static int fifo_push(struct lg_conn *c, uint64_t ts) {
    if (c->fifo_n == c->fifo_cap) {
        uint32_t cap = c->fifo_cap ? 2 * c->fifo_cap : 4;
        uint64_t *f = malloc(cap * sizeof *f);
        if (!f) return -1;
        for (uint32_t i = 0; i < c->fifo_n; i++)
            f[i] = c->fifo[(c->fifo_head + i) & (c->fifo_cap - 1)];
        free(c->fifo);
        c->fifo = f;
        c->fifo_cap = cap;
        c->fifo_head = 0;
    }
    c->fifo[(c->fifo_head + c->fifo_n++) & (c->fifo_cap - 1)] = ts;
    return 0;
}

static uint64_t fifo_pop(struct lg_conn *c) {
    if (!c->fifo_n) return 0;
    uint64_t ts = c->fifo[c->fifo_head];
    c->fifo_head = (c->fifo_head + 1) & (c->fifo_cap - 1);
    c->fifo_n--;
    return ts;
}

/* Writes the frames queued on a connection (closed and rate modes). */
static int tx_flush(struct loop *l, struct lg_conn *c) {
    size_t flen = l->t->frame_len;
    while (c->pending) {
        ssize_t n = lg_send(c, c->frame + c->tx_off, flen - c->tx_off);
        if (n < 0) {
            if (errno == EAGAIN) break;
            lost(l, c, strerror(errno));
            return -1;
        }
        c->tx_off += (size_t)n;
        if (c->tx_off < flen) break; /* the socket is full */
        c->tx_off = 0;
        c->pending--;
        c->sent++;
    }
    return lg_conn_arm(l->t, c, c->pending > 0);
}

/* Queues one frame sent at `now` and writes it if nothing is ahead of it. */
static int tx_frame(struct loop *l, struct lg_conn *c, uint64_t now) {
    if (fifo_push(c, now) < 0) {
        lost(l, c, "out of memory");
        return -1;
    }
    if (c->pending++) return 0;
    return tx_flush(l, c);
}

static uint8_t *flood_buf_of(struct lg_thread *t, struct lg_conn *c) {
    return t->flood_buf[(c - t->conns) % t->n_flood_buf];
}

/* Flood: one write of whatever the socket takes; once stopped, only the rest
 * of a frame cut in half, so that the server sees whole frames. */
static int flood_write(struct loop *l, struct lg_conn *c) {
    struct lg_thread *t = l->t;
    size_t want = t->flood_len - c->tx_off;
    if (l->stage == ST_STOP) {
        size_t rem = c->bytes_sent % t->frame_len;
        if (!rem) return lg_conn_arm(t, c, 0);
        want = t->frame_len - rem;
    }
    ssize_t n = lg_send(c, flood_buf_of(t, c) + c->tx_off, want);
    if (n < 0) {
        if (errno == EAGAIN) return 0;
        lost(l, c, strerror(errno));
        return -1;
    }
    c->tx_off += (size_t)n;
    if (c->tx_off == t->flood_len) c->tx_off = 0;
    c->bytes_sent += (uint64_t)n;
    if (l->stage == ST_RUN) {
        uint64_t now = lg_now_ns();
        if (now >= l->t_ms && now < l->t_me) t->win_bytes_sent += (uint64_t)n;
    }
    c->sent = c->bytes_sent / t->frame_len;
    if (l->stage == ST_STOP && c->bytes_sent % t->frame_len == 0) return lg_conn_arm(t, c, 0);
    return 0;
}

/* Pongs go out only when nothing else is half written (no server we measure
 * pings, but one that does must not break a run). */
static void answer_ping(struct loop *l, struct lg_conn *c) {
    c->rx.pong_pending = 0;
    if (c->pending || (l->o->mode == LG_FLOOD && c->bytes_sent % l->t->frame_len)) return;
    uint8_t f[140];
    size_t n = lg_frame_build(f, 0xA, c->rx.pong, c->rx.pong_len, c->mask);
    if (lg_send(c, f, n) != (ssize_t)n) lost(l, c, "could not answer a ping");
}

static void on_echoes(struct loop *l, struct lg_conn *c, long k, uint64_t now) {
    struct lg_thread *t = l->t;
    uint64_t in_flight =
        l->o->mode == LG_FLOOD ? c->bytes_sent / t->frame_len - c->recvd : c->fifo_n;
    if ((uint64_t)k > in_flight) {
        lost(l, c, "more echoes than messages sent");
        return;
    }
    int in_window = now >= l->t_ms && now < l->t_me && l->stage == ST_RUN;
    c->recvd += (uint64_t)k;
    if (in_window) t->win_msgs += (uint64_t)k;
    if (l->o->mode == LG_FLOOD) return;
    for (long i = 0; i < k; i++) {
        uint64_t sent_at = fifo_pop(c);
        if (in_window) lg_hist_add(t->lat, now - sent_at);
    }
    if (l->o->mode == LG_CLOSED && l->stage == ST_RUN && now < l->t_me) tx_frame(l, c, now);
}

static void on_readable(struct loop *l, struct lg_conn *c) {
    ssize_t n = lg_recv(c, l->t->rbuf, l->t->rbuf_size);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return;
        lost(l, c, n ? strerror(errno) : "closed by the server");
        return;
    }
    uint64_t now = lg_now_ns();
    long k = lg_rx_feed(&c->rx, l->t->rbuf, (size_t)n);
    if (k < 0) {
        lost(l, c,
             k == LG_RX_ELEN    ? "echo of the wrong length"
             : k == LG_RX_EDATA ? "echo with the wrong bytes"
                                : "protocol error in a server frame");
        return;
    }
    if (c->rx.got_close) {
        lost(l, c, "close frame from the server");
        return;
    }
    if (c->rx.pong_pending) answer_ping(l, c);
    if (k && l->o->mode == LG_IDLE) {
        lost(l, c, "unexpected message");
        return;
    }
    if (k) on_echoes(l, c, k, now);
}

static void on_event(struct loop *l, struct lg_conn *c, uint32_t ev) {
    struct lg_thread *t = l->t;
    if (c->state != LG_S_OPEN) {
        if (c->state == LG_S_FAILED) return;
        int rc = lg_conn_progress(t, c, ev);
        if (rc) t->in_progress--;
        if (rc > 0) t->open++;
        if (rc < 0) t->failed++;
        return;
    }
    if (l->o->mode == LG_FANOUT) {
        if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) lg_fanout_readable(t, c);
        return;
    }
    if (l->o->mode == LG_XSEND) {
        if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) lg_xsend_readable(t, c);
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(l, c);
    if (c->state != LG_S_OPEN || !(ev & EPOLLOUT)) return;
    if (l->o->mode == LG_FLOOD)
        flood_write(l, c);
    else
        tx_flush(l, c);
}

/* Waits for events at most timeout_ns and handles them. */
static void poll_once(struct loop *l, int64_t timeout_ns) {
    struct epoll_event evs[MAX_EVENTS];
    if (timeout_ns < 0) timeout_ns = 0;
    struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000),
                          .tv_nsec = (long)(timeout_ns % 1000000000)};
    int n = epoll_pwait2(l->t->ep, evs, MAX_EVENTS, &ts, NULL);
    for (int i = 0; i < n; i++)
        on_event(l, evs[i].data.ptr, evs[i].events);
}

/* The run's wait: with --spin, polls without sleeping until the deadline and
 * counts the time of empty polls in the window as idle, so that the report
 * can tell the work from the spinning. */
static void run_wait(struct loop *l, int64_t timeout_ns) {
    if (!l->o->spin) {
        poll_once(l, timeout_ns);
        return;
    }
    struct epoll_event evs[MAX_EVENTS];
    uint64_t t0 = lg_now_ns();
    int n = epoll_wait(l->t->ep, evs, MAX_EVENTS, 0);
    if (n == 0) {
        uint64_t t1 = lg_now_ns();
        if (t0 >= l->t_ms && t1 < l->t_me) l->t->spin_ns += t1 - t0;
        return;
    }
    for (int i = 0; i < n; i++)
        on_event(l, evs[i].data.ptr, evs[i].events);
}

static void connect_all(struct loop *l) {
    struct lg_thread *t = l->t;
    uint64_t deadline = lg_now_ns() + (uint64_t)(l->o->connect_timeout * 1e9);
    while (t->open + t->failed < t->n && !t->failed && !atomic_load(&t->sh->interrupted)) {
        while (t->next_connect < t->n && t->in_progress < l->o->connect_window) {
            if (lg_conn_start(t, &t->conns[t->next_connect++]) < 0) {
                t->failed++;
                break;
            }
            t->in_progress++;
        }
        poll_once(l, 50 * 1000000);
        if (lg_now_ns() > deadline) {
            if (!t->err[0])
                snprintf(t->err, sizeof t->err, "%d of %d connections not open after %.0f s",
                         t->n - t->open, t->n, l->o->connect_timeout);
            t->failed = t->n - t->open;
        }
    }
}

/* Rate: the send time of connection i in round k. Connection g of N starts
 * g/N of a period after t0, so the whole run sends at an even pace; with
 * --tick, sends are held back to the next multiple of the tick instead, as a
 * generator on a millisecond timer would send them. */
static uint64_t sched_time(struct loop *l, uint64_t k, int i) {
    double frac = (double)l->t->conns[i].gidx / (double)l->o->conns;
    double at = ((double)k + frac) * l->period_ns;
    double tick = l->o->tick * 1e6;
    if (tick > 0) at = ceil(at / tick) * tick;
    return l->t->sh->t0 + (uint64_t)at;
}

static uint64_t send_due(struct loop *l, uint64_t now) {
    struct lg_thread *t = l->t;
    uint64_t next = sched_time(l, t->sched_k, t->sched_i);
    while (next <= now) {
        struct lg_conn *c = &t->conns[t->sched_i];
        if (c->state == LG_S_OPEN) {
            uint64_t ts = lg_now_ns();
            if (ts >= l->t_ms && ts < l->t_me) lg_hist_add(t->lag, ts - next);
            tx_frame(l, c, ts);
        }
        if (++t->sched_i == t->n) {
            t->sched_i = 0;
            t->sched_k++;
        }
        next = sched_time(l, t->sched_k, t->sched_i);
    }
    return next;
}

static int flood_drained(struct lg_thread *t) {
    for (int i = 0; i < t->n; i++) {
        struct lg_conn *c = &t->conns[i];
        if (c->state == LG_S_OPEN && (c->bytes_sent % t->frame_len || c->recvd < c->sent)) return 0;
    }
    return 1;
}

static void stop_sending(struct loop *l) {
    struct lg_thread *t = l->t;
    l->stage = ST_STOP;
    if (l->o->mode != LG_FLOOD) return;
    for (int i = 0; i < t->n; i++) {
        struct lg_conn *c = &t->conns[i];
        if (c->state != LG_S_OPEN) continue;
        if (c->bytes_sent % t->frame_len == 0) lg_conn_arm(t, c, 0);
    }
}

static void run(struct loop *l) {
    struct lg_thread *t = l->t;
    struct lg_shared *sh = t->sh;
    l->t_ms = sh->t_ms;
    l->t_me = sh->t_me;
    l->stage = ST_RUN;
    uint64_t now = lg_now_ns();
    for (int i = 0; i < t->n; i++) {
        struct lg_conn *c = &t->conns[i];
        if (c->state != LG_S_OPEN) continue;
        if (l->o->mode == LG_CLOSED) tx_frame(l, c, lg_now_ns());
        if (l->o->mode == LG_FLOOD) lg_conn_arm(t, c, 1);
    }
    for (;;) {
        now = lg_now_ns();
        if (l->stage == ST_RUN && (now >= l->t_me || atomic_load(&sh->interrupted))) {
            stop_sending(l);
            if (l->o->mode != LG_FLOOD) break;
        }
        if (l->stage == ST_STOP &&
            (now >= sh->t_drain || flood_drained(t) || atomic_load(&sh->interrupted))) {
            t->drain_ns = now > l->t_me ? now - l->t_me : 0;
            break;
        }
        int64_t timeout = 10 * 1000000;
        if (l->stage == ST_RUN && (int64_t)(l->t_me - now) < timeout)
            timeout = (int64_t)(l->t_me - now);
        if (l->o->mode == LG_RATE && l->stage == ST_RUN) {
            int64_t until = (int64_t)(send_due(l, now) - lg_now_ns());
            if (until < timeout) timeout = until;
        }
        run_wait(l, timeout);
    }
}

/* The message every connection sends, masked: compressed (RSV1) with --deflate. */
static void build(struct lg_thread *t, uint8_t *f, const uint8_t mask[4]) {
    lg_frame_build(f, 0x1, t->sh->wire, t->sh->wire_len, mask);
    if (t->sh->o->deflate) f[0] |= 0x40;
}

static int setup(struct lg_thread *t) {
    const struct lg_opts *o = t->sh->o;
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    t->rbuf_size = RBUF_SIZE;
    t->rbuf = malloc(t->rbuf_size);
    /* The histograms outlive the thread: the main thread merges them. */
    t->lat = malloc(sizeof *t->lat);
    t->lag = malloc(sizeof *t->lag);
    t->lat_load = malloc(sizeof *t->lat_load);
    t->frame_len = lg_frame_size(t->sh->wire_len);
    if (t->ep < 0 || !t->rbuf || !t->lat || !t->lag || !t->lat_load) return -1;
    lg_hist_init(t->lat);
    lg_hist_init(t->lag);
    lg_hist_init(t->lat_load);
    if (o->mode == LG_FANOUT) return lg_fanout_setup(t);
    if (o->mode == LG_XSEND) return lg_xsend_setup(t);
    if (o->mode == LG_FLOOD) {
        /* Whole frames only, so that a buffer can be sent over and over. */
        size_t per = o->wbuf / t->frame_len ? o->wbuf / t->frame_len : 1;
        t->flood_len = per * t->frame_len;
        t->n_flood_buf = t->n < FLOOD_MASKS ? (t->n ? t->n : 1) : FLOOD_MASKS;
        t->flood_buf = calloc((size_t)t->n_flood_buf, sizeof *t->flood_buf);
        if (!t->flood_buf) return -1;
        for (int b = 0; b < t->n_flood_buf; b++) {
            uint32_t m = (uint32_t)lg_rand64();
            if (!(t->flood_buf[b] = malloc(t->flood_len))) return -1;
            for (size_t i = 0; i < per; i++)
                build(t, t->flood_buf[b] + i * t->frame_len, (const uint8_t *)&m);
        }
    }
    for (int i = 0; i < t->n; i++) {
        struct lg_conn *c = &t->conns[i];
        c->fd = -1;
        if (o->deflate && o->mode != LG_IDLE) {
            if (!(c->msg = malloc(lg_echo_max(o)))) return -1;
            lg_rx_init_msgs(&c->rx, lg_echo_max(o), c->msg, lg_echo_msg, t);
            c->rx.z = 1;
        } else {
            lg_rx_init(&c->rx, o->size, o->verify ? t->sh->payload : NULL);
        }
        if (o->mode == LG_FLOOD) {
            memcpy(c->mask, flood_buf_of(t, c) + t->frame_len - t->sh->wire_len - 4, 4);
            continue;
        }
        uint32_t m = (uint32_t)lg_rand64();
        memcpy(c->mask, &m, 4);
        if (o->mode == LG_IDLE) continue;
        if (!(c->frame = malloc(t->frame_len))) return -1;
        build(t, c->frame, c->mask);
    }
    return 0;
}

static void teardown(struct lg_thread *t) {
    for (int i = 0; i < t->n; i++) {
        struct lg_conn *c = &t->conns[i];
        lg_conn_close(t, c);
        free(c->frame);
        free(c->fifo);
        free(c->msg);
        c->msg = NULL;
        c->frame = NULL;
        c->fifo = NULL;
    }
    lg_fanout_teardown(t);
    lg_xsend_teardown(t);
    for (int b = 0; b < t->n_flood_buf; b++)
        free(t->flood_buf[b]);
    free(t->flood_buf);
    free(t->rbuf);
    lg_z_free(t);
    if (t->ep >= 0) close(t->ep);
}

void *lg_worker_main(void *arg) {
    struct lg_thread *t = arg;
    struct lg_shared *sh = t->sh;
    struct loop l = {.t = t, .o = sh->o, .stage = ST_WAIT, .t_ms = UINT64_MAX, .t_me = UINT64_MAX};
    if (l.o->rate > 0) l.period_ns = 1e9 / l.o->rate;
    if (l.o->mode == LG_RATE) prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    if (setup(t) < 0) {
        snprintf(t->err, sizeof t->err, "thread %d: set-up failed (out of memory?)", t->id);
        t->failed = t->n ? t->n : 1;
    } else {
        connect_all(&l);
        if (l.o->mode == LG_FANOUT && !t->failed) t->failed = lg_fanout_join(t);
        if (l.o->mode == LG_XSEND && !t->failed) t->failed = lg_xsend_ready(t);
    }
    atomic_fetch_add(&sh->threads_connected, 1);
    while (atomic_load(&sh->phase) == LG_P_CONNECT)
        poll_once(&l, 2 * 1000000);
    int phase = atomic_load(&sh->phase);
    if (l.o->mode == LG_FANOUT && phase != LG_P_STOP && !t->failed)
        lg_fanout_run(t);
    else if (l.o->mode == LG_XSEND && phase == LG_P_RUN && !t->failed)
        lg_xsend_run(t);
    else if (phase == LG_P_RUN && !t->failed)
        run(&l);
    for (int i = 0; i < t->n; i++) {
        t->sent += t->conns[i].sent;
        t->recvd += t->conns[i].recvd;
    }
    teardown(t);
    return NULL;
}
