"""Inference speed: keras_unet.predict_tiled against MONAI's sliding_window_inference.

Both segment the same N x N image on the same CPU with a network of the paper's width
(64..1024 channels, depth 4): ours is the paper's unpadded U-Net tiled seamlessly, MONAI's is
``BasicUNet(features=(64, 128, 256, 512, 1024, 64))`` run with its default overlap of 0.25.
The script also measures this CPU's float32 matmul rate (``tf.matmul``) and how much of it the
forward pass of our network reaches, with the FLOPs counted from the layer shapes.

    python benchmarks/inference_benchmark.py            # 4096 x 4096, 2 repeats
    python benchmarks/inference_benchmark.py --quick    # 1024 x 1024, 1 repeat
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_unet import build_unet, geometry, predict_tiled  # noqa: E402
from keras_unet.inference import compiled_forward, model_geometry, plan_tiles  # noqa: E402


def best_time(function, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls, after one untimed warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak(size: int, repeats: int) -> float:
    """GFLOP/s of a float32 ``size x size`` matmul in a compiled tf.function."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    return 2 * size**3 / best_time(lambda: matmul().numpy(), repeats) / 1e9


def unet_gflop(tile: int, **kwargs) -> float:
    """FLOPs (multiply and add counted apart) of one tile, summed over the conv layers."""
    model = build_unet((tile, tile, 1), 2, **kwargs)
    flops = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):  # every input pixel -> k*k outputs
            _, height, width, channels = layer.input.shape
        elif isinstance(layer, keras.layers.Conv2D):
            _, height, width, _ = layer.output.shape
            channels = layer.input.shape[-1]
        else:
            continue
        flops += 2 * height * width * np.prod(layer.kernel_size) * channels * layer.filters
    return flops / 1e9


def forward_rate(model, tile: int, repeats: int) -> tuple[float, float]:
    """Seconds per tile and GFLOP/s of the compiled forward pass on one ``tile`` x ``tile``."""
    forward = compiled_forward(model, model_geometry(model))
    tiles = np.random.default_rng(0).normal(size=(1, tile, tile, 1)).astype("float32")
    seconds = best_time(lambda: forward(tiles).numpy(), repeats)
    return seconds, unet_gflop(tile) / seconds


def monai_rate(image: np.ndarray, roi: int, repeats: int) -> float:
    """Output megapixels/s of MONAI's BasicUNet with sliding_window_inference (overlap 0.25)."""
    import torch
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import BasicUNet

    torch.set_num_threads(os.cpu_count())
    net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2,
                    features=(64, 128, 256, 512, 1024, 64)).eval()
    normalized = (image - image.mean()) / image.std()
    inputs = torch.from_numpy(normalized.astype("float32"))[None, None]

    def run():
        with torch.inference_mode():
            return torch.softmax(sliding_window_inference(inputs, (roi, roi), 4, net), 1)

    return image.size / best_time(run, repeats) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1024 x 1024 image, 1 repeat")
    parser.add_argument("--size", type=int, default=None, help="image size (default 4096)")
    parser.add_argument("--monai-roi", type=int, default=512, help="MONAI window size")
    args = parser.parse_args()
    size = args.size or (1024 if args.quick else 4096)
    repeats = 1 if args.quick else 2
    image = np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)

    peak = matmul_peak(2048 if args.quick else 4096, 3)
    model = build_unet((None, None, 1), 2)
    rows, cols, batch = plan_tiles(image.shape, model_geometry(model))
    tile_seconds, tile_rate = forward_rate(model, 572, repeats)
    big_seconds, big_rate = forward_rate(model, rows.tile, repeats)
    ours = size * size / best_time(lambda: predict_tiled(model, image), repeats) / 1e6
    keras.backend.clear_session()
    theirs = monai_rate(image, args.monai_roi, repeats)

    monai_step = args.monai_roi - int(args.monai_roi * 0.25)
    monai_windows = (max(1, -(-(size - args.monai_roi) // monai_step) + 1)) ** 2
    print(f"CPU: {os.cpu_count()} cores; tf.matmul float32 {peak:.1f} GFLOP/s (measured peak)")
    print(f"paper network, 572 tile: {unet_gflop(572):.1f} GFLOP (388x388 out), "
          f"{tile_seconds:.2f} s/tile = {tile_rate:.1f} GFLOP/s = {tile_rate / peak:.0%} of peak")
    print(f"paper network, {rows.tile} tile (default for {size}x{size}): "
          f"{unet_gflop(rows.tile):.1f} GFLOP, {big_seconds:.2f} s/tile = {big_rate:.1f} GFLOP/s "
          f"= {big_rate / peak:.0%} of peak; {rows.count}x{cols.count} tiles, batch {batch}, "
          f"border {geometry.border()} px")
    print()
    print(f"| {size}x{size} image, 2 cores | keras_unet | MONAI | ratio |")
    print("|---|---|---|---|")
    print(f"| output megapixels/s | {ours:.4f} | {theirs:.4f} | {ours / theirs:.2f} |")
    ours_px = rows.count * cols.count * rows.tile * cols.tile / size**2
    print(f"| input px computed per output px | {ours_px:.2f} | "
          f"{monai_windows * args.monai_roi**2 / size**2:.2f} | |")
    print(f"| tile / window | {rows.tile} (valid, step {rows.step}) | {args.monai_roi} "
          "(same, overlap 0.25) | |")


if __name__ == "__main__":
    main()
