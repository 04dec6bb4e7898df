#!/usr/bin/env python3
"""sort_duckdb_check.py - compares fb's sorts (written by test_sort.c's test_duckdb) with DuckDB on the
same data, for S1..S4-shaped data sets (../shared/WORKLOADS.md) at a small scale.

Usage: sort_duckdb_check.py DIR. DIR holds raw little-endian arrays NAME_in_COL.TYPE (the input) and
NAME_out_COL.TYPE (fb's result), TYPE one of i32, i64, f64, u32, u8 (u8: validity, one byte per row),
for the data sets present among:
  s1  k int32 (many ties), v int32 = row number; fb_sort_table by k (v follows). DuckDB: ORDER BY k, v
      (fb's sort is stable and v is the input order, so the tie order is defined).
  s2  k int64; fb_sort_table by k. DuckDB: ORDER BY k.
  s3  a int32 (1000 values), b int64 (few values), c float64 (NaN, -0.0, nulls), r int32 = row number;
      fb_sort_table by a asc, b desc, c asc nulls last, r following. DuckDB: the same ORDER BY, then r.
  s4  k int32 (many ties); fb_sort_top_n 100 by k desc: row ids. DuckDB: ORDER BY k DESC, row LIMIT 100.
Every output column must be equal (float: both null, both NaN, or ==, so -0.0 = 0.0); exit status 1
otherwise, 2 when duckdb or numpy cannot be imported (the C test checks that first and skips).
"""
import os
import sys

try:
    import duckdb
    import numpy as np
except ImportError as e:
    print(f"sort_duckdb_check: cannot import duckdb/numpy: {e}", file=sys.stderr)
    sys.exit(2)

DT = {"i32": "<i4", "i64": "<i8", "f64": "<f8", "u32": "<u4", "u8": "u1"}


def load(d, name, part, col, t):
    return np.fromfile(os.path.join(d, f"{name}_{part}_{col}.{t}"), dtype=DT[t])


def same(name, col, fb, db):
    if len(fb) != len(db):
        print(f"sort_duckdb_check: {name}.{col}: fb has {len(fb)} rows, DuckDB {len(db)}")
        return False
    if fb.dtype.kind == "f":
        eq = (fb == db) | (np.isnan(fb) & np.isnan(db))
    else:
        eq = fb == db
    if not eq.all():
        i = int(np.argmin(eq))
        print(f"sort_duckdb_check: {name}.{col}: first difference at row {i}: fb {fb[i]!r}, DuckDB {db[i]!r}")
        return False
    return True


def check(d, name):
    con = duckdb.connect()
    ok = True
    if name == "s1":
        t = {"k": load(d, name, "in", "k", "i32"), "v": load(d, name, "in", "v", "i32")}
        con.register("t", t)
        db = con.execute("SELECT k, v FROM t ORDER BY k, v").fetchnumpy()
        for c in ("k", "v"):
            ok &= same(name, c, load(d, name, "out", c, "i32"), np.asarray(db[c]))
    elif name == "s2":
        con.register("t", {"k": load(d, name, "in", "k", "i64")})
        db = con.execute("SELECT k FROM t ORDER BY k").fetchnumpy()
        ok &= same(name, "k", load(d, name, "out", "k", "i64"), np.asarray(db["k"]))
    elif name == "s3":
        c = load(d, name, "in", "c", "f64")
        # DuckDB reads a numpy NaN as NULL: NaN goes over as a flag and comes back as 'nan'::DOUBLE
        t = {"a": load(d, name, "in", "a", "i32"), "b": load(d, name, "in", "b", "i64"),
             "c0": np.where(np.isnan(c), 0.0, c), "cnan": np.isnan(c).astype("u1"),
             "cv": load(d, name, "in", "cvalid", "u8"), "r": load(d, name, "in", "r", "i32")}
        con.register("inp", t)
        con.execute("CREATE TABLE t AS SELECT a, b, CASE WHEN cv = 1 THEN CASE WHEN cnan = 1 THEN 'nan'::DOUBLE "
                    "ELSE c0 END END AS c, r FROM inp")
        n_nan = con.execute("SELECT count(*) FROM t WHERE isnan(c)").fetchone()[0]
        if n_nan != int((np.isnan(c) & (t["cv"] == 1)).sum()):
            print(f"sort_duckdb_check: {name}: DuckDB holds {n_nan} NaN, the input more")
            ok = False
        db = con.execute("SELECT a, b, coalesce(c, 0) AS c_or_0, (c IS NULL)::UTINYINT AS cnull, r FROM t "
                         "ORDER BY a ASC, b DESC, c ASC NULLS LAST, r").fetchnumpy()
        for c, ty in (("a", "i32"), ("b", "i64"), ("r", "i32")):
            ok &= same(name, c, load(d, name, "out", c, ty), np.asarray(db[c]))
        valid = load(d, name, "out", "cvalid", "u8")
        ok &= same(name, "c null", (1 - valid).astype("u1"), np.asarray(db["cnull"]).astype("u1"))
        cf = np.where(valid == 1, load(d, name, "out", "c", "f64"), 0.0)
        if not np.isnan(cf).any():
            print(f"sort_duckdb_check: {name}: no NaN reached the comparison")
            ok = False
        ok &= same(name, "c", cf, np.asarray(db["c_or_0"]))
    elif name == "s4":
        k = load(d, name, "in", "k", "i32")
        con.register("t", {"k": k, "r": np.arange(len(k), dtype=np.uint32)})
        db = con.execute("SELECT r FROM t ORDER BY k DESC, r LIMIT 100").fetchnumpy()
        ok &= same(name, "row", load(d, name, "out", "r", "u32"), np.asarray(db["r"]))
    print(f"sort_duckdb_check: {name}: DuckDB {duckdb.__version__}: {'OK' if ok else 'DIFFERENT'}")
    return ok


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = sys.argv[1]
    names = [n for n in ("s1", "s2", "s3", "s4") if any(f.startswith(n + "_out_") for f in os.listdir(d))]
    if not names:
        print(f"sort_duckdb_check: no data sets in {d}", file=sys.stderr)
        return 1
    ok = all([check(d, n) for n in names])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
