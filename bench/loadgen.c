/*
 * orr-loadgen: WebSocket load generator for Orrery's benchmark.
 *
 *   orr-loadgen --mode closed|flood|rate|idle|fanout|xsend --port P [options]
 *
 * Prints one human line and one JSON line per run (see usage() and
 * bench/README.md). The main thread only starts the workers, marks the
 * measured window, samples CPU and memory at its edges and reports.
 */
#include "loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static struct lg_shared shared;

static void on_signal(int sig) {
    (void)sig;
    atomic_store(&shared.interrupted, 1);
}

/* Every connection is a descriptor; the default soft limit (1024, or the
 * shell's) is far below the 10,000 idle connections the bench holds. */
static int raise_nofile(rlim_t need) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return -1;
    if (rl.rlim_cur >= need) return 0;
    if (rl.rlim_max < need) rl.rlim_max = need; /* works as root */
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0) return 0;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur >= need ? 0 : -1;
}

static int resolve(const char *host, int port, struct sockaddr_in *sa) {
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) == 1) return 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, NULL, &hints, &res)) return -1;
    sa->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

/* Sleeps until t, or until a signal asks to stop. */
static void nap_until(uint64_t t) {
    while (!atomic_load(&shared.interrupted)) {
        uint64_t now = lg_now_ns();
        if (now >= t) return;
        lg_sleep_until(t - now > 20000000 ? now + 20000000 : t);
    }
}

static const char *mode_name(enum lg_mode m) {
    static const char *names[] = {"closed", "flood", "rate", "idle", "fanout", "xsend"};
    return names[m];
}

/* The CPUs the generator and the server may run on (bench/run.sh pins each
 * to one core), to tell from /proc/stat whether that core was saturated. */
static cpu_set_t gen_cpus, server_cpus;
static int have_server_cpus;

#define MAX_TASKS 4096
#define MAX_PROC_THREADS 64

/* One sampled process (--server-pid, several for a cluster). */
struct proc_sample {
    double cpu, sched;
    struct lg_task_time th[MAX_PROC_THREADS];
    int n_th;
};

struct sample {
    double gen_cpu, server_cpu, server_sched; /* server: the sum over --server-pid */
    struct lg_ticks gen_core, server_core;
    struct lg_task_time *foreign; /* other processes' tasks on our cores */
    int n_foreign;
    struct proc_sample *procs;
};

static struct sample take_sample(const struct lg_opts *o) {
    struct sample s = {.gen_cpu = lg_self_cpu_s(), .server_cpu = -1, .server_sched = -1};
    static struct lg_task_time lists[2][MAX_TASKS];
    static struct proc_sample procs[2][LG_MAX_PIDS];
    static int which;
    s.procs = procs[which & 1];
    for (int i = 0; i < o->n_pids; i++) {
        struct proc_sample *p = &s.procs[i];
        p->cpu = lg_proc_cpu_s(o->server_pids[i]);
        p->sched = lg_proc_sched_s(o->server_pids[i]);
        p->n_th = lg_proc_threads(o->server_pids[i], p->th, MAX_PROC_THREADS);
        if (p->cpu >= 0) s.server_cpu = (s.server_cpu < 0 ? 0 : s.server_cpu) + p->cpu;
        if (p->sched >= 0) s.server_sched = (s.server_sched < 0 ? 0 : s.server_sched) + p->sched;
    }
    cpu_set_t ours;
    CPU_OR(&ours, &gen_cpus, &server_cpus);
    s.foreign = lists[which++ & 1];
    s.n_foreign =
        lg_foreign_tasks(getpid(), o->server_pids, o->n_pids, &ours, s.foreign, MAX_TASKS);
    lg_cpus_ticks(&gen_cpus, &s.gen_core);
    if (have_server_cpus) {
        lg_cpus_ticks(&server_cpus, &s.server_core);
    }
    return s;
}

/* How busy a set of cores was in the window (from /proc/stat, which this
 * kernel samples at the timer tick: right for saturating loads, unreliable
 * for a mostly idle core or a load in step with a timer). */
struct core_load {
    double busy, softirq;
};

static struct core_load core_load(struct lg_ticks a, struct lg_ticks b) {
    struct core_load l = {-1, -1};
    uint64_t total = b.total - a.total;
    if (!total) return l;
    l.busy = (double)(b.busy - a.busy) / (double)total;
    l.softirq = (double)(b.softirq - a.softirq) / (double)total;
    return l;
}

static void json_num(FILE *f, const char *k, double v) {
    if (v != v || v < 0)
        fprintf(f, ",\"%s\":null", k);
    else
        fprintf(f, ",\"%s\":%.6g", k, v);
}

