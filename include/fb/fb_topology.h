/* fb_topology.h - the machine as fb sees it: packages, NUMA nodes, cores, caches (through hwloc).
 *
 * A context loads the topology once, at fb_ctx_create(): the real machine's, or a synthetic one
 * given by fb_options_set_topology() or the FB_TOPOLOGY environment variable in hwloc's synthetic
 * syntax (e.g. "pack:2 numa:1 l3:1(size=32MB) core:4 pu:1"), so that multi-socket behaviour can be
 * exercised on a one-socket machine. With a synthetic topology nothing is bound to real cores.
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
    uint64_t l1d_bytes;   /**< size of one L1 data cache; 0 if unknown */
    uint64_t l2_bytes;    /**< size of one L2 cache; 0 if unknown */
    uint64_t l3_bytes;    /**< size of one L3 (last-level) cache; 0 if unknown */
    int l3_count;         /**< number of L3 caches */
    uint64_t memory_bytes;/**< total memory of the NUMA nodes; 0 if unknown */
} fb_topology_info;

/** \brief Counts and cache sizes of the context's topology.
 * \param[out] info filled on success. \return FB_OK or FB_ERR_INVALID_ARG. */
FB_API fb_status fb_topology_get_info(fb_ctx *ctx, fb_topology_info *info);

/** \brief The NUMA node (logical index, 0..numa_nodes-1) that core `core` (0..cores-1) belongs to.
 * \param[out] node the node. \return FB_OK or FB_ERR_INVALID_ARG (core out of range). */
FB_API fb_status fb_topology_core_numa_node(fb_ctx *ctx, int core, int *node);

/** \brief The package (socket, 0..packages-1) that core `core` belongs to.
 * \param[out] package the package. \return FB_OK or FB_ERR_INVALID_ARG. */
FB_API fb_status fb_topology_core_package(fb_ctx *ctx, int core, int *package);

/** \brief A readable multi-line description (one line per package, with its NUMA nodes, cores and
 * caches), NUL-terminated and truncated to fit.
 * \param buf output of `size` bytes. \return FB_OK, FB_ERR_INVALID_ARG, FB_ERR_CAPACITY (truncated). */
FB_API fb_status fb_topology_describe(fb_ctx *ctx, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* FB_TOPOLOGY_H */
