#!/usr/bin/env python3
"""fb_arrow.py - calling fb from Python on pyarrow tables through the Arrow C Data Interface (ctypes only,
no compiled extension).

    python3 fb_arrow.py [path/to/libfb.so]      (or FB_LIB=...; default: build/release, then build/ci)

pyarrow record batches are handed to fb without copying (fb_arrow_import_table), run through an fb plan
(hash join, group-by, sort) and the answer comes back as a pyarrow record batch (fb_arrow_export_table,
whose release callback frees fb's result exactly once). Each answer is compared with DuckDB's answer to the
same SQL over the same pyarrow tables; exit status 0 when all are equal, 77 when pyarrow or duckdb is
missing (so the ctest that runs this counts as skipped).

    orders(o_id int64, o_cust int32, o_amount int64 with nulls)   customers(c_id int32, c_region int32)
    1. SELECT c_region, count(*), sum(o_amount) FROM orders JOIN customers ON o_cust = c_id GROUP BY c_region
    2. SELECT * FROM orders ORDER BY o_amount DESC NULLS LAST, o_id LIMIT 20
    3. SELECT o_id FROM orders WHERE o_cust NOT IN (SELECT c_id FROM customers)  -- anti join
    4. the same as 1 grouped by c_segment, a dictionary<int32, utf8> column (fb groups the codes)
"""
import ctypes as C
import os
import sys

try:
    import duckdb
    import numpy as np
    import pyarrow as pa
except ImportError as e:
    print(f"fb_arrow.py: needs pyarrow, duckdb and numpy ({e}); skipped", file=sys.stderr)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))


def find_lib():
    if len(sys.argv) > 1:
        return sys.argv[1]
    if os.environ.get("FB_LIB"):
        return os.environ["FB_LIB"]
    for preset in ("release", "ci"):
        p = os.path.join(HERE, "..", "..", "build", preset, "libfb.so")
        if os.path.exists(p):
            return p
    sys.exit("fb_arrow.py: give the path of libfb.so (argument or FB_LIB)")


fb = C.CDLL(find_lib())

# ---- the parts of fb's C API this script uses (fb_core.h, fb_column.h, fb_arrow.h, fb_plan.h) ----------


class Column(C.Structure):
    _fields_ = [("type", C.c_int), ("length", C.c_int64), ("offset", C.c_int64), ("data", C.c_void_p),
                ("validity", C.c_void_p)]


class Table(C.Structure):
    _fields_ = [("n_columns", C.c_size_t), ("columns", C.POINTER(Column)), ("names", C.POINTER(C.c_char_p))]


class PlanAgg(C.Structure):
    _fields_ = [("kind", C.c_int), ("column", C.c_size_t)]


class SortKey(C.Structure):
    _fields_ = [("column", C.c_size_t), ("descending", C.c_int), ("nulls_first", C.c_int)]


class PlanResult(C.Structure):
    _fields_ = [("table", Table), ("rows", C.c_int64), ("seconds", C.c_double), ("pipelines", C.c_int),
                ("placement", C.c_int), ("priv", C.c_void_p)]


ARROW_SCHEMA_SIZE, ARROW_ARRAY_SIZE = 72, 80  # sizeof(struct ArrowSchema), sizeof(struct ArrowArray)
FB_OK, FB_PLACEMENT_CPU = 0, 0
FB_JOIN_INNER, FB_JOIN_ANTI = 0, 3
FB_AGG_COUNT_STAR, FB_AGG_SUM = 0, 2
node = C.c_int32
ctx_p, plan_p, table_p = C.c_void_p, C.c_void_p, C.c_void_p

fb.fb_last_error.restype = C.c_char_p
fb.fb_last_error.argtypes = [ctx_p]
fb.fb_ctx_create.argtypes = [C.c_void_p, C.POINTER(ctx_p)]
fb.fb_ctx_destroy.argtypes = [ctx_p]
fb.fb_arrow_import_table.argtypes = [ctx_p, C.c_void_p, C.c_void_p, C.POINTER(table_p)]
fb.fb_arrow_table_view.restype = C.POINTER(Table)
fb.fb_arrow_table_view.argtypes = [table_p]
fb.fb_arrow_table_free.argtypes = [table_p]
fb.fb_arrow_export_table.argtypes = [ctx_p, C.POINTER(Table), C.c_void_p, C.c_void_p, C.c_void_p, C.c_void_p]
fb.fb_plan_create.argtypes = [ctx_p, C.POINTER(plan_p)]
fb.fb_plan_destroy.argtypes = [plan_p]
fb.fb_plan_scan.argtypes = [plan_p, C.POINTER(Table), C.c_char_p, C.POINTER(C.c_size_t), C.c_size_t, C.POINTER(node)]
fb.fb_plan_join.argtypes = [plan_p, node, node, C.POINTER(C.c_size_t), C.POINTER(C.c_size_t), C.c_size_t, C.c_int,
                            C.POINTER(C.c_size_t), C.c_size_t, C.POINTER(node)]
