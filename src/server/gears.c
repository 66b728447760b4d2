/*
 * The gears served, as versions, and the reloads that change them.
 *
 * Gears come from the program (unit tests link theirs) and from the *.so
 * and *.lua files of gears_dir (Lua gears: src/luagear). Each loaded gear is a version
 * (internal.h): its code, its checked copy, its route targets. Handshakes route through a table
 * (router + versions in service) that a reload builds anew and swaps under
 * table_lock; a handshake takes a reference on the version it was routed to,
 * and its connection keeps it until its struct is freed. A version out of
 * service (its file changed or removed) is unloaded when its last
 * connection is gone: on_unload, then dlclose. So an upgrade drops no one:
 * open connections keep the code (and state layout) they started with, new
 * handshakes get the new version at once. A Lua gear goes further: its
 * runtime (one per name) is told of each version put in service, and open
 * connections run the new code from their next callback on, their state
 * kept (the old version is then only their route, until they end).
 *
 * A file that fails (not a gear, a version refused, a bad name or route, a
 * name another file serves, on_load refusing, no room for its pool) is
 * logged as `gear FILE: why` and changes nothing. A gear's pool (gear:NAME)
 * belongs to its name, not to a version, so names and groups survive an
 * upgrade.
 */
#include "common/clock.h"
#include "common/log.h"
#include "gearapi/gearapi.h"
#include "server/internal.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define BIND_CHUNK 256

/* ---- files ---- */

typedef struct gear_file {
    char name[256];
    struct stat st;
} gear_file;

static int by_name(const void *a, const void *b) {
    return strcmp(((const gear_file *)a)->name, ((const gear_file *)b)->name);
}

static bool ends_with(const char *s, size_t len, const char *suffix) {
    size_t n = strlen(suffix);
    return len > n && strcmp(s + len - n, suffix) == 0;
}

/* The *.so and *.lua files of dir (regular files, not hidden), sorted:
 * NULL with errno when dir cannot be read. */
static gear_file *gear_files(const char *dir, size_t *n) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    gear_file *fs = orr_xcalloc(1, sizeof *fs);
    size_t cap = 1;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len >= sizeof fs->name ||
            !(ends_with(e->d_name, len, ".so") || ends_with(e->d_name, len, ".lua")))
            continue;
        gear_file f;
        memcpy(f.name, e->d_name, len + 1);
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, f.name);
        if (stat(path, &f.st) < 0 || !S_ISREG(f.st.st_mode)) continue;
        if (*n == cap) fs = orr_xrealloc(fs, (cap *= 2) * sizeof *fs);
        fs[(*n)++] = f;
    }
    closedir(d);
    qsort(fs, *n, sizeof *fs, by_name);
    return fs;
}

static bool same_file(const gear_version *v, const struct stat *st) {
    int64_t mtime = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    return v->dev == (uint64_t)st->st_dev && v->ino == (uint64_t)st->st_ino &&
           v->size == (uint64_t)st->st_size && v->mtime_ns == mtime;
}

