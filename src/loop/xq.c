#include "loop/xq.h"

#include "common/err.h"

#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int orr_xq_init(orr_xq *q) {
    q->items.head = q->items.tail = NULL;
    q->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->fd < 0) return ORR_EFAIL;
    pthread_mutex_init(&q->lock, NULL);
    return 0;
}

void orr_xq_destroy(orr_xq *q) {
    if (q->fd < 0) return;
    close(q->fd);
    q->fd = -1;
    pthread_mutex_destroy(&q->lock);
}

void orr_xq_wake(orr_xq *q) {
    uint64_t one = 1;
    ssize_t r = write(q->fd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is full, the consumer wakes anyway */
}

void orr_xq_push(orr_xq *q, orr_xq_chain *c) {
    if (!c->head) return;
    pthread_mutex_lock(&q->lock);
    bool was_empty = q->items.head == NULL;
    if (q->items.tail)
        q->items.tail->next = c->head;
    else
        q->items.head = c->head;
    q->items.tail = c->tail;
    pthread_mutex_unlock(&q->lock);
    c->head = c->tail = NULL;
    if (was_empty) orr_xq_wake(q);
}

void orr_xq_push_one(orr_xq *q, orr_xq_link *l) {
    orr_xq_chain c = {NULL, NULL};
    orr_xq_chain_add(&c, l);
    orr_xq_push(q, &c);
}

orr_xq_link *orr_xq_take(orr_xq *q) {
    uint64_t n;
    ssize_t r = read(q->fd, &n, sizeof n);
    (void)r;
    pthread_mutex_lock(&q->lock);
    orr_xq_link *l = q->items.head;
    q->items.head = q->items.tail = NULL;
    pthread_mutex_unlock(&q->lock);
    return l;
}
