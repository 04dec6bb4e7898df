#!/usr/bin/env python3
"""ssb_check.py - checks `fbench ssb` against the Star Schema Benchmark specification, then runs the 13
SSB queries on its tables in DuckDB.

Usage: ssb_check.py FBENCH WORKDIR. Generates SF 0.05 and SF 1/16 with two seeds, and checks row counts,
key ranges, value domains (quantity 1..50, discount 0..10, tax 0..8), the geography (city = nation's
first 9 characters + a digit, region of the nation as in TPC-H), the part hierarchy (brand starts with its
category, category with its manufacturer), prices (extendedprice = quantity x TPC-H retail price, revenue
= extendedprice x (100 - discount) / 100), dates (every order date is a date key, 2,556 days from
1992-01-01) and that equal seeds give equal data. Exit status 77 (skip) without duckdb/numpy.
"""
import os
import subprocess
import sys

try:
    import duckdb
    import numpy as np
except ImportError as e:
    print(f"ssb_check: cannot import duckdb/numpy ({e}); skipped", file=sys.stderr)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bench", "peers"))
import duckdb_peer  # noqa: E402

REGION = {"ALGERIA": "AFRICA", "ARGENTINA": "AMERICA", "BRAZIL": "AMERICA", "CANADA": "AMERICA",
          "EGYPT": "MIDDLE EAST", "ETHIOPIA": "AFRICA", "FRANCE": "EUROPE", "GERMANY": "EUROPE", "INDIA": "ASIA",
          "INDONESIA": "ASIA", "IRAN": "MIDDLE EAST", "IRAQ": "MIDDLE EAST", "JAPAN": "ASIA",
          "JORDAN": "MIDDLE EAST", "KENYA": "AFRICA", "MOROCCO": "AFRICA", "MOZAMBIQUE": "AFRICA", "PERU": "AMERICA",
          "CHINA": "ASIA", "ROMANIA": "EUROPE", "SAUDI ARABIA": "MIDDLE EAST", "VIETNAM": "ASIA", "RUSSIA": "EUROPE",
          "UNITED KINGDOM": "EUROPE", "UNITED STATES": "AMERICA"}


def q(con, sql):
    return con.execute(sql).fetchall()


