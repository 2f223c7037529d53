"""Serving speed: the exported SavedModel against ``model.predict``, 512 x 512 requests.

The model is the ``unet train`` default (valid padding, depth 3, 16 filters), exported with
:func:`keras_unet.serving.export_for_serving` and loaded with ``tf.saved_model.load`` as a
server would (TF-Serving itself cannot run here). Rows:

- ``saved_model serving_default``: float32 pixels in, probabilities and labels out; the graph
  normalises, mirrors, tiles and stitches.
- ``saved_model encoded``: PNG bytes in, PNG mask and probabilities out (decode + encode too).
- ``model.predict`` (peer): Keras on the same images already normalised and mirror-padded to the
  valid input whose output covers 512 x 512 (the one tile the graph runs), i.e. the network
  without the serving work.
- ``bare network``: the same padded batch through the model's compiled call
  (:func:`keras_unet.inference.compiled_forward`, what ``predict_tiled`` runs per tile), to
  tell the cost of the serving work from ``model.predict``'s own overhead.

Rounds alternate ours / peer so that load from other processes hits both alike; latency
percentiles are over the rounds (with few rounds p99 is close to the maximum), throughput is
images per second at the median latency.

    python benchmarks/serving_benchmark.py                  # 30 rounds at batch 1, 10 at 8
    python benchmarks/serving_benchmark.py --rounds 10 4    # quicker
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_unet import build_unet  # noqa: E402
from keras_unet.geometry import valid_tile_size  # noqa: E402
from keras_unet.inference.network import compiled_forward, model_geometry  # noqa: E402
from keras_unet.normalization import normalize_image  # noqa: E402
from keras_unet.serving import export_for_serving  # noqa: E402

SIZE, FILTERS, DEPTH = 512, 16, 3


def requests(batch: int) -> dict[str, object]:
    """The same ``batch`` images as pixels, as PNG files, and padded for the bare network."""
    images = np.random.default_rng(batch).integers(0, 256, (batch, SIZE, SIZE, 1), np.uint8)
    pngs = tf.constant([tf.io.encode_png(image).numpy() for image in images])
    tile = valid_tile_size(SIZE, DEPTH, "valid")
    before = (tile - SIZE) // 2
    padded = np.pad(normalize_image(images).numpy(),
                    ((0, 0), (before, tile - SIZE - before), (before, tile - SIZE - before),
                     (0, 0)), mode="reflect")
    return {"pixels": tf.constant(images, tf.float32), "pngs": pngs, "padded": padded}


def measure(contenders: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each contender, interleaved round by round after one warm-up."""
    times = {name: [] for name in contenders}
    for function in contenders.values():
        function()
    for _ in range(rounds):
        for name, function in contenders.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, nargs=2, default=(30, 10),
                        metavar=("BATCH1", "BATCH8"), help="timed rounds at batch 1 and 8")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    model = build_unet((None, None, 1), 2, filters=FILTERS, depth=DEPTH)
    forward = compiled_forward(model, model_geometry(model))
    with tempfile.TemporaryDirectory() as base:
        loaded = tf.saved_model.load(str(export_for_serving(model, base, warmup=False)))
        serve, encoded = loaded.signatures["serving_default"], loaded.signatures["encoded"]
        print(f"U-Net valid padding, depth {DEPTH}, {FILTERS} filters; {SIZE}x{SIZE} uint8 "
              f"images; {os.cpu_count()} CPU(s); TensorFlow {tf.__version__}\n")
        print("| batch | contender | p50 ms | p99 ms | images/s | vs model.predict |")
        print("| --- | --- | --- | --- | --- | --- |")
        for batch, rounds in zip((1, 8), args.rounds):
            data = requests(batch)
            times = measure({
                "saved_model serving_default": lambda: serve(image=data["pixels"])[
                    "probabilities"].numpy(),
                "saved_model encoded (PNG)": lambda: encoded(image_bytes=data["pngs"])[
                    "labels_png_bytes"].numpy(),
                "model.predict (peer)": lambda: model.predict(data["padded"], batch_size=batch,
                                                              verbose=0),
                "bare network": lambda: forward(data["padded"]).numpy(),
            }, rounds)
            peer = np.median(times["model.predict (peer)"])
            for name, samples in times.items():
                p50, p99 = np.percentile(samples, 50), np.percentile(samples, 99)
                print(f"| {batch} | {name} | {p50 * 1e3:.0f} | {p99 * 1e3:.0f} | "
                      f"{batch / p50:.1f} | {p50 / peer:.2f}x |")


if __name__ == "__main__":
    main()
