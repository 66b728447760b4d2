/*
 * The gears served: the ones linked into the program (unit tests give
 * theirs) and every *.so file in gears_dir, loaded at start. A file that
 * fails (not a gear, a version refused, a bad name or route, a name
 * another file serves, its on_load refusing) is logged as `gear FILE: why`
 * and skipped; every other gear is served.
 */
#include "common/clock.h"
#include "common/log.h"
#include "gearapi/gearapi.h"
#include "server/internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The *.so files of dir, sorted (a stable order: the log and the routes
 * are the same from one start to the next). NULL with errno. */
static char **so_files(const char *dir, size_t *n) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **names = NULL;
    size_t cap = 0;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 4 || strcmp(e->d_name + len - 3, ".so") != 0) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            names = orr_xrealloc(names, cap * sizeof *names);
        }
        names[(*n)++] = orr_xstrdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 1; i < *n; i++) /* insertion sort: a directory of gears is short */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    if (!names) names = orr_xcalloc(1, sizeof *names);
    return names;
}

static served_gear *served_find(orr_server *s, const char *name) {
    for (size_t i = 0; i < s->n_gears; i++)
        if (strcmp(s->gears[i].gear->name, name) == 0) return &s->gears[i];
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

/* The gear's on_load with its gear_config: 0, or -1 with why. */
static int run_on_load(orr_server *s, const orr_gear *g, char *why, size_t cap) {
    if (!g->on_load) return 0;
    size_t len;
    char *json = orr_config_gear_config(&s->cfg, g->name, &len);
    int rc = g->on_load(json, len);
    free(json);
    return rc ? orr_errf(why, cap, -1, "on_load refused it (%d)", rc) : 0;
}

static served_gear *served_add(orr_server *s) {
    if (s->n_gears == s->cap_gears) {
        s->cap_gears = s->cap_gears ? s->cap_gears * 2 : 8;
        s->gears = orr_xrealloc(s->gears, s->cap_gears * sizeof *s->gears);
    }
    served_gear *sg = &s->gears[s->n_gears++];
    memset(sg, 0, sizeof *sg);
    sg->loaded_ms = orr_wall_ms();
    return sg;
}

/* One file of gears_dir: served, or logged and skipped. */
static void load_file(orr_server *s, const char *dir, const char *file) {
    char path[2048], why[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    gear_lib *lib = gear_lib_open(path, why, sizeof why);
    const orr_gear *g = lib ? gear_lib_gear(lib) : NULL;
    int rc = lib ? 0 : -1;
    if (rc == 0 && served_find(s, g->name))
        rc = orr_errf(why, sizeof why, -1, "gear %s is served already (by %s)", g->name,
                      served_find(s, g->name)->file[0] ? served_find(s, g->name)->file
                                                       : "the program");
    if (rc == 0) rc = routes_check(s, g, why, sizeof why);
    if (rc == 0) rc = run_on_load(s, g, why, sizeof why);
    if (rc < 0) {
        orr_log(ORR_LOG_ERROR, NULL, "gear %s: %s", file, why);
        gear_lib_close(lib);
        return;
    }
    served_gear *sg = served_add(s);
    sg->gear = g;
    sg->lib = lib;
    snprintf(sg->file, sizeof sg->file, "%s", file);
    orr_log(ORR_LOG_INFO, NULL, "gear %s: loaded from %s (gear API %d.%d)", g->name, file,
            g->api_version >> 16, g->api_version & 0xffff);
}

/* A gear linked into the program: served, or an error for the caller. */
static int add_linked(orr_server *s, const orr_gear *g, char *err, size_t errlen) {
    char why[512];
    gear_copy copy;
    if (gear_copy_make(g, &copy, why, sizeof why) < 0 ||
        (served_find(s, copy.gear.name) &&
         orr_errf(why, sizeof why, -1, "gear %s is linked twice", copy.gear.name)) ||
        routes_check(s, &copy.gear, why, sizeof why) < 0 ||
        run_on_load(s, &copy.gear, why, sizeof why) < 0) {
        gear_copy_free(&copy);
        return orr_errf(err, errlen, -1, "gear %s: %s", g && g->name ? g->name : "?", why);
    }
    served_gear *sg = served_add(s);
    sg->copy = copy;
    sg->gear = &sg->copy.gear;
    return 0;
}

/* The served gears' routes into the router. */
static void route_all(orr_server *s) {
    size_t n_routes = 0;
    for (size_t i = 0; i < s->n_gears; i++)
        n_routes += s->gears[i].gear->n_ws_routes;
    s->targets = orr_xcalloc(n_routes ? n_routes : 1, sizeof *s->targets);
    for (size_t i = 0; i < s->n_gears; i++) {
        const orr_gear *g = s->gears[i].gear;
        for (size_t r = 0; r < g->n_ws_routes; r++) {
            orr_route_target *t = &s->targets[s->n_targets++];
            t->gear = &s->gears[i];
            t->r.callbacks = g->ws_routes[r].callbacks;
            t->r.gear = g->name;
            char why[256];
            /* routes_check passed: cannot fail */
            orr_router_add(s->router, g->name, g->ws_routes[r].pattern, t, why, sizeof why);
        }
    }
}

int gears_load(orr_server *s, const orr_gear *const *linked, size_t n, char *err, size_t errlen) {
    for (size_t i = 0; i < n; i++)
        if (add_linked(s, linked[i], err, errlen) < 0) return -1;
    const char *dir = s->cfg.gears_dir;
    if (dir[0]) {
        size_t nf;
        char **files = so_files(dir, &nf);
        if (!files) return orr_errf(err, errlen, -1, "gears_dir %s: %s", dir, strerror(errno));
        for (size_t i = 0; i < nf; i++) {
            load_file(s, dir, files[i]);
            free(files[i]);
        }
        free(files);
    }
    /* The targets point into s->gears: no more reallocation from here. */
    route_all(s);
    return 0;
}

void gears_unload(orr_server *s) {
    for (size_t i = 0; i < s->n_gears; i++) {
        served_gear *sg = &s->gears[i];
        if (sg->gear->on_unload) sg->gear->on_unload();
        if (sg->lib) {
            orr_log(ORR_LOG_INFO, NULL, "gear %s: version %s unloaded", sg->gear->name, sg->file);
            gear_lib_close(sg->lib);
        } else {
            gear_copy_free(&sg->copy);
        }
    }
    free(s->gears);
    s->gears = NULL;
    s->n_gears = s->cap_gears = 0;
}
