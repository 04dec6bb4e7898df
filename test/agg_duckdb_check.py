#!/usr/bin/env python3
"""agg_duckdb_check.py - compares fb's aggregation (written by test_agg.c's test_duckdb) with DuckDB
on the same data.

Usage: agg_duckdb_check.py DIR. For every data set NAME in DIR (files NAME_in_*, NAME_out_*: raw
little-endian arrays, validity as one byte per row) it runs
  SELECT k, count(*), count(v), sum(v), min(v), max(v), avg(v) FROM t GROUP BY k
in DuckDB and full-outer-joins the answer with fb's on k (IS NOT DISTINCT FROM, so the null group
is matched too). Every column must be equal (avg: within 1e-9 relative); exit status 1 otherwise.
Exit status 2 when duckdb or numpy cannot be imported (the C test checks that first and skips).

Usage: agg_duckdb_check.py --fbench FBENCH [--scale X] [--hw HW.json]. Runs `fbench run W --dump DIR`
for the workloads A1..A4 at a small scale (fb through the runtime aggregation, checked by fbench against
its own hash-map reference), loads the dumped columns into DuckDB as the manifest describes (raw
little-endian arrays, Arrow LSB-first validity bitmaps) and runs the manifest's "query": its four
figures must equal the ones fbench printed in its JSON. Exit status 77 (ctest's skip) when duckdb or
numpy cannot be imported in this mode.
"""
import glob
import os
import sys

import json
import subprocess
import tempfile

try:
    import duckdb
    import numpy as np
except ImportError as e:  # the C test skips before calling us; be explicit if run by hand
    print(f"agg_duckdb_check: cannot import duckdb/numpy: {e}", file=sys.stderr)
    sys.exit(77 if "--fbench" in sys.argv else 2)


def load(d, name, suffix, dtype):
    return np.fromfile(os.path.join(d, f"{name}_{suffix}"), dtype=dtype)


def check(d, name):
    inp = {
        "k": load(d, name, "in_k.i32", "<i4"),
        "v": load(d, name, "in_v.i32", "<i4"),
        "kv": load(d, name, "in_kvalid.u8", "u1"),
        "vv": load(d, name, "in_vvalid.u8", "u1"),
    }
    ko = load(d, name, "out_k.i32", "<i4")
    g = len(ko)
    valid = load(d, name, "out_valid.u8", "u1").reshape(7, g)
    out = {
        "k": ko,
        "c0": load(d, name, "out_count_star.i64", "<i8"),
        "c1": load(d, name, "out_count.i64", "<i8"),
        "s": load(d, name, "out_sum.i64", "<i8"),
        "mn": load(d, name, "out_min.i32", "<i4"),
        "mx": load(d, name, "out_max.i32", "<i4"),
        "av": load(d, name, "out_avg.f64", "<f8"),
    }
    for i, col in enumerate(["kvalid", "c0v", "c1v", "sv", "mnv", "mxv", "avv"]):
        out[col] = valid[i].copy()
    con = duckdb.connect()
    con.register("inp", inp)
    con.register("fbo", out)
    con.execute("""
        CREATE TABLE t AS SELECT CASE WHEN kv = 1 THEN k END AS k, CASE WHEN vv = 1 THEN v END AS v FROM inp;
        CREATE TABLE ref AS SELECT k, count(*) AS c0, count(v) AS c1, sum(v) AS s, min(v) AS mn, max(v) AS mx,
                                   avg(v) AS av FROM t GROUP BY k;
        CREATE TABLE fb AS SELECT CASE WHEN kvalid = 1 THEN k END AS k,
                                  CASE WHEN c0v = 1 THEN c0 END AS c0, CASE WHEN c1v = 1 THEN c1 END AS c1,
                                  CASE WHEN sv = 1 THEN s END AS s, CASE WHEN mnv = 1 THEN mn END AS mn,
                                  CASE WHEN mxv = 1 THEN mx END AS mx, CASE WHEN avv = 1 THEN av END AS av FROM fbo;
    """)
    n_ref, n_fb = con.execute("SELECT (SELECT count(*) FROM ref), (SELECT count(*) FROM fb)").fetchone()
    bad = con.execute("""
        SELECT coalesce(r.k, f.k) AS k, r.c0, f.c0, r.c1, f.c1, r.s, f.s, r.mn, f.mn, r.mx, f.mx, r.av, f.av
        FROM ref r FULL OUTER JOIN fb f ON r.k IS NOT DISTINCT FROM f.k
        WHERE r.c0 IS NULL OR f.c0 IS NULL
           OR r.c0 <> f.c0 OR r.c1 <> f.c1
           OR r.s IS DISTINCT FROM f.s OR r.mn IS DISTINCT FROM f.mn OR r.mx IS DISTINCT FROM f.mx
           OR (r.av IS NULL) <> (f.av IS NULL) OR abs(r.av - f.av) > 1e-9 * greatest(abs(r.av), 1)
        LIMIT 5
    """).fetchall()
    print(f"agg_duckdb_check: {name}: {len(inp['k'])} rows, DuckDB {duckdb.__version__} {n_ref} groups, "
          f"fb {n_fb} groups: {'OK' if not bad and n_ref == n_fb else 'DIFFERENT'}")
    for row in bad:
        print(f"  k={row[0]}: duckdb (count*, count, sum, min, max, avg) = {row[1::2]}, fb = {row[2::2]}")
    return not bad and n_ref == n_fb


