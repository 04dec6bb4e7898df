#!/usr/bin/env python3
"""hours.py - sums campaign.sh's log (build/fuzz/campaign/log.tsv: target, start, seconds, executions, new
crash files, rc) per target as the rows of the table in test/fuzz/HOURS.md.
Usage: python3 test/fuzz/hours.py [LOG]"""
import collections
import sys

log = sys.argv[1] if len(sys.argv) > 1 else "build/fuzz/campaign/log.tsv"
tot = collections.OrderedDict()
for line in open(log):
    f = line.rstrip("\n").split("\t")
    if len(f) < 5:
        continue
    t = tot.setdefault(f[0], {"secs": 0, "execs": 0, "crashes": 0, "runs": 0, "dates": set()})
    t["secs"] += int(f[2])
    t["execs"] += int(f[3] or 0)
    t["crashes"] += int(f[4])
    t["runs"] += 1
    t["dates"].add(f[1][:10])
print("| target | runs | seconds | executions | crash files | dates |")
print("|---|---|---|---|---|---|")
for k, t in tot.items():
    print("| %s | %d | %d | %d | %d | %s |" % (k, t["runs"], t["secs"], t["execs"], t["crashes"], ", ".join(sorted(t["dates"]))))