static void report_idle(const struct lg_opts *o, double connect_s, long rss0, long rss1) {
    double per = rss0 >= 0 && rss1 >= 0 ? (double)(rss1 - rss0) / o->conns : -1;
    printf("idle: %d connections upgraded in %.2f s", o->conns, connect_s);
    if (per >= 0) printf("; server RSS %ld -> %ld KiB = %.3f KiB per connection", rss0, rss1, per);
    printf("\n{\"mode\":\"idle\"");
    if (o->label) printf(",\"server\":\"%s\"", o->label);
    printf(",\"conns\":%d", o->conns);
    json_num(stdout, "connect_s", connect_s);
    json_num(stdout, "rss_before_kib", (double)rss0);
    json_num(stdout, "rss_after_kib", (double)rss1);
    json_num(stdout, "rss_per_conn_kib", per);
    json_num(stdout, "gen_cpu_s", lg_self_cpu_s());
    printf("}\n");
    fflush(stdout);
}

struct totals {
    uint64_t win_msgs, sent, recvd, win_bytes_sent, errors, drain_ns, spin_ns;
    struct lg_hist lat, lag;
};

/* What one load run measured, in the units of the report. */
struct figures {
    double d, gen, srv, srv_sched, rate, per_cpu, sent_rate;
    double other; /* CPU seconds other processes ran on our cores */
    struct core_load gen_core, srv_core;
    const struct sample *sa, *sb; /* the window's edges, for the per-process figures */
};

/* Per process of --server-pid (when there are several or they have labels):
 * CPU seconds in the window (utime+stime), and each thread's run time
 * (schedstat) in tid order, e.g. main, then the threads in creation order. */
static const char *proc_label(const struct lg_opts *o, int i, char *buf, size_t cap) {
    if (o->pid_labels[i]) return o->pid_labels[i];
    snprintf(buf, cap, "pid%d", o->server_pids[i]);
    return buf;
}

static int procs_wanted(const struct lg_opts *o) {
    return o->n_pids > 1 || (o->n_pids == 1 && o->pid_labels[0]);
}

static double thread_delta(const struct proc_sample *a, const struct lg_task_time *t) {
    for (int j = 0; j < a->n_th; j++)
        if (a->th[j].tid == t->tid) return (double)(t->ns - a->th[j].ns) / 1e9;
    return (double)t->ns / 1e9; /* started in the window */
}

static void print_procs_human(const struct lg_opts *o, const struct sample *a,
                              const struct sample *b) {
    char lb[32];
    if (!procs_wanted(o)) return;
    printf("; CPU s in the window:");
    for (int i = 0; i < o->n_pids; i++) {
        const struct proc_sample *x = &a->procs[i], *y = &b->procs[i];
        printf(" %s %.2f", proc_label(o, i, lb, sizeof lb), y->cpu - x->cpu);
        if (y->n_th > 1) {
            printf(" (threads");
            for (int j = 0; j < y->n_th; j++)
                printf(" %.2f", thread_delta(x, &y->th[j]));
            printf(")");
        }
    }
}

/* Flat keys, so that a shell can pick them: "cpu_<label>_s":x and
 * "threads_<label>":"t1 t2 ..." (seconds per thread, tid order). */
static void print_procs_json(const struct lg_opts *o, const struct sample *a,
                             const struct sample *b) {
    char lb[32], key[96];
    if (!procs_wanted(o)) return;
    for (int i = 0; i < o->n_pids; i++) {
        const struct proc_sample *x = &a->procs[i], *y = &b->procs[i];
        const char *l = proc_label(o, i, lb, sizeof lb);
        snprintf(key, sizeof key, "cpu_%s_s", l);
        json_num(stdout, key, x->cpu >= 0 && y->cpu >= 0 ? y->cpu - x->cpu : -1);
        snprintf(key, sizeof key, "sched_%s_s", l);
        json_num(stdout, key, x->sched >= 0 && y->sched >= 0 ? y->sched - x->sched : -1);
        printf(",\"threads_%s\":\"", l);
        for (int j = 0; j < y->n_th; j++)
            printf("%s%.3f", j ? " " : "", thread_delta(x, &y->th[j]));
        printf("\"");
    }
}

