"""keras_unet.weight_map against the obvious one-distance-transform-per-cell implementation.

    python benchmarks/weight_map_benchmark.py [--rounds 5]

Both compute the paper's w(x) (w0=10, sigma=5, balanced classes) on 512x512 label images of
touching cells; the obvious implementation is the reference the tests check against
(tests/test_weight_maps.py). Rounds alternate ours/obvious so that load from other processes
hits both alike; the table shows medians, the speed-up and the largest difference in float32
steps (units in the last place).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_weight_maps import reference_weight_map, voronoi_cells  # noqa: E402

from keras_unet.data import synthetic_cells  # noqa: E402
from keras_unet.weight_maps import border_cutoff, weight_map  # noqa: E402

CASES = {
    "voronoi 512x512, 120 cells": lambda: voronoi_cells(512, 120, seed=0, reach=30),
    "synthetic_cells 512x512": lambda: synthetic_cells(1, size=512, seed=0)[0].labels,
}


def timed(function, labels) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    result = function(labels)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"cut-off d1 + d2 <= {border_cutoff(10.0, 5.0):.2f} px (w0=10, sigma=5, background "
          "weight 1; scales with the background weight, see border_cutoff)")
    print(f"| label image | cells | obvious (ms) | keras_unet (ms) | speed-up | max diff (float32 "
          "steps) |\n|---|---|---|---|---|---|")
    for name, make in CASES.items():
        labels = make()
        times: dict[str, list[float]] = {"ours": [], "obvious": []}
        for _ in range(args.rounds):
            seconds, ours = timed(weight_map, labels)
            times["ours"].append(seconds)
            seconds, obvious = timed(reference_weight_map, labels)
            times["obvious"].append(seconds)
        steps = np.abs(ours.view(np.int32).astype(np.int64) - obvious.view(np.int32)).max()
        ours_ms, obvious_ms = (1e3 * statistics.median(times[k]) for k in ("ours", "obvious"))
        print(f"| {name} | {len(np.unique(labels)) - 1} | {obvious_ms:.0f} | {ours_ms:.1f} | "
              f"{obvious_ms / ours_ms:.0f}x | {steps} |")


if __name__ == "__main__":
    main()
