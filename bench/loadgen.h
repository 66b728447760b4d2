/*
 * orr-loadgen: Orrery's WebSocket load generator (see bench/README.md).
 *
 * It is deliberately self-contained: its own small frame code, handshake and
 * histogram, so that it measures any server (Orrery, Node ws, libwebsockets)
 * the same way and does not depend on the server's modules. Everything here
 * is private to bench/; names carry the prefix lg_.
 *
 * Files: loadgen.c (options, threads, report), loadgen_worker.c (the event
 * loop of one thread and the four echo modes), loadgen_fanout.c (the group
 * fan-out mode: members, publisher, delivery checks), loadgen_xsend.c (sends
 * to unique names between two nodes of a cluster), loadgen_conn.c (connect
 * and upgrade), loadgen_frame.c (client frames out, server frames in),
 * loadgen_hist.c (latency histogram), loadgen_proc.c (clocks, /proc, rusage).
 */
#ifndef ORR_BENCH_LOADGEN_H
#define ORR_BENCH_LOADGEN_H

/* cpu_set_t, epoll_pwait2: every loadgen file includes this header first. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum lg_mode { LG_CLOSED, LG_FLOOD, LG_RATE, LG_IDLE, LG_FANOUT, LG_XSEND };

/* --ports: the servers a run spreads its connections over (a cluster's
 * nodes, all on --host); --server-pid: the processes it samples. */
#define LG_MAX_PORTS 16
#define LG_MAX_PIDS 16

struct lg_opts {
    enum lg_mode mode;
    const char *host;
    int port;
    const char *path;
    int conns;
    int threads;
    size_t size;     /* payload bytes per message */
    double duration; /* measured window, seconds */
    double warmup;   /* load before the window, seconds */
    double drain;    /* flood: longest wait for outstanding echoes */
    double hold;     /* idle: seconds to hold after "ready" */
    double settle;   /* idle: wait before reading the server's RSS */
    double rate;     /* rate: messages per second per connection */
    double tick;     /* rate: send in bursts every `tick` ms (0: each at its time) */
    double connect_timeout;
    int connect_window; /* handshakes in progress at once, per thread */
    int verify;         /* compare echoed payload bytes, not only lengths */
    int deflate;        /* offer permessage-deflate, send compressed (loadgen_deflate.c) */
    int json;           /* JSON-like text payloads instead of a-z */
    size_t pub_size;    /* fanout: bytes per delivered publication (0: just seq:ns) */
    int spin;           /* poll without sleeping while the load runs */
    int tls;            /* wss://: a TLS handshake (unverified) before the upgrade */
    size_t wbuf;        /* flood: bytes per write */
    int server_pid;     /* 0: do not sample the server (the first of server_pids) */
    int server_pids[LG_MAX_PIDS]; /* --server-pid PID[=LABEL],...: every process sampled */
    const char *pid_labels[LG_MAX_PIDS];
    int n_pids;
    int ports[LG_MAX_PORTS]; /* --ports P1,P2,...: ports[0] is --port */
    int n_ports;
    const char *name_prefix; /* fanout, xsend: prepended to every connection's name */
    int pairs;               /* xsend: sender/receiver pairs (conns = 2 * pairs) */
    const char *label;       /* copied into the JSON line as "server" */
    const char *group;       /* fanout: the group the members join */
    int window;              /* fanout: publications in flight in the sustained phase;
                                xsend: sends in flight per pair */
    int lat_pubs;            /* fanout: publications sent one at a time, for latency */
    double stall;            /* fanout: a publication not delivered after this long fails */
};

/* ---- latency histogram (loadgen_hist.c) ----------------------------------
 * Log-linear buckets over nanoseconds: exact below 256 ns, then 128 buckets
 * per power of two (under 0.8 % error), so a histogram is a fixed 58 KiB and
 * adding a sample is a few instructions. */
#define LG_HIST_SUB 128
#define LG_HIST_N (2 * LG_HIST_SUB + 56 * LG_HIST_SUB)

struct lg_hist {
    uint64_t count;
    uint64_t max;
    uint64_t min;
    uint64_t sum;
    uint64_t b[LG_HIST_N];
};

/* loadgen_opts.c: parse the command line (exits with a message on a bad one). */
void lg_parse_options(int argc, char **argv, struct lg_opts *o);

void lg_hist_init(struct lg_hist *h);
void lg_hist_add(struct lg_hist *h, uint64_t v);
void lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src);
/* The value at quantile q (0..1): the upper edge of its bucket, at most max. */
uint64_t lg_hist_quantile(const struct lg_hist *h, double q);

