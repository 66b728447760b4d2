/*
 * Orrery's configuration: one JSON file (jansson), defaults for every key,
 * and errors that name the file, line, column and key:
 *   FILE:LINE:COL: key: why
 */
#ifndef ORR_CONFIG_H
#define ORR_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct orr_config {
    char listen_host[256];       /* "listen": "HOST:PORT", default 127.0.0.1:8080 */
    uint16_t listen_port;
    int workers;                 /* default: number of online cores */
    char base_domain[256];       /* default "localhost" */
    uint32_t idle_timeout_ms;    /* default 60000 */
    uint64_t max_message_bytes;  /* default 5000000 */
    uint32_t drain_ms;           /* default 5000 */
    uint32_t close_timeout_ms;   /* default 5000 */
    uint32_t handshake_timeout_ms; /* default 10000 */
    int log_level;               /* "log_level": "debug"|"info"|"warn"|"error", default info */
} orr_config;

void orr_config_defaults(orr_config *c);

/*
 * Load `path` over the defaults. Returns 0, or -1 with a message of the form
 * "FILE:LINE:COL: key: why" in err (for syntax errors, the key is the one
 * being parsed or "(json)"). On failure *c is left unchanged, so a reload
 * with a bad file keeps the running config.
 */
int orr_config_load(const char *path, orr_config *c, char *err, size_t errlen);

/* Parse "HOST:PORT" ("[v6]:PORT" too). Returns 0 or -1 with a reason in err. */
int orr_config_parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port, char *err,
                            size_t errlen);

/* Every config key with its type, default and meaning, for --help. */
void orr_config_print_keys(FILE *out);

#endif
