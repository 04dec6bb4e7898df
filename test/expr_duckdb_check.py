#!/usr/bin/env python3
"""expr_duckdb_check.py - compares fb's expression kernels (written by test_expr.c's test_duckdb) with
DuckDB on the same SSB-shaped lineorder columns.

Usage: expr_duckdb_check.py DIR. DIR holds raw little-endian arrays: lo_quantity.i32, lo_discount.i32
(+ lo_discount_valid.u8, one byte per row), lo_extendedprice.i32, d_year.i32, p_category.i32 (codes),
and fb's answers: q11_rows.u32 + q11_revenue.i64 (rows passing the Q1.1-shaped filter and their
revenue), q12_rows.u32 + q12_profit.i32 (rows passing a filter with OR, NOT and IN, and their
lo_revenue - lo_supplycost from lo_revenue.i32, lo_supplycost.i32). DuckDB runs the SQL below on the
same data; row sets and revenues must be equal, and so must sum(revenue). Exit status 1 otherwise, 2
when duckdb or numpy cannot be imported (the C test checks that first and skips).
"""
import os
import sys

try:
    import duckdb
    import numpy as np
except ImportError as e:
    print(f"expr_duckdb_check: cannot import duckdb/numpy: {e}", file=sys.stderr)
    sys.exit(2)

Q11 = """SELECT rid, CAST(lo_extendedprice AS BIGINT) * lo_discount AS revenue FROM lineorder
         WHERE lo_discount BETWEEN 1 AND 3 AND lo_quantity < 25 AND d_year = 1993 ORDER BY rid"""
Q12 = """SELECT rid, lo_revenue - lo_supplycost AS profit FROM lineorder
         WHERE (lo_discount BETWEEN 4 AND 6 OR lo_quantity >= 40) AND NOT (p_category IN (3, 7, 11))
         ORDER BY rid"""
SUM11 = """SELECT sum(CAST(lo_extendedprice AS BIGINT) * lo_discount) FROM lineorder
           WHERE lo_discount BETWEEN 1 AND 3 AND lo_quantity < 25 AND d_year = 1993"""


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = sys.argv[1]

    def load(name, dtype):
        return np.fromfile(os.path.join(d, name), dtype=dtype)

    cols = {
        "rid": np.arange(len(load("lo_quantity.i32", "<i4")), dtype=np.int64),
        "lo_quantity": load("lo_quantity.i32", "<i4"),
        "disc": load("lo_discount.i32", "<i4"),
        "dvalid": load("lo_discount_valid.u8", "u1"),
        "lo_extendedprice": load("lo_extendedprice.i32", "<i4"),
        "d_year": load("d_year.i32", "<i4"),
        "p_category": load("p_category.i32", "<i4"),
        "lo_revenue": load("lo_revenue.i32", "<i4"),
        "lo_supplycost": load("lo_supplycost.i32", "<i4"),
    }
    con = duckdb.connect()
    con.register("raw", cols)
    con.execute("""CREATE TABLE lineorder AS SELECT rid, lo_quantity, CASE WHEN dvalid = 1 THEN disc END AS lo_discount,
                   lo_extendedprice, d_year, p_category, lo_revenue, lo_supplycost FROM raw""")
    ok = True
    q11 = con.execute(Q11).fetchnumpy()
    rows11, rev11 = load("q11_rows.u32", "<u4").astype(np.int64), load("q11_revenue.i64", "<i8")
    same11 = np.array_equal(q11["rid"], rows11) and np.array_equal(q11["revenue"].astype(np.int64), rev11)
    total = con.execute(SUM11).fetchone()[0]
    same_sum = int(total or 0) == int(rev11.sum())
    print(f"expr_duckdb_check: DuckDB {duckdb.__version__}, {len(cols['rid'])} rows. Q1.1 filter: DuckDB "
          f"{len(q11['rid'])} rows, fb {len(rows11)} rows, revenue sum DuckDB {total} fb {int(rev11.sum())}: "
          f"{'OK' if same11 and same_sum else 'DIFFERENT'}")
    ok &= same11 and same_sum
    q12 = con.execute(Q12).fetchnumpy()
    rows12 = load("q12_rows.u32", "<u4").astype(np.int64)
    profit12 = load("q12_profit.i32", "<i4").astype(np.int64)
    same12 = np.array_equal(q12["rid"], rows12) and np.array_equal(q12["profit"].astype(np.int64), profit12)
    print(f"expr_duckdb_check: OR/NOT/IN filter: DuckDB {len(q12['rid'])} rows, fb {len(rows12)} rows, "
          f"profit sum DuckDB {int(q12['profit'].astype(np.int64).sum())} fb {int(profit12.sum())}: "
          f"{'OK' if same12 else 'DIFFERENT'}")
    ok &= same12
    if not same12:
        extra = np.setdiff1d(rows12, q12["rid"])[:5]
        missing = np.setdiff1d(q12["rid"], rows12)[:5]
        print(f"  fb only: {extra.tolist()}, DuckDB only: {missing.tolist()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