/* "echo.so, loaded 2026-12-02T09:41:37.877Z" (or "linked"). */
static void version_label(const gear_version *v, char *out, size_t cap) {
    if (!v->file[0]) {
        snprintf(out, cap, "linked");
        return;
    }
    time_t sec = (time_t)(v->loaded_ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char at[40];
    strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s, loaded %s.%03dZ", v->file, at, (int)(v->loaded_ms % 1000));
}

/* ---- names and counts (gears lock) ---- */

static void count_load(orr_server *s, const char *label, bool ok) {
    gear_loads *l = NULL;
    for (size_t i = 0; i < s->n_loads && !l; i++)
        if (strcmp(s->loads[i].label, label) == 0) l = &s->loads[i];
    if (!l) {
        if (s->n_loads == s->cap_loads)
            s->loads = orr_xrealloc(s->loads, (s->cap_loads = s->cap_loads ? s->cap_loads * 2 : 8) *
                                                  sizeof *s->loads);
        l = &s->loads[s->n_loads++];
        memset(l, 0, sizeof *l);
        snprintf(l->label, sizeof l->label, "%s", label);
    }
    if (ok)
        l->ok++;
    else
        l->error++;
}

/* The name's record, made with its pool on first use: NULL with why when
 * no pool can be made (max_pools). */
static gear_name *name_get(orr_server *s, const char *name, char *why, size_t cap) {
    for (size_t i = 0; i < s->n_names; i++)
        if (strcmp(s->names[i]->name, name) == 0) return s->names[i];
    char pool[ORR_POOL_NAME_MAX];
    snprintf(pool, sizeof pool, "gear:%s", name);
    orr_pool *p = pools_add_gear(s, pool);
    if (!p) {
        orr_errf(why, cap, -1, "no room for its pool %s (max_pools %u)", pool, s->cfg.max_pools);
        return NULL;
    }
    if (s->n_names == s->cap_names)
        s->names = orr_xrealloc(s->names, (s->cap_names = s->cap_names ? s->cap_names * 2 : 8) *
                                              sizeof *s->names);
    gear_name *n = orr_xcalloc(1, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    n->pool = p;
    s->names[s->n_names++] = n;
    return n;
}

/* ---- versions ---- */

static gear_version *version_new(orr_server *s, const orr_gear *g, gear_name *name) {
    gear_version *v = orr_xcalloc(1, sizeof *v);
    v->srv = s;
    v->gear = g;
    v->name = name;
    v->loaded_ms = orr_wall_ms();
    atomic_init(&v->refs, 1);
    size_t n = g->n_ws_routes;
    v->targets = orr_xcalloc(n ? n : 1, sizeof *v->targets);
    for (size_t r = 0; r < n; r++) {
        v->targets[r].r.callbacks = g->ws_routes[r].callbacks;
        v->targets[r].r.gear = g->name;
        v->targets[r].version = v;
    }
    v->n_chunks = (s->cfg.max_pools + BIND_CHUNK - 1) / BIND_CHUNK;
    v->binds = orr_xcalloc(n * v->n_chunks + 1, sizeof *v->binds);
    pthread_mutex_init(&v->bind_lock, NULL);
    atomic_fetch_add_explicit(&name->versions, 1, memory_order_relaxed);
    return v;
}

static void version_destroy(gear_version *v) {
    char label[320];
    version_label(v, label, sizeof label);
    if (v->gear->on_unload) v->gear->on_unload();
    if (v->file[0])
        orr_log(ORR_LOG_INFO, NULL, "gear %s: version %s unloaded", v->name->name, label);
    size_t n = v->gear->n_ws_routes * v->n_chunks;
    for (size_t i = 0; i < n; i++) {
        orr_route_target *_Atomic *chunk = v->binds[i];
        if (!chunk) continue;
        for (size_t k = 0; k < BIND_CHUNK; k++)
            free(chunk[k]);
        free(chunk);
    }
    free(v->binds);
    pthread_mutex_destroy(&v->bind_lock);
    atomic_fetch_sub_explicit(&v->name->versions, 1, memory_order_relaxed);
    free(v->targets);
    if (v->lua)
        orr_luagear_code_free(v->lua);
    else if (v->lib)
        gear_lib_close(v->lib);
    else
        gear_copy_free(&v->copy);
    free(v);
}

static void version_ref(gear_version *v) {
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
}

void gears_version_unref(gear_version *v) {
    if (v && atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1) version_destroy(v);
}

/* Fills b for p: the pool's fields, then the pool itself, which readers
 * check (release: they see the fields it goes with). A refill (the idx of
 * a pool gone with all its connections, now another pool's) writes only
 * these: the route's part of b was set when b was made, and is read
 * without the lock. */
static void bind_pool(orr_route_target *b, orr_pool *p) {
    b->r.pool = p->name;
    b->r.pool_len = p->name_len;
    b->r.pool_idx = p->idx;
    b->r.slow_closes = &p->slow_closes;
    b->r.deflate_min = &p->deflate_min;
    b->r.park_ms = &p->park_ms;
    atomic_store_explicit(&b->pool, p, memory_order_release);
}

const orr_route_target *gears_bind(const orr_route_target *route, orr_pool *p) {
    gear_version *v = route->version;
    size_t slot = (size_t)(route - v->targets) * v->n_chunks + p->idx / BIND_CHUNK;
    size_t k = p->idx % BIND_CHUNK;
    orr_route_target *_Atomic *chunk = atomic_load_explicit(&v->binds[slot], memory_order_acquire);
    orr_route_target *b = chunk ? atomic_load_explicit(&chunk[k], memory_order_acquire) : NULL;
    if (b && atomic_load_explicit(&b->pool, memory_order_acquire) == p) return b;
    /* First use of this (route, pool), or its idx was another pool's, now
     * gone with all its connections: made (or refilled) under the lock. */
    pthread_mutex_lock(&v->bind_lock);
    chunk = atomic_load_explicit(&v->binds[slot], memory_order_acquire);
    if (!chunk) {
        chunk = orr_xcalloc(BIND_CHUNK, sizeof *chunk);
        atomic_store_explicit(&v->binds[slot], chunk, memory_order_release);
    }
    b = atomic_load_explicit(&chunk[k], memory_order_acquire);
    if (!b) {
        b = orr_xcalloc(1, sizeof *b);
        b->r = route->r;
        b->version = route->version;
        bind_pool(b, p);
        atomic_store_explicit(&chunk[k], b, memory_order_release);
    } else if (atomic_load_explicit(&b->pool, memory_order_acquire) != p) {
        bind_pool(b, p);
    }
    pthread_mutex_unlock(&v->bind_lock);
    return b;
}

/* ---- the table ---- */

static gear_table *table_build(orr_server *s, gear_version **v, size_t n) {
    gear_table *t = orr_xcalloc(1, sizeof *t);
    t->router = orr_router_new(s->cfg.base_domain);
    t->v = orr_xcalloc(n ? n : 1, sizeof *t->v);
    for (size_t i = 0; i < n; i++) {
        const orr_gear *g = v[i]->gear;
        for (size_t r = 0; r < g->n_ws_routes; r++) {
            char why[256]; /* checked when the version was loaded: cannot fail */
            orr_router_add(t->router, g->name, g->ws_routes[r].pattern, &v[i]->targets[r], why,
                           sizeof why);
        }
        version_ref(v[i]);
        t->v[t->n++] = v[i];
    }
    return t;
}

static void table_free(gear_table *t) {
    if (!t) return;
    orr_router_free(t->router);
    for (size_t i = 0; i < t->n; i++)
        gears_version_unref(t->v[i]);
    free(t->v);
    free(t);
}

/* The new table in service: handshakes from now on route with it. */
static void table_swap(orr_server *s, gear_table *next) {
    pthread_rwlock_wrlock(&s->table_lock);
    gear_table *old = s->table;
    s->table = next;
    pthread_rwlock_unlock(&s->table_lock);
    table_free(old);
}

int gears_route(orr_server *s, const char *host, size_t host_len, const char *path, size_t path_len,
                char *scratch, size_t scratch_len, orr_route_match *match) {
    pthread_rwlock_rdlock(&s->table_lock);
    int rc = orr_router_match(s->table->router, host, host_len, path, path_len, scratch,
                              scratch_len, match);
    if (rc == 0) version_ref(((orr_route_target *)match->data)->version);
    pthread_rwlock_unlock(&s->table_lock);
    return rc;
}

bool gears_serving(orr_server *s, const char *name) {
    bool found = false;
    pthread_rwlock_rdlock(&s->table_lock);
    for (size_t i = 0; i < s->table->n && !found; i++)
        found = strcmp(s->table->v[i]->gear->name, name) == 0;
    pthread_rwlock_unlock(&s->table_lock);
    return found;
}

void gears_foreach_route(orr_server *s,
                         void (*fn)(void *arg, const orr_gear *g, const char *pattern,
                                    const char *version),
                         void *arg) {
    pthread_rwlock_rdlock(&s->table_lock);
    for (size_t i = 0; i < s->table->n; i++) {
        const gear_version *v = s->table->v[i];
        char label[320];
        version_label(v, label, sizeof label);
        for (size_t r = 0; r < v->gear->n_ws_routes; r++)
            fn(arg, v->gear, v->gear->ws_routes[r].pattern, label);
    }
    pthread_rwlock_unlock(&s->table_lock);
}

/* ---- loading ---- */

/* The versions a start or a reload puts in service. */
typedef struct plan {
    gear_version **v;
    size_t n, cap;
} plan;

static void plan_add(plan *p, gear_version *v) {
    if (p->n == p->cap)
        p->v = orr_xrealloc(p->v, (p->cap = p->cap ? p->cap * 2 : 8) * sizeof *p->v);
    p->v[p->n++] = v;
}

/* Lua versions of p that go into service: their runtimes' new code (open
 * connections take it at their next callback). */
static void lua_activate(const plan *p) {
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i]->lua) orr_luagear_activate(p->v[i]->name->lua, p->v[i]->lua);
}

