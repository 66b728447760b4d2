/*
 * The server: builds the router from the gears, binds one SO_REUSEPORT
 * listener per worker, runs the workers, and turns SIGTERM/SIGINT into a
 * graceful drain.
 */
#include "server/server.h"

#include "cluster/cluster.h"
#include "common/log.h"
#include "server/internal.h"
#include "server/worker.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* The pools the config lists, then the gears (each with its own pool): 0,
 * or -1 with err set. A listed pool of a gear not served is said. */
static int make_pools_and_gears(orr_server *s, const orr_gear *const *gears, size_t n_gears,
                                char *err, size_t errlen) {
    if (s->cfg.n_pools > s->cfg.max_pools)
        return orr_errf(err, errlen, -1,
                        "config: %zu pools listed in \"pools\", more than max_pools (%u)",
                        s->cfg.n_pools, s->cfg.max_pools);
    if (pools_init(s) < 0) return orr_errf(err, errlen, -1, "out of memory");
    if (gears_load(s, gears, n_gears, err, errlen) < 0) return -1;
    for (size_t i = 0; i < s->cfg.n_pools; i++) {
        const char *name = s->cfg.pools[i].name;
        if (strncmp(name, "gear:", 5) == 0 && !gears_serving(s, name + 5))
            orr_log(ORR_LOG_WARN, NULL, "config: pools: %s: no such gear here", name);
    }
    return 0;
}

/* The listener's certificate and key, when the config has "tls": a file
 * OpenSSL refuses is an error at its key's place in the config. */
static int tls_make(orr_server *s, char *err, size_t errlen) {
    const orr_tls_config *t = &s->cfg.tls;
    if (!t->enabled) return 0;
    char why[512];
    int which = 0;
    s->tls = orr_tls_new(t->cert, t->key, &which, why, sizeof why);
    if (s->tls) return 0;
    snprintf(err, errlen, "%s: tls.%s: %s", which == ORR_TLS_KEY ? t->key_at : t->cert_at,
             which == ORR_TLS_KEY ? "key" : "cert", why);
    return -1;
}

/* SIGHUP: both files read again (new handshakes use them); a bad one is
 * logged and the pair in service kept. */
static void tls_reload(orr_server *s, const orr_config *next) {
    if (next->tls.enabled != s->cfg.tls.enabled)
        orr_log(ORR_LOG_WARN, NULL, "SIGHUP: tls turned %s; it takes effect after a restart",
                next->tls.enabled ? "on" : "off");
    else
        s->cfg.tls = next->tls; /* read only here and at start: new paths apply now */
    if (!s->tls) return;
    const orr_tls_config *t = &s->cfg.tls;
    char why[512];
    int which = 0;
    if (orr_tls_reload(s->tls, t->cert, t->key, &which, why, sizeof why) < 0) {
        orr_log(ORR_LOG_ERROR, NULL, "SIGHUP: %s: tls.%s: %s; keeping the certificate in service",
                which == ORR_TLS_KEY ? t->key_at : t->cert_at,
                which == ORR_TLS_KEY ? "key" : "cert", why);
        return;
    }
    orr_log(ORR_LOG_INFO, NULL, "SIGHUP: TLS certificate %s and key %s loaded", t->cert, t->key);
}

orr_server *orr_server_new(const orr_config *cfg, const orr_gear *const *gears, size_t n_gears,
                           char *err, size_t errlen) {
    orr_server *s = orr_xcalloc(1, sizeof *s);
    if (orr_config_copy(&s->cfg, cfg) < 0) {
        snprintf(err, errlen, "out of memory");
        free(s);
        return NULL;
    }
    s->registry = orr_registry_new();
    /* Kept messages of parked names count in the memory budget. */
    orr_registry_park_budget(s->registry, &s->node.buffered, &s->node.max_buffered_bytes);
    pthread_mutex_init(&s->token_lock, NULL);
    origin_init(s);
    snprintf(s->api_token, sizeof s->api_token, "%s", cfg->api_token);
    s->node.cfg = &s->cfg;
    s->node.host = &worker_conn_host;
    s->node.gears = &s->gear_view;
    atomic_init(&s->node.max_outbound_bytes, cfg->max_outbound_bytes);
    atomic_init(&s->node.max_buffered_bytes, (size_t)cfg->max_buffered_bytes);
    atomic_init(&s->accept_error_logged_s, -1);
    if (tls_make(s, err, errlen) < 0 || make_pools_and_gears(s, gears, n_gears, err, errlen) < 0) {
        orr_server_free(s);
        return NULL;
    }
    return s;
}

void orr_server_set_config_path(orr_server *s, const char *path, int listen_overridden) {
    snprintf(s->config_path, sizeof s->config_path, "%s", path ? path : "");
    s->listen_overridden = listen_overridden != 0;
}

