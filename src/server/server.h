/*
 * The server: gears, router and worker threads for one configuration.
 * main() builds one, runs it until SIGTERM/SIGINT, and frees it.
 */
#ifndef ORR_SERVER_SERVER_H
#define ORR_SERVER_SERVER_H

#include "config/config.h"

#include <orrery/gear.h>

typedef struct orr_server orr_server;

/* Takes a copy of cfg. Serves the gears given (linked into the program:
 * they must outlive the server) and every gear in cfg->gears_dir (a file
 * that fails is logged and skipped). Returns NULL with a reason in err. */
orr_server *orr_server_new(const orr_config *cfg, const orr_gear *const *gears, size_t n_gears,
                           char *err, size_t errlen);
/* Where SIGHUP reloads the config from; `listen_overridden`: --listen was
 * given and keeps winning over the file. */
void orr_server_set_config_path(orr_server *s, const char *path, int listen_overridden);
/* Binds the listeners and starts the workers; returns 0 or -1 (logged). */
int orr_server_start(orr_server *s);
/* The port actually bound (useful with port 0). */
unsigned orr_server_port(const orr_server *s);
/* Blocks until SIGTERM or SIGINT, drains, joins the workers. Returns the
 * process exit status. Signals must be blocked in every thread beforehand
 * (orr_server_block_signals before orr_server_start). */
int orr_server_run(orr_server *s);
void orr_server_free(orr_server *s);
void orr_server_block_signals(void);

#endif
