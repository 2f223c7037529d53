"""ONNX Runtime (CPU) against our TensorFlow forward pass, on the same tiles, side by side.

Both sides are what :func:`keras_unet.predict_tiled` calls per batch of tiles
(``keras_unet.inference.network.tile_predictor``): for the Keras model its compiled ``tf.function``,
for the file ``unet export --format onnx`` writes :class:`keras_unet.serving.OnnxNetwork` (an
``onnxruntime.InferenceSession`` with the CPU provider and its default threads). Networks: the
paper's (64 filters, depth 4) on its 572 x 572 tile, and the default ``unet train`` network (16
filters, depth 3) on its 188 px training tile in batches of 4 and on a 572 tile. Rounds alternate
(TF, ONNX, TF, ONNX, ...) and medians are reported, so load from other processes affects both alike;
the outputs are compared too.

    python benchmarks/onnx_benchmark.py              # 5 rounds
    python benchmarks/onnx_benchmark.py --rounds 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

CASES = (  # (label, build_unet keyword arguments, tile, batch)
    ("paper network, 572 tile", {"filters": 64, "depth": 4}, 572, 1),
    ("default network, 188 tiles x 4", {"filters": 16, "depth": 3}, 188, 4),
    ("default network, 572 tile", {"filters": 16, "depth": 3}, 572, 1),
)


def timed(function) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def measure(label: str, arguments: dict, tile: int, batch: int, rounds: int,
            folder: Path) -> dict:
    """Median seconds per call of both runtimes, and their largest output difference."""
    from keras_unet import build_unet
    from keras_unet.inference.network import tile_predictor
    from keras_unet.serving.onnx_export import export_onnx
    from keras_unet.serving.onnx_network import OnnxNetwork

    model = build_unet((None, None, 1), 2, dropout=0.0, **arguments)
    path = export_onnx(model, folder / f"{label[:7]}{tile}.onnx", overwrite=True)
    # what predict_tiled calls on each batch of tiles, for either network
    _, tensorflow_tiles = tile_predictor(model)
    _, onnx_tiles = tile_predictor(OnnxNetwork.from_file(path))
    tiles = np.random.default_rng(0).normal(size=(batch, tile, tile, 1)).astype("float32")
    ours, theirs = tensorflow_tiles(tiles), onnx_tiles(tiles)  # warm-up
    times = {"tensorflow": [], "onnxruntime": []}
    for _ in range(rounds):
        times["tensorflow"].append(timed(lambda: tensorflow_tiles(tiles)))
        times["onnxruntime"].append(timed(lambda: onnx_tiles(tiles)))
    return {"label": label, "batch": batch,
            **{name: statistics.median(values) for name, values in times.items()},
            "difference": float(np.abs(ours - theirs).max())}


def main() -> None:
    """Prints the table: ms per call for each runtime and ONNX Runtime's speed relative to TF."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import onnxruntime
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
          f"{args.rounds} rounds (medians)")
    print("| case | TF forward, ms | ONNX Runtime, ms | ORT speed / TF | max abs diff |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for case in CASES:
            row = measure(*case, args.rounds, Path(folder))
            print(f"| {row['label']} | {row['tensorflow'] * 1e3:.0f} | "
                  f"{row['onnxruntime'] * 1e3:.0f} | "
                  f"{row['tensorflow'] / row['onnxruntime']:.2f}x | {row['difference']:.1e} |",
                  flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
