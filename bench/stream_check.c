/* stream_check.c - an independent, plain STREAM-style check of fbench hw's memory bandwidth: read
 * (sum) and copy loops over large arrays with 1 thread and with N pthreads, no fb code and no hwloc,
 * so that the figures of `fbench hw` can be compared with a second implementation.
 *
 * usage: stream_check [MiB per array (1024)] [threads (online CPUs)] [repeats (5)]
 *
 * Differences from fbench on purpose: one accumulator in the read loop (GCC vectorizes an integer
 * sum anyway), the copy is STREAM's `c[j] = a[j]` (GCC may turn it into a memcpy call, as it does
 * for STREAM itself), threads are created for each timed run and pinned with
 * pthread_setaffinity_np to CPU t, and a run's time spans thread creation to the last join.
 * Copy counts bytes read + bytes written, as STREAM does. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_setaffinity_np */
#endif
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef enum { SC_INIT, SC_READ, SC_COPY } sc_kernel;

static uint64_t *sc_a, *sc_c;
static size_t sc_n;
static int sc_threads;
static volatile uint64_t sc_sink;

typedef struct sc_arg {
    int t;
    sc_kernel k;
    uint64_t sum;
} sc_arg;

static double sc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sc_read(const uint64_t *restrict a, size_t b, size_t e, uint64_t *out)
{
    uint64_t s = 0;
    for (size_t j = b; j < e; j++)
        s += a[j];
    *out = s;
}

static void sc_copy(uint64_t *restrict c, const uint64_t *restrict a, size_t b, size_t e)
{
    for (size_t j = b; j < e; j++)
        c[j] = a[j];
}

static void *sc_thread(void *p)
{
    sc_arg *arg = p;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)(arg->t % (cpus > 0 ? cpus : 1)), &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    size_t b = sc_n * (size_t)arg->t / (size_t)sc_threads, e = sc_n * (size_t)(arg->t + 1) / (size_t)sc_threads;
    switch (arg->k) {
    case SC_INIT:
        for (size_t j = b; j < e; j++) {
            sc_a[j] = j;
            sc_c[j] = 0;
        }
        break;
    case SC_READ:
        sc_read(sc_a, b, e, &arg->sum);
        break;
    case SC_COPY:
        sc_copy(sc_c, sc_a, b, e);
        arg->sum = sc_c[b];
        break;
    }
    return NULL;
}

/* Runs kernel k on sc_threads threads; returns the seconds from first create to last join. */
static double sc_run(sc_kernel k)
{
    pthread_t th[1024];
    sc_arg args[1024];
    double t0 = sc_now();
    for (int t = 0; t < sc_threads; t++) {
        args[t].t = t;
        args[t].k = k;
        args[t].sum = 0;
        if (pthread_create(&th[t], NULL, sc_thread, &args[t]) != 0) {
            fprintf(stderr, "stream_check: pthread_create failed\n");
            exit(1);
        }
    }
    for (int t = 0; t < sc_threads; t++) {
        pthread_join(th[t], NULL);
        sc_sink += args[t].sum;
    }
    return sc_now() - t0;
}

int main(int argc, char **argv)
{
    long mib = argc > 1 ? atol(argv[1]) : 1024;
    long threads = argc > 2 ? atol(argv[2]) : sysconf(_SC_NPROCESSORS_ONLN);
    long reps = argc > 3 ? atol(argv[3]) : 5;
    if (argc > 4 || mib < 1 || threads < 1 || threads > 1024 || reps < 1) {
        fprintf(stderr, "usage: stream_check [MiB per array >= 1] [threads 1..1024] [repeats >= 1]\n");
        return 2;
    }
    size_t bytes = (size_t)mib << 20;
    sc_n = bytes / sizeof(uint64_t);
    printf("stream_check: %ld MiB per array, best of %ld, GB/s = 10^9 bytes/s\n", mib, reps);
    int counts[2] = {1, (int)threads};
    for (int c = 0; c < 2; c++) {
        sc_threads = counts[c];
        sc_a = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        sc_c = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (sc_a == MAP_FAILED || sc_c == MAP_FAILED) {
            fprintf(stderr, "stream_check: cannot allocate 2 x %ld MiB\n", mib);
            return 1;
        }
        sc_run(SC_INIT); /* first touch by the threads that use each part */
        double best_read = 1e30, best_copy = 1e30;
        for (long r = 0; r < reps; r++) {
            double t = sc_run(SC_READ);
            best_read = t < best_read ? t : best_read;
            t = sc_run(SC_COPY);
            best_copy = t < best_copy ? t : best_copy;
        }
        printf("read  %2d thread%s %8.2f GB/s\n", sc_threads, sc_threads == 1 ? " " : "s", (double)bytes / best_read * 1e-9);
        printf("copy  %2d thread%s %8.2f GB/s (read + write)\n", sc_threads, sc_threads == 1 ? " " : "s",
               2.0 * (double)bytes / best_copy * 1e-9);
        munmap(sc_a, bytes);
        munmap(sc_c, bytes);
    }
    return 0;
}
