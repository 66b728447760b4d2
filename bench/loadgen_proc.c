/* Clocks, CPU time, and what /proc says about the server, for orr-loadgen. */
#include "loadgen.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

uint64_t lg_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void lg_sleep_until(uint64_t t_ns) {
    struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000u),
                          .tv_nsec = (long)(t_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

double lg_self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Fields 14 and 15 of /proc/PID/stat, after the parenthesised command name
 * (which may itself contain spaces and parentheses). */
double lg_proc_cpu_s(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long long ut, st;
    /* After ")": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime
     * stime */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

long lg_proc_rss_kib(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

/* splitmix64, seeded from the kernel once per thread: masks and keys only
 * need to differ, not to be secret. */
uint64_t lg_rand64(void) {
    static _Thread_local uint64_t s;
    if (!s && getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s) s = lg_now_ns();
    uint64_t z = (s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

int lg_cpus_ticks(const cpu_set_t *set, struct lg_ticks *out) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    char line[512];
    memset(out, 0, sizeof *out);
    while (fgets(line, sizeof line, f)) {
        int cpu;
        unsigned long long v[8] = {0};
        if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7]) < 5)
            continue;
        if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, set)) continue;
        uint64_t total = 0;
        for (int i = 0; i < 8; i++)
            total += v[i];
        out->total += total;
        out->busy += total - v[3] - v[4]; /* all but idle and iowait */
        out->softirq += v[6];
    }
    fclose(f);
    return 0;
}

/* Run time of all threads of a process from /proc/PID/task/TID/schedstat, in
 * nanoseconds: precise, where utime and stime are sampled at timer ticks
 * (which a load in step with the tick can fool). */
double lg_proc_sched_s(pid_t pid) {
    char path[300];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    unsigned long long sum = 0, ns;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fscanf(f, "%llu", &ns) == 1) sum += ns;
        fclose(f);
    }
    closedir(d);
    return (double)sum / 1e9;
}

/* Exact run time of every task of other processes that last ran on a CPU of
 * `set`, leaving out the generator, the server and kernel threads. Taken
 * twice, the difference is what other processes took from our cores. */
static int kernel_thread(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long flags = 0;
    /* state ppid pgrp session tty_nr tpgid flags */
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1) return 1;
    return (flags & 0x00200000) != 0; /* PF_KTHREAD */
}

static int task_on(int pid, int tid, const cpu_set_t *set, unsigned long long *ns) {
    char path[96], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", pid, tid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    int cpu = -1, field = 2;
    for (; p && *p && field < 39; p++)
        if (*p == ' ') field++;
    if (!p || sscanf(p, "%d", &cpu) != 1 || cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, set))
        return 0;
    snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", pid, tid);
    f = fopen(path, "r");
    if (!f) return 0;
    int ok = fscanf(f, "%llu", ns) == 1;
    fclose(f);
    return ok;
}

static int listed(int pid, const int *pids, int n) {
    for (int i = 0; i < n; i++)
        if (pids[i] == pid) return 1;
    return 0;
}

int lg_foreign_tasks(pid_t self, const int *servers, int n_servers, const cpu_set_t *set,
                     struct lg_task_time *out, int max) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) && n < max) {
        int pid = atoi(e->d_name);
        if (pid <= 0 || pid == self || listed(pid, servers, n_servers) || kernel_thread(pid))
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task", pid);
        DIR *td = opendir(path);
        struct dirent *te;
        while (td && (te = readdir(td)) && n < max) {
            unsigned long long ns;
            int tid = atoi(te->d_name);
            if (tid <= 0 || !task_on(pid, tid, set, &ns)) continue;
            out[n].tid = tid;
            out[n].ns = ns;
            n++;
        }
        if (td) closedir(td);
    }
    closedir(d);
    return n;
}

double lg_foreign_cpu_s(const struct lg_task_time *a, int na, const struct lg_task_time *b,
                        int nb) {
    unsigned long long sum = 0;
    for (int i = 0; i < nb; i++) {
        unsigned long long before = 0;
        for (int j = 0; j < na; j++)
            if (a[j].tid == b[i].tid) {
                before = a[j].ns;
                break;
            }
        if (b[i].ns > before) sum += b[i].ns - before;
    }
    return (double)sum / 1e9;
}

static int by_tid(const void *a, const void *b) {
    const struct lg_task_time *x = a, *y = b;
    return (x->tid > y->tid) - (x->tid < y->tid);
}

int lg_proc_threads(pid_t pid, struct lg_task_time *out, int max) {
    char path[300];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) && n < max) {
        int tid = atoi(e->d_name);
        if (tid <= 0) continue;
        snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)pid, tid);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fscanf(f, "%llu", &out[n].ns) == 1) out[n++].tid = tid;
        fclose(f);
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof *out, by_tid);
    return n;
}
