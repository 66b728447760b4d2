/* build/orrery [--config FILE] [--listen HOST:PORT] [--gears-dir DIR] */
#include "common/log.h"
#include "config/config.h"
#include "server/server.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The gears_dir when neither the config nor --gears-dir gives one: the
 * build tree's (a path fixed at build time), or, for an installed binary,
 * ../lib/orrery/gears from its own directory (an install may be moved). */
#ifdef ORR_GEARS_NEXT_TO_BIN
#define ORR_DEFAULT_GEARS_TEXT "PREFIX/lib/orrery/gears, from this binary's place"
static void default_gears_dir(char *out, size_t cap) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(out, cap, "%s", ORR_GEARS_NEXT_TO_BIN);
        return;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    size_t a = strlen(exe), b = strlen(ORR_GEARS_NEXT_TO_BIN);
    if (a + b + 2 > cap) {
        snprintf(out, cap, "%s", ORR_GEARS_NEXT_TO_BIN);
        return;
    }
    memcpy(out, exe, a);
    out[a] = '/';
    memcpy(out + a + 1, ORR_GEARS_NEXT_TO_BIN, b + 1);
}
#else
#define ORR_DEFAULT_GEARS_TEXT ORR_DEFAULT_GEARS_DIR
static void default_gears_dir(char *out, size_t cap) {
    snprintf(out, cap, "%s", ORR_DEFAULT_GEARS_DIR);
}
#endif

static void usage(FILE *out) {
    fprintf(out,
            "usage: orrery [--config FILE] [--listen HOST:PORT] [--gears-dir DIR]\n"
            "\n"
            "Orrery, a WebSocket application server. Serves the gears of its gears_dir: every\n"
            "*.so there (by default " ORR_DEFAULT_GEARS_TEXT "),\n"
            "among them echo at /echo/ws and chat at /chat/ws?name=NAME; GET / (a page with a\n"
            "console and a chat client) and GET /healthz.\n"
            "\n"
            "flags:\n"
            "  --config FILE       JSON configuration (default: none, every key at its default)\n"
            "  --listen HOST:PORT  overrides the config's \"listen\" (default 127.0.0.1:8080; port "
            "0 = any free)\n"
            "  --gears-dir DIR     overrides the config's \"gears_dir\"\n"
            "  --help              this text\n"
            "\n"
            "config keys:\n");
    orr_config_print_keys(out);
    fprintf(out, "\nsignals: SIGTERM or SIGINT drain gracefully (close 1001 to every client over "
                 "drain_ms);\n"
                 "SIGHUP reloads the config file (pools, max_outbound_bytes, max_buffered_bytes, "
                 "api_token,\nlog_level, gear_config, the Lua limits, allowed_origins, "
                 "require_origin, deflate) and tls's certificate and key files, then gears_dir.\n");
}

typedef struct args {
    const char *config_path, *listen, *gears_dir;
} args;

/* The flags: -1 to go on, else the exit status (--help, or a bad flag). */
static int parse_args(int argc, char **argv, args *a) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            a->config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            a->config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--gears-dir") == 0 && i + 1 < argc) {
            a->gears_dir = argv[++i];
        } else if (strncmp(argv[i], "--gears-dir=", 12) == 0) {
            a->gears_dir = argv[i] + 12;
        } else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            a->listen = argv[++i];
        } else if (strncmp(argv[i], "--listen=", 9) == 0) {
            a->listen = argv[i] + 9;
        } else {
            fprintf(stderr, "orrery: unknown or incomplete argument '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    return -1;
}

/* The config file, then the flags over it: 0, or 2 (said on stderr). */
static int load_config(const args *a, orr_config *cfg) {
    char err[1024];
    if (a->config_path && orr_config_load(a->config_path, cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (a->listen && orr_config_parse_listen(a->listen, cfg->listen_host, sizeof cfg->listen_host,
                                             &cfg->listen_port, err, sizeof err) < 0) {
        fprintf(stderr, "orrery: --listen %s: %s\n", a->listen, err);
        return 2;
    }
    if (a->gears_dir) {
        if (!a->gears_dir[0] || strlen(a->gears_dir) >= sizeof cfg->gears_dir) {
            fprintf(stderr, "orrery: --gears-dir: a path of 1 to %zu bytes\n",
                    sizeof cfg->gears_dir - 1);
            return 2;
        }
        snprintf(cfg->gears_dir, sizeof cfg->gears_dir, "%s", a->gears_dir);
    } else if (!cfg->gears_dir[0]) {
        default_gears_dir(cfg->gears_dir, sizeof cfg->gears_dir);
    }
    return 0;
}

int main(int argc, char **argv) {
    args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;
    orr_config cfg;
    orr_config_defaults(&cfg);
    if (load_config(&a, &cfg) != 0) {
        orr_config_free(&cfg);
        return 2;
    }
    orr_log_set_level(cfg.log_level);

    char err[1024];
    orr_server *srv = orr_server_new(&cfg, NULL, 0, err, sizeof err);
    orr_config_free(&cfg);
    if (!srv) {
        fprintf(stderr, "orrery: %s\n", err);
        return 1;
    }
    orr_server_set_config_path(srv, a.config_path, a.listen != NULL);
    orr_server_block_signals();
    if (orr_server_start(srv) < 0) return 1;
    int status = orr_server_run(srv);
    orr_server_free(srv);
    return status;
}
