/*
 * A thread's event loop: one epoll set, a periodic tick (timerfd) and an
 * inbox other threads push to (xq.h), each pass dispatched in order. Workers
 * and the cluster thread each run one. Only the owning thread calls these,
 * but orr_xq_push* on `inbox` (from any thread).
 *
 * Dispatch: the loop's own fds (inbox, tick) go to on_inbox and on_tick;
 * any other event goes to on_other with its epoll data pointer, or, when
 * on_other is NULL, to the orr_loop_handler that pointer points to.
 */
#ifndef ORR_LOOP_LOOP_H
#define ORR_LOOP_LOOP_H

#include "loop/xq.h"

#include <stdint.h>

/* What an epoll event's data pointer points to when the loop dispatches
 * by handler: on_event gets the events as epoll gives them (EPOLLERR and
 * EPOLLHUP included). */
typedef struct orr_loop_handler {
    void (*on_event)(struct orr_loop_handler *h, uint32_t events);
} orr_loop_handler;

typedef struct orr_loop orr_loop;
struct orr_loop {
    int epfd, timer_fd;
    orr_xq inbox;   /* items from other threads: on_inbox takes them */
    int64_t now_ms; /* monotonic, refreshed once per pass, before dispatch */
    void (*on_inbox)(orr_loop *l);
    void (*on_tick)(orr_loop *l);
    void (*on_other)(orr_loop *l, void *ptr, uint32_t events); /* NULL: by handler */
    orr_loop_handler inbox_h, tick_h;                          /* markers for the loop's own fds */
};

/* Creates the epoll set, the timerfd (not armed) and the inbox: 0, or
 * ORR_EFAIL with errno. The callbacks are the caller's to set. */
int orr_loop_init(orr_loop *l);
/* Closes them; items still in the inbox are the caller's (take them first). */
void orr_loop_destroy(orr_loop *l);
/* The tick every period_ms (the first after first_ms; 0: period_ms). */
void orr_loop_tick(orr_loop *l, uint32_t period_ms, uint32_t first_ms);
/* Watch fd for events with ptr as its data pointer: 0 or ORR_EFAIL (errno). */
int orr_loop_add(orr_loop *l, int fd, uint32_t events, void *ptr);
int orr_loop_mod(orr_loop *l, int fd, uint32_t events, void *ptr);
void orr_loop_del(orr_loop *l, int fd);
/* One pass: waits up to timeout_ms (-1: until an event) and dispatches
 * what came. Returns the number of events, or ORR_EFAIL (errno; EINTR is a
 * pass with none). */
int orr_loop_pass(orr_loop *l, int timeout_ms);

#endif
