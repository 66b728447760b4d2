/*
 * --help's table of config keys (orr_config_print_keys): one line per key,
 * an object key's entries indented under it, with its type and default.
 */
#include "config/config_internal.h"

#include <stdio.h>
#include <string.h>

/* The columns of one --help line. */
typedef struct help_row {
    char name[64], type[64], def[340];
} help_row;

static void help_row_of(const orr__config_key *k, const void *defaults, int nested, help_row *r) {
    char value[300];
    snprintf(r->name, sizeof r->name, "%s%s", nested ? "  " : "", k->name);
    if (k->type)
        snprintf(r->type, sizeof r->type, "%s", k->type);
    else if (k->choices)
        orr__config_choices_text(k, 1, r->type, sizeof r->type);
    else
        snprintf(r->type, sizeof r->type, "integer %lld..%lld", k->min, k->max);
    k->show(k, defaults, value, sizeof value);
    if (k->default_note)
        snprintf(r->def, sizeof r->def, "%s (%s)", k->default_note, value);
    else
        snprintf(r->def, sizeof r->def, "%s", value);
}

static void widen(int *w, const char *s) {
    int len = (int)strlen(s);
    if (len > *w) *w = len;
}

/*
 * One line per key, an object key's entries indented under it, in columns
 * as wide as their widest cell. pass 0 measures into w, pass 1 prints.
 */
static void help_table(FILE *out, int pass, int w[3], const orr__config_key *keys, size_t n,
                       const orr_config *d) {
    for (size_t i = 0; i < n; i++) {
        help_row r;
        orr__config_sub_scratch scratch;
        const void *sub_d = keys[i].sub_defaults ? keys[i].sub_defaults(d, &scratch) : NULL;
        help_row_of(&keys[i], d, 0, &r);
        const orr__config_table *sub = keys[i].sub;
        for (size_t j = 0; j <= (sub ? sub->n : 0); j++) {
            if (j > 0) help_row_of(&sub->keys[j - 1], sub_d, 1, &r);
            const char *meaning = j ? sub->keys[j - 1].meaning : keys[i].meaning;
            if (pass == 0) {
                widen(&w[0], r.name);
                widen(&w[1], r.type);
                widen(&w[2], r.def);
            } else {
                fprintf(out, "  %-*s %-*s %-*s %s\n", w[0], r.name, w[1], r.type, w[2], r.def,
                        meaning);
            }
        }
    }
}

void orr__config_print_table(FILE *out, const orr__config_key *keys, size_t n) {
    orr_config d;
    int w[3] = {21, 21, 18}; /* at least these, so short tables keep their look */
    orr_config_defaults(&d);
    help_table(out, 0, w, keys, n, &d);
    help_table(out, 1, w, keys, n, &d);
}
