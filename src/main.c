/* build/orrery [--config FILE] [--listen HOST:PORT] */
#include "common/log.h"
#include "config/config.h"
#include "server/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: orrery [--config FILE] [--listen HOST:PORT]\n"
            "\n"
            "Orrery, a WebSocket application server. Serves its built-in gears (echo at /echo/ws,\n"
            "testgear at /testgear/ws, chat at /chat/ws?name=NAME), GET / (a page with a\n"
            "console and a chat client) and GET /healthz.\n"
            "\n"
            "flags:\n"
            "  --config FILE       JSON configuration (default: none, every key at its default)\n"
            "  --listen HOST:PORT  overrides the config's \"listen\" (default 127.0.0.1:8080; port "
            "0 = any free)\n"
            "  --help              this text\n"
            "\n"
            "config keys:\n");
    orr_config_print_keys(out);
    fprintf(out, "\nsignals: SIGTERM or SIGINT drain gracefully (close 1001 to every client over "
                 "drain_ms);\n"
                 "SIGHUP reloads the config file (pools, max_outbound_bytes, max_buffered_bytes, "
                 "api_token,\nlog_level).\n");
}

int main(int argc, char **argv) {
    const char *config_path = NULL, *listen = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen = argv[++i];
        } else if (strncmp(argv[i], "--listen=", 9) == 0) {
            listen = argv[i] + 9;
        } else {
            fprintf(stderr, "orrery: unknown or incomplete argument '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    orr_config cfg;
    char err[1024];
    orr_config_defaults(&cfg);
    if (config_path && orr_config_load(config_path, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (listen && orr_config_parse_listen(listen, cfg.listen_host, sizeof cfg.listen_host,
                                          &cfg.listen_port, err, sizeof err) < 0) {
        fprintf(stderr, "orrery: --listen %s: %s\n", listen, err);
        return 2;
    }
    orr_log_set_level(cfg.log_level);

    static const orr_gear *const gears[] = {&orr_gear_echo, &orr_gear_testgear, &orr_gear_chat};
    orr_server *srv = orr_server_new(&cfg, gears, sizeof gears / sizeof gears[0], err, sizeof err);
    if (!srv) {
        fprintf(stderr, "orrery: %s\n", err);
        return 1;
    }
    orr_server_set_config_path(srv, config_path, listen != NULL);
    orr_config_free(&cfg);
    orr_server_block_signals();
    if (orr_server_start(srv) < 0) return 1;
    int status = orr_server_run(srv);
    orr_server_free(srv);
    return status;
}
