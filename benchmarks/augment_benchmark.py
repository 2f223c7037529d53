"""Elastic deformation speed: keras_unet.augment against OpenCV, albumentations, elasticdeform
and Keras, and the throughput of the whole make_dataset pipeline.

Every method deforms the same batch of 572x572 image + label pairs (synthetic cells, the image
normalised to float32, class labels) per round; rounds interleave the methods (ours, peer, ours,
peer, ...) and the table reports medians, so load from other processes hits all of them alike.

- ours (XLA): ``keras_unet.augment.elastic_deform`` on the whole batch in a
  ``tf.function(jit_compile=True)``, as a compiled train step runs it.
- ours (called as is): the same function called eagerly, as a user's script does (it compiles
  its warp inside, so this should match the XLA row).
- OpenCV: the same warp by hand: our bicubic field (the per-axis spline weights, extracted once
  from ``displacement_field``) as two small matrix products, ``cv2.remap`` of the image
  (``INTER_LINEAR``) and of the uint8 labels (``INTER_NEAREST``), ``BORDER_REFLECT_101``.
  The practical limit on this CPU.
- elasticdeform: ``elasticdeform.deform_grid`` with the same 3x3 grid, ``order=[1, 0]``,
  ``mode="mirror"``: the same method, so its output must match ours (checked and printed).
- albumentations: ``ElasticTransform(border_mode=BORDER_REFLECT_101, p=1)`` on image + mask
  (its own method: a per-pixel Gaussian-smoothed random field).
- Keras: ``keras.layers.RandomElasticTransform(fill_mode="reflect")`` on the batch of images with
  the labels as a second channel (it has no nearest-neighbour path for masks).

    python benchmarks/augment_benchmark.py            # 8 images per round, 7 rounds
    python benchmarks/augment_benchmark.py --quick    # 4 images per round, 2 rounds
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_unet.augment import displacement_field, elastic_deform  # noqa: E402
from keras_unet.data import make_dataset, synthetic_cells  # noqa: E402
from keras_unet.normalization import normalize_image  # noqa: E402

SIZE = 572


def make_batch(count: int, seed: int = 0):
    """``count`` normalised 572x572 images, their 0/1 labels, and 3x3 grids of N(0, 10^2) px."""
    samples = synthetic_cells(count, size=SIZE, seed=seed)
    images = np.stack([normalize_image(s.image[..., None]).numpy() for s in samples])
    labels = np.stack([(s.labels > 0).astype(np.int32) for s in samples])
    grids = np.random.default_rng(seed).normal(0.0, 10.0, (count, 3, 3, 2)).astype(np.float32)
    return images, labels, grids


def axis_weights(size: int) -> np.ndarray:
    """``(size, 3)`` spline weights of the 3 control points along one axis, from our field.

    The field is separable, ``Wy @ grid @ Wx.T``; a grid that is 1 on control row ``i`` and 0
    elsewhere gives column ``i`` of ``Wy`` (the spline of a constant row is that constant).
    """
    impulses = np.zeros((3, 3, 3, 2), np.float32)
    for i in range(3):
        impulses[i, i, :, 0] = 1.0
    return displacement_field(impulses, size, size).numpy()[:, :, 0, 0].T


def opencv_method(images, labels, grids):
    import cv2

    weights = axis_weights(SIZE)
    rows, cols = np.mgrid[:SIZE, :SIZE].astype(np.float32)
    labels8 = labels.astype(np.uint8)

    def run():
        out = []
        for image, label, grid in zip(images, labels8, grids):
            map_y = rows + weights @ grid[..., 0] @ weights.T
            map_x = cols + weights @ grid[..., 1] @ weights.T
            out.append((
                cv2.remap(image[..., 0], map_x, map_y, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101),
                cv2.remap(label, map_x, map_y, cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_REFLECT_101),
            ))
        return out
    return run


def elasticdeform_method(images, labels, grids):
    import elasticdeform

    def run():
        return [elasticdeform.deform_grid([image[..., 0], label], np.moveaxis(grid, -1, 0),
                                          order=[1, 0], mode="mirror")
                for image, label, grid in zip(images, labels, grids)]
    return run


def albumentations_method(images, labels, grids):
    import albumentations
    import cv2

    transform = albumentations.ElasticTransform(border_mode=cv2.BORDER_REFLECT_101, p=1.0)

    def run():
        return [transform(image=image, mask=label.astype(np.uint8))
                for image, label in zip(images, labels)]
    return run


def keras_method(images, labels, grids):
    import keras

    layer = keras.layers.RandomElasticTransform(fill_mode="reflect", value_range=(-10, 10),
                                                seed=0)
    stacked = tf.constant(np.concatenate([images, labels[..., None].astype(np.float32)], -1))
    return lambda: layer(stacked, training=True).numpy()


def ours_method(images, labels, grids, jit_compile: bool):
    deform = tf.function(elastic_deform, jit_compile=True) if jit_compile else elastic_deform
    images, labels, grids = (tf.constant(x) for x in (images, labels, grids))
    return lambda: [t.numpy() for t in deform(images, labels, grids)]


def compare_outputs(images, labels, grids) -> str:
    """Max image difference and label disagreement of ours against elasticdeform and OpenCV."""
    ours_image, ours_label = ours_method(images, labels, grids, True)()
    lines = []
    for name, method in (("elasticdeform", elasticdeform_method),
                         ("OpenCV", opencv_method)):
        peer = method(images, labels, grids)()
        peer_image = np.stack([p[0] for p in peer])
        peer_label = np.stack([p[1] for p in peer])
        lines.append(f"ours vs {name}: max |image difference| "
                     f"{np.abs(peer_image - ours_image[..., 0]).max():.2e} (image std 1), "
                     f"labels differ at {np.mean(peer_label != ours_label):.2e} of pixels")
    return "\n".join(lines)


def interleaved(methods: dict, rounds: int) -> dict:
    """Median seconds per call of every method, rounds interleaved, after one warm-up each."""
    for run in methods.values():
        run()
    times = {name: [] for name in methods}
    for _ in range(rounds):
        for name, run in methods.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def pipeline_rate(batches: int, threads: int | None) -> tuple[float, float]:
    """make_dataset tiles/s (572 tiles, depth 4, augmented) and its one-off setup seconds."""
    samples = synthetic_cells(4, size=700)
    start = time.perf_counter()
    dataset = make_dataset(samples, tile_size=SIZE, batch_size=4, seed=0)
    setup = time.perf_counter() - start
    if threads:
        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = threads
        dataset = dataset.with_options(options)
    iterator = iter(dataset)
    for _ in range(3):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * 4 / (time.perf_counter() - start), setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 images, 2 rounds")
    args = parser.parse_args()
    count, rounds, batches = (4, 2, 5) if args.quick else (8, 7, 30)
    data = make_batch(count)
    methods = {
        "ours (XLA)": ours_method(*data, jit_compile=True),
        "OpenCV cv2.remap": opencv_method(*data),
        "ours (called as is)": ours_method(*data, jit_compile=False),
        "elasticdeform.deform_grid": elasticdeform_method(*data),
        "albumentations ElasticTransform": albumentations_method(*data),
        "keras RandomElasticTransform": keras_method(*data),
    }
    seconds = interleaved(methods, rounds)
    ours = count / seconds["ours (XLA)"]
    print(f"Elastic deformation, {count} image+label pairs of {SIZE}x{SIZE} per call, "
          f"median of {rounds} interleaved rounds, {os.cpu_count()} CPU cores")
    print(f"| {'method':34s} | {'images/s':>9s} | {'ours (XLA) / method':>19s} |")
    print(f"|{'-' * 36}|{'-' * 11}|{'-' * 21}|")
    for name, value in seconds.items():
        rate = count / value
        print(f"| {name:34s} | {rate:9.1f} | {ours / rate:18.2f}x |")
    print(compare_outputs(*data))
    cv = count / seconds["OpenCV cv2.remap"]
    albu = count / seconds["albumentations ElasticTransform"]
    print(f"goal ours >= 0.5x OpenCV: {ours / cv:.2f}x "
          f"({'met' if ours >= 0.5 * cv else 'MISSED'}); goal ours >= 8x albumentations: "
          f"{ours / albu:.1f}x ({'met' if ours >= 8 * albu else 'MISSED'})")
    cores = os.cpu_count()
    rate, setup = pipeline_rate(batches, None)
    single, _ = pipeline_rate(batches, 1)
    print(f"make_dataset, 572x572 tiles (388x388 labels/weights), augmented, batch 4: "
          f"{rate:.1f} tiles/s on {cores} cores = {rate / cores:.1f} tiles/s per core; "
          f"{single:.1f} tiles/s with a 1-thread tf.data pool; setup (normalise, weight maps "
          f"of 4 700x700 images) {setup:.2f} s")


if __name__ == "__main__":
    main()
