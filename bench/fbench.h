/* fbench.h - what the parts of the fbench tool share: its subcommands' entry points, exit codes,
 * the seeded generator and small helpers for clocks, memory and text. */
#ifndef FBENCH_H
#define FBENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fb/fb.h"

/** Exit codes of fbench. */
enum {
    FBENCH_EXIT_OK = 0,      /**< success */
    FBENCH_EXIT_FAILURE = 1, /**< a measurement or a file could not be made */
    FBENCH_EXIT_USAGE = 2    /**< unknown subcommand, option or value */
};

/** \brief `fbench hw`: memory bandwidth, random access rate, host↔device transfers, topology.
 * \param argc, argv the arguments after "hw" (argv[0] is "hw"). \return an FBENCH_EXIT_ code. */
int fbench_hw_main(int argc, char **argv);

/** \brief `fbench kernels`: the kernels of fb_kernels.h and their OpenCL twins through google benchmark.
 * \param argc, argv the arguments after "kernels" (argv[0] is "kernels"), google benchmark's flags.
 * \return an FBENCH_EXIT_ code. */
int fbench_kernels_main(int argc, char **argv);

/** \brief `fbench run NAME`: a named workload, checked against a reference, timed, with its bound.
 * \param argc, argv the arguments after "run" (argv[0] is "run"). \return an FBENCH_EXIT_ code. */
int fbench_run_main(int argc, char **argv);

/** \brief Read and copy bandwidth (GB/s, 10^9 B/s; copy counts bytes read + written) with `threads`
 * threads pinned to cores (not pinned on a synthetic topology) over arrays of `bytes`, best of `repeats`.
 * \return 0, or -1 when the memory could not be had (a message is printed). */
int fbench_hw_bandwidth(fb_ctx *ctx, int threads, size_t bytes, int repeats, double *read_gbps, double *copy_gbps);

/** \brief Prints the usage of fbench to `out`. */
void fbench_usage(FILE *out);

/** \brief splitmix64: the seeded generator of every random input in fbench.
 * \param state advanced by one step. \return the next 64 random bits. */
static inline uint64_t fbench_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/** \brief Monotonic wall-clock time. \return seconds since an arbitrary start. */
double fbench_now(void);

/** \brief Page-aligned memory that the caller touches first (so its pages land on the caller's
 * NUMA node); returns NULL on failure. Free with fbench_free_pages() and the same size. */
void *fbench_alloc_pages(size_t bytes);

/** \brief Frees fbench_alloc_pages() memory. \param p may be NULL. */
void fbench_free_pages(void *p, size_t bytes);

/** \brief Memory the system can give without swapping (MemAvailable of /proc/meminfo).
 * \return bytes, or 0 when unknown. */
uint64_t fbench_mem_available(void);

/** \brief The CPU model ("model name" of /proc/cpuinfo, else "unknown").
 * \param buf output of size bytes, NUL-terminated. */
void fbench_cpu_model(char *buf, size_t size);

/** \brief Writes `s` as a JSON string literal, quotes included. */
void fbench_json_string(FILE *f, const char *s);

/** \brief Writes `bytes` bytes at `p` to the file DIR/NAME (created or truncated), for --dump.
 * \return 0, or -1 after printing why on stderr. */
int fbench_write_file(const char *dir, const char *name, const void *p, size_t bytes);

/** \brief Parses a whole decimal integer in [lo, hi]. \return 0, or -1 when `s` is not one. */
int fbench_parse_int(const char *s, long lo, long hi, long *out);

#endif /* FBENCH_H */
