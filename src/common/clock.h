/* Clocks, in milliseconds: monotonic (coarse: timeouts and ticks) and
 * wall-clock (context ids, registration times). */
#ifndef ORR_COMMON_CLOCK_H
#define ORR_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t orr_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t orr_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