fb.fb_plan_aggregate.argtypes = [plan_p, node, C.POINTER(C.c_size_t), C.c_size_t, C.POINTER(PlanAgg), C.c_size_t,
                                 C.POINTER(node)]
fb.fb_plan_sort.argtypes = [plan_p, node, C.POINTER(SortKey), C.c_size_t, C.c_int64, C.POINTER(node)]
fb.fb_plan_run.argtypes = [plan_p, node, C.c_int, C.POINTER(C.POINTER(PlanResult))]
fb.fb_plan_result_free.argtypes = [C.c_void_p]

ctx = ctx_p()


def check(status, what):
    if status != FB_OK:
        raise RuntimeError(f"{what}: {fb.fb_last_error(ctx).decode()}")


def to_fb(batch):
    """A pyarrow RecordBatch into fb without copying: fb owns the Arrow structs afterwards."""
    schema = C.create_string_buffer(ARROW_SCHEMA_SIZE)
    array = C.create_string_buffer(ARROW_ARRAY_SIZE)
    batch._export_to_c(C.addressof(array), C.addressof(schema))
    t = table_p()
    status = fb.fb_arrow_import_table(ctx, schema, array, C.byref(t))
    if status != FB_OK:  # the structs are still ours: release them (Arrow's release callbacks)
        message = fb.fb_last_error(ctx).decode()
        for buf, offset in ((array, 64), (schema, 56)):  # offsetof(..., release)
            fn = C.c_void_p.from_buffer(buf, offset).value
            if fn:
                C.CFUNCTYPE(None, C.c_void_p)(fn)(C.addressof(buf))
        raise RuntimeError(message)
    return t


def to_arrow(result):
    """fb's plan result as a pyarrow RecordBatch without copying; the batch's release frees the result."""
    schema = C.create_string_buffer(ARROW_SCHEMA_SIZE)
    array = C.create_string_buffer(ARROW_ARRAY_SIZE)
    release = C.cast(fb.fb_plan_result_free, C.c_void_p)
    check(fb.fb_arrow_export_table(ctx, C.byref(result.contents.table), release, result, schema, array),
          "fb_arrow_export_table")
    return pa.RecordBatch._import_from_c(C.addressof(array), C.addressof(schema))


def sizes(*v):
    return (C.c_size_t * len(v))(*v)


def run(plan, root):
    res = C.POINTER(PlanResult)()
    check(fb.fb_plan_run(plan, root, FB_PLACEMENT_CPU, C.byref(res)), "fb_plan_run")
    return to_arrow(res)