def load_manifest_table(con, d, t):
    """Creates table t of a dump in DuckDB: numpy arrays with nulls from the validity bitmaps."""
    cols = {}
    nulls = []
    for c in t["columns"]:
        a = np.fromfile(os.path.join(d, c["file"]), dtype="<" + {"int32": "i4", "int64": "i8"}[c["type"]])
        assert len(a) == t["rows"], (c["file"], len(a), t["rows"])
        cols[c["name"]] = a
        if c["validity"]:
            bits = np.fromfile(os.path.join(d, c["validity"]), dtype=np.uint8)
            cols[c["name"] + "__valid"] = np.unpackbits(bits, bitorder="little")[: t["rows"]]
            nulls.append(c["name"])
    con.register("raw_" + t["name"], cols)
    sel = ", ".join(f"CASE WHEN {n}__valid = 1 THEN {n} END AS {n}" if n in nulls else n
                    for n in [c["name"] for c in t["columns"]])
    con.execute(f"CREATE TABLE {t['name']} AS SELECT {sel} FROM raw_{t['name']}")


def check_workloads(fbench, scale, hw):
    ok = True
    with tempfile.TemporaryDirectory(prefix="fb_agg_wl_") as tmp:
        for w in ["A1", "A2", "A3", "A4"]:
            d = os.path.join(tmp, w)
            js = os.path.join(tmp, w + ".json")
            cmd = [fbench, "run", w, "--scale", str(scale), "--threads", "2", "--repeat", "1", "--dump", d,
                   "--json", js]
            if hw:
                cmd += ["--hw", hw]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"agg_duckdb_check: {' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
                ok = False
                continue
            fb = list(json.load(open(js))[0]["result"].values())
            m = json.load(open(os.path.join(d, "manifest.json")))
            con = duckdb.connect()
            con.execute("SET threads = 2")
            for t in m["tables"]:
                load_manifest_table(con, d, t)
            duck = [int(x) for x in con.execute(m["query"]).fetchone()]
            same = duck == fb
            print(f"agg_duckdb_check: {w}: {m['tables'][0]['rows']} rows, DuckDB {duckdb.__version__} {duck}, "
                  f"fb {fb}: {'OK' if same else 'DIFFERENT'}")
            ok &= same
    return 0 if ok else 1


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--fbench":
        args = sys.argv[3:]
        scale = float(args[args.index("--scale") + 1]) if "--scale" in args else 1.0 / 512
        hw = args[args.index("--hw") + 1] if "--hw" in args else None
        return check_workloads(sys.argv[2], scale, hw)
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = sys.argv[1]
    names = sorted({os.path.basename(p)[: -len("_in_k.i32")] for p in glob.glob(os.path.join(d, "*_in_k.i32"))})
    if not names:
        print(f"agg_duckdb_check: no data sets in {d}", file=sys.stderr)
        return 1
    ok = all([check(d, n) for n in names])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