/* The version in p serving `name`, other than `except`. */
static gear_version *plan_named(const plan *p, const char *name, const gear_version *except) {
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i] != except && strcmp(p->v[i]->gear->name, name) == 0) return p->v[i];
    return NULL;
}

/* Every route of g parses: 0, or -1 with why (checked on a router of its
 * own, so that a gear refused adds no route to the one in service). */
static int routes_check(orr_server *s, const orr_gear *g, char *why, size_t cap) {
    orr_router *scratch = orr_router_new(s->cfg.base_domain);
    int rc = 0;
    for (size_t r = 0; r < g->n_ws_routes && rc == 0; r++) {
        char e[200];
        if (orr_router_add(scratch, g->name, g->ws_routes[r].pattern, NULL, e, sizeof e) < 0)
            rc = orr_errf(why, cap, -1, "route %s: %s", g->ws_routes[r].pattern, e);
    }
    orr_router_free(scratch);
    return rc;
}

/* The checks a gear passes before it serves, in p (`replacing`: the
 * version it would replace, whose name it may have), then its pool and its
 * on_load with its gear_config: its name record, or NULL with why. */
static gear_name *admit(orr_server *s, const orr_gear *g, const plan *p,
                        const gear_version *replacing, char *why, size_t cap) {
    const gear_version *other = plan_named(p, g->name, replacing);
    if (other) {
        orr_errf(why, cap, -1, "gear %s is served already (by %s)", g->name,
                 other->file[0] ? other->file : "the program");
        return NULL;
    }
    if (routes_check(s, g, why, cap) < 0) return NULL;
    gear_name *name = name_get(s, g->name, why, cap);
    if (!name || !g->on_load) return name;
    size_t len;
    char *json = orr_config_gear_json(s->gear_config, g->name, &len);
    int rc = g->on_load(json, len);
    free(json);
    if (rc) orr_errf(why, cap, -1, "on_load refused it (%d)", rc);
    return rc ? NULL : name;
}

