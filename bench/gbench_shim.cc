// gbench_shim.cc - the C API of gbench_shim.h over google benchmark (the only C++ in fb).
#include "gbench_shim.h"

#include <benchmark/benchmark.h>

namespace {

benchmark::State &to_state(fb_bench_state *s) { return *reinterpret_cast<benchmark::State *>(s); }

const benchmark::State &to_state(const fb_bench_state *s)
{
    return *reinterpret_cast<const benchmark::State *>(s);
}

benchmark::TimeUnit to_unit(fb_bench_unit unit)
{
    switch (unit) {
    case FB_BENCH_UNIT_NS:
        return benchmark::kNanosecond;
    case FB_BENCH_UNIT_MS:
        return benchmark::kMillisecond;
    case FB_BENCH_UNIT_S:
        return benchmark::kSecond;
    case FB_BENCH_UNIT_US:
    default:
        return benchmark::kMicrosecond;
    }
}

} // namespace

extern "C" {

int fb_bench_register(const char *name, fb_bench_fn fn, void *user, fb_bench_unit unit, int flags)
{
    if (!name || !fn)
        return -1;
    benchmark::internal::Benchmark *b = benchmark::RegisterBenchmark(
        name, [fn, user](benchmark::State &state) { fn(reinterpret_cast<fb_bench_state *>(&state), user); });
    if (!b)
        return -1;
    b->Unit(to_unit(unit));
    if (flags & FB_BENCH_REAL_TIME)
        b->UseRealTime();
    return 0;
}

int fb_bench_run(int argc, char **argv)
{
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 2;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

int fb_bench_keep_running_batch(fb_bench_state *s, int64_t n)
{
    return to_state(s).KeepRunningBatch(static_cast<benchmark::IterationCount>(n < 1 ? 1 : n)) ? 1 : 0;
}

int64_t fb_bench_iterations(const fb_bench_state *s) { return static_cast<int64_t>(to_state(s).iterations()); }

void fb_bench_set_items_processed(fb_bench_state *s, int64_t items) { to_state(s).SetItemsProcessed(items); }

void fb_bench_set_bytes_processed(fb_bench_state *s, int64_t bytes) { to_state(s).SetBytesProcessed(bytes); }

void fb_bench_set_counter(fb_bench_state *s, const char *name, double value, int flags)
{
    if (!name)
        return;
    benchmark::Counter::Flags f = benchmark::Counter::kDefaults;
    if (flags & FB_BENCH_COUNTER_RATE)
        f = static_cast<benchmark::Counter::Flags>(f | benchmark::Counter::kIsRate);
    if (flags & FB_BENCH_COUNTER_AVG)
        f = static_cast<benchmark::Counter::Flags>(f | benchmark::Counter::kAvgIterations);
    to_state(s).counters[name] = benchmark::Counter(value, f);
}

void fb_bench_set_label(fb_bench_state *s, const char *label) { to_state(s).SetLabel(label ? label : ""); }

void fb_bench_skip_with_error(fb_bench_state *s, const char *message)
{
    to_state(s).SkipWithError(message ? message : "skipped");
}

void fb_bench_pause_timing(fb_bench_state *s) { to_state(s).PauseTiming(); }

void fb_bench_resume_timing(fb_bench_state *s) { to_state(s).ResumeTiming(); }

} // extern "C"