static void print_human(const struct lg_opts *o, const struct totals *r, const struct figures *f) {
    const struct lg_hist *h = &r->lat;
    printf("%s: %d conns x %zu B, %.1f s: %llu echoes, %.0f msgs/s", mode_name(o->mode), o->conns,
           o->size, f->d, (unsigned long long)r->win_msgs, f->rate);
    if (o->mode == LG_FLOOD)
        printf(" (sent %.0f msgs/s; %llu sent in all, %llu echoed, drain %.2f s)", f->sent_rate,
               (unsigned long long)r->sent, (unsigned long long)r->recvd,
               (double)r->drain_ns / 1e9);
    else
        printf(", latency p50 %.3f p90 %.3f p99 %.3f max %.3f ms",
               (double)lg_hist_quantile(h, 0.5) / 1e6, (double)lg_hist_quantile(h, 0.9) / 1e6,
               (double)lg_hist_quantile(h, 0.99) / 1e6, (double)h->max / 1e6);
    printf("; generator CPU %.2f s", f->gen);
    if (o->spin) printf(" (%.2f s of it spinning idle)", (double)r->spin_ns / 1e9);
    printf(" (its core %.0f%% busy)", 100 * f->gen_core.busy);
    if (f->srv >= 0)
        printf("; server CPU %.2f s = %.0f msgs per server CPU-second (its core %.0f%% busy)",
               f->srv, f->per_cpu, 100 * f->srv_core.busy);
    if (f->other > 0.1 * f->d)
        printf("; DISTURBED: other processes ran %.2f s on these cores", f->other);
    print_procs_human(o, f->sa, f->sb);
    if (r->errors) printf("; %llu ERRORS", (unsigned long long)r->errors);
    printf("\n");
}

static void print_json(const struct lg_opts *o, const struct totals *r, const struct figures *f) {
    const struct lg_hist *h = &r->lat;
    printf("{\"mode\":\"%s\"", mode_name(o->mode));
    if (o->label) printf(",\"server\":\"%s\"", o->label);
    printf(",\"conns\":%d,\"size\":%zu,\"threads\":%d", o->conns, o->size, o->threads);
    json_num(stdout, "duration_s", f->d);
    printf(",\"msgs\":%llu", (unsigned long long)r->win_msgs);
    json_num(stdout, "msgs_per_s", f->rate);
    if (o->mode == LG_FLOOD) {
        json_num(stdout, "sent_per_s", f->sent_rate);
        printf(",\"sent\":%llu,\"received\":%llu", (unsigned long long)r->sent,
               (unsigned long long)r->recvd);
        json_num(stdout, "drain_s", (double)r->drain_ns / 1e9);
    } else {
        json_num(stdout, "p50_ms", (double)lg_hist_quantile(h, 0.5) / 1e6);
        json_num(stdout, "p90_ms", (double)lg_hist_quantile(h, 0.9) / 1e6);
        json_num(stdout, "p99_ms", (double)lg_hist_quantile(h, 0.99) / 1e6);
        json_num(stdout, "max_ms", (double)h->max / 1e6);
        json_num(stdout, "mean_ms", h->count ? (double)h->sum / (double)h->count / 1e6 : 0);
    }
    if (o->mode == LG_RATE) {
        json_num(stdout, "rate_per_conn", o->rate);
        json_num(stdout, "tick_ms", o->tick);
        json_num(stdout, "sched_lag_p99_ms", (double)lg_hist_quantile(&r->lag, 0.99) / 1e6);
        json_num(stdout, "sched_lag_max_ms", (double)r->lag.max / 1e6);
    }
    json_num(stdout, "gen_cpu_s", f->gen);
    json_num(stdout, "gen_cpu_util", f->gen / f->d);
    if (o->spin) json_num(stdout, "gen_spin_s", (double)r->spin_ns / 1e9);
    json_num(stdout, "gen_core_busy", f->gen_core.busy);
    json_num(stdout, "server_cpu_s", f->srv);
    json_num(stdout, "server_sched_s", f->srv_sched);
    json_num(stdout, "server_core_busy", f->srv_core.busy);
    json_num(stdout, "server_core_softirq", f->srv_core.softirq);
    json_num(stdout, "other_procs_cpu_s", f->other);
    json_num(stdout, "msgs_per_server_cpu_s", f->per_cpu);
    print_procs_json(o, f->sa, f->sb);
    printf(",\"errors\":%llu}\n", (unsigned long long)r->errors);
}

static void report_load(const struct lg_opts *o, const struct totals *r, struct sample a,
                        struct sample b, size_t frame_len) {
    struct figures f = {.d = o->duration, .gen = b.gen_cpu - a.gen_cpu, .sa = &a, .sb = &b};
    f.srv = a.server_cpu >= 0 && b.server_cpu >= 0 ? b.server_cpu - a.server_cpu : -1;
    f.srv_sched = a.server_sched >= 0 && b.server_sched >= 0 ? b.server_sched - a.server_sched : -1;
    f.rate = (double)r->win_msgs / f.d;
    f.per_cpu = f.srv > 0 ? (double)r->win_msgs / f.srv : -1;
    f.sent_rate = (double)(r->win_bytes_sent / frame_len) / f.d;
    f.gen_core = core_load(a.gen_core, b.gen_core);
    f.srv_core = (struct core_load){-1, -1};
    if (have_server_cpus) f.srv_core = core_load(a.server_core, b.server_core);
    f.other = lg_foreign_cpu_s(a.foreign, a.n_foreign, b.foreign, b.n_foreign);
    print_human(o, r, &f);
    print_json(o, r, &f);
    fflush(stdout);
}