#define LUA_FILE_MAX (16 << 20)

/* A Lua file's text: malloc'd, NUL-terminated, or NULL with why. */
static char *read_text(const char *path, size_t *len, char *why, size_t cap) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        orr_errf(why, cap, -1, "%s", strerror(errno));
        return NULL;
    }
    char *text = orr_xmalloc(LUA_FILE_MAX + 1);
    *len = fread(text, 1, LUA_FILE_MAX + 1, fp);
    bool bad = ferror(fp) || *len > LUA_FILE_MAX;
    fclose(fp);
    if (bad) {
        orr_errf(why, cap, -1, *len > LUA_FILE_MAX ? "larger than 16 MiB" : "read error");
        free(text);
        return NULL;
    }
    text[*len] = '\0';
    return text;
}

/* A Lua file checked, as a code whose gear has a valid name: NULL with why. */
static orr_luagear_code *lua_code(orr_server *s, const char *path, const char *file, char *why,
                                  size_t cap) {
    size_t len;
    char *text = read_text(path, &len, why, cap);
    if (!text) return NULL;
    orr_luagear_code *code = orr_luagear_code_load(text, len, file, &s->lua_limits, why, cap);
    free(text);
    const char *name = code ? orr_luagear_code_gear(code)->name : "";
    if (code && (!orr_gear_name_valid(name) || strcmp(name, "healthz") == 0)) {
        orr_errf(why, cap, -1, "gear name '%s' is not valid ([a-z][a-z0-9_]*)", name);
        orr_luagear_code_free(code);
        return NULL;
    }
    return code;
}

