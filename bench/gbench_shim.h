/* gbench_shim.h - a small C API over google benchmark, so that fbench's benchmarks are written in C
 * (as IREE drives google benchmark from C). gbench_shim.cc is the only C++ in fb.
 *
 * Lifecycle: register benchmarks with fb_bench_register(), then call fb_bench_run() once with the
 * program's flags (--benchmark_filter, --benchmark_format=json, --benchmark_out=FILE, ...).
 * A benchmark function loops on fb_bench_keep_running_batch() and reports what it processed:
 *
 * \code
 * static void bench_hash(fb_bench_state *s, void *user)
 * {
 *     my_case *c = user;
 *     while (fb_bench_keep_running_batch(s, 1))
 *         hash(c->keys, c->n);
 *     fb_bench_set_items_processed(s, fb_bench_iterations(s) * c->n);
 * }
 * \endcode
 *
 * Threading: register and run from one thread; google benchmark calls the functions on it.
 */
#ifndef FB_GBENCH_SHIM_H
#define FB_GBENCH_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Opaque handle on one benchmark run (google benchmark's benchmark::State). */
typedef struct fb_bench_state fb_bench_state;

/** A benchmark body. \param s the run's state. \param user the pointer given at registration. */
typedef void (*fb_bench_fn)(fb_bench_state *s, void *user);

/** Time unit of the reported times. Values are pinned. */
typedef enum fb_bench_unit {
    FB_BENCH_UNIT_NS = 0, /**< nanoseconds */
    FB_BENCH_UNIT_US = 1, /**< microseconds */
    FB_BENCH_UNIT_MS = 2, /**< milliseconds */
    FB_BENCH_UNIT_S = 3   /**< seconds */
} fb_bench_unit;

/** Flags of fb_bench_register(). */
enum {
    FB_BENCH_CPU_TIME = 0, /**< iterations are timed by the calling thread's CPU time (the default of
                                google benchmark): right for work done on that thread */
    FB_BENCH_REAL_TIME = 1 /**< iterations are timed by the wall clock: right for work that waits on
                                other threads or on a device */
};

/** \brief Registers a benchmark.
 * \param name the name --benchmark_filter matches and the reports show (copied).
 * \param fn its body; \param user passed to fn, must stay valid until fb_bench_run() returns.
 * \param unit time unit of its report. \param flags FB_BENCH_CPU_TIME or FB_BENCH_REAL_TIME.
 * \return 0, or -1 when name or fn is NULL or google benchmark refused it. */
int fb_bench_register(const char *name, fb_bench_fn fn, void *user, fb_bench_unit unit, int flags);

/** \brief Parses the google benchmark flags in argv and runs the registered benchmarks that match.
 * \param argc, argv the program's arguments; argv[0] names the program in messages. Flags that
 *        google benchmark does not know are reported on stderr.
 * \return 0 when the benchmarks ran (some may have been skipped with an error), 2 for unknown flags.
 * \note --help prints google benchmark's usage and exits the process, as google benchmark does. */
int fb_bench_run(int argc, char **argv);

/** \brief The loop condition of a benchmark body: runs the body in batches of n ≥ 1 iterations.
 * \return 1 while the benchmark wants more iterations, 0 when done (or after a skip). */
int fb_bench_keep_running_batch(fb_bench_state *s, int64_t n);

/** \brief Iterations run so far (the total once the loop has ended). */
int64_t fb_bench_iterations(const fb_bench_state *s);

/** \brief Sets the items (e.g. rows) processed by all iterations; reported as items per second. */
void fb_bench_set_items_processed(fb_bench_state *s, int64_t items);

/** \brief Sets the bytes processed by all iterations; reported as bytes per second. */
void fb_bench_set_bytes_processed(fb_bench_state *s, int64_t bytes);

/** Flags of fb_bench_set_counter(). */
enum {
    FB_BENCH_COUNTER_PLAIN = 0, /**< the value as given */
    FB_BENCH_COUNTER_RATE = 1,  /**< divided by the elapsed time (a per-second rate) */
    FB_BENCH_COUNTER_AVG = 2    /**< divided by the iterations (a per-iteration average) */
};

/** \brief Sets a user counter shown as an extra column and JSON field.
 * \param name copied; \param flags FB_BENCH_COUNTER_PLAIN, _RATE or _AVG. */
void fb_bench_set_counter(fb_bench_state *s, const char *name, double value, int flags);

/** \brief Sets a label shown next to the result (copied). */
void fb_bench_set_label(fb_bench_state *s, const char *label);

/** \brief Marks the run as failed with a message (copied) and ends its loop: call it before the loop,
 * or from inside it followed by a break. The report shows the message instead of times. */
void fb_bench_skip_with_error(fb_bench_state *s, const char *message);

/** \brief Stops the timer (e.g. around per-iteration set-up). */
void fb_bench_pause_timing(fb_bench_state *s);

/** \brief Restarts the timer after fb_bench_pause_timing(). */
void fb_bench_resume_timing(fb_bench_state *s);

#ifdef __cplusplus
}
#endif
#endif /* FB_GBENCH_SHIM_H */