def main():
    check(fb.fb_ctx_create(None, C.byref(ctx)), "fb_ctx_create")
    rng = np.random.default_rng(7)
    n_orders, n_cust = 200_000, 5_000
    amount = rng.integers(-1000, 100_000, n_orders)
    orders = pa.record_batch({
        "o_id": pa.array(np.arange(n_orders, dtype=np.int64)),
        "o_cust": pa.array(rng.integers(0, n_cust + 500, n_orders, dtype=np.int32)),  # some match no customer
        "o_amount": pa.array(amount, mask=rng.random(n_orders) < 0.05),               # 5% nulls
    })
    segments = pa.array(["AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY"])
    customers = pa.record_batch({
        "c_id": pa.array(rng.permutation(n_cust).astype(np.int32)),
        "c_region": pa.array(rng.integers(0, 5, n_cust, dtype=np.int32)),
        # dictionary-encoded strings: fb sees the int32 codes, the dictionary stays Arrow's
        "c_segment": pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 5, n_cust, dtype=np.int32)), segments),
    })
    # A type fb does not take is refused with a message naming it.
    try:
        to_fb(pa.record_batch({"name": pa.array(["a", "b"])}))
        print("fb_arrow.py: a utf8 column was accepted")
        return 1
    except RuntimeError as e:
        assert "utf8" in str(e), e
        print(f"fb_arrow.py: a utf8 column is refused: {e}")
    # The tables move into fb (zero copy); the pyarrow objects stay valid for DuckDB below.
    fo, fc = to_fb(orders), to_fb(customers)
    plan = plan_p()
    check(fb.fb_plan_create(ctx, C.byref(plan)), "fb_plan_create")
    so, sc, j, a, s, anti = node(), node(), node(), node(), node(), node()
    check(fb.fb_plan_scan(plan, fb.fb_arrow_table_view(fo), b"orders", None, 0, C.byref(so)), "scan")
    check(fb.fb_plan_scan(plan, fb.fb_arrow_table_view(fc), b"customers", None, 0, C.byref(sc)), "scan")
    # 1. join + group-by (+ sort by region for a stable comparison)
    check(fb.fb_plan_join(plan, so, sc, sizes(1), sizes(0), 1, FB_JOIN_INNER, sizes(1), 1, C.byref(j)), "join")
    aggs = (PlanAgg * 2)(PlanAgg(FB_AGG_COUNT_STAR, 0), PlanAgg(FB_AGG_SUM, 2))
    check(fb.fb_plan_aggregate(plan, j, sizes(3), 1, aggs, 2, C.byref(a)), "aggregate")
    g = node()
    check(fb.fb_plan_sort(plan, a, (SortKey * 1)(SortKey(0, 0, 0)), 1, -1, C.byref(g)), "sort")
    # 2. top 20 by amount desc nulls last, id
    check(fb.fb_plan_sort(plan, so, (SortKey * 2)(SortKey(2, 1, 0), SortKey(0, 0, 0)), 2, 20, C.byref(s)), "sort")
    # 3. anti join
    check(fb.fb_plan_join(plan, so, sc, sizes(1), sizes(0), 1, FB_JOIN_ANTI, None, 0, C.byref(anti)), "anti join")
    anti_ids = node()
    check(fb.fb_plan_sort(plan, anti, (SortKey * 1)(SortKey(0, 0, 0)), 1, -1, C.byref(anti_ids)), "sort")

    # 4. group by the dictionary codes of c_segment (column 4 of the join when carrying c_segment)
    j2, a2, g2 = node(), node(), node()
    check(fb.fb_plan_join(plan, so, sc, sizes(1), sizes(0), 1, FB_JOIN_INNER, sizes(2), 1, C.byref(j2)), "join")
    check(fb.fb_plan_aggregate(plan, j2, sizes(3), 1, aggs, 2, C.byref(a2)), "aggregate")
    check(fb.fb_plan_sort(plan, a2, (SortKey * 1)(SortKey(0, 0, 0)), 1, -1, C.byref(g2)), "sort")

    got = [run(plan, g), run(plan, s), run(plan, anti_ids)]
    # codes back to strings through the Arrow dictionary (code order = the dictionary's order)
    seg = run(plan, g2)
    seg_names = [segments[c].as_py() for c in seg.column(0).to_pylist()]
    got.append(pa.record_batch({"c_segment": pa.array(seg_names), "count": seg.column(1), "sum": seg.column(2)}))
    con = duckdb.connect()
    con.register("orders", pa.Table.from_batches([orders]))
    con.register("customers", pa.Table.from_batches([customers]))
    sql = [
        "SELECT c_region, count(*), sum(o_amount) FROM orders JOIN customers ON o_cust = c_id "
        "GROUP BY c_region ORDER BY c_region",
        "SELECT * FROM orders ORDER BY o_amount DESC NULLS LAST, o_id LIMIT 20",
        "SELECT o_id, o_cust, o_amount FROM orders WHERE NOT EXISTS (SELECT 1 FROM customers WHERE c_id = o_cust) "
        "ORDER BY o_id",
        "SELECT c_segment::VARCHAR, count(*), sum(o_amount) FROM orders JOIN customers ON o_cust = c_id "
        "GROUP BY c_segment ORDER BY c_segment::VARCHAR",
    ]
    bad = 0
    for i, (batch, q) in enumerate(zip(got, sql)):
        want = con.execute(q).fetchall()
        have = [tuple(r.values()) for r in batch.to_pylist()]
        # fb's anti join output keeps every probe column: compare the same three.
        def norm(rows):
            return [tuple(x if x is None or isinstance(x, str) else int(x) for x in r) for r in rows]
        ok = norm(have) == norm(want)
        print(f"fb_arrow.py: query {i + 1}: {batch.num_rows} rows, columns {batch.schema.names}: "
              f"{'same as DuckDB' if ok else 'DIFFERENT from DuckDB'}")
        if not ok:
            print(f"  fb     {have[:3]}\n  duckdb {want[:3]}")
            bad = 1
    del got  # releases fb's results (fb_plan_result_free via the Arrow release callbacks)
    fb.fb_plan_destroy(plan)
    fb.fb_arrow_table_free(fo)
    fb.fb_arrow_table_free(fc)
    fb.fb_ctx_destroy(ctx)
    return bad


if __name__ == "__main__":
    sys.exit(main())
