#include "loop/loop.h"

#include "common/clock.h"
#include "common/err.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define LOOP_EVENTS 512

int orr_loop_init(orr_loop *l) {
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int q = orr_xq_init(&l->inbox);
    l->now_ms = orr_mono_ms();
    if (l->epfd < 0 || l->timer_fd < 0 || q < 0) return ORR_EFAIL;
    if (orr_loop_add(l, orr_xq_fd(&l->inbox), EPOLLIN, &l->inbox_h) < 0 ||
        orr_loop_add(l, l->timer_fd, EPOLLIN, &l->tick_h) < 0)
        return ORR_EFAIL;
    return 0;
}

void orr_loop_destroy(orr_loop *l) {
    if (l->epfd >= 0) close(l->epfd);
    if (l->timer_fd >= 0) close(l->timer_fd);
    l->epfd = l->timer_fd = -1;
    orr_xq_destroy(&l->inbox);
}

void orr_loop_tick(orr_loop *l, uint32_t period_ms, uint32_t first_ms) {
    if (!first_ms) first_ms = period_ms;
    struct itimerspec its = {
        .it_interval = {.tv_sec = period_ms / 1000, .tv_nsec = (long)(period_ms % 1000) * 1000000},
        .it_value = {.tv_sec = first_ms / 1000, .tv_nsec = (long)(first_ms % 1000) * 1000000},
    };
    timerfd_settime(l->timer_fd, 0, &its, NULL);
}

int orr_loop_add(orr_loop *l, int fd, uint32_t events, void *ptr) {
    struct epoll_event ev = {.events = events, .data.ptr = ptr};
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? ORR_EFAIL : 0;
}

int orr_loop_mod(orr_loop *l, int fd, uint32_t events, void *ptr) {
    struct epoll_event ev = {.events = events, .data.ptr = ptr};
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? ORR_EFAIL : 0;
}

void orr_loop_del(orr_loop *l, int fd) {
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
}

int orr_loop_pass(orr_loop *l, int timeout_ms) {
    struct epoll_event evs[LOOP_EVENTS];
    int n = epoll_wait(l->epfd, evs, LOOP_EVENTS, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : ORR_EFAIL;
    l->now_ms = orr_mono_ms();
    for (int i = 0; i < n; i++) {
        void *ptr = evs[i].data.ptr;
        if (ptr == &l->inbox_h) {
            l->on_inbox(l);
        } else if (ptr == &l->tick_h) {
            uint64_t ticks;
            ssize_t r = read(l->timer_fd, &ticks, sizeof ticks);
            (void)r;
            l->on_tick(l);
        } else if (l->on_other) {
            l->on_other(l, ptr, evs[i].events);
        } else {
            orr_loop_handler *h = ptr;
            h->on_event(h, evs[i].events);
        }
    }
    return n;
}
