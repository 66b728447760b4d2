/* Latency histogram of orr-loadgen: log-linear buckets, see loadgen.h. */
#include "loadgen.h"

#include <math.h>
#include <string.h>

void lg_hist_init(struct lg_hist *h) {
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v) {
    if (v < 2 * LG_HIST_SUB) return (unsigned)v;
    unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - 7; /* >= 1 */
    return 2 * LG_HIST_SUB + (shift - 1) * LG_HIST_SUB + (unsigned)(v >> shift) - LG_HIST_SUB;
}

/* The largest value that falls into bucket i. */
static uint64_t bucket_top(unsigned i) {
    if (i < 2 * LG_HIST_SUB) return i;
    unsigned shift = (i - 2 * LG_HIST_SUB) / LG_HIST_SUB + 1;
    uint64_t top = (i - 2 * LG_HIST_SUB) % LG_HIST_SUB + LG_HIST_SUB;
    return ((top + 1) << shift) - 1;
}

void lg_hist_add(struct lg_hist *h, uint64_t v) {
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max) h->max = v;
    if (v < h->min) h->min = v;
}

void lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src) {
    for (unsigned i = 0; i < LG_HIST_N; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->max > dst->max) dst->max = src->max;
    if (src->min < dst->min) dst->min = src->min;
}

uint64_t lg_hist_quantile(const struct lg_hist *h, double q) {
    if (!h->count) return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < LG_HIST_N; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t top = bucket_top(i);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}