static struct lg_thread *start_threads(struct lg_opts *o, struct lg_conn *conns) {
    struct lg_thread *ts = calloc((size_t)o->threads, sizeof *ts);
    if (!ts) return NULL;
    /* Connection g goes to thread g % T; each thread's slice is contiguous
     * in its own array, so its connections are in global order. Fanout has
     * one more: the publisher, g = conns. */
    int total = o->conns + (o->mode == LG_FANOUT), base = 0;
    for (int i = 0; i < o->threads; i++) {
        struct lg_thread *t = &ts[i];
        t->id = i;
        t->sh = &shared;
        t->ep = -1;
        t->n = total / o->threads + (i < total % o->threads);
        t->conns = conns + base;
        if (o->mode == LG_XSEND) {
            /* Pair p (connections 2p and 2p+1) on thread p % T, side by side. */
            t->n = 2 * (o->pairs / o->threads + (i < o->pairs % o->threads));
            for (int k = 0; k < t->n; k++)
                t->conns[k].gidx = (uint32_t)(2 * (i + (k / 2) * o->threads) + (k & 1));
        } else {
            for (int k = 0; k < t->n; k++)
                t->conns[k].gidx = (uint32_t)(i + k * o->threads);
        }
        for (int k = 0; k < t->n; k++) {
            struct lg_conn *c = &t->conns[k];
            if (o->mode == LG_XSEND)
                c->port_idx = (uint8_t)((c->gidx & 1) && o->n_ports > 1);
            else if (o->mode == LG_FANOUT && c->gidx == (uint32_t)o->conns)
                c->port_idx = 0; /* the publisher */
            else
                c->port_idx = (uint8_t)(c->gidx % (uint32_t)o->n_ports);
        }
        base += t->n;
        if (pthread_create(&t->th, NULL, lg_worker_main, t)) {
            fprintf(stderr, "orr-loadgen: pthread_create failed\n");
            exit(1);
        }
    }
    return ts;
}

/* Waits until every thread has opened its connections; returns how many failed. */
static int wait_connected(const struct lg_opts *o, struct lg_thread *ts) {
    while (atomic_load(&shared.threads_connected) < o->threads)
        lg_sleep_until(lg_now_ns() + 1000000);
    int failed = 0;
    for (int i = 0; i < o->threads; i++) {
        if (ts[i].failed && !failed) fprintf(stderr, "orr-loadgen: %s\n", ts[i].err);
        failed += ts[i].failed;
    }
    return failed;
}

static void stop_and_join(const struct lg_opts *o, struct lg_thread *ts) {
    atomic_store(&shared.phase, LG_P_STOP);
    for (int i = 0; i < o->threads; i++)
        pthread_join(ts[i].th, NULL);
}

/* Idle: all connections are open; measure the server's memory, then hold. */
static int run_idle(const struct lg_opts *o, struct lg_thread *ts, double connect_s, long rss0) {
    printf("ready %d\n", o->conns);
    fflush(stdout);
    uint64_t t_ready = lg_now_ns();
    if (o->server_pid) nap_until(t_ready + (uint64_t)(o->settle * 1e9));
    long rss1 = o->server_pid ? lg_proc_rss_kib(o->server_pid) : -1;
    report_idle(o, connect_s, rss0, rss1);
    nap_until(t_ready + (uint64_t)(o->hold * 1e9));
    stop_and_join(o, ts);
    return 0;
}

/* Starts the threads' run (warm-up, measured window, drain) and samples
 * CPU at the window's edges. */
static void measure_window(const struct lg_opts *o, struct sample *a, struct sample *b) {
    uint64_t now = lg_now_ns();
    shared.t0 = now;
    shared.t_ms = now + (uint64_t)(o->warmup * 1e9);
    shared.t_me = shared.t_ms + (uint64_t)(o->duration * 1e9);
    shared.t_drain = shared.t_me + (uint64_t)(o->drain * 1e9);
    atomic_store(&shared.phase, LG_P_RUN);
    nap_until(shared.t_ms);
    *a = take_sample(o);
    nap_until(shared.t_me);
    *b = take_sample(o);
}

