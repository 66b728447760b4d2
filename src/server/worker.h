/*
 * Workers as the server (server.c) sees them. The structure itself is in
 * internal.h because the connection code shares it.
 */
#ifndef ORR_SERVER_WORKER_H
#define ORR_SERVER_WORKER_H

#include <stdint.h>

typedef struct orr_worker orr_worker;
typedef struct orr_server orr_server;
typedef struct orr_conn orr_conn;

/* Sets up epoll, eventfd, timerfd and takes ownership of listen_fd. */
int orr_worker_init(orr_worker *w, orr_server *srv, int index, int listen_fd);
int orr_worker_start(orr_worker *w);
void orr_worker_join(orr_worker *w);
void orr_worker_destroy(orr_worker *w);
/* From any thread: start the graceful drain on that worker. */
void orr_worker_post_drain(orr_worker *w);
/* On the worker's own thread: the live connection with that id, or NULL. */
orr_conn *orr_worker_find(orr_worker *w, uint64_t id);

#endif
