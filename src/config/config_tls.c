/*
 * The config key "tls": {"cert": PATH, "key": PATH}. Both files must be
 * readable when the config is loaded (the message names the key, at its
 * value); whether they hold a certificate and its key only OpenSSL can say,
 * when the server makes its context (src/tls), so the position of each value
 * is kept for that message.
 */
#include "common/err.h"
#include "config/config_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int load_pem_path(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base) {
    char g[80];
    if (!json_is_string(v) || json_string_length(v) == 0)
        return orr__config_fail_at(ctx, k->name, 1, "expected a non-empty path string, got %s",
                                   orr__config_got(v, g, sizeof g));
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len >= k->size)
        return orr__config_fail_at(ctx, k->name, 1, "a path of at most %zu bytes", k->size - 1);
    int fd = open(s, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return orr__config_fail_at(ctx, k->name, 1, "cannot read %s: %s", s, strerror(errno));
    int isdir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    close(fd);
    if (isdir) return orr__config_fail_at(ctx, k->name, 1, "%s is a directory, not a PEM file", s);
    memcpy(orr__config_field(base, k), s, len + 1);
    return 0;
}

static void show_pem_path(const orr__config_key *k, const void *base, char *buf, size_t n) {
    const char *p = orr__config_cfield(base, k);
    snprintf(buf, n, "%s", *p ? p : "required");
}

static const orr__config_key tls_keys[] = {
    {.name = "cert",
     .type = "path",
     .meaning = "PEM file: the server's certificate, then any intermediates",
     .offset = offsetof(orr_tls_config, cert),
     .size = sizeof(((orr_tls_config *)0)->cert),
     .load = load_pem_path,
     .show = show_pem_path},
    {.name = "key",
     .type = "path",
     .meaning = "PEM file: the certificate's private key (not encrypted)",
     .offset = offsetof(orr_tls_config, key),
     .size = sizeof(((orr_tls_config *)0)->key),
     .load = load_pem_path,
     .show = show_pem_path},
};

const orr__config_table orr__config_tls_table = {tls_keys, ORR_ARRAY_LEN(tls_keys)};

int orr__config_load_tls(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base) {
    orr_config *c = base;
    orr_tls_config t = {.enabled = false};
    char g[80];
    if (!json_is_object(v))
        return orr__config_fail_at(ctx, k->name, 1,
                                   "expected an object {\"cert\": PATH, \"key\": PATH}, got %s",
                                   orr__config_got(v, g, sizeof g));
    ctx->path[ctx->depth++] = k->name;
    int rc = orr__config_load_object(ctx, tls_keys, ORR_ARRAY_LEN(tls_keys), v, &t);
    if (rc == 0) {
        orr__config_where(ctx, "cert", t.cert_at, sizeof t.cert_at);
        orr__config_where(ctx, "key", t.key_at, sizeof t.key_at);
    }
    ctx->depth--;
    if (rc < 0) return -1;
    const char *missing = !t.cert[0] ? "cert" : !t.key[0] ? "key" : NULL;
    if (missing)
        return orr__config_fail_at(ctx, k->name, 1,
                                   "\"%s\" is required: {\"cert\": PATH, \"key\": PATH}", missing);
    t.enabled = true;
    c->tls = t;
    return 0;
}

void orr__config_show_tls(const orr__config_key *k, const void *base, char *buf, size_t n) {
    const orr_config *c = base;
    (void)k;
    snprintf(buf, n, "%s", c->tls.enabled ? "{...}" : "none (plain TCP)");
}

const void *orr__config_tls_defaults(const orr_config *d, orr__config_sub_scratch *s) {
    (void)d;
    s->tls = (orr_tls_config){.enabled = false};
    return &s->tls;
}