/* One file of gears_dir as a version (not in service yet): NULL with why. */
static gear_version *load_file(orr_server *s, const char *dir, const gear_file *f, const plan *p,
                               const gear_version *replacing, char *why, size_t cap) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, f->name);
    bool lua = ends_with(f->name, strlen(f->name), ".lua");
    orr_luagear_code *code = lua ? lua_code(s, path, f->name, why, cap) : NULL;
    gear_lib *lib = lua ? NULL : gear_lib_open(path, why, cap);
    if (!code && !lib) {
        count_load(s, f->name, false);
        return NULL;
    }
    const orr_gear *g = code ? orr_luagear_code_gear(code) : gear_lib_gear(lib);
    gear_name *name = admit(s, g, p, replacing, why, cap);
    count_load(s, g->name, name != NULL);
    if (!name) {
        gear_lib_close(lib);
        orr_luagear_code_free(code);
        return NULL;
    }
    if (code && !name->lua) name->lua = orr_luagear_new(name->name, s->cfg.workers, &s->lua_limits);
    if (code) orr_luagear_code_attach(code, name->lua);
    gear_version *v = version_new(s, g, name);
    v->lib = lib;
    v->lua = code;
    snprintf(v->file, sizeof v->file, "%s", f->name);
    v->dev = (uint64_t)f->st.st_dev;
    v->ino = (uint64_t)f->st.st_ino;
    v->size = (uint64_t)f->st.st_size;
    v->mtime_ns = (int64_t)f->st.st_mtim.tv_sec * 1000000000 + f->st.st_mtim.tv_nsec;
    char label[320];
    version_label(v, label, sizeof label);
    if (code)
        orr_log(ORR_LOG_INFO, NULL, "gear %s: loaded from %s (Lua): version %s", g->name, f->name,
                label);
    else
        orr_log(ORR_LOG_INFO, NULL, "gear %s: loaded from %s (gear API %d.%d): version %s", g->name,
                f->name, g->api_version >> 16, g->api_version & 0xffff, label);
    return v;
}

/* A gear linked into the program: in p, or an error for the caller. */
static int add_linked(orr_server *s, plan *p, const orr_gear *g, char *err, size_t errlen) {
    char why[512];
    gear_copy copy;
    gear_name *name = NULL;
    if (gear_copy_make(g, &copy, why, sizeof why) == 0)
        name = admit(s, &copy.gear, p, NULL, why, sizeof why);
    if (!name) {
        gear_copy_free(&copy);
        return orr_errf(err, errlen, -1, "gear %s: %s", g && g->name ? g->name : "?", why);
    }
    gear_version *v = version_new(s, &copy.gear, name);
    v->copy = copy; /* the routes and callbacks arrays move with it */
    v->gear = &v->copy.gear;
    plan_add(p, v);
    return 0;
}

