/*
 * The server: builds the router from the gears, binds one SO_REUSEPORT
 * listener per worker, runs the workers, and turns SIGTERM/SIGINT into a
 * graceful drain.
 */
#include "server/server.h"

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

orr_server *orr_server_new(const orr_config *cfg, const orr_gear *const *gears, size_t n_gears,
                           char *err, size_t errlen) {
    orr_server *s = orr_xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->router = orr_router_new(cfg->base_domain);
    s->gears = orr_xcalloc(n_gears, sizeof *s->gears);
    size_t n_routes = 0;
    for (size_t i = 0; i < n_gears; i++) n_routes += gears[i]->n_ws_routes;
    s->targets = orr_xcalloc(n_routes, sizeof *s->targets);
    for (size_t i = 0; i < n_gears; i++) {
        const orr_gear *g = gears[i];
        if (g->api_version != ORR_GEAR_API_VERSION) {
            snprintf(err, errlen, "gear %s: api_version %d, this server speaks %d", g->name,
                     g->api_version, ORR_GEAR_API_VERSION);
            goto fail;
        }
        if (!orr_gear_name_valid(g->name) || strcmp(g->name, "healthz") == 0) {
            snprintf(err, errlen, "gear name '%s' is not valid", g->name);
            goto fail;
        }
        s->gears[s->n_gears++].gear = g;
        for (size_t r = 0; r < g->n_ws_routes; r++) {
            orr_route_target *t = &s->targets[s->n_targets++];
            t->gear = &s->gears[s->n_gears - 1];
            t->callbacks = g->ws_routes[r].callbacks;
            char why[256];
            if (orr_router_add(s->router, g->name, g->ws_routes[r].pattern, t, why, sizeof why) < 0) {
                snprintf(err, errlen, "gear %s: route %s: %s", g->name, g->ws_routes[r].pattern, why);
                goto fail;
            }
        }
    }
    s->index_html = orr_index_page(s, &s->index_html_len);
    return s;
fail:
    orr_server_free(s);
    return NULL;
}

static int make_listener(const orr_config *cfg, uint16_t port) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
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
    for (int i = 0; i < n; i++)
        if (orr_worker_start(&s->workers[i]) < 0) return -1;
    orr_log(ORR_LOG_INFO, NULL, "orrery listening on %s:%u (%d workers, %zu gears)", s->cfg.listen_host,
            port, n, s->n_gears);
    return 0;
}

unsigned orr_server_port(const orr_server *s) {
    return s->port;
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
            orr_log(ORR_LOG_INFO, NULL, "SIGHUP: nothing to reload in this version");
            continue;
        }
        orr_log(ORR_LOG_INFO, NULL, "%s: draining over %u ms", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT",
                s->cfg.drain_ms);
        break;
    }
    close(sfd);
    atomic_store(&s->draining, 1);
    for (int i = 0; i < s->n_workers; i++) orr_worker_post_drain(&s->workers[i]);
    for (int i = 0; i < s->n_workers; i++) orr_worker_join(&s->workers[i]);
    orr_log(ORR_LOG_INFO, NULL, "drained; exiting");
    return 0;
}

void orr_server_free(orr_server *s) {
    if (!s) return;
    for (int i = 0; i < s->n_workers; i++) orr_worker_destroy(&s->workers[i]);
    free(s->workers);
    orr_router_free(s->router);
    free(s->gears);
    free(s->targets);
    free(s->index_html);
    free(s);
}