/* ---- frames (loadgen_frame.c) -------------------------------------------- */
#define LG_RX_EPROTO (-1) /* a frame no server may send (masked, bad opcode...) */
#define LG_RX_ELEN (-2)   /* an echo of another length than what was sent */
#define LG_RX_EDATA (-3)  /* an echo with other bytes than what was sent */
#define LG_RX_EMSG (-4)   /* the message callback refused a message (it says why) */

/* Message mode: called with every complete data message (opcode 1 or 2);
 * returns 0, or LG_RX_EMSG to stop the feed. */
typedef int (*lg_rx_msg_fn)(void *ctx, int opcode, const uint8_t *p, size_t n);

/* Size of a masked client frame carrying `len` payload bytes. */
size_t lg_frame_size(size_t len);
/* Writes a masked client frame (FIN set) into out, which holds
 * lg_frame_size(len) bytes; returns that size. */
size_t lg_frame_build(uint8_t *out, uint8_t opcode, const uint8_t *payload, size_t len,
                      const uint8_t mask[4]);

/*
 * Receive state of one connection: server frames are parsed in place from the
 * thread's read buffer and never copied, except the payload of control
 * frames. The parser does no I/O; the connection acts on pong_pending and
 * got_close after each feed.
 */
struct lg_rx {
    uint64_t left;         /* payload bytes of the current frame still to come */
    uint64_t msg_len;      /* payload bytes of the current data message so far */
    size_t expect_len;     /* every data message must have this length */
    const uint8_t *expect; /* and, if not NULL, these bytes */
    uint8_t hdr[14];
    uint8_t hlen;   /* header bytes gathered (0 between frames) */
    uint8_t opcode; /* of the current frame */
    uint8_t fin;
    uint8_t in_msg;   /* inside a fragmented data message */
    uint8_t in_frame; /* header done, payload (left bytes) to come */
    uint8_t ctl_len;
    uint8_t ctl[125];
    uint8_t pong_pending; /* a ping arrived: answer with pong[0..pong_len) */
    uint8_t pong_len;
    uint8_t got_close;
    uint8_t msg_op; /* opcode of the current data message, | 0x40 if compressed (RSV1) */
    uint8_t z;      /* permessage-deflate: RSV1 may start a data message */
    uint8_t pong[125];
    /* Message mode (on_msg set): messages up to expect_len bytes are handed
     * to on_msg instead of being compared; one split across reads is
     * gathered in msg_buf (expect_len bytes, owned by the caller). */
    lg_rx_msg_fn on_msg;
    void *msg_ctx;
    uint8_t *msg_buf;
};

void lg_rx_init(struct lg_rx *rx, size_t expect_len, const uint8_t *expect);
void lg_rx_init_msgs(struct lg_rx *rx, size_t max_len, uint8_t *buf, lg_rx_msg_fn fn, void *ctx);
/* Consumes all n bytes; returns the number of complete data messages in them,
 * or LG_RX_E*. */
long lg_rx_feed(struct lg_rx *rx, const uint8_t *p, size_t n);

/* ---- connections and threads --------------------------------------------- */
enum lg_state { LG_S_IDLE, LG_S_CONNECTING, LG_S_UPGRADING, LG_S_OPEN, LG_S_FAILED };

struct lg_conn {
    int fd;
    struct ssl_st *ssl; /* --tls: the connection's TLS (loadgen_conn.c), else NULL */
    uint8_t state;
    uint8_t out_armed; /* EPOLLOUT is in the interest set */
    uint8_t joined;    /* fanout: the member's join was answered; xsend: ready bits */
    uint8_t port_idx;  /* which of --ports it connects to */
    uint8_t mask[4];
    uint32_t gidx; /* index among all connections (rate schedule; fanout: name) */
    struct lg_rx rx;
    uint8_t *frame; /* this connection's masked frame (closed, rate) */
    uint8_t *msg;   /* --deflate, echo modes: a message split across reads */
    char *hs;       /* handshake: the response so far, freed once open */
    uint32_t hs_len;
    char key[28];         /* Sec-WebSocket-Key, base64 of 16 random bytes */
    uint32_t pending;     /* frames queued behind a full socket (closed, rate) */
    size_t tx_off;        /* bytes of the first pending frame written;
                             flood: offset in the flood buffer */
    uint64_t bytes_sent;  /* flood */
    uint64_t sent, recvd; /* whole frames written, whole echoes read
                             (fanout member: publications received) */
    uint64_t *fifo;       /* send times of the frames in flight, oldest first */
    uint32_t fifo_cap, fifo_head, fifo_n;
};

/* CONNECT: open every connection (fanout: and join), then hold them until
 * told (idle mode stays there); LATENCY (fanout only): publications one at a
 * time; RUN: load as the mode says; STOP: close and report. */