int gears_load(orr_server *s, const orr_gear *const *linked, size_t n, char *err, size_t errlen) {
    pthread_mutex_init(&s->gears_lock, NULL);
    pthread_rwlock_init(&s->table_lock, NULL);
    s->gear_config = s->cfg.gear_config ? orr_xstrdup(s->cfg.gear_config) : NULL;
    s->lua_limits = (orr_luagear_limits){(size_t)s->cfg.lua_memory_limit_mb << 20,
                                         s->cfg.lua_callback_timeout_ms};
    plan p = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add_linked(s, &p, linked[i], err, errlen);
    const char *dir = s->cfg.gears_dir;
    if (rc == 0 && dir[0]) {
        size_t nf;
        gear_file *files = gear_files(dir, &nf);
        if (!files) rc = orr_errf(err, errlen, -1, "gears_dir %s: %s", dir, strerror(errno));
        for (size_t i = 0; files && i < nf; i++) {
            char why[512];
            gear_version *v = load_file(s, dir, &files[i], &p, NULL, why, sizeof why);
            if (v)
                plan_add(&p, v);
            else
                orr_log(ORR_LOG_ERROR, NULL, "gear %s: %s", files[i].name, why);
        }
        free(files);
    }
    lua_activate(&p);
    s->table = table_build(s, p.v, p.n);
    for (size_t i = 0; i < p.n; i++) /* the table holds them now */
        gears_version_unref(p.v[i]);
    free(p.v);
    return rc;
}

/* ---- reloads ---- */

typedef struct reload_result {
    json_t *loaded, *upgraded, *removed, *failed;
    plan fresh; /* the versions it loaded: their first reference goes to the table */
} reload_result;

static const gear_file *file_named(const gear_file *fs, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(fs[i].name, name) == 0) return &fs[i];
    return NULL;
}

static gear_version *version_of_file(const gear_table *t, const char *file) {
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i]->file[0] && strcmp(t->v[i]->file, file) == 0) return t->v[i];
    return NULL;
}

static void failed(reload_result *r, const char *file, const char *why) {
    orr_log(ORR_LOG_ERROR, NULL, "gear %s: %s", file, why);
    json_array_append_new(r->failed, json_pack("{s:s, s:s}", "file", file, "why", why));
}

/* The versions in service whose file is still there stay (changed ones
 * only until their new version is in); a removed file's version goes. */
static void keep_current(const gear_table *cur, const gear_file *fs, size_t nf, plan *p,
                         reload_result *r) {
    for (size_t i = 0; i < cur->n; i++) {
        gear_version *v = cur->v[i];
        if (!v->file[0] || file_named(fs, nf, v->file)) {
            plan_add(p, v);
            continue;
        }
        json_array_append_new(r->removed, json_string(v->file));
        orr_log(ORR_LOG_INFO, NULL,
                "gear %s: %s removed: no new handshakes; its connections run on until they end",
                v->gear->name, v->file);
    }
}

/* New and changed files, in order: a new version each, in p in place of
 * the one it replaces; a failure keeps what was in service. */
static void load_changes(orr_server *s, const gear_table *cur, const gear_file *fs, size_t nf,
                         plan *p, reload_result *r) {
    for (size_t i = 0; i < nf; i++) {
        gear_version *old = version_of_file(cur, fs[i].name);
        if (old && same_file(old, &fs[i].st)) continue;
        char why[512];
        gear_version *v = load_file(s, s->cfg.gears_dir, &fs[i], p, old, why, sizeof why);
        if (!v) {
            failed(r, fs[i].name, why);
            continue;
        }
        size_t at = p->n;
        for (size_t k = 0; old && k < p->n; k++)
            if (p->v[k] == old) at = k;
        if (at < p->n)
            p->v[at] = v;
        else
            plan_add(p, v);
        plan_add(&r->fresh, v);
        json_array_append_new(old ? r->upgraded : r->loaded, json_string(fs[i].name));
    }
}

