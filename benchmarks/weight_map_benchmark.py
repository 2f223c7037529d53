"""keras_unet.weight_map against the obvious one-distance-transform-per-cell implementation.

    python benchmarks/weight_map_benchmark.py [--rounds 5]

All compute the paper's w(x) (w0=10, sigma=5, balanced classes) on 512x512 label images. The
obvious implementation runs one whole-image ``distance_transform_edt`` per cell, stacks them and
sorts; it comes in two common layouts, cells last (H x W x N, sorted along the contiguous last
axis: the faster one, and the reference of tests/test_weight_maps.py) and cells first (N x H x W,
sorted along axis 0). Rounds alternate ours and the peers so that load from other processes hits
all alike; the table shows medians, speed-ups and the largest difference from the reference in
float32 steps (units in the last place).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_weight_maps import reference_weight_map, voronoi_cells  # noqa: E402

from keras_unet.data import synthetic_cells  # noqa: E402
from keras_unet.weight_maps import border_cutoff, weight_map  # noqa: E402

W0, SIGMA = 10.0, 5.0

IMAGES = {
    "120 touching cells, 1 px gaps": lambda: voronoi_cells(512, 120, seed=0, reach=512),
    "120 cells with holes": lambda: voronoi_cells(512, 120, seed=0, reach=30),
    "synthetic_cells(size=512)": lambda: synthetic_cells(1, size=512, seed=0)[0].labels,
}


def obvious_cells_first(labels: np.ndarray) -> np.ndarray:
    """The other common layout of the obvious implementation: (N, H, W), sorted along axis 0."""
    ids = np.unique(labels[labels > 0])
    distances = np.stack([scipy.ndimage.distance_transform_edt(labels != i) for i in ids])
    distances.sort(axis=0)
    background = labels == 0
    weights = np.where(background, labels.size / (2 * background.sum()),
                       labels.size / (2 * (~background).sum()))
    border = W0 * np.exp(-((distances[0] + distances[1]) ** 2) / (2 * SIGMA**2))
    return (weights + np.where(background, border, 0.0)).astype(np.float32)


IMPLEMENTATIONS = {
    "keras_unet": lambda labels: weight_map(labels, W0, SIGMA),
    "obvious, cells last": lambda labels: reference_weight_map(labels, W0, SIGMA),
    "obvious, cells first": obvious_cells_first,
}


def float32_steps(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"cut-off: d1 + d2 <= {border_cutoff(W0, SIGMA):.2f} px for background weight 1 "
          "(border_cutoff); median of", args.rounds, "interleaved rounds")
    print("| label image | cells | keras_unet (ms) | obvious, cells last (ms) | speed-up | "
          "obvious, cells first (ms) | speed-up | max diff (float32 steps) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, make in IMAGES.items():
        labels = make()
        times: dict[str, list[float]] = {key: [] for key in IMPLEMENTATIONS}
        results = {}
        for _ in range(args.rounds):
            for key, function in IMPLEMENTATIONS.items():
                start = time.perf_counter()
                results[key] = function(labels)
                times[key].append(time.perf_counter() - start)
        ms = {key: 1e3 * statistics.median(values) for key, values in times.items()}
        steps = max(float32_steps(results["keras_unet"], results[key])
                    for key in IMPLEMENTATIONS)
        last, first = ms["obvious, cells last"], ms["obvious, cells first"]
        print(f"| {name} | {len(np.unique(labels)) - 1} | {ms['keras_unet']:.1f} | {last:.0f} | "
              f"{last / ms['keras_unet']:.0f}x | {first:.0f} | {first / ms['keras_unet']:.0f}x | "
              f"{steps} |")


if __name__ == "__main__":
    main()
