/*
 * Intrusive doubly linked list: the link lives inside the item and
 * ORR_CONTAINER_OF finds the item, so queues of connections and timers need
 * no allocation and remove in O(1).
 */
#ifndef ORR_COMMON_LIST_H
#define ORR_COMMON_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct orr_link {
    struct orr_link *prev, *next;
} orr_link;

/* A list head is a link whose prev/next point to itself when empty. */
static inline void orr_list_init(orr_link *head) {
    head->prev = head->next = head;
}
static inline bool orr_list_empty(const orr_link *head) {
    return head->next == head;
}
/* An unlinked item has NULL pointers, so removal can be made idempotent. */
static inline bool orr_link_linked(const orr_link *l) {
    return l->next != NULL;
}
static inline void orr_list_push_back(orr_link *head, orr_link *l) {
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}
static inline void orr_list_remove(orr_link *l) {
    if (!l->next) return;
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = NULL;
}
static inline orr_link *orr_list_front(const orr_link *head) {
    return head->next == head ? NULL : head->next;
}

#endif
