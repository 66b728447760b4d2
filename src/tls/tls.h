/*
 * src/tls: TLS on the listener, through OpenSSL 3. It knows sockets only as
 * file descriptors and knows nothing of connections: src/conn drives a
 * connection's handshake, reads and writes through these functions, and
 * src/server owns the node's orr_tls and swaps its certificate on SIGHUP.
 *
 * What every handshake gets: TLS 1.2 and 1.3 only, ALPN "http/1.1" (a
 * client that offers ALPN without it is refused, RFC 7301), no
 * renegotiation, no compression, one session ticket, no server-side
 * session cache. An SSL holds record buffers only while a record is in
 * flight (SSL_MODE_RELEASE_BUFFERS): an idle connection holds none.
 *
 * Errors follow src/common/err.h; this module's own codes are -300...
 */
#ifndef ORR_TLS_TLS_H
#define ORR_TLS_TLS_H

#include <stddef.h>
#include <sys/types.h>

/* The node's certificate in service (any thread). */
typedef struct orr_tls orr_tls;
/* One connection's TLS: an OpenSSL SSL (only its worker touches it). */
typedef struct ssl_st orr_tls_conn;

/* The most plaintext one record carries: what a write OpenSSL could not
 * finish may hold, encrypted, of the bytes it was offered. */
#define ORR_TLS_RECORD_MAX 16384

/* Which file an error is about. */
enum { ORR_TLS_CERT = 1, ORR_TLS_KEY = 2 };

enum {
    ORR_TLS_EWANT_WRITE = -300, /* the handshake waits until the socket takes more */
    ORR_TLS_EHANDSHAKE = -301,  /* the handshake failed (why says how) */
    ORR_TLS_EIO = -302,         /* a read failed: bad record, reset */
};

/*
 * A context for the PEM files cert (a certificate, or a chain, leaf first)
 * and key (its private key, not encrypted). Returns it, or NULL with
 * *which (ORR_TLS_CERT or ORR_TLS_KEY) naming the file at fault and why
 * ("cannot read ...", "no certificate in it", "does not match the
 * certificate", ...).
 */
orr_tls *orr_tls_new(const char *cert, const char *key, int *which, char *why, size_t n);
/* Reads both files again: new handshakes use the new pair, connections
 * keep theirs. Returns 0, or a negative code with *which and why, the old
 * pair kept. Any thread. */
int orr_tls_reload(orr_tls *t, const char *cert, const char *key, int *which, char *why, size_t n);
void orr_tls_free(orr_tls *t);

/* A server-side TLS on the accepted socket fd with the pair in service
 * now, or NULL (OpenSSL out of memory). Freed with orr_tls_conn_free. */
orr_tls_conn *orr_tls_conn_new(orr_tls *t, int fd);
void orr_tls_conn_free(orr_tls_conn *s);

/* One step of the handshake, on readiness: 0 when it is done, ORR_EAGAIN
 * (wants to read), ORR_TLS_EWANT_WRITE, or ORR_TLS_EHANDSHAKE with why. */
int orr_tls_handshake(orr_tls_conn *s, char *why, size_t n);

/* One record's plaintext into buf (n at least 16 KiB, so that none is
 * left half-read). Returns the bytes, 0 at the end (close_notify or the TCP
 * connection's end), ORR_EAGAIN, or ORR_TLS_EIO. Reads ahead: one read(2)
 * takes what the socket has, and records may then wait inside OpenSSL with
 * the socket no longer readable: see orr_tls_pending. */
ssize_t orr_tls_read(orr_tls_conn *s, void *buf, size_t n);
/* Whether bytes read from the socket wait inside OpenSSL (read them before
 * waiting for readiness again). */
int orr_tls_pending(const orr_tls_conn *s);

/* Like send(2): the bytes of buf taken (encrypted and written), or -1 with
 * errno (EAGAIN: none could be; EPIPE, ECONNRESET, EPROTO). After a short
 * write or EAGAIN the next call must start with the bytes not taken, at
 * least as many (the backlog does: it only grows, and may move). */
ssize_t orr_tls_write(orr_tls_conn *s, const void *buf, size_t n);

/* Sends close_notify, best effort (before shutting the socket's writes). */
void orr_tls_close_notify(orr_tls_conn *s);

#endif
