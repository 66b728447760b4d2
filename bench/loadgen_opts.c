/*
 * orr-loadgen's command line: the options as a table (name, type, field,
 * bounds), their defaults, the checks between them, and --help.
 */
#include "loadgen.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fputs("usage: orr-loadgen --mode closed|flood|rate|idle|fanout|xsend --port PORT [options]\n"
          "  --host H            server address (127.0.0.1)\n"
          "  --port P            server port (8080)\n"
          "  --ports P1,P2,...   several servers on H (a cluster's nodes): connections are spread\n"
          "                      over them (fanout: member i on P[i % n], the publisher on P1;\n"
          "                      xsend: senders on P1, receivers on P2)\n"
          "  --path PATH         request path (/echo/ws; fanout, xsend: /testgear/ws)\n"
          "  --conns N           connections (100; fanout: members, 10000)\n"
          "  --threads T         generator threads, each with its own epoll (1)\n"
          "  --size S            payload bytes per text message (16)\n"
          "  --duration D        measured seconds (5)\n"
          "  --warmup W          seconds of load before the measurement (1)\n"
          "  --rate R            rate mode: messages/s per connection (20)\n"
          "  --tick MS           rate mode: send in bursts every MS ms (0: each message at its "
          "time)\n"
          "  --drain S           flood, xsend: longest wait for what is outstanding after the\n"
          "                      window (2)\n"
          "  --wbuf B            flood: bytes per write (65536)\n"
          "  --hold S            idle: seconds to hold the connections after \"ready\" (10)\n"
          "  --settle S          idle: wait before reading the server's RSS (1)\n"
          "  --connect-window N  handshakes in progress at once per thread (64)\n"
          "  --connect-timeout S give up opening connections after S seconds (60)\n"
          "  --verify/--no-verify  compare echoed bytes, not only lengths (on, off in flood)\n"
          "  --deflate           offer permessage-deflate (no context takeover either way) and\n"
          "                      send every message compressed (closed, flood, fanout, idle);\n"
          "                      compressed echoes are inflated only to verify them\n"
          "  --json              JSON-like text payloads instead of a-z\n"
          "  --pub-size N        fanout: bytes of every publication a member gets (0: seq:ns)\n"
          "  --spin              poll without sleeping while the load runs (see README)\n"
          "  --tls               wss://: a TLS handshake (certificate not verified) first\n"
          "                      (closed, flood, rate and idle modes)\n"
          "  --server-pid PID[=LABEL],...  sample these processes' CPU time (per thread too)\n"
          "                      from /proc; the first one's RSS (idle)\n"
          "  --label NAME        copied into the JSON line as \"server\"\n"
          "  --group G           fanout: the group the members join (bench)\n"
          "  --window K          fanout: publications in flight in the sustained phase (8);\n"
          "                      xsend: sends in flight per pair (32)\n"
          "  --lat-pubs N        fanout: publications sent one at a time for latency (100)\n"
          "  --stall S           fanout, xsend: fail when nothing completes for S seconds (10)\n"
          "  --pairs P           xsend: sender/receiver pairs (100)\n"
          "  --name-prefix X     fanout, xsend: prefix of every connection's name ('')\n"
          "Modes: closed = one message in flight per connection; flood = send as fast as the\n"
          "sockets take; rate = R msgs/s per connection, latency percentiles; idle = open and "
          "hold;\n"
          "fanout = N members (?name=m<i>) join G, one more connection (?name=pub) publishes;\n"
          "latency until the last member got a publication, deliveries/s with K in flight;\n"
          "xsend = P pairs: s<i> sends send:r<i>:<seq>:<ns> to r<i> (testgear) with W in flight;\n"
          "messages/s and latency from the send until the receiver got it.\n",
          f);
}

/* The options, as a table: name, type, where the value goes, bounds. */
enum opt_kind { OPT_INT, OPT_SIZE, OPT_DOUBLE, OPT_STRING, OPT_SET, OPT_MODE, OPT_PORTS, OPT_PIDS };

struct opt_def {
    const char *name;
    enum opt_kind kind;
    size_t off; /* into struct lg_opts */
    double min, max;
};

