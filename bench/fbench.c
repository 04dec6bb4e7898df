/* fbench.c - the fbench command line: subcommand dispatch, usage and version, and the helpers the
 * subcommands share (clock, page allocation, /proc readers, JSON strings, number parsing). */
#include "fbench.h"
#include "ssb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

void fbench_usage(FILE *out)
{
    fprintf(out,
            "usage: fbench <command> [options]\n"
            "\n"
            "Measures what this machine's hardware and fb's kernels can do.\n"
            "\n"
            "commands:\n"
            "  hw [--threads N] [--size-mb M] [--repeats R] [--json FILE]\n"
            "      memory read and copy bandwidth (1 thread and one pinned thread per core), random\n"
            "      access rate into a table larger than the last-level cache, host<->device transfer\n"
            "      bandwidth of each OpenCL device, and the topology.\n"
            "        --threads N   threads for the all-thread figures (default: one per core)\n"
            "        --size-mb M   MiB per array and for the random-access table (default 1024;\n"
            "                      lowered to fit the available memory)\n"
            "        --repeats R   repetitions, the best is reported (default 5)\n"
            "        --json FILE   also write the figures as JSON to FILE\n"
            "  kernels [google benchmark flags]\n"
            "      each kernel x key type x size x CPU variant and OpenCL device, e.g.\n"
            "        fbench kernels --benchmark_filter='hash_column/int32/avx2'\n"
            "        fbench kernels --benchmark_format=json\n"
            "        fbench kernels --benchmark_out=FILE --benchmark_out_format=json\n"
            "      names read <kernel>/<type>/<variant>/<rows>, the OpenCL ones cl:<device>/<kernel>/...;\n"
            "      fbench kernels --benchmark_list_tests lists them, --help shows all flags.\n"
            "\n"
            "options:\n"
            "  -h, --help      this text\n"
            "  -V, --version   fb's version\n"
            "\n"
            "  run NAME [--threads N] [--scale X] [--device cpu|opencl:N] [--repeat R] [--json FILE]\n"
            "           [--dump DIR] [--hw HW.json] [--stats] [--morsel ROWS] [--seed S]\n"
            "      a named workload (scan-agg; see fbench run --help), checked against a reference; prints the\n"
            "      median time, rows/s and the bound the bytes it moves take at the measured read bandwidth\n"
            "      (from --hw, a file of fbench hw --json, else measured first). --dump writes the input as\n"
            "      raw little-endian columns and a manifest.json for peer engines; --stats adds per-worker counters.\n"
            "\n"
            "  plan ssb [--sf N] [--placement cpu,gpu,hybrid,auto] [--threads N] [--repeat R] [--explain]\n"
            "           [--query Qn.m] [--json FILE] [--dump DIR] [--predict]\n"
            "      the 13 Star Schema Benchmark queries as fb plans, query x placement side by side;\n"
            "      --predict adds the cost model's prediction and measured/predicted per query.\n"
            "  calibrate [--rows N] [--out FILE] [--threads N]\n"
            "      measures the cost model's rates (fixed cost of a pipeline, per-row rates of plan stages) and\n"
            "      saves them (default $FB_CALIBRATION, else $XDG_CONFIG_HOME/fb/calibration.json, else\n"
            "      ~/.config/fb/calibration.json) for explain and auto placement.\n"
            "  ssb [--sf N] [--seed S] --dump DIR\n"
            "      generates the Star Schema Benchmark tables (strings dictionary-encoded) and writes them to DIR\n"
            "      for peer engines (bench/peers/duckdb_peer.py DIR --sql bench/peers/ssb.sql).\n"
            "\n"
            "environment: FB_ISA, FB_CL_DEVICE, FB_TOPOLOGY and FB_CL_CACHE_DIR apply as in the library.\n"
            "exit status: 0 success, 1 a measurement failed, 2 bad command line.\n");
}

int fbench_calibrate_main(int argc, char **argv); /* fbench_calibrate.c */

int main(int argc, char **argv)
{
    if (argc < 2) {
        fbench_usage(stderr);
        return FBENCH_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fbench_usage(stdout);
        return FBENCH_EXIT_OK;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("fbench (fb) %s\n", fb_version_string());
        return FBENCH_EXIT_OK;
    }
    if (strcmp(cmd, "hw") == 0)
        return fbench_hw_main(argc - 1, argv + 1);
    if (strcmp(cmd, "kernels") == 0)
        return fbench_kernels_main(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return fbench_run_main(argc - 1, argv + 1);
    if (strcmp(cmd, "ssb") == 0)
        return fbench_ssb_main(argc - 1, argv + 1);
    if (strcmp(cmd, "plan") == 0)
        return fbench_plan_main(argc - 1, argv + 1);
    if (strcmp(cmd, "calibrate") == 0)
        return fbench_calibrate_main(argc - 1, argv + 1);
    if (cmd[0] == '-')
        fprintf(stderr, "fbench: unknown option '%s' (see fbench --help)\n", cmd);
    else
        fprintf(stderr, "fbench: unknown command '%s': expected hw, kernels, run, ssb, plan or calibrate (see fbench --help)\n", cmd);
    return FBENCH_EXIT_USAGE;
}

/* ---- shared helpers -------------------------------------------------------------------------- */

int fbench_write_file(const char *dir, const char *name, const void *p, size_t bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int bad = !f || fwrite(p, 1, bytes, f) != bytes;
    if (f && fclose(f) != 0)
        bad = 1;
    if (bad)
        fprintf(stderr, "fbench: cannot write %s: %s\n", path, strerror(errno));
    return bad ? -1 : 0;
}

double fbench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void *fbench_alloc_pages(size_t bytes)
{
    /* mmap hands out untouched pages: each lands on the NUMA node of the thread that first writes it. */
    void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void fbench_free_pages(void *p, size_t bytes)
{
    if (p)
        munmap(p, bytes ? bytes : 1);
}

uint64_t fbench_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t kib = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long v;
        if (sscanf(line, "MemAvailable: %llu kB", &v) == 1) {
            kib = v;
            break;
        }
    }
    fclose(f);
    return kib * 1024;
}

void fbench_cpu_model(char *buf, size_t size)
{
    snprintf(buf, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *colon = strchr(line, ':');
        if (!colon)
            continue;
        colon++;
        while (*colon == ' ' || *colon == '\t')
            colon++;
        size_t n = strcspn(colon, "\n");
        snprintf(buf, size, "%.*s", (int)n, colon);
        break;
    }
    fclose(f);
}

void fbench_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

int fbench_parse_int(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}
