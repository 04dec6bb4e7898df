#!/usr/bin/env python3
"""ssb_plan_check.py - fb's plans for the 13 SSB queries against DuckDB running the SSB SQL on the same data.

Usage: ssb_plan_check.py FBENCH WORKDIR [SF]. Runs `fbench plan ssb --sf SF --placement cpu,auto,gpu,hybrid
--json --dump`, then bench/peers/ssb.sql in DuckDB over the dumped tables. For every query and placement the
answers must be equal as multisets of rows, and fb's rows must be in the query's ORDER BY order (ties, e.g.
equal revenue, may come in any order). gpu and hybrid run on the context's OpenCL device (PoCL in CI).
Exit status 77 (skip) without duckdb/numpy.
"""
import json
import os
import subprocess
import sys

try:
    import duckdb  # noqa: F401
    import numpy  # noqa: F401
except ImportError as e:
    print(f"ssb_plan_check: cannot import duckdb/numpy ({e}); skipped", file=sys.stderr)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "..", "bench", "peers")
sys.path.insert(0, PEERS)
import duckdb_peer  # noqa: E402

# ORDER BY of each query as (column index, descending) in the select list.
ORDER = {"Q1.1": [], "Q1.2": [], "Q1.3": [],
         "Q2.1": [(1, 0), (2, 0)], "Q2.2": [(1, 0), (2, 0)], "Q2.3": [(1, 0), (2, 0)],
         "Q3.1": [(2, 0), (3, 1)], "Q3.2": [(2, 0), (3, 1)], "Q3.3": [(2, 0), (3, 1)], "Q3.4": [(2, 0), (3, 1)],
         "Q4.1": [(0, 0), (1, 0)], "Q4.2": [(0, 0), (1, 0), (2, 0)], "Q4.3": [(0, 0), (1, 0), (2, 0)]}


def key(row, order):
    return tuple((-row[i] if desc else row[i]) for i, desc in order)


def main():
    fbench, work = sys.argv[1], sys.argv[2]
    sf = sys.argv[3] if len(sys.argv) > 3 else "0.05"
    os.makedirs(work, exist_ok=True)
    data, res = os.path.join(work, "data"), os.path.join(work, "fb.json")
    rc = subprocess.call([fbench, "plan", "ssb", "--sf", sf, "--repeat", "1", "--placement", "cpu,auto,gpu,hybrid",
                          "--json", res, "--dump", data])
    if rc != 0:
        sys.exit(f"ssb_plan_check: fbench plan failed ({rc})")
    with open(res) as f:
        fb = json.load(f)
    con = duckdb.connect()
    with open(os.path.join(data, "manifest.json")) as f:
        for t in json.load(f)["tables"]:
            duckdb_peer.load_table(con, data, t)
    bad = 0
    queries = duckdb_peer.parse_sql(os.path.join(PEERS, "ssb.sql"))
    if len(queries) != 13 or len(fb["queries"]) != 13:
        sys.exit(f"ssb_plan_check: {len(queries)} SQL queries, {len(fb['queries'])} fb queries; expected 13")
    nonempty = 0
    for (name, sql), q in zip(queries, fb["queries"]):
        assert q["query"] == name, (q["query"], name)
        ref = [list(r) for r in con.execute(sql).fetchall()]
        ref = [[int(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else x for x in r] for r in ref]
        pl = {p["placement"]: p for p in q["placements"]}
        for placement in ("cpu", "auto", "gpu", "hybrid"):
            got = pl[placement].get("answer")
            if got is None:
                print(f"ssb_plan_check: {name} {placement}: failed: {pl[placement].get('error')}")
                bad = 1
                continue
            if sorted(map(tuple, got)) != sorted(map(tuple, ref)):
                print(f"ssb_plan_check: {name} {placement}: DIFFERENT ANSWER\n  fb     {got[:5]}\n  duckdb {ref[:5]}"
                      f" ({len(got)} vs {len(ref)} rows)")
                bad = 1
            keys = [key(r, ORDER[name]) for r in got]
            if keys != sorted(keys):
                print(f"ssb_plan_check: {name} {placement}: rows not in ORDER BY order")
                bad = 1
        nonempty += len(ref) > 0
        print(f"ssb_plan_check: {name}: {len(ref)} rows, cpu {pl['cpu'].get('seconds', 0):.4f} s")
    if nonempty < 10:
        print(f"ssb_plan_check: only {nonempty} queries have rows: the scale is too small to check much")
        bad = 1
    print("ssb_plan_check: " + ("FAILED" if bad else "all 13 queries equal DuckDB's answers"))
    return bad


if __name__ == "__main__":
    sys.exit(main())
