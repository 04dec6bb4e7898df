/* fb_topology.h - the machine as fb sees it: packages, NUMA nodes, cores, caches (through hwloc).
 *
 * A context loads the topology once, at fb_ctx_create(): the real machine's, or a synthetic one
 * given by fb_options_set_topology() or the FB_TOPOLOGY environment variable in hwloc's synthetic
 * syntax (e.g. "pack:2 numa:1 l3:1(size=32MB) core:4 pu:1"), so that multi-socket behaviour can be
 * exercised on a one-socket machine. With a synthetic topology nothing is bound to real cores.
 * A synthetic description without a NUMA level ("pack:2 core:4 pu:1") has one NUMA node for the
 * whole machine; hwloc gives each synthetic NUMA node 1 GiB unless it says otherwise
 * ("numa:1(memory=64GB)"). Sizes in descriptions follow hwloc: "MB" is 10^6 bytes, "MiB" 2^20.
 *
 * Packages, NUMA nodes and cores are numbered by hwloc's logical indices: 0..n-1 in the order of
 * the machine's hierarchy, so cores 0..k-1 of a two-package machine are all on package 0. On a
 * machine where hwloc finds no cores, the processing units stand in for them.
 *
 * The real topology includes the I/O devices hwloc deems important (PCI GPUs, OpenCL devices), so
 * that fb can tell which NUMA node an OpenCL device is attached to.
 *
 * Threading: all functions only read the context's topology and may run concurrently.
 */
#ifndef FB_TOPOLOGY_H
#define FB_TOPOLOGY_H

#include "fb_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** \brief Counts and cache sizes of a topology. Fields are only ever added at the end. */
typedef struct fb_topology_info {
    int synthetic;        /**< 1 when the topology came from a synthetic description */
    int packages;         /**< processor packages (sockets), ≥ 1 */
    int numa_nodes;       /**< NUMA nodes, ≥ 1 */
    int cores;            /**< cores, ≥ 1 */
    int pus;              /**< processing units (hardware threads), ≥ 1 */
    uint64_t l1d_bytes;   /**< size of one L1 data (or unified) cache in bytes; 0 if absent or unknown */
    uint64_t l2_bytes;    /**< size of one L2 cache in bytes; 0 if absent or unknown */
    uint64_t l3_bytes;    /**< size of one L3 cache in bytes; 0 if absent or unknown (the last-level
                               cache is then the L2) */
    int l3_count;         /**< number of L3 caches (e.g. one per package, or one per AMD CCX); 0 if none */
    uint64_t memory_bytes;/**< total memory of the NUMA nodes in bytes as hwloc reports it (in a
                               virtual machine this may be less than the operating system's total);
                               0 if unknown */
} fb_topology_info;

/** \brief Counts and cache sizes of the context's topology.
 * \param[out] info filled on success.
 * \return FB_OK, or FB_ERR_INVALID_ARG (ctx or info NULL). */
FB_API fb_status fb_topology_get_info(fb_ctx *ctx, fb_topology_info *info);

/** \brief The NUMA node (logical index, 0..numa_nodes-1) that core `core` (0..cores-1) belongs to:
 * the first node, in logical order, whose CPUs include the core's.
 * \param[out] node the node.
 * \return FB_OK, or FB_ERR_INVALID_ARG (ctx or node NULL, core out of range). */
FB_API fb_status fb_topology_core_numa_node(fb_ctx *ctx, int core, int *node);

/** \brief The package (socket, logical index 0..packages-1) that core `core` (0..cores-1) belongs to;
 * 0 on a machine where hwloc finds no package.
 * \param[out] package the package.
 * \return FB_OK, or FB_ERR_INVALID_ARG (ctx or package NULL, core out of range). */
FB_API fb_status fb_topology_core_package(fb_ctx *ctx, int core, int *package);

/** \brief A readable multi-line description: a summary line, then one line per package with its CPU
 * model, NUMA nodes and their memory, cores, PUs and caches, e.g.
 * \code
 * machine topology: 1 package, 1 NUMA node, 2 cores, 2 PUs, 4.8 GiB memory
 * package 0 (AMD EPYC): NUMA 0 (4.8 GiB); cores 0-1 (PUs 0-1), L3 32 MiB x1, L2 1 MiB x2, L1d 32 KiB x2
 * \endcode
 * \param buf output of `size` bytes, always NUL-terminated when size ≥ 1 (truncated to fit).
 * \return FB_OK; FB_ERR_INVALID_ARG (ctx or buf NULL); FB_ERR_CAPACITY when the text was truncated
 *         (the message says how many bytes it needs; nothing is written when size is 0). */
FB_API fb_status fb_topology_describe(fb_ctx *ctx, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* FB_TOPOLOGY_H */
