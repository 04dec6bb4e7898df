#!/usr/bin/env python3
"""compare.py - fb and DuckDB side by side on the same data, in the same run.

Usage: compare.py W [W ...] [--fbench PATH] [--threads N] [--scale X] [--repeat R] [--hw HW.json]
                  [--out FILE.json] [--keep DIR]

For each workload W: `fbench run W --dump DIR --json ...` (fb's time, checked against fbench's own
reference), then duckdb_peer.py on DIR with the same thread count (DuckDB's time and answer). When the
workload's SQL returns one row of numbers, they must equal fbench's result values in order — a mismatch is
reported and makes the exit status 1. Prints one line per workload with the ratio fb / DuckDB and appends
everything to --out (a JSON list). The dump directory is removed afterwards unless --keep is given.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workloads", nargs="+")
    ap.add_argument("--fbench", default=os.path.join(HERE, "..", "..", "build", "release", "fbench"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hw", help="fbench hw --json file for the bound (else fbench measures it)")
    ap.add_argument("--out", help="append the figures to this JSON list")
    ap.add_argument("--keep", help="keep the dumped input under this directory")
    a = ap.parse_args()
    results, bad = [], 0
    for w in a.workloads:
        tmp = tempfile.mkdtemp(prefix=f"fb-{w}-", dir=a.keep or None)
        data = os.path.join(tmp, "data")
        fbj, ddj = os.path.join(tmp, "fb.json"), os.path.join(tmp, "duckdb.json")
        cmd = [a.fbench, "run", w, "--threads", str(a.threads), "--scale", str(a.scale), "--repeat", str(a.repeat),
               "--dump", data, "--json", fbj]
        if a.hw:
            cmd += ["--hw", a.hw]
        print("+", " ".join(cmd), file=sys.stderr, flush=True)
        if subprocess.call(cmd) != 0:
            print(f"compare: fbench run {w} failed", file=sys.stderr)
            bad = 1
            continue
        cmd = [sys.executable, os.path.join(HERE, "duckdb_peer.py"), data, "--threads", str(a.threads), "--repeat",
               str(a.repeat), "--json", ddj]
        print("+", " ".join(cmd), file=sys.stderr, flush=True)
        if subprocess.call(cmd) != 0:
            print(f"compare: duckdb on {w} failed", file=sys.stderr)
            bad = 1
            continue
        with open(fbj) as f:
            fb = json.load(f)[0]
        with open(ddj) as f:
            dd = json.load(f)
        fb_vals = list(fb["result"].values())
        ans = dd["answer"]
        if len(ans) == 1 and len(ans[0]) == len(fb_vals) and all(isinstance(x, (int, float)) for x in ans[0]):
            same = all(int(x) == int(y) for x, y in zip(ans[0], fb_vals))
            check = "same answer" if same else f"DIFFERENT ANSWER fb {fb_vals} duckdb {ans[0]}"
            bad |= not same
        else:
            check = "answer not compared"
        ratio = fb["seconds"] / dd["seconds"]
        line = (f"{w:9s} threads {fb['threads']} scale {a.scale:g}: fb {fb['seconds']:.4f} s, duckdb "
                f"{dd['seconds']:.4f} s, fb/duckdb = {ratio:.3f} (1/{1 / ratio:.1f}); fb at "
                f"{100 * fb['bound_seconds'] / fb['seconds']:.0f}% of its bound; {check}")
        print(line, flush=True)
        results.append({"workload": w, "fb": fb, "duckdb": dd, "fb_over_duckdb": ratio, "check": check})
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if a.out:
        old = []
        if os.path.exists(a.out):
            with open(a.out) as f:
                old = json.load(f)
        with open(a.out, "w") as f:
            json.dump(old + results, f, indent=1)
    return bad


if __name__ == "__main__":
    sys.exit(main())
