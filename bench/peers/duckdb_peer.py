#!/usr/bin/env python3
"""duckdb_peer.py - runs a workload's SQL in DuckDB on the exact input `fbench run W --dump DIR` wrote.

Usage: duckdb_peer.py DIR [--threads N] [--repeat R] [--json FILE] [--sql FILE]

DIR/manifest.json names the tables (raw little-endian column files, optional validity as an Arrow
LSB-first bitmap) and the workload's "query". The tables are loaded into DuckDB's own storage first (not
timed); then the query runs R times (after one untimed warm-up) with N threads and the median wall time is
printed with the query's answer. A query starting with CREATE TABLE is run as is and its table dropped
after each run (the ORDER BY workloads); otherwise the answer is fetched whole. With --sql FILE the
queries of FILE (each after a "-- NAME" line, e.g. bench/peers/ssb.sql) run instead of the manifest's,
one line each. A column with a "dictionary" (one value per line, code order) becomes a VARCHAR column.

Needs the duckdb and numpy Python packages (pip install duckdb numpy).
"""
import argparse
import json
import os
import statistics
import sys
import time

try:
    import duckdb
    import numpy as np
except ImportError as e:
    print(f"duckdb_peer: cannot import duckdb/numpy ({e}); pip install duckdb numpy", file=sys.stderr)
    sys.exit(2)

DTYPES = {
    "int8": "<i1", "int16": "<i2", "int32": "<i4", "int64": "<i8",
    "uint8": "<u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8",
    "float32": "<f4", "float64": "<f8", "date32": "<i4",
}


def load_table(con, d, table):
    rows = table["rows"]
    raw = {}
    select = []
    joins = []
    for c in table["columns"]:
        dt = DTYPES.get(c["type"])
        if dt is None:
            sys.exit(f"duckdb_peer: column {c['name']}: unsupported type {c['type']}")
        a = np.fromfile(os.path.join(d, c["file"]), dtype=dt)
        if len(a) != rows:
            sys.exit(f"duckdb_peer: {c['file']} has {len(a)} values, the manifest says {rows}")
        raw[c["name"]] = a
        expr = f'"{c["name"]}"'
        if c["type"] == "date32":
            expr = f"(DATE '1970-01-01' + {expr})"
        if c["type"] in ("float32", "float64") and np.isnan(a).any():
            # DuckDB reads a numpy NaN as NULL: carry NaN as a flag and make it a NaN again in SQL
            raw["__nan_" + c["name"]] = np.isnan(a)
            sql_type = "FLOAT" if c["type"] == "float32" else "DOUBLE"
            expr = f"CASE WHEN \"__nan_{c['name']}\" THEN 'NaN'::{sql_type} ELSE {expr} END"
        if c.get("validity"):
            bits = np.fromfile(os.path.join(d, c["validity"]), dtype=np.uint8)
            valid = np.unpackbits(bits, bitorder="little")[:rows].astype(np.bool_)
            raw["__valid_" + c["name"]] = valid
            expr = f'CASE WHEN "__valid_{c["name"]}" THEN {expr} END'
        if c.get("dictionary"):
            with open(os.path.join(d, c["dictionary"])) as f:
                values = f.read().split("\n")[:-1]
            dname = f'__dict_{c["name"]}'
            con.register(dname, {"code": np.arange(len(values), dtype=np.int64), "v": np.array(values, dtype=str)})
            alias = f"__d{len(joins)}"
            joins.append(f'LEFT JOIN {dname} {alias} ON {alias}.code = __raw."{c["name"]}"')
            expr = f"{alias}.v"
        select.append(f'{expr} AS "{c["name"]}"')
    con.register("__raw", raw)
    con.execute(f'CREATE TABLE "{table["name"]}" AS SELECT {", ".join(select)} FROM __raw {" ".join(joins)}').fetchall()
    con.unregister("__raw")
    for c in table["columns"]:
        if c.get("dictionary"):
            con.unregister(f'__dict_{c["name"]}')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=0, help="DuckDB threads (0 = its default)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--sql", help="run the queries of this file (each after a '-- NAME' line)")
    a = ap.parse_args()
    with open(os.path.join(a.dir, "manifest.json")) as f:
        m = json.load(f)
    con = duckdb.connect()
    if a.threads:
        con.execute(f"SET threads = {a.threads}").fetchall()
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    t0 = time.perf_counter()
    for t in m["tables"]:
        load_table(con, a.dir, t)
    print(f"duckdb_peer: loaded {', '.join(t['name'] for t in m['tables'])} in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    if a.sql:
        return run_file(con, a, m, threads)
    query = m["query"]
    create = query.lstrip().upper().startswith("CREATE TABLE")
    target = query.split()[2] if create else None
    times, answer = [], None
    for r in range(a.repeat + 1):
        t = time.perf_counter()
        if create:
            con.execute(query).fetchall()
            t = time.perf_counter() - t
            answer = con.execute(f"SELECT count(*) FROM {target}").fetchall()
            con.execute(f"DROP TABLE {target}").fetchall()
        else:
            answer = con.execute(query).fetchall()
            t = time.perf_counter() - t
        if r:
            times.append(t)
            print(f"duckdb_peer: run {r}/{a.repeat}: {t:.4f} s", file=sys.stderr)
    med = statistics.median(times)
    ans = [list(row) for row in answer[:4]]
    print(f"duckdb {m.get('workload', '?')}: {med:.4f} s median of {a.repeat} (best {min(times):.4f}), "
          f"{threads} threads, duckdb {duckdb.__version__}; answer {ans}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"peer": "duckdb", "version": duckdb.__version__, "workload": m.get("workload"),
                       "threads": threads, "seconds": med, "best_seconds": min(times), "seconds_all": times,
                       "query": query, "answer": [[int(x) if isinstance(x, int) else
                                                   (float(x) if isinstance(x, float) else str(x)) for x in row]
                                                  for row in ans]}, f, indent=1)


def parse_sql(path):
    """[(name, sql)] from a file of queries, each after a '-- NAME' line."""
    out, name, lines = [], None, []
    with open(path) as f:
        for line in f:
            stripped = line.strip()
            if stripped.startswith("-- ") and len(stripped.split()) == 2:
                if name and "".join(lines).strip():
                    out.append((name, "".join(lines).strip().rstrip(";")))
                name, lines = stripped.split()[1], []
            elif name and not stripped.startswith("--"):
                lines.append(line)
    if name and "".join(lines).strip():
        out.append((name, "".join(lines).strip().rstrip(";")))
    return out


def run_file(con, a, m, threads):
    results = []
    for name, sql in parse_sql(a.sql):
        times, rows = [], None
        for r in range(a.repeat + 1):
            t = time.perf_counter()
            rows = con.execute(sql).fetchall()
            t = time.perf_counter() - t
            if r:
                times.append(t)
        med = statistics.median(times)
        print(f"duckdb {name}: {med:.4f} s median of {a.repeat}, {len(rows)} rows, first {rows[:1]}")
        results.append({"query": name, "seconds": med, "best_seconds": min(times), "seconds_all": times,
                        "rows": len(rows), "answer": [[x if isinstance(x, (int, float)) else str(x) for x in row]
                                                      for row in rows]})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"peer": "duckdb", "version": duckdb.__version__, "workload": m.get("workload"),
                       "scale": m.get("scale"), "threads": threads, "queries": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