/* The other modes: mark the window, sample its edges, collect the threads. */
static int run_load(const struct lg_opts *o, struct lg_thread *ts) {
    static struct totals r;
    struct sample a, b;
    measure_window(o, &a, &b);
    lg_hist_init(&r.lat);
    lg_hist_init(&r.lag);
    for (int i = 0; i < o->threads; i++) {
        struct lg_thread *t = &ts[i];
        pthread_join(t->th, NULL);
        r.win_msgs += t->win_msgs;
        r.sent += t->sent;
        r.recvd += t->recvd;
        r.win_bytes_sent += t->win_bytes_sent;
        r.errors += t->errors;
        r.spin_ns += t->spin_ns;
        if (t->drain_ns > r.drain_ns) r.drain_ns = t->drain_ns;
        lg_hist_merge(&r.lat, t->lat);
        lg_hist_merge(&r.lag, t->lag);
        if (t->errors) fprintf(stderr, "orr-loadgen: thread %d: %s\n", t->id, t->err);
    }
    report_load(o, &r, a, b, lg_frame_size(shared.wire_len));
    return r.errors || atomic_load(&shared.interrupted) ? 1 : 0;
}

/* Fanout: "last member got it" latencies one at a time, then deliveries in
 * the window with --window publications in flight. */
static void report_fanout(const struct lg_opts *o, const struct totals *r,
                          const struct lg_fanout_stats *st, const struct figures *f,
                          double connect_s, const struct lg_hist *load) {
    const struct lg_hist *h = &r->lat;
    double ms = 1e6;
    printf("fanout: %d members, window %d: %llu publications one at a time in %.2f s, last member "
           "p50 %.3f p99 %.3f max %.3f ms; %.1f s with %d in flight: %llu publications, %llu "
           "deliveries = %.0f deliveries/s, last member p50 %.3f p99 %.3f ms; generator CPU %.2f s "
           "(its core %.0f%% busy)",
           o->conns, o->window, (unsigned long long)h->count, st->lat_phase_s,
           (double)lg_hist_quantile(h, 0.5) / ms, (double)lg_hist_quantile(h, 0.99) / ms,
           (double)h->max / ms, f->d, o->window, (unsigned long long)st->win_pubs,
           (unsigned long long)r->win_msgs, f->rate, (double)lg_hist_quantile(load, 0.5) / ms,
           (double)lg_hist_quantile(load, 0.99) / ms, f->gen, 100 * f->gen_core.busy);
    if (f->srv >= 0)
        printf("; server CPU %.2f s = %.0f deliveries per server CPU-second (its core %.0f%% busy)",
               f->srv, f->per_cpu, 100 * f->srv_core.busy);
    if (f->other > 0.1 * f->d)
        printf("; DISTURBED: other processes ran %.2f s on these cores", f->other);
    print_procs_human(o, f->sa, f->sb);
    if (r->errors) printf("; %llu ERRORS", (unsigned long long)r->errors);
    printf("\n{\"mode\":\"fanout\"");
    if (o->label) printf(",\"server\":\"%s\"", o->label);
    printf(",\"conns\":%d,\"members\":%d,\"group\":\"%s\",\"window\":%d,\"threads\":%d,"
           "\"nodes\":%d",
           o->conns, o->conns, o->group, o->window, o->threads, o->n_ports);
    json_num(stdout, "connect_s", connect_s);
    json_num(stdout, "join_s", st->join_s);
    printf(",\"lat_pubs\":%llu", (unsigned long long)h->count);
    json_num(stdout, "lat_phase_s", st->lat_phase_s);
    json_num(stdout, "p50_ms", (double)lg_hist_quantile(h, 0.5) / ms);
    json_num(stdout, "p90_ms", (double)lg_hist_quantile(h, 0.9) / ms);
    json_num(stdout, "p99_ms", (double)lg_hist_quantile(h, 0.99) / ms);
    json_num(stdout, "max_ms", (double)h->max / ms);
    json_num(stdout, "mean_ms", h->count ? (double)h->sum / (double)h->count / ms : 0);
    json_num(stdout, "duration_s", f->d);
    printf(",\"pubs\":%llu,\"pubs_total\":%llu,\"answered\":%llu,\"msgs\":%llu",
           (unsigned long long)st->win_pubs, (unsigned long long)st->pubs,
           (unsigned long long)st->answered, (unsigned long long)r->win_msgs);
    json_num(stdout, "pubs_per_s", (double)st->win_pubs / f->d);
    json_num(stdout, "msgs_per_s", f->rate);
    json_num(stdout, "deliveries_per_s", f->rate);
    json_num(stdout, "load_p50_ms", (double)lg_hist_quantile(load, 0.5) / ms);
    json_num(stdout, "load_p99_ms", (double)lg_hist_quantile(load, 0.99) / ms);
    json_num(stdout, "load_max_ms", (double)load->max / ms);
    json_num(stdout, "drain_s", (double)r->drain_ns / 1e9);
    json_num(stdout, "gen_cpu_s", f->gen);
    json_num(stdout, "gen_cpu_util", f->gen / f->d);
    json_num(stdout, "gen_core_busy", f->gen_core.busy);
    json_num(stdout, "server_cpu_s", f->srv);
    json_num(stdout, "server_sched_s", f->srv_sched);
    json_num(stdout, "server_core_busy", f->srv_core.busy);
    json_num(stdout, "server_core_softirq", f->srv_core.softirq);
    json_num(stdout, "other_procs_cpu_s", f->other);
    json_num(stdout, "msgs_per_server_cpu_s", f->per_cpu);
    print_procs_json(o, f->sa, f->sb);
    printf(",\"errors\":%llu}\n", (unsigned long long)r->errors);
    fflush(stdout);
}

