/*
 * TLS through OpenSSL 3: the node's context, swapped whole by a reload, and
 * the calls a connection's handshake, reads and writes make.
 */
#include "tls/tls.h"

#include "common/err.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct orr_tls {
    pthread_mutex_t lock; /* guards ctx: handshakes take a reference under it */
    SSL_CTX *ctx;
};

/* ALPN: http/1.1, the only protocol spoken here (websockets start as it). */
static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
    static const unsigned char h11[] = "\x08http/1.1";
    (void)s;
    (void)arg;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* An encrypted key would make OpenSSL prompt on the terminal: refuse it. */
static int no_passphrase(char *buf, int size, int rw, void *u) {
    (void)buf;
    (void)size;
    (void)rw;
    (void)u;
    return 0;
}

/* OpenSSL's reason for the last error, or `dflt`. */
static const char *ssl_reason(const char *dflt) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : dflt;
}

static SSL_CTX *ctx_base(void) {
    SSL_CTX *x = SSL_CTX_new(TLS_server_method());
    if (!x) return NULL;
    SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(x, TLS1_3_VERSION);
    SSL_CTX_set_options(x, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Record buffers only while a record is in flight; writes that may stop
     * part-way and resume from the backlog, which moves when it grows. */
    SSL_CTX_set_mode(x, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* One read(2) per readiness, not two per record (header, then body). */
    SSL_CTX_set_read_ahead(x, 1);
    SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(x, 1);
    SSL_CTX_set_alpn_select_cb(x, alpn_select, NULL);
    SSL_CTX_set_default_passwd_cb(x, no_passphrase);
    return x;
}

static int readable(const char *path, char *why, size_t n) {
    FILE *f = fopen(path, "r");
    if (!f) return orr_errf(why, n, ORR_EINVAL, "cannot read %s: %s", path, strerror(errno));
    fclose(f);
    return 0;
}

static int use_cert(SSL_CTX *x, const char *cert, char *why, size_t n) {
    if (readable(cert, why, n) < 0) return ORR_EINVAL;
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(x, cert) != 1)
        return orr_errf(why, n, ORR_EINVAL, "%s: not a PEM certificate (%s)", cert,
                        ssl_reason("no certificate in it"));
    return 0;
}

static int use_key(SSL_CTX *x, const char *key, char *why, size_t n) {
    if (readable(key, why, n) < 0) return ORR_EINVAL;
    ERR_clear_error();
    if (SSL_CTX_use_PrivateKey_file(x, key, SSL_FILETYPE_PEM) != 1) {
        int r = ERR_GET_REASON(ERR_peek_last_error());
        if (r == X509_R_KEY_VALUES_MISMATCH || r == X509_R_KEY_TYPE_MISMATCH)
            return orr_errf(why, n, ORR_EINVAL, "%s does not match the certificate of tls.cert",
                            key);
        return orr_errf(why, n, ORR_EINVAL, "%s: not an unencrypted PEM private key (%s)", key,
                        ssl_reason("no key in it"));
    }
    if (SSL_CTX_check_private_key(x) != 1)
        return orr_errf(why, n, ORR_EINVAL, "%s does not match the certificate of tls.cert", key);
    return 0;
}

/* A new context for the pair, or NULL with *which and why. */
static SSL_CTX *ctx_load(const char *cert, const char *key, int *which, char *why, size_t n) {
    SSL_CTX *x = ctx_base();
    if (!x) {
        *which = ORR_TLS_CERT;
        orr_errf(why, n, ORR_ENOMEM, "OpenSSL: %s", ssl_reason("cannot make a context"));
        return NULL;
    }
    *which = ORR_TLS_CERT;
    if (use_cert(x, cert, why, n) == 0) {
        *which = ORR_TLS_KEY;
        if (use_key(x, key, why, n) == 0) return x;
    }
    SSL_CTX_free(x);
    ERR_clear_error();
    return NULL;
}

orr_tls *orr_tls_new(const char *cert, const char *key, int *which, char *why, size_t n) {
    SSL_CTX *x = ctx_load(cert, key, which, why, n);
    if (!x) return NULL;
    orr_tls *t = orr_xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    t->ctx = x;
    return t;
}

int orr_tls_reload(orr_tls *t, const char *cert, const char *key, int *which, char *why, size_t n) {
    SSL_CTX *x = ctx_load(cert, key, which, why, n);
    if (!x) return ORR_EINVAL;
    pthread_mutex_lock(&t->lock);
    SSL_CTX *old = t->ctx;
    t->ctx = x;
    pthread_mutex_unlock(&t->lock);
    SSL_CTX_free(old); /* connections made with it hold their own references */
    return 0;
}

void orr_tls_free(orr_tls *t) {
    if (!t) return;
    SSL_CTX_free(t->ctx);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

orr_tls_conn *orr_tls_conn_new(orr_tls *t, int fd) {
    pthread_mutex_lock(&t->lock);
    SSL *s = SSL_new(t->ctx); /* takes a reference on the context */
    pthread_mutex_unlock(&t->lock);
    if (!s) return NULL;
    if (SSL_set_fd(s, fd) != 1) {
        SSL_free(s);
        return NULL;
    }
    SSL_set_accept_state(s);
    return s;
}

void orr_tls_conn_free(orr_tls_conn *s) {
    SSL_free(s);
}

/* Why a handshake failed, for the log. */
static void handshake_why(int e, char *why, size_t n) {
    if (e == SSL_ERROR_SYSCALL && !ERR_peek_error())
        snprintf(why, n, "%s", errno ? strerror(errno) : "the client closed the connection");
    else
        snprintf(why, n, "%s", ssl_reason("protocol error"));
}

int orr_tls_handshake(orr_tls_conn *s, char *why, size_t n) {
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(s);
    if (r == 1) return 0;
    int e = SSL_get_error(s, r);
    if (e == SSL_ERROR_WANT_READ) return ORR_EAGAIN;
    if (e == SSL_ERROR_WANT_WRITE) return ORR_TLS_EWANT_WRITE;
    handshake_why(e, why, n);
    ERR_clear_error();
    return ORR_TLS_EHANDSHAKE;
}

/* OpenSSL wants the thread's error queue empty before an I/O call. Every
 * failure here empties it after, so it is only checked on the way in:
 * ERR_clear_error walks the whole queue (~800 instructions, callgrind),
 * twice per echoed message when it was called before each read and write. */
static void queue_empty(void) {
    if (ERR_peek_error()) ERR_clear_error();
}

ssize_t orr_tls_read(orr_tls_conn *s, void *buf, size_t n) {
    size_t k = 0;
    if (n > ORR_TLS_RECORD_MAX * 4) n = ORR_TLS_RECORD_MAX * 4;
    queue_empty();
    if (SSL_read_ex(s, buf, n, &k) == 1) return (ssize_t)k;
    int e = SSL_get_error(s, 0);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return ORR_EAGAIN;
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    return ORR_TLS_EIO;
}

int orr_tls_pending(const orr_tls_conn *s) {
    return SSL_has_pending(s);
}

/* errno for a failed write. */
static int write_errno(int e) {
    if (e == SSL_ERROR_SYSCALL && (errno == EPIPE || errno == ECONNRESET)) return errno;
    if (e == SSL_ERROR_SYSCALL && errno == 0) return EPIPE;
    return EPROTO;
}

ssize_t orr_tls_write(orr_tls_conn *s, const void *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        size_t k = 0;
        queue_empty();
        errno = 0;
        if (SSL_write_ex(s, (const char *)buf + done, n - done, &k) == 1) {
            done += k; /* one record at a time (partial writes) */
            continue;
        }
        int e = SSL_get_error(s, 0);
        ERR_clear_error();
        if (done) break;
        errno = e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? EAGAIN : write_errno(e);
        return -1;
    }
    return (ssize_t)done;
}

void orr_tls_close_notify(orr_tls_conn *s) {
    ERR_clear_error();
    if (SSL_is_init_finished(s)) SSL_shutdown(s);
    ERR_clear_error();
}