enum lg_phase { LG_P_CONNECT, LG_P_LATENCY, LG_P_RUN, LG_P_STOP };

struct lg_fanout; /* loadgen_fanout.c */
struct lg_xsend;  /* loadgen_xsend.c */

/* State every thread reads; the times are written before phase becomes RUN. */
struct lg_shared {
    const struct lg_opts *o;
    struct sockaddr_in addr;                /* --port */
    struct sockaddr_in addrs[LG_MAX_PORTS]; /* --ports, addrs[0] = addr */
    uint8_t *payload;                       /* the ASCII payload every message carries */
    uint8_t *wire;   /* what a message carries on the wire: payload, or it compressed */
    size_t wire_len; /* (--deflate: compressed once, no context takeover, RSV1 set) */
    _Atomic int phase;
    _Atomic int threads_connected;
    _Atomic int interrupted; /* SIGINT or SIGTERM */
    uint64_t t0;             /* load starts (warm-up) */
    uint64_t t_ms, t_me;     /* the measured window [t_ms, t_me) */
    uint64_t t_drain;        /* flood, fanout: stop waiting for messages */
    struct lg_fanout *fo;    /* fanout: shared between the threads */
    struct lg_xsend *xs;     /* xsend: shared between the threads */
};

struct lg_thread {
    int id;
    pthread_t th;
    int ep;
    struct lg_shared *sh;
    struct lg_conn *conns;
    int n;
    int next_connect, in_progress, open, failed;
    char err[256]; /* the first failure, for the report */
    uint8_t *rbuf;
    size_t rbuf_size;
    uint8_t **flood_buf; /* a few buffers of whole frames, each its own mask */
    int n_flood_buf;
    size_t flood_len;
    size_t frame_len;
    /* rate schedule: the next send is connection sched_i in round sched_k */
    uint64_t sched_k;
    int sched_i;
    /* results */
    struct lg_hist *lat;     /* echo latency, window only */
    struct lg_hist *lag;     /* rate: how late sends were against the schedule */
    uint64_t win_msgs;       /* echoes received in the window */
    uint64_t sent, recvd;    /* totals over the whole run, including drain */
    uint64_t win_bytes_sent; /* flood: bytes written in the window */
    uint64_t errors;         /* connections lost or echoes wrong during the run */
    uint64_t drain_ns;       /* flood: how long the drain took */
    uint64_t spin_ns;        /* --spin: time in empty polls in the window */
    /* fanout */
    struct lg_fo_thread *fo;  /* this thread's part (loadgen_fanout.c) */
    struct lg_hist *lat_load; /* "last member got it" with the window in flight */
    int joined;               /* members whose join was answered; xsend: connections ready */
    /* --deflate: this thread's inflater and its output (loadgen_deflate.c) */
    struct lg_zthread *z;
    /* xsend */
    struct lg_xs_thread *xs; /* this thread's part (loadgen_xsend.c) */
    uint64_t xs_sent, xs_answered, xs_refused, xs_received, xs_lost, xs_reorder;
    uint64_t xs_win_answers; /* sent:true answers read in the window */
};

/* loadgen_worker.c */
void *lg_worker_main(void *arg);

/* loadgen_fanout.c: see the comment at its top. */
struct lg_fanout *lg_fanout_new(const struct lg_opts *o);
int lg_fanout_setup(struct lg_thread *t);
/* Sends every member's join and waits for the answers; returns 0, or how
 * many of this thread's members did not join (t->err says why). */
int lg_fanout_join(struct lg_thread *t);
void lg_fanout_readable(struct lg_thread *t, struct lg_conn *c);
/* The LATENCY and RUN phases of one thread, until its members have received
 * everything published or the drain ends. */
void lg_fanout_run(struct lg_thread *t);
void lg_fanout_teardown(struct lg_thread *t);
/* For the report (main thread, after the threads are joined). */
struct lg_fanout_stats {
    uint64_t pubs;         /* publications sent in all */
    uint64_t win_pubs;     /* sent in the measured window */
    uint64_t answered;     /* published: answers */
    double lat_phase_s;    /* how long the one-at-a-time phase took */
    double join_s;         /* from the first join sent to the last answered */
    int lat_done, aborted; /* the latency phase finished; a stall or error stopped the run */
};
void lg_fanout_stats(const struct lg_fanout *fo, struct lg_fanout_stats *out);
/* Waits (main thread) until the latency phase is over or the run failed;
 * returns 0 when it finished. */
int lg_fanout_wait_latency(struct lg_fanout *fo, const _Atomic int *interrupted);