/* A failed run's JSON line, with the first thread's reason. */
static void report_failure(const struct lg_opts *o, const char *what, const char *why) {
    printf("{\"mode\":\"%s\"", mode_name(o->mode));
    if (o->label) printf(",\"server\":\"%s\"", o->label);
    printf(",\"error\":\"%s", what);
    if (why && *why) {
        printf(": ");
        for (; *why; why++)
            putchar(*why == '"' || *why == '\\' || (unsigned char)*why < 0x20 ? '\'' : *why);
    }
    printf("\"}\n");
    fflush(stdout);
}

static const char *first_err(const struct lg_opts *o, const struct lg_thread *ts) {
    for (int i = 0; i < o->threads; i++)
        if (ts[i].err[0]) return ts[i].err;
    return NULL;
}

/* Fanout: the LATENCY phase until the publisher says it is over, then the
 * window as in run_load; the threads end when their members have drained. */
static int run_fanout(const struct lg_opts *o, struct lg_thread *ts, double connect_s) {
    static struct totals r;
    static struct lg_hist load;
    atomic_store(&shared.phase, LG_P_LATENCY);
    if (lg_fanout_wait_latency(shared.fo, &shared.interrupted) < 0) {
        stop_and_join(o, ts);
        if (first_err(o, ts)) fprintf(stderr, "orr-loadgen: %s\n", first_err(o, ts));
        report_failure(o, "the latency phase failed", first_err(o, ts));
        return 1;
    }
    struct sample a, b;
    measure_window(o, &a, &b);
    lg_hist_init(&r.lat);
    lg_hist_init(&load);
    for (int i = 0; i < o->threads; i++) {
        struct lg_thread *t = &ts[i];
        pthread_join(t->th, NULL);
        r.win_msgs += t->win_msgs;
        r.errors += t->errors;
        lg_hist_merge(&r.lat, t->lat);
        lg_hist_merge(&load, t->lat_load);
        if (t->err[0]) fprintf(stderr, "orr-loadgen: thread %d: %s\n", t->id, t->err);
    }
    r.drain_ns = lg_now_ns() - shared.t_me;
    struct lg_fanout_stats st;
    lg_fanout_stats(shared.fo, &st);
    if (st.aborted && !r.errors) r.errors = 1;
    struct figures f = {.d = o->duration, .gen = b.gen_cpu - a.gen_cpu, .sa = &a, .sb = &b};
    f.srv = a.server_cpu >= 0 && b.server_cpu >= 0 ? b.server_cpu - a.server_cpu : -1;
    f.srv_sched = a.server_sched >= 0 && b.server_sched >= 0 ? b.server_sched - a.server_sched : -1;
    f.rate = (double)r.win_msgs / f.d;
    f.per_cpu = f.srv > 0 ? (double)r.win_msgs / f.srv : -1;
    f.gen_core = core_load(a.gen_core, b.gen_core);
    f.srv_core = (struct core_load){-1, -1};
    if (have_server_cpus) f.srv_core = core_load(a.server_core, b.server_core);
    f.other = lg_foreign_cpu_s(a.foreign, a.n_foreign, b.foreign, b.n_foreign);
    report_fanout(o, &r, &st, &f, connect_s, &load);
    return r.errors || atomic_load(&shared.interrupted) ? 1 : 0;
}

/* Xsend: the window as in run_load; the threads end when their pairs have
 * drained. */
