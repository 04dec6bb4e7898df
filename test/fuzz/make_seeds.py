#!/usr/bin/env python3
"""make_seeds.py - writes the seed corpora of the fuzz targets: test/fuzz/corpus/<target>/seed-NN.

The targets decode any bytes into a valid case (an exhausted input reads as zeros), so seeds are plain
deterministic random byte strings of many lengths (short ones reach the small shapes and the empty
inputs, long ones the multi-morsel, multi-operator cases), plus all-zero and all-0xFF inputs. Inputs that
once failed are kept next to them as regress-* files (written by hand from libFuzzer's crash files) and
are never touched here. Run from anywhere: python3 test/fuzz/make_seeds.py"""
import os
import random

TARGETS = ["join", "sort", "agg", "expr", "arrow", "plan"]
LENGTHS = [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072]

here = os.path.dirname(os.path.abspath(__file__))
for t in TARGETS:
    d = os.path.join(here, "corpus", t)
    os.makedirs(d, exist_ok=True)
    rng = random.Random("fb-fuzz-" + t)
    seeds = [bytes(rng.randrange(256) for _ in range(n)) for n in LENGTHS for _ in range(1 if n < 8 else 2)]
    seeds += [bytes(64), bytes([255]) * 64, bytes(1024), bytes([255]) * 1024]
    for i, s in enumerate(seeds):
        with open(os.path.join(d, "seed-%02d" % i), "wb") as f:
            f.write(s)
