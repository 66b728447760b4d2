/*
 * Gears as the server keeps them: a version check and a full-size copy of
 * what the gear declared (gear_copy_make), and gears loaded from shared
 * objects (gear_lib_open).
 *
 * Versions (include/orrery/gear.h): api_version is major << 16 | minor.
 * Within a major version fields are only appended, so a gear of an older
 * minor version has shorter structs: the copy takes the bytes its version
 * had and leaves the rest zero (NULL callbacks, no hooks). Everything past
 * the check reads only the copy.
 *
 * Shared objects: each load reads the file into its own memfd and dlopens
 * that, so two versions of one path are always two objects (glibc's dlopen
 * would hand back the one it already has for a known path or inode), and a
 * file rewritten in place later cannot change code that is running. The
 * memfd stays open while the object is loaded: its /proc/self/fd path must
 * not name another object meanwhile.
 */
#include "common/err.h"
#include "gearapi/gearapi.h"
#include "http/router.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The size of orr_gear in each minor version of the current major. */
static size_t gear_size_at(int minor) {
    return minor == 0 ? offsetof(orr_gear, on_load) : sizeof(orr_gear);
}

int gear_version_check(int api_version, char *why, size_t cap) {
    int major = api_version >> 16, minor = api_version & 0xffff;
    if (api_version <= 0 || major != ORR_GEAR_API_MAJOR)
        return orr_errf(why, cap, ORR_EINVAL,
                        "built against gear API %d.%d (api_version %d); this server speaks "
                        "%d.%d: rebuild it against this server's <orrery/gear.h>",
                        major, minor, api_version, ORR_GEAR_API_MAJOR, ORR_GEAR_API_MINOR);
    if (minor > ORR_GEAR_API_MINOR)
        return orr_errf(why, cap, ORR_EINVAL,
                        "built against gear API %d.%d, newer than this server's %d.%d", major,
                        minor, ORR_GEAR_API_MAJOR, ORR_GEAR_API_MINOR);
    return 0;
}

static int check_routes(const orr_gear *g, char *why, size_t cap) {
    if (g->n_ws_routes && !g->ws_routes)
        return orr_errf(why, cap, ORR_EINVAL, "gear %s: %zu routes but no route table", g->name,
                        g->n_ws_routes);
    if (g->n_ws_routes > 1024)
        return orr_errf(why, cap, ORR_EINVAL, "gear %s: %zu routes (at most 1024)", g->name,
                        g->n_ws_routes);
    for (size_t i = 0; i < g->n_ws_routes; i++)
        if (!g->ws_routes[i].pattern || !g->ws_routes[i].callbacks)
            return orr_errf(why, cap, ORR_EINVAL, "gear %s: route %zu has no %s", g->name, i,
                            g->ws_routes[i].pattern ? "callbacks" : "pattern");
    return 0;
}

int gear_copy_make(const orr_gear *g, gear_copy *out, char *why, size_t cap) {
    memset(out, 0, sizeof *out);
    if (!g) return orr_errf(why, cap, ORR_EINVAL, "no gear (orr_gear_entry returned NULL)");
    int rc = gear_version_check(g->api_version, why, cap);
    if (rc) return rc;
    /* Only the bytes the gear's version had: later fields stay zero. */
    memcpy(&out->gear, g, gear_size_at(g->api_version & 0xffff));
    const orr_gear *c = &out->gear;
    if (!c->name || !orr_gear_name_valid(c->name) || strcmp(c->name, "healthz") == 0)
        return orr_errf(why, cap, ORR_EINVAL, "gear name '%s' is not valid ([a-z][a-z0-9_]*)",
                        c->name ? c->name : "(null)");
    rc = check_routes(c, why, cap);
    if (rc) return rc;
    size_t n = c->n_ws_routes;
    out->routes = orr_xcalloc(n ? n : 1, sizeof *out->routes);
    out->callbacks = orr_xcalloc(n ? n : 1, sizeof *out->callbacks);
    for (size_t i = 0; i < n; i++) {
        out->callbacks[i] = *c->ws_routes[i].callbacks;
        out->routes[i].pattern = c->ws_routes[i].pattern;
        out->routes[i].callbacks = &out->callbacks[i];
    }
    out->gear.ws_routes = out->routes;
    return 0;
}

void gear_copy_free(gear_copy *c) {
    free(c->routes);
    free(c->callbacks);
    memset(c, 0, sizeof *c);
}

/* ---- shared objects ---- */

struct gear_lib {
    void *handle;
    int memfd;
    gear_copy copy;
};

/* The file's bytes in a new memfd (named after the file): its fd, or -1. */
static int copy_to_memfd(const char *path, char *why, size_t cap) {
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0) return orr_errf(why, cap, -1, "open: %s", strerror(errno));
    const char *base = strrchr(path, '/');
    char name[200];
    snprintf(name, sizeof name, "orrery-gear:%s", base ? base + 1 : path);
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) {
        close(in);
        return orr_errf(why, cap, -1, "memfd_create: %s", strerror(errno));
    }
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0) {
                n = -1;
                break;
            }
            off += w;
        }
        if (n < 0) break;
    }
    int err = errno;
    close(in);
    if (n < 0) {
        close(fd);
        return orr_errf(why, cap, -1, "reading it: %s", strerror(err));
    }
    return fd;
}

gear_lib *gear_lib_open(const char *path, char *why, size_t cap) {
    int fd = copy_to_memfd(path, why, cap);
    if (fd < 0) return NULL;
    char at[64];
    snprintf(at, sizeof at, "/proc/self/fd/%d", fd);
    /* RTLD_LOCAL: two gears (or two versions of one) may define the same
     * symbols; RTLD_NOW: an unresolved function is an error now, not a
     * crash at its first call. */
    void *h = dlopen(at, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        orr_errf(why, cap, -1, "dlopen: %s", dlerror());
        close(fd);
        return NULL;
    }
    const orr_gear *(*entry)(void) = (const orr_gear *(*)(void))dlsym(h, "orr_gear_entry");
    if (!entry) {
        orr_errf(why, cap, -1, "no orr_gear_entry: not a gear");
        dlclose(h);
        close(fd);
        return NULL;
    }
    gear_lib *l = orr_xcalloc(1, sizeof *l);
    l->handle = h;
    l->memfd = fd;
    if (gear_copy_make(entry(), &l->copy, why, cap) < 0) {
        gear_lib_close(l);
        return NULL;
    }
    return l;
}

const orr_gear *gear_lib_gear(const gear_lib *l) {
    return &l->copy.gear;
}

void gear_lib_close(gear_lib *l) {
    if (!l) return;
    gear_copy_free(&l->copy);
    dlclose(l->handle);
    close(l->memfd);
    free(l);
}