static void report_xsend(const struct lg_opts *o, const struct totals *r,
                         const struct lg_thread *ts, const struct figures *f, double connect_s) {
    const struct lg_hist *h = &r->lat;
    double ms = 1e6;
    uint64_t sent = 0, answered = 0, refused = 0, received = 0, lost = 0, reorder = 0, wans = 0;
    for (int i = 0; i < o->threads; i++) {
        sent += ts[i].xs_sent;
        answered += ts[i].xs_answered;
        refused += ts[i].xs_refused;
        received += ts[i].xs_received;
        lost += ts[i].xs_lost;
        reorder += ts[i].xs_reorder;
        wans += ts[i].xs_win_answers;
    }
    printf("xsend: %d pairs (ports %d -> %d), window %d, %.1f s: %llu delivered = %.0f msgs/s, "
           "latency p50 %.3f p90 %.3f p99 %.3f max %.3f ms; in all %llu sent, %llu answered "
           "(%llu sent:false), %llu received, %llu lost, %llu reordered; generator CPU %.2f s "
           "(its cores %.0f%% busy)",
           o->pairs, o->ports[0], o->ports[o->n_ports > 1], o->window, f->d,
           (unsigned long long)r->win_msgs, f->rate, (double)lg_hist_quantile(h, 0.5) / ms,
           (double)lg_hist_quantile(h, 0.9) / ms, (double)lg_hist_quantile(h, 0.99) / ms,
           (double)h->max / ms, (unsigned long long)sent, (unsigned long long)answered,
           (unsigned long long)refused, (unsigned long long)received, (unsigned long long)lost,
           (unsigned long long)reorder, f->gen, 100 * f->gen_core.busy);
    if (f->srv >= 0)
        printf("; servers' CPU %.2f s = %.0f msgs per server CPU-second (their cores %.0f%% busy)",
               f->srv, f->per_cpu, 100 * f->srv_core.busy);
    print_procs_human(o, f->sa, f->sb);
    if (f->other > 0.1 * f->d)
        printf("; DISTURBED: other processes ran %.2f s on these cores", f->other);
    if (r->errors) printf("; %llu ERRORS", (unsigned long long)r->errors);
    printf("\n{\"mode\":\"xsend\"");
    if (o->label) printf(",\"server\":\"%s\"", o->label);
    printf(",\"pairs\":%d,\"conns\":%d,\"window\":%d,\"threads\":%d,\"cross_node\":%d", o->pairs,
           o->conns, o->window, o->threads, o->n_ports > 1 && o->ports[0] != o->ports[1]);
    json_num(stdout, "connect_s", connect_s);
    json_num(stdout, "duration_s", f->d);
    printf(",\"msgs\":%llu,\"sent\":%llu,\"answered\":%llu,\"refused\":%llu,\"received\":%llu,"
           "\"lost\":%llu,\"reordered\":%llu",
           (unsigned long long)r->win_msgs, (unsigned long long)sent, (unsigned long long)answered,
           (unsigned long long)refused, (unsigned long long)received, (unsigned long long)lost,
           (unsigned long long)reorder);
    json_num(stdout, "msgs_per_s", f->rate);
    json_num(stdout, "answers_per_s", (double)wans / f->d);
    json_num(stdout, "p50_ms", (double)lg_hist_quantile(h, 0.5) / ms);
    json_num(stdout, "p90_ms", (double)lg_hist_quantile(h, 0.9) / ms);
    json_num(stdout, "p99_ms", (double)lg_hist_quantile(h, 0.99) / ms);
    json_num(stdout, "max_ms", (double)h->max / ms);
    json_num(stdout, "mean_ms", h->count ? (double)h->sum / (double)h->count / ms : 0);
    json_num(stdout, "drain_s", (double)r->drain_ns / 1e9);
    json_num(stdout, "gen_cpu_s", f->gen);
    json_num(stdout, "gen_cpu_util", f->gen / f->d);
    json_num(stdout, "gen_core_busy", f->gen_core.busy);
    json_num(stdout, "server_cpu_s", f->srv);
    json_num(stdout, "server_sched_s", f->srv_sched);
    json_num(stdout, "server_core_busy", f->srv_core.busy);
    json_num(stdout, "server_core_softirq", f->srv_core.softirq);
    json_num(stdout, "other_procs_cpu_s", f->other);
    json_num(stdout, "msgs_per_server_cpu_s", f->per_cpu);
    print_procs_json(o, f->sa, f->sb);
    printf(",\"errors\":%llu}\n", (unsigned long long)r->errors);
    fflush(stdout);
}

