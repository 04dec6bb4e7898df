#!/usr/bin/env python3
"""join_duckdb_check.py - runs fb's joins J1..J4 (fbench run, which also checks fb against its own
plain-C reference) and DuckDB on the same dumped data, and compares the answers; with --time it also
times DuckDB's query on that data with the same thread count, next to fb's median.

Usage: join_duckdb_check.py DIR   (the runtime join's types, written by test_join_pipeline: see check_types)
       join_duckdb_check.py --fbench PATH [--scale X] [--threads N] [--repeat R] [--algo auto|shared|radix ...]
                            [--workloads J1,J2,J3,J4] [--time] [--keep DIR]
For each workload and each algorithm (FB_JOIN_ALGO) it runs
  fbench run Jn --scale X --threads N --repeat R --dump DIR --json DIR/fb.json --hw DIR/hw.json
then loads the manifest's tables into DuckDB (from the raw little-endian files through numpy) and runs
the manifest's "query"; fb's count and sum/checksum must equal DuckDB's. Exit status 1 on a mismatch or
a failed fbench, 2 when duckdb or numpy cannot be imported.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import duckdb
    import numpy as np
except ImportError as e:
    print(f"join_duckdb_check: cannot import duckdb/numpy: {e}", file=sys.stderr)
    sys.exit(2)

# A fixed bandwidth file: the check needs no measured bound, and measuring would cost time.
HW = {"read_gbps_1": 25.0, "read_gbps_all": 50.0, "copy_gbps_1": 24.0, "copy_gbps_all": 48.0}
TYPES = {"int32": "<i4", "int64": "<i8"}


def load_tables(con, d, manifest):
    for t in manifest["tables"]:
        cols = {}
        for c in t["columns"]:
            if c.get("validity"):
                raise SystemExit(f"join_duckdb_check: {c['name']} has a validity file; not expected here")
            cols[c["name"]] = np.fromfile(os.path.join(d, c["file"]), dtype=TYPES[c["type"]])
            assert len(cols[c["name"]]) == t["rows"], (t["name"], c["name"])
        con.register(t["name"] + "_np", cols)
        con.execute(f"CREATE TABLE {t['name']} AS SELECT * FROM {t['name']}_np")
        con.unregister(t["name"] + "_np")


def run_one(args, wl, algo, d):
    hw = os.path.join(d, "hw.json")
    with open(hw, "w") as f:
        json.dump(HW, f)
    out = os.path.join(d, "fb.json")
    cmd = [args.fbench, "run", wl, "--scale", str(args.scale), "--repeat", str(args.repeat), "--dump", d,
           "--json", out, "--hw", hw]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = dict(os.environ, FB_JOIN_ALGO=algo, FBENCH_JOIN_VERBOSE="1")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout + p.stderr, file=sys.stderr)
        print(f"join_duckdb_check: {wl} ({algo}): fbench failed with status {p.returncode}", file=sys.stderr)
        return False
    fb = json.load(open(out))[0]
    used = [l for l in p.stderr.splitlines() if "join algorithm" in l]
    with open(os.path.join(d, "manifest.json")) as f:
        manifest = json.load(f)
    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads = {args.threads}")
    load_tables(con, d, manifest)
    q = manifest["query"]
    best = None
    for _ in range(args.repeat if args.time else 1):
        t0 = time.perf_counter()
        row = con.execute(q).fetchone()
        t = time.perf_counter() - t0
        best = t if best is None else min(best, t)
    got = [fb["result"]["count"], fb["result"].get("sum", fb["result"].get("checksum"))]
    want = [int(row[0]), int(row[1]) if row[1] is not None else 0]
    ok = got == want
    line = (f"{wl} scale {args.scale} algo {algo} ({used[-1].split(': ', 1)[-1] if used else '?'}): "
            f"fb count={got[0]} sum={got[1]}, duckdb count={want[0]} sum={want[1]}: {'OK' if ok else 'MISMATCH'}")
    if args.time:
        line += (f"\n  {fb['threads']} threads: fb {fb['seconds']:.4f} s median, {fb['best_seconds']:.4f} s best of"
                 f" {args.repeat}; duckdb {best:.4f} s best of {args.repeat}: duckdb/fb = {best / fb['best_seconds']:.2f}"
                 f" best/best ({best / fb['seconds']:.2f} best/median); radix bound {fb['bound_seconds']:.4f} s ="
                 f" {100 * fb['bound_seconds'] / fb['best_seconds']:.0f}% of fb's best")
    print(line, flush=True)
    return ok


# SQL of each join type over tables b(id, k0, k1) and p(id, k0, k1) (keys NULL where invalid); each gives
# (rows, a build-side sum, sum(p.id)) as test_join_pipeline computes them from fb's output.
TYPE_SQL = {
    "inner": "SELECT count(*), sum(b.id), sum(p.id) FROM p JOIN b ON {on}",
    "left": "SELECT count(*), sum(coalesce(b.id, -1)), sum(p.id) FROM p LEFT JOIN b ON {on}",
    "semi": "SELECT count(*), 0, sum(p.id) FROM p WHERE EXISTS (SELECT 1 FROM b WHERE {on})",
    "anti": "SELECT count(*), 0, sum(p.id) FROM p WHERE NOT EXISTS (SELECT 1 FROM b WHERE {on})",
    "mark": "SELECT count(*), sum(CASE WHEN EXISTS (SELECT 1 FROM b WHERE {on}) THEN 1 ELSE 0 END), sum(p.id) FROM p",
}


def check_types(d):
    """DIR holds {b,p}_k{0,1}.bin (int64), {b,p}_valid.bin (uint8 per row, 0 = null key) and fb.json:
    [{"nk": 1|2, "type": name, "algo": name, "got": [rows, build sum, probe sum]}, ...]."""
    con = duckdb.connect()
    for side in ("b", "p"):
        valid = np.fromfile(os.path.join(d, f"{side}_valid.bin"), dtype=np.uint8)
        cols = {"id": np.arange(len(valid), dtype=np.int64), "valid": valid}
        for k in range(2):
            cols[f"k{k}"] = np.fromfile(os.path.join(d, f"{side}_k{k}.bin"), dtype="<i8")
        con.register(side + "_np", cols)
        con.execute(f"CREATE TABLE {side} AS SELECT id, CASE WHEN valid = 1 THEN k0 END AS k0, k1 FROM {side}_np")
        con.unregister(side + "_np")
    ok = True
    for case in json.load(open(os.path.join(d, "fb.json"))):
        on = "b.k0 = p.k0" + (" AND b.k1 = p.k1" if case["nk"] == 2 else "")
        row = con.execute(TYPE_SQL[case["type"]].format(on=on)).fetchone()
        want = [int(x) if x is not None else 0 for x in row]
        good = want == case["got"]
        ok &= good
        print(f"{case['type']} join, {case['nk']} key(s), {case['algo']}: fb {case['got']}, duckdb {want}: "
              f"{'OK' if good else 'MISMATCH'}", flush=True)
    return ok


def main():
    if len(sys.argv) == 2 and os.path.isdir(sys.argv[1]):
        sys.exit(0 if check_types(sys.argv[1]) else 1)
    ap = argparse.ArgumentParser()
    ap.add_argument("--fbench", required=True)
    ap.add_argument("--scale", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--algo", nargs="+", default=["shared", "radix"])
    ap.add_argument("--workloads", default="J1,J2,J3,J4")
    ap.add_argument("--time", action="store_true")
    ap.add_argument("--keep")
    args = ap.parse_args()
    ok = True
    for wl in args.workloads.split(","):
        for algo in args.algo:
            d = args.keep or tempfile.mkdtemp(prefix="fb_join_duckdb_")
            try:
                ok &= run_one(args, wl, algo, d)
            finally:
                if not args.keep:
                    shutil.rmtree(d, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
