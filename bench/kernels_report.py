#!/usr/bin/env python3
"""kernels_report.py - puts `fbench kernels` results next to their ceilings from `fbench hw`.

    python3 bench/kernels_report.py HW.json KERNELS.json

Streaming kernels (hash, select, compact) are compared with the single-thread copy bandwidth (each
benchmark runs on one thread; bytes are what the kernel must read and write, as fbench counts them);
gather of random ids into a table larger than the last-level cache is compared with the single-thread
random-access rate (independent loads). OpenCL rows include the host<->device transfers.
"""
import json
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    hw = json.load(open(sys.argv[1]))
    kern = json.load(open(sys.argv[2]))
    copy1 = hw["copy_gbps_1"]
    rnd1 = hw.get("random_mps_1", hw["random_mps"])
    print(f"ceilings (fbench hw, {hw['date']}): copy 1 thread {copy1:.1f} GB/s, "
          f"random loads 1 thread {rnd1:.1f} M/s")
    print(f"{'benchmark':52s} {'M rows/s':>10s} {'GB/s':>7s} {'of ceiling':>10s}")
    for b in kern["benchmarks"]:
        if b.get("run_type") == "aggregate" or "error_occurred" in b:
            continue
        name = b["name"]
        rows = b.get("items_per_second", 0) / 1e6
        gbs = b.get("bytes_per_second", 0) / 1e9
        if "/gather/" in name or name.startswith("gather/"):
            frac = rows / rnd1
        else:
            frac = gbs / copy1
        print(f"{name:52s} {rows:10.1f} {gbs:7.2f} {100 * frac:9.0f}%")


if __name__ == "__main__":
    main()