#define OPT(name, kind, field, min, max)                                                           \
    { name, kind, offsetof(struct lg_opts, field), min, max }

static const struct opt_def opt_defs[] = {
    OPT("mode", OPT_MODE, mode, 0, 0),
    OPT("host", OPT_STRING, host, 0, 0),
    OPT("port", OPT_INT, port, 1, 65535),
    OPT("path", OPT_STRING, path, 0, 0),
    OPT("conns", OPT_INT, conns, 1, 1000000),
    OPT("threads", OPT_INT, threads, 1, 256),
    OPT("size", OPT_SIZE, size, 0, 64 << 20),
    OPT("duration", OPT_DOUBLE, duration, 0.01, 86400),
    OPT("warmup", OPT_DOUBLE, warmup, 0, 3600),
    OPT("rate", OPT_DOUBLE, rate, 0.001, 1e7),
    OPT("tick", OPT_DOUBLE, tick, 0, 1000),
    OPT("drain", OPT_DOUBLE, drain, 0, 3600),
    OPT("wbuf", OPT_SIZE, wbuf, 1, 64 << 20),
    OPT("hold", OPT_DOUBLE, hold, 0, 1e7),
    OPT("settle", OPT_DOUBLE, settle, 0, 3600),
    OPT("connect-window", OPT_INT, connect_window, 1, 1000000),
    OPT("connect-timeout", OPT_DOUBLE, connect_timeout, 0.1, 3600),
    OPT("verify", OPT_SET, verify, 1, 0),
    OPT("no-verify", OPT_SET, verify, 0, 0),
    OPT("deflate", OPT_SET, deflate, 1, 0),
    OPT("json", OPT_SET, json, 1, 0),
    OPT("pub-size", OPT_SIZE, pub_size, 0, 1 << 20),
    OPT("spin", OPT_SET, spin, 1, 0),
    OPT("tls", OPT_SET, tls, 1, 0),
    OPT("server-pid", OPT_PIDS, server_pid, 1, 1 << 30),
    OPT("ports", OPT_PORTS, ports, 1, 65535),
    OPT("pairs", OPT_INT, pairs, 1, 100000),
    OPT("name-prefix", OPT_STRING, name_prefix, 0, 0),
    OPT("label", OPT_STRING, label, 0, 0),
    OPT("group", OPT_STRING, group, 0, 0),
    OPT("window", OPT_INT, window, 1, 1024),
    OPT("lat-pubs", OPT_INT, lat_pubs, 0, 1000000),
    OPT("stall", OPT_DOUBLE, stall, 0.1, 3600),
};

static void bad_option(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "orr-loadgen: ");
    fprintf(stderr, fmt, a, b);
    fputs(" (see --help)\n", stderr);
    exit(2);
}

static void set_option(struct lg_opts *o, const struct opt_def *d, const char *v) {
    char *field = (char *)o + d->off, *end;
    if (d->kind == OPT_STRING) {
        *(const char **)field = v;
        return;
    }
    if (d->kind == OPT_MODE) {
        static const char *modes[] = {"closed", "flood", "rate", "idle", "fanout", "xsend"};
        for (int m = 0; m < 6; m++)
            if (!strcmp(v, modes[m])) {
                *(enum lg_mode *)field = (enum lg_mode)m;
                return;
            }
        bad_option("--mode: closed, flood, rate, idle, fanout or xsend, not '%s'%s", v, "");
    }
    if (d->kind == OPT_PORTS || d->kind == OPT_PIDS) {
        /* A comma-separated list; PIDs may carry "=LABEL". */
        char *copy = strdup(v), *save = NULL;
        int n = 0, max = d->kind == OPT_PORTS ? LG_MAX_PORTS : LG_MAX_PIDS;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            char *label = d->kind == OPT_PIDS ? strchr(tok, '=') : NULL;
            if (label) *label++ = 0;
            double x = strtod(tok, &end);
            if (end == tok || *end || x < d->min || x > d->max || n == max)
                bad_option("--%s: '%s' is not a list of numbers in range", d->name, v);
            if (d->kind == OPT_PORTS) {
                o->ports[n++] = (int)x;
            } else {
                o->pid_labels[n] = label && *label ? label : NULL;
                o->server_pids[n++] = (int)x;
            }
        }
        if (!n) bad_option("--%s: '%s' is empty", d->name, v);
        if (d->kind == OPT_PORTS) o->n_ports = n;
        if (d->kind == OPT_PIDS) o->n_pids = n, o->server_pid = o->server_pids[0];
        return; /* copy stays: the labels point into it */
    }
    double d_val = strtod(v, &end);
    if (end == v || *end || d_val < d->min || d_val > d->max)
        bad_option("--%s: '%s' is not a number in range", d->name, v);
    if (d->kind == OPT_INT) *(int *)field = (int)d_val;
    if (d->kind == OPT_SIZE) *(size_t *)field = (size_t)d_val;
    if (d->kind == OPT_DOUBLE) *(double *)field = d_val;
}