static int make_listener(const orr_config *cfg, uint16_t port) {
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    int rc = getaddrinfo(cfg->listen_host[0] ? cfg->listen_host : NULL, portstr, &hints, &res);
    if (rc != 0) {
        orr_log(ORR_LOG_ERROR, NULL, "listen %s: %s", cfg->listen_host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0) break;
        orr_log(ORR_LOG_ERROR, NULL, "listen %s:%u: %s", cfg->listen_host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static uint16_t bound_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

void orr_server_block_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int orr_server_start(orr_server *s) {
    int n = s->cfg.workers;
    s->workers = orr_xcalloc((size_t)n, sizeof *s->workers);
    /* The first listener fixes the port (the kernel's pick for port 0);
     * the others join it through SO_REUSEPORT. */
    uint16_t port = s->cfg.listen_port;
    for (int i = 0; i < n; i++) {
        int fd = make_listener(&s->cfg, port);
        if (fd < 0) return -1;
        if (i == 0) port = bound_port(fd);
        if (orr_worker_init(&s->workers[i], s, i, fd) < 0) return -1;
        s->n_workers = i + 1;
    }
    s->port = port;
    /* The registry backend: the one place that knows which there is. */
    if (s->cfg.cluster.enabled) {
        s->delivery = delivery_new(s);
        s->backend = orr_cluster_backend_start(&s->cfg, port, s->registry, s->delivery);
    } else {
        s->backend = orr_local_backend_new(s->registry);
    }
    if (!s->backend) return -1;
    mailbox_gear_host(s, &s->gear_view);
    size_t n_gears = s->table->n; /* before the workers: a reload may swap the table */
    for (int i = 0; i < n; i++)
        if (orr_worker_start(&s->workers[i]) < 0) return -1;
    orr_log(ORR_LOG_INFO, NULL, "orrery listening on %s:%u (%d workers, %zu gears)",
            s->cfg.listen_host, port, n, n_gears);
    return 0;
}

unsigned orr_server_port(const orr_server *s) {
    return s->port;
}

/* Keys that only a restart changes: a reload that changes one says so. */
static void note_restart_keys(const orr_config *a, const orr_config *b) {
    static const char *const fmt = "SIGHUP: %s changed; it takes effect after a restart";
    if (strcmp(a->listen_host, b->listen_host) || a->listen_port != b->listen_port)
        orr_log(ORR_LOG_WARN, NULL, fmt, "listen");
    if (a->workers != b->workers) orr_log(ORR_LOG_WARN, NULL, fmt, "workers");
    if (strcmp(a->base_domain, b->base_domain)) orr_log(ORR_LOG_WARN, NULL, fmt, "base_domain");
    if (a->idle_timeout_ms != b->idle_timeout_ms)
        orr_log(ORR_LOG_WARN, NULL, fmt, "idle_timeout_ms");
    if (a->ping_interval_ms != b->ping_interval_ms)
        orr_log(ORR_LOG_WARN, NULL, fmt, "ping_interval_ms");
    if (a->max_message_bytes != b->max_message_bytes)
        orr_log(ORR_LOG_WARN, NULL, fmt, "max_message_bytes");
    if (a->max_fragments != b->max_fragments) orr_log(ORR_LOG_WARN, NULL, fmt, "max_fragments");
    if (a->drain_ms != b->drain_ms) orr_log(ORR_LOG_WARN, NULL, fmt, "drain_ms");
    if (a->close_timeout_ms != b->close_timeout_ms)
        orr_log(ORR_LOG_WARN, NULL, fmt, "close_timeout_ms");
    if (a->handshake_timeout_ms != b->handshake_timeout_ms)
        orr_log(ORR_LOG_WARN, NULL, fmt, "handshake_timeout_ms");
    if (a->max_pools != b->max_pools) orr_log(ORR_LOG_WARN, NULL, fmt, "max_pools");
    if (a->retry_after_s != b->retry_after_s) orr_log(ORR_LOG_WARN, NULL, fmt, "retry_after_s");
    if (a->cluster.enabled != b->cluster.enabled ||
        strcmp(a->cluster.redis_url, b->cluster.redis_url) ||
        strcmp(a->cluster.node_id, b->cluster.node_id) ||
        a->cluster.heartbeat_ms != b->cluster.heartbeat_ms ||
        a->cluster.node_ttl_ms != b->cluster.node_ttl_ms)
        orr_log(ORR_LOG_WARN, NULL, fmt, "cluster");
}

/* SIGHUP: read the config file again. Pool limits, max_outbound_bytes,
 * max_buffered_bytes, api_token, log_level and the Origin keys apply at once (lowering a limit
 * disconnects nobody), the TLS files are read again; a file with an error changes nothing. */
static void reload_config(orr_server *s) {
    if (!s->config_path[0]) {
        orr_log(ORR_LOG_INFO, NULL, "SIGHUP: started without --config: no config to reload");
        return;
    }
    orr_config next;
    char err[1024];
    orr_config_defaults(&next);
    if (orr_config_load(s->config_path, &next, err, sizeof err) < 0) {
        orr_log(ORR_LOG_ERROR, NULL, "SIGHUP: %s; keeping the running config", err);
        return;
    }
    /* --listen given on the command line wins over the file, as at start. */
    if (s->listen_overridden) {
        memcpy(next.listen_host, s->cfg.listen_host, sizeof next.listen_host);
        next.listen_port = s->cfg.listen_port;
    }
    note_restart_keys(&s->cfg, &next);
    pools_reconfigure(s, &next);
    atomic_store_explicit(&s->node.max_outbound_bytes, next.max_outbound_bytes,
                          memory_order_relaxed);
    atomic_store_explicit(&s->node.max_buffered_bytes, (size_t)next.max_buffered_bytes,
                          memory_order_relaxed);
    pthread_mutex_lock(&s->token_lock);
    snprintf(s->api_token, sizeof s->api_token, "%s", next.api_token);
    pthread_mutex_unlock(&s->token_lock);
    orr_log_set_level(next.log_level);
    gears_set_config(s, &next);
    origin_set(s, &next);
    tls_reload(s, &next);
    if (next.gears_dir[0] && strcmp(next.gears_dir, s->cfg.gears_dir) != 0)
        orr_log(ORR_LOG_WARN, NULL, "SIGHUP: gears_dir changed to %s: takes a restart (still %s)",
                next.gears_dir, s->cfg.gears_dir);
    orr_log(ORR_LOG_INFO, NULL, "SIGHUP: reloaded %s", s->config_path);
    orr_config_free(&next);
}

/* SIGHUP: the config file (if any), then gears_dir scanned again. */
static void reload(orr_server *s) {
    reload_config(s);
    free(gears_reload(s));
}

/* On one node, what parked names still keep ends with the process: said. The pools are
 * listed first and the registry asked after, not under the pools' lock (the cluster thread
 * takes that one while holding the registry's). */
typedef struct parked_pools {
    struct {
        uint32_t idx;
        char name[POOL_NAME_MAX];
    } * v;
    size_t n, cap;
} parked_pools;

static void list_pool(void *arg, const orr_pool *p) {
    parked_pools *pp = arg;
    if (pp->n == pp->cap) {
        pp->cap = pp->cap ? pp->cap * 2 : 16;
        pp->v = orr_xrealloc(pp->v, pp->cap * sizeof *pp->v);
    }
    pp->v[pp->n].idx = p->idx;
    memcpy(pp->v[pp->n++].name, p->name, POOL_NAME_MAX);
}

static void log_parked(orr_server *s) {
    parked_pools pp = {0};
    pools_foreach(s, list_pool, &pp);
    for (size_t i = 0; i < pp.n; i++) {
        orr_park_stats st;
        orr_registry_park_stats(s->registry, pp.v[i].idx, &st);
        if (st.names || st.kept)
            orr_log(ORR_LOG_WARN, NULL,
                    "executor pool %s: exiting with %llu parked names keeping %llu messages "
                    "(without \"cluster\" they end with this node)",
                    pp.v[i].name, (unsigned long long)st.names, (unsigned long long)st.kept);
    }
    free(pp.v);
}

int orr_server_run(orr_server *s) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        orr_log(ORR_LOG_ERROR, NULL, "signalfd: %s", strerror(errno));
        return 1;
    }
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t r = read(sfd, &si, sizeof si);
        if (r != sizeof si) {
            if (r < 0 && errno == EINTR) continue;
            break;
        }
        if (si.ssi_signo == SIGHUP) {
            reload(s);
            continue;
        }
        orr_log(ORR_LOG_INFO, NULL, "%s: draining over %u ms",
                si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT", s->cfg.drain_ms);
        break;
    }
    close(sfd);
    atomic_store(&s->draining, 1);
    s->backend->ops->draining(s->backend);
    for (int i = 0; i < s->n_workers; i++)
        orr_worker_post_drain(&s->workers[i]);
    for (int i = 0; i < s->n_workers; i++)
        orr_worker_join(&s->workers[i]);
    /* The connections that ended last have their names to give back. */
    s->backend->ops->stop(s->backend);
    s->backend = NULL;
    /* In a cluster they live in Redis (and the gauge is the cluster's). */
    if (!s->cfg.cluster.enabled) log_parked(s);
    orr_log(ORR_LOG_INFO, NULL, "drained; exiting");
    return 0;
}

void orr_server_free(orr_server *s) {
    if (!s) return;
    for (int i = 0; i < s->n_workers; i++)
        orr_worker_destroy(&s->workers[i]);
    if (s->backend) s->backend->ops->stop(s->backend);
    delivery_free(s->delivery);
    free(s->workers);
    gears_unload(s);
    pools_free(s);
    if (s->registry) orr_registry_free(s->registry);
    pthread_mutex_destroy(&s->token_lock);
    origin_free(s);
    orr_tls_free(s->tls);
    orr_config_free(&s->cfg);
    free(s);
}
