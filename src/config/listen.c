#include "config/config.h"
#include "config/config_internal.h"

#include "common/err.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <string.h>

static int is_alnum(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

const char *orr__config_check_hostname(const char *s) {
    size_t len = strlen(s);
    if (len == 0) return "empty host name";
    if (len > 253) return "host name longer than 253 bytes";
    if (strspn(s, "0123456789.") == len) {
        struct in_addr a;
        return inet_pton(AF_INET, s, &a) == 1 ? NULL : "not a valid IPv4 address";
    }
    for (const char *label = s;; label++) {
        size_t n = strcspn(label, ".");
        if (n == 0) return "empty label in host name (two dots, or a dot at an end)";
        if (n > 63) return "label longer than 63 bytes in host name";
        if (label[0] == '-' || label[n - 1] == '-')
            return "a host name label cannot start or end with '-'";
        for (size_t i = 0; i < n; i++)
            if (!is_alnum(label[i]) && label[i] != '-')
                return "host names allow only letters, digits, '-' and '.'";
        label += n;
        if (*label == '\0') return NULL;
    }
}

static int parse_port(const char *p, uint16_t *port) {
    unsigned long v = 0;
    if (*p == '\0') return -1;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > 65535) return -1;
    }
    /* Port 0 asks the kernel for any free port (the server logs the one it got). */
    *port = (uint16_t)v;
    return 0;
}

int orr_config_parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port, char *err,
                            size_t errlen) {
    const char *h, *colon;
    size_t hlen;
    char buf[256];

    if (!s || !*s)
        return orr_errf(err, errlen, -1, "expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080");
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close) return orr_errf(err, errlen, -1, "missing ']' after the IPv6 address");
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
        if (*colon != ':') return orr_errf(err, errlen, -1, "expected :PORT after ']'");
        struct in6_addr a;
        if (hlen >= sizeof buf) return orr_errf(err, errlen, -1, "not a valid IPv6 address");
        memcpy(buf, h, hlen);
        buf[hlen] = '\0';
        if (inet_pton(AF_INET6, buf, &a) != 1)
            return orr_errf(err, errlen, -1, "not a valid IPv6 address");
    } else {
        colon = strrchr(s, ':');
        if (!colon) return orr_errf(err, errlen, -1, "missing :PORT (expected HOST:PORT)");
        if (memchr(s, ':', (size_t)(colon - s)))
            return orr_errf(err, errlen, -1, "an IPv6 address needs brackets, e.g. [::1]:8080");
        h = s;
        hlen = (size_t)(colon - s);
        if (hlen == 0)
            return orr_errf(err, errlen, -1,
                            "missing host (0.0.0.0 listens on every IPv4 address)");
        if (hlen >= sizeof buf) return orr_errf(err, errlen, -1, "host name longer than 253 bytes");
        memcpy(buf, h, hlen);
        buf[hlen] = '\0';
        const char *why = orr__config_check_hostname(buf);
        if (why) return orr_errf(err, errlen, -1, "%s", why);
    }
    uint16_t p;
    if (parse_port(colon + 1, &p) < 0)
        return orr_errf(err, errlen, -1,
                        "the port must be a number from 0 to 65535 (0: any free port)");
    if (hlen >= hostlen)
        return orr_errf(err, errlen, -1, "host too long (at most %zu bytes)",
                        hostlen ? hostlen - 1 : 0);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = p;
    return 0;
}
