/* fb.h - the one header users include: every public part of fb. */
#ifndef FB_H
#define FB_H

#include "fb_core.h"
#include "fb_column.h"
#include "fb_kernels.h"
#include "fb_expr.h"
#include "fb_agg.h"
#include "fb_join.h"
#include "fb_sort.h"
#include "fb_cl.h"
#include "fb_topology.h"
#include "fb_arrow.h"
#include "fb_plan.h"
#include "fb_runtime.h"

#endif /* FB_H */