static int run_xsend(const struct lg_opts *o, struct lg_thread *ts, double connect_s) {
    static struct totals r;
    struct sample a, b;
    measure_window(o, &a, &b);
    lg_hist_init(&r.lat);
    for (int i = 0; i < o->threads; i++) {
        struct lg_thread *t = &ts[i];
        pthread_join(t->th, NULL);
        r.win_msgs += t->win_msgs;
        r.errors += t->errors;
        if (t->drain_ns > r.drain_ns) r.drain_ns = t->drain_ns;
        lg_hist_merge(&r.lat, t->lat);
        if (t->err[0]) fprintf(stderr, "orr-loadgen: thread %d: %s\n", t->id, t->err);
    }
    struct figures f = {.d = o->duration, .gen = b.gen_cpu - a.gen_cpu, .sa = &a, .sb = &b};
    f.srv = a.server_cpu >= 0 && b.server_cpu >= 0 ? b.server_cpu - a.server_cpu : -1;
    f.srv_sched = a.server_sched >= 0 && b.server_sched >= 0 ? b.server_sched - a.server_sched : -1;
    f.rate = (double)r.win_msgs / f.d;
    f.per_cpu = f.srv > 0 ? (double)r.win_msgs / f.srv : -1;
    f.gen_core = core_load(a.gen_core, b.gen_core);
    f.srv_core = (struct core_load){-1, -1};
    if (have_server_cpus) f.srv_core = core_load(a.server_core, b.server_core);
    f.other = lg_foreign_cpu_s(a.foreign, a.n_foreign, b.foreign, b.n_foreign);
    report_xsend(o, &r, ts, &f, connect_s);
    return r.errors || atomic_load(&shared.interrupted) ? 1 : 0;
}

int main(int argc, char **argv) {
    struct lg_opts o;
    lg_parse_options(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (raise_nofile((rlim_t)o.conns + 64) < 0) {
        fprintf(stderr, "orr-loadgen: cannot raise RLIMIT_NOFILE to %d (try ulimit -n)\n",
                o.conns + 64);
        return 1;
    }
    shared.o = &o;
    if (resolve(o.host, o.port, &shared.addr) < 0) {
        fprintf(stderr, "orr-loadgen: cannot resolve %s\n", o.host);
        return 1;
    }
    for (int i = 0; i < o.n_ports; i++) {
        shared.addrs[i] = shared.addr;
        shared.addrs[i].sin_port = htons((uint16_t)o.ports[i]);
    }
    /* Printable ASCII, so that text frames are valid UTF-8 without a check. */
    shared.payload = malloc(o.size + 1);
    struct lg_conn *conns = calloc((size_t)o.conns + 1, sizeof *conns);
    if (!shared.payload || !conns) return 1;
    if (o.mode == LG_FANOUT && !(shared.fo = lg_fanout_new(&o))) {
        fprintf(stderr, "orr-loadgen: fanout set-up failed\n");
        return 1;
    }
    if (o.mode == LG_XSEND && !(shared.xs = lg_xsend_new(&o))) {
        fprintf(stderr, "orr-loadgen: xsend set-up failed\n");
        return 1;
    }
    lg_payload_fill(shared.payload, o.size, o.json);
    if (lg_wire_init(&shared) < 0) {
        fprintf(stderr, "orr-loadgen: cannot compress the payload\n");
        return 1;
    }

    sched_getaffinity(0, sizeof gen_cpus, &gen_cpus);
    /* The servers' cores: the union of every sampled process's affinity. */
    CPU_ZERO(&server_cpus);
    for (int i = 0; i < o.n_pids; i++) {
        cpu_set_t one;
        if (sched_getaffinity(o.server_pids[i], sizeof one, &one) == 0) {
            CPU_OR(&server_cpus, &server_cpus, &one);
            have_server_cpus = 1;
        }
    }
    long rss0 = o.server_pid ? lg_proc_rss_kib(o.server_pid) : -1;
    uint64_t t_start = lg_now_ns();
    struct lg_thread *ts = start_threads(&o, conns);
    if (!ts) return 1;
    int failed = wait_connected(&o, ts);
    double connect_s = (double)(lg_now_ns() - t_start) / 1e9;
    if (failed || atomic_load(&shared.interrupted)) {
        char what[80];
        if (o.mode == LG_FANOUT)
            snprintf(what, sizeof what, "%d of %d members not connected or not joined", failed,
                     o.conns);
        else if (o.mode == LG_XSEND)
            snprintf(what, sizeof what, "%d of %d connections not connected or not ready", failed,
                     o.conns);
        else
            snprintf(what, sizeof what, "%d of %d connections failed", failed, o.conns);
        if (failed) fprintf(stderr, "orr-loadgen: %s\n", what);
        stop_and_join(&o, ts);
        report_failure(&o, what, first_err(&o, ts));
        return 1;
    }
    if (o.mode == LG_FANOUT) return run_fanout(&o, ts, connect_s);
    if (o.mode == LG_XSEND) return run_xsend(&o, ts, connect_s);
    return o.mode == LG_IDLE ? run_idle(&o, ts, connect_s, rss0) : run_load(&o, ts);
}