def expect(cond, what):
    if not cond:
        print(f"ssb_check: FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def check(fbench, work, sf, seed):
    d = os.path.join(work, f"sf{sf}-{seed}")
    subprocess.check_call([fbench, "ssb", "--sf", str(sf), "--seed", str(seed), "--dump", d])
    con = duckdb.connect()
    import json
    with open(os.path.join(d, "manifest.json")) as f:
        m = json.load(f)
    for t in m["tables"]:
        duckdb_peer.load_table(con, d, t)
    n = {t: q(con, f"SELECT count(*) FROM {t}")[0][0] for t in ("lineorder", "customer", "supplier", "part", "date")}
    expect(n["lineorder"] == round(6000000 * sf), f"lineorder rows {n['lineorder']}")
    expect(n["customer"] == round(30000 * sf), f"customer rows {n['customer']}")
    expect(n["supplier"] == max(1, round(2000 * sf)), f"supplier rows {n['supplier']}")
    expect(n["part"] == round(200000 * sf), f"part rows {n['part']}")
    expect(n["date"] == 2556, f"date rows {n['date']}")
    # Keys are 1..N and unique; foreign keys land in range.
    for t, k in (("customer", "c_custkey"), ("supplier", "s_suppkey"), ("part", "p_partkey")):
        mn, mx, cnt = q(con, f"SELECT min({k}), max({k}), count(DISTINCT {k}) FROM {t}")[0]
        expect((mn, mx, cnt) == (1, n[t], n[t]), f"{t}.{k} is not 1..{n[t]}: {mn} {mx} {cnt}")
    bad = q(con, """SELECT count(*) FROM lineorder LEFT JOIN customer ON lo_custkey = c_custkey
                    LEFT JOIN supplier ON lo_suppkey = s_suppkey LEFT JOIN part ON lo_partkey = p_partkey
                    LEFT JOIN date d1 ON lo_orderdate = d1.d_datekey LEFT JOIN date d2 ON lo_commitdate = d2.d_datekey
                    WHERE c_custkey IS NULL OR s_suppkey IS NULL OR p_partkey IS NULL OR d1.d_datekey IS NULL
                       OR d2.d_datekey IS NULL""")[0][0]
    expect(bad == 0, f"{bad} lineorder rows with a dangling key")
    r = q(con, """SELECT min(lo_quantity), max(lo_quantity), min(lo_discount), max(lo_discount), min(lo_tax),
                         max(lo_tax), min(lo_linenumber), max(lo_linenumber), count(DISTINCT lo_shipmode),
                         count(DISTINCT lo_orderpriority) FROM lineorder""")[0]
    expect(r == (1, 50, 0, 10, 0, 8, 1, 7, 7, 5), f"lineorder domains {r}")
    bad = q(con, """SELECT count(*) FROM lineorder WHERE
                      lo_extendedprice != lo_quantity * (90000 + ((lo_partkey // 10) % 20001) + 100 * (lo_partkey % 1000))
                      OR lo_revenue != (lo_extendedprice::BIGINT * (100 - lo_discount)) // 100
                      OR lo_supplycost != (6 * (90000 + ((lo_partkey // 10) % 20001) + 100 * (lo_partkey % 1000))) // 10""")[0][0]
    expect(bad == 0, f"{bad} lineorder rows with wrong prices")
    # Geography.
    for t, p in (("customer", "c"), ("supplier", "s")):
        rows = q(con, f"SELECT DISTINCT {p}_city, {p}_nation, {p}_region FROM {t}")
        for city, nation, region in rows:
            expect(city[:9] == nation[:9].ljust(9) and city[9:].isdigit() and len(city) == 10,
                   f"{t}: city {city!r} of nation {nation!r}")
            expect(REGION[nation] == region, f"{t}: nation {nation} in region {region}")
    # Part hierarchy.
    rows = q(con, "SELECT DISTINCT p_mfgr, p_category, p_brand1 FROM part")
    for mfgr, cat, brand in rows:
        expect(cat.startswith(mfgr) and len(cat) == 7 and brand.startswith(cat) and 1 <= int(brand[7:]) <= 40,
               f"part hierarchy {mfgr} {cat} {brand}")
    # Dates.
    r = q(con, """SELECT min(d_datekey), max(d_datekey), count(DISTINCT d_yearmonth), min(d_weeknuminyear),
                         max(d_weeknuminyear), count(*) FILTER (WHERE d_yearmonth = 'Dec1997') FROM date""")[0]
    expect(r == (19920101, 19981230, 84, 1, 53, 31), f"date domains {r}")
    r = q(con, "SELECT count(*) FROM date WHERE strptime(d_datekey::VARCHAR, '%Y%m%d')::DATE - DATE '1992-01-01' "
               "!= d_daynuminyear - 1 + (d_year - 1992) * 365 + (d_year > 1992)::INT + (d_year > 1996)::INT")[0][0]
    expect(r == 0, f"{r} date rows whose day number does not match the key")
    # The 13 queries run; the Q1 revenues are positive.
    for name, sql in duckdb_peer.parse_sql(os.path.join(HERE, "..", "bench", "peers", "ssb.sql")):
        rows = con.execute(sql).fetchall()
        if name.startswith("Q1"):
            expect(rows[0][0] and rows[0][0] > 0, f"{name} revenue {rows}")
        print(f"ssb_check: SF {sf} seed {seed} {name}: {len(rows)} rows")
    return d


def main():
    fbench, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    a = check(fbench, work, 0.05, 1)
    b = check(fbench, work, 0.0625, 2)
    c = os.path.join(work, "again")
    subprocess.check_call([fbench, "ssb", "--sf", "0.05", "--seed", "1", "--dump", c])
    for f in os.listdir(a):
        if f.endswith(".bin") or f.endswith(".txt"):
            expect(open(os.path.join(a, f), "rb").read() == open(os.path.join(c, f), "rb").read(),
                   f"seed 1 twice gave a different {f}")
    expect(open(os.path.join(a, "lo_partkey.int32.bin"), "rb").read() !=
           open(os.path.join(b, "lo_partkey.int32.bin"), "rb").read(), "different seeds gave equal data")
    print("ssb_check: all checks passed")


if __name__ == "__main__":
    main()