char *gears_reload(orr_server *s) {
    reload_result r = {json_array(), json_array(), json_array(), json_array(), {0}};
    pthread_mutex_lock(&s->gears_lock);
    size_t nf;
    gear_file *fs = gear_files(s->cfg.gears_dir, &nf);
    if (!fs) {
        failed(&r, s->cfg.gears_dir, strerror(errno));
    } else {
        gear_table *cur = s->table; /* only reloads replace it, under this lock */
        plan p = {0};
        keep_current(cur, fs, nf, &p, &r);
        load_changes(s, cur, fs, nf, &p, &r);
        lua_activate(&r.fresh);
        table_swap(s, table_build(s, p.v, p.n));
        for (size_t i = 0; i < r.fresh.n; i++) /* the table holds them now */
            gears_version_unref(r.fresh.v[i]);
        free(r.fresh.v);
        free(p.v);
    }
    pthread_mutex_unlock(&s->gears_lock);
    free(fs);
    json_t *o = json_pack("{s:o, s:o, s:o, s:o}", "loaded", r.loaded, "upgraded", r.upgraded,
                          "removed", r.removed, "failed", r.failed);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    orr_log(ORR_LOG_INFO, NULL, "gears reloaded from %s: %s", s->cfg.gears_dir, text);
    return text;
}

void gears_set_config(orr_server *s, const orr_config *next) {
    pthread_mutex_lock(&s->gears_lock);
    free(s->gear_config);
    s->gear_config = next->gear_config ? orr_xstrdup(next->gear_config) : NULL;
    s->lua_limits = (orr_luagear_limits){(size_t)next->lua_memory_limit_mb << 20,
                                         next->lua_callback_timeout_ms};
    for (size_t i = 0; i < s->n_names; i++)
        if (s->names[i]->lua) orr_luagear_set_limits(s->names[i]->lua, &s->lua_limits);
    pthread_mutex_unlock(&s->gears_lock);
}

/* ---- metrics, the end ---- */

/* A Prometheus label value: \, " and newline escaped. */
static void label_escape(const char *in, char *out, size_t cap) {
    size_t n = 0;
    for (; *in && n + 3 < cap; in++) {
        if (*in == '\\' || *in == '"') out[n++] = '\\';
        if (*in == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
            continue;
        }
        out[n++] = *in;
    }
    out[n] = '\0';
}

void gears_metrics(orr_server *s, void (*fn)(void *arg, const char *text), void *arg) {
    char line[1600], label[600];
    pthread_mutex_lock(&s->gears_lock);
    fn(arg, "# HELP orrery_gear_versions Versions of each gear loaded: in service, or still "
            "used by connections that started on them.\n# TYPE orrery_gear_versions gauge\n");
    for (size_t i = 0; i < s->n_names; i++) {
        snprintf(line, sizeof line, "orrery_gear_versions{gear=\"%s\"} %u\n", s->names[i]->name,
                 atomic_load_explicit(&s->names[i]->versions, memory_order_relaxed));
        fn(arg, line);
    }
    fn(arg, "# HELP orrery_gear_loads_total Gear loads by gear (its file when no gear could be "
            "read) and result.\n# TYPE orrery_gear_loads_total counter\n");
    for (size_t i = 0; i < s->n_loads; i++) {
        label_escape(s->loads[i].label, label, sizeof label);
        snprintf(line, sizeof line,
                 "orrery_gear_loads_total{gear=\"%s\",result=\"ok\"} %llu\n"
                 "orrery_gear_loads_total{gear=\"%s\",result=\"error\"} %llu\n",
                 label, (unsigned long long)s->loads[i].ok, label,
                 (unsigned long long)s->loads[i].error);
        fn(arg, line);
    }
    pthread_mutex_unlock(&s->gears_lock);
}

void gears_unload(orr_server *s) {
    if (!s->names && !s->table) return; /* never loaded */
    table_free(s->table);
    s->table = NULL;
    for (size_t i = 0; i < s->n_names; i++) {
        orr_luagear_free(s->names[i]->lua);
        free(s->names[i]);
    }
    free(s->names);
    free(s->loads);
    free(s->gear_config);
    s->names = NULL;
    s->loads = NULL;
    s->gear_config = NULL;
    pthread_rwlock_destroy(&s->table_lock);
    pthread_mutex_destroy(&s->gears_lock);
}