void lg_parse_options(int argc, char **argv, struct lg_opts *o) {
    *o = (struct lg_opts){.mode = LG_CLOSED,
                          .host = "127.0.0.1",
                          .port = 8080,
                          .path = NULL,
                          .conns = 0,
                          .threads = 1,
                          .size = 16,
                          .duration = 5,
                          .warmup = 1,
                          .drain = 2,
                          .hold = 10,
                          .settle = 1,
                          .rate = 20,
                          .connect_timeout = 60,
                          .connect_window = 64,
                          .verify = -1,
                          .wbuf = 65536,
                          .group = "bench",
                          .window = 8,
                          .lat_pubs = 100,
                          .stall = 10,
                          .name_prefix = "",
                          .pairs = 100};
    int window_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(a, "--", 2)) bad_option("unexpected argument '%s'%s", a, "");
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        const struct opt_def *d = NULL;
        for (size_t k = 0; k < sizeof opt_defs / sizeof opt_defs[0]; k++)
            if (strlen(opt_defs[k].name) == nl && !strncmp(opt_defs[k].name, a + 2, nl))
                d = &opt_defs[k];
        if (!d) bad_option("unknown option '%s'%s", a, "");
        if (d->kind == OPT_SET) {
            *(int *)((char *)o + d->off) = (int)d->min;
            continue;
        }
        if (!eq && i + 1 >= argc) bad_option("%s wants a value%s", a, "");
        if (!strcmp(d->name, "window")) window_set = 1;
        set_option(o, d, eq ? eq + 1 : argv[++i]);
    }
    if (o->verify < 0) o->verify = o->mode != LG_FLOOD;
    if (!o->path)
        o->path = o->mode == LG_FANOUT || o->mode == LG_XSEND ? "/testgear/ws" : "/echo/ws";
    if (!o->conns) o->conns = o->mode == LG_FANOUT ? 10000 : 100;
    if (o->mode == LG_XSEND) {
        o->conns = 2 * o->pairs;
        if (!window_set) o->window = 32;
    }
    /* --ports: the first is --port unless --ports came alone. */
    if (!o->n_ports) {
        o->ports[0] = o->port;
        o->n_ports = 1;
    } else {
        o->port = o->ports[0];
    }
    if (strlen(o->name_prefix) > 24 ||
        strspn(o->name_prefix,
               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
            strlen(o->name_prefix))
        bad_option("--name-prefix: at most 24 of [A-Za-z0-9_.-], not '%s'%s", o->name_prefix, "");
    if (o->threads > o->conns) o->threads = o->conns;
    if (o->deflate && (o->mode == LG_RATE || o->mode == LG_XSEND))
        bad_option("--deflate: closed, flood, idle or fanout, not this mode%s%s", "", "");
    if (o->mode == LG_XSEND && o->threads > o->pairs) o->threads = o->pairs;
    /* The group goes into "publish:<g>:<seq>:<ns>", so no ':' and nothing
     * that needs escaping in a JSON line. */
    size_t gl = strlen(o->group);
    if (!gl || gl > 64 ||
        strspn(o->group, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789_.-") != gl)
        bad_option("--group: 1 to 64 of [A-Za-z0-9_.-], not '%s'%s", o->group, "");
}