/* loadgen_xsend.c: see the comment at its top. Pair i is connections
 * 2i (sender, ?name=s<i>, on ports[0]) and 2i+1 (receiver, ?name=r<i>, on
 * ports[1], or ports[0] when there is one port), on thread i % T. */
struct lg_xsend *lg_xsend_new(const struct lg_opts *o);
int lg_xsend_setup(struct lg_thread *t);
/* Every connection sends to its own name and waits for the message and the
 * sent:true (so its name is registered cluster-wide); returns 0, or how many
 * of this thread's connections are not ready (t->err says why). */
int lg_xsend_ready(struct lg_thread *t);
void lg_xsend_readable(struct lg_thread *t, struct lg_conn *c);
/* The RUN phase of one thread: warm-up, window, drain. */
void lg_xsend_run(struct lg_thread *t);
void lg_xsend_teardown(struct lg_thread *t);

/* loadgen_conn.c */
int lg_conn_start(struct lg_thread *t, struct lg_conn *c);
/* A connection lost during the run: counted as an error, the first one's
 * reason kept in t->err, the socket closed. */
void lg_conn_lost(struct lg_thread *t, struct lg_conn *c, const char *why);
/* Advances a connection that is not open yet; returns 1 when it just became
 * open, 0 if still in progress, -1 if it failed (t->err says why). */
int lg_conn_progress(struct lg_thread *t, struct lg_conn *c, uint32_t events);
void lg_conn_close(struct lg_thread *t, struct lg_conn *c);
/* send(2) and recv(2), through the connection's TLS with --tls (errno
 * EAGAIN when nothing could move; recv returns 0 at the end). */
ssize_t lg_send(struct lg_conn *c, const void *p, size_t n);
ssize_t lg_recv(struct lg_conn *c, void *p, size_t n);
int lg_conn_arm(struct lg_thread *t, struct lg_conn *c, int want_out);

/* loadgen_proc.c */
uint64_t lg_now_ns(void);
void lg_sleep_until(uint64_t t_ns);
double lg_self_cpu_s(void);
/* utime+stime of a process in seconds, or -1. */
double lg_proc_cpu_s(pid_t pid);
/* Run time of all its threads from schedstat, in seconds, or -1. */
double lg_proc_sched_s(pid_t pid);
/* VmRSS of a process in KiB, or -1. */
long lg_proc_rss_kib(pid_t pid);
uint64_t lg_rand64(void);

/* Ticks of a set of CPUs from /proc/stat. Softirq time (the loopback TCP
 * receive path, mostly) is charged to no process, so a process's own CPU
 * time does not show whether its core was saturated; these do. */
struct lg_ticks {
    uint64_t busy, total, softirq;
};
int lg_cpus_ticks(const cpu_set_t *set, struct lg_ticks *out);

/* What other processes take from our cores, measured exactly (schedstat):
 * lg_foreign_tasks lists the run time of every task of other processes
 * (not the generator, the server or kernel threads) that last ran on a CPU
 * of `set`; lg_foreign_cpu_s is what they ran between two such lists. */
struct lg_task_time {
    int tid;
    unsigned long long ns;
};
int lg_foreign_tasks(pid_t self, const int *servers, int n_servers, const cpu_set_t *set,
                     struct lg_task_time *out, int max);
/* Run time of every thread of a process (schedstat), tid order; returns how
 * many, or -1. */
int lg_proc_threads(pid_t pid, struct lg_task_time *out, int max);
double lg_foreign_cpu_s(const struct lg_task_time *a, int na, const struct lg_task_time *b, int nb);

/* ---- permessage-deflate (loadgen_deflate.c) --------------------------------- */
/* The offer every --deflate connection makes: no context takeover either way,
 * so that one inflater per thread reads every connection's messages. */
#define LG_DEFLATE_OFFER                                                                           \
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "                 \
    "client_max_window_bits"
/* n bytes of printable text: a-z, or JSON-like records (--json). */
void lg_payload_fill(uint8_t *p, size_t n, int json);
/* sh->wire: the payload, or (--deflate) it compressed once; 0 or -1. */
int lg_wire_init(struct lg_shared *sh);
/* A compressed message (RSV1) inflated with t's inflater: 0 with *out
 * valid until the next call, or -1 (corrupt, or longer than max). */
int lg_inflate(struct lg_thread *t, const uint8_t *p, size_t n, size_t max, const uint8_t **out,
               size_t *len);
/* The echo modes' message callback with --deflate (ctx: the thread): an
 * echo must equal the payload (compressed ones inflated when verifying). */
int lg_echo_msg(void *ctx, int opcode, const uint8_t *p, size_t n);
/* The longest wire form of an echo the echo modes accept. */
size_t lg_echo_max(const struct lg_opts *o);
void lg_z_free(struct lg_thread *t);

#endif
