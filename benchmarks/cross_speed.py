"""Seconds per cross-identity translation (wall and process CPU), outputs kept for comparison.

    PYTHONPATH=. python benchmarks/cross_speed.py --task face --out /tmp/face_base.npz [--repeat 2]

Every pair of ``eval-warp --cross`` through engine v2 at 512, after one warm-up call, timed as
eval-warp times it (one ``translate`` call, extraction included); with ``--repeat`` the pair is run
again and the run with the least CPU time is kept. ``--out`` stores the outputs (one array a pair)
and the figures; ``--compare`` another such file prints, per pair, how many pixels differ and by how
much.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from core.environment import set_process_defaults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=("face", "pose", "mask"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--out")
    parser.add_argument("--compare")
    args = parser.parse_args()
    set_process_defaults("default")
    from core.errors import WarpaintError
    from core.eval_pairs import cross_pairs
    from core.pipeline import Translator

    translator = Translator(args.task, engine="training-free", version=2)
    pairs = cross_pairs(args.task, args.limit)
    translator.translate(pairs[0].input, pairs[0].exemplar, resolution=512, seed=0)
    figures, outputs = {}, {}
    for index, pair in enumerate(pairs):
        best = None
        for _ in range(args.repeat):
            load = os.getloadavg()[0]
            start, cpu = time.perf_counter(), time.process_time()
            try:
                result = translator.translate(pair.input, pair.exemplar, resolution=512, seed=0)
            except WarpaintError:
                result = None
            run = (time.process_time() - cpu, time.perf_counter() - start, load)
            if best is None or run[0] < best[0]:
                best = run
        figures[pair.name] = [round(x, 3) for x in best]
        if result is not None:
            outputs[f"p{index}"] = result.image
        print(json.dumps({"pair": pair.name, "cpu": figures[pair.name][0], "wall": figures[pair.name][1],
                          "load": figures[pair.name][2], "refused": result is None}), flush=True)
    cpus = [f[0] for f in figures.values()]
    walls = sorted(f[1] for f in figures.values())
    print(json.dumps({"cpu_mean": round(float(np.mean(cpus)), 3), "wall_median": round(float(np.median(walls)), 3),
                      "wall_max": walls[-1]}))
    if args.out:
        np.savez_compressed(args.out, figures=json.dumps(figures), **outputs)
    if args.compare:
        other = np.load(args.compare)
        names = list(figures)
        for key in sorted(set(outputs) ^ set(other.files) - {"figures"}):  # refused in one run only
            print(f"{names[int(key[1:])]}: refused in {'the other run' if key in outputs else 'this run'}")
        for key, image in outputs.items():
            if key not in other.files:
                continue
            theirs = other[key].astype(int)
            diff = np.abs(image.astype(int) - theirs).max(axis=2)
            print(f"{names[int(key[1:])]}: {np.mean(diff > 0) * 100:.3f} % pixels differ, "
                  f"mean |d| where differ {diff[diff > 0].mean() if diff.any() else 0:.1f}, max {diff.max()}")


if __name__ == "__main__":
    main()
