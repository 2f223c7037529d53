"""Inference speed and memory of keras_unet.predict_tiled / predict_tiff.

Four measurements, each a subcommand:

* ``peak``: the fraction of this CPU's float32 matmul rate (4096 x 4096, the faster of
  ``tf.matmul`` and NumPy's BLAS) that the forward pass of the paper's network on 572 x 572 tiles
  (300.9 GFLOP each) reaches: one tile per call, ``predict_tiled``'s batch of tiles per call,
  one tile under XLA (``jit_compile=True``), and the default tile for a 4096 x 4096 image.
* ``speed``: output megapixels/s of ``predict_tiled`` on an N x N image against MONAI's
  ``sliding_window_inference`` with ``BasicUNet(features=(64, 128, 256, 512, 1024, 64))`` (the
  paper's width, depth 4) at MONAI's default overlap of 0.25, on the same CPU.
* ``tiles``: the forward pass of the paper's network on single tiles of several sizes: the border
  wasted by unpadded convolutions (input px computed per output px), the activation memory that
  :func:`keras_unet.inference.plan.plan_tiles` budgets, and the measured speed.
* ``memory``: peak memory, each run in a fresh process: (a) one forward pass of the paper's network
  per tile size against the budget estimate; (b) ``predict_tiff`` streaming an N x N TIFF against
  ``predict_tiled`` holding it, at two sizes, with a narrow network (``filters=4``, depth 4, the
  paper's geometry) so that an 8192 x 8192 image runs in minutes on two cores.

FLOPs are counted from the layer shapes (multiply and add apart) for both networks. Rounds of the
things compared alternate (ours, peer, ours, peer, ...) and medians are reported, so that load
from other processes affects both alike.

    python benchmarks/inference_benchmark.py peak              # 7 rounds
    python benchmarks/inference_benchmark.py speed             # 4096 x 4096, 2 rounds
    python benchmarks/inference_benchmark.py speed --size 2048 --rounds 3
    python benchmarks/inference_benchmark.py tiles --rounds 3
    python benchmarks/inference_benchmark.py memory            # 4096^2 and 8192^2 streaming
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

MIB = 2**20
MATMUL_SIZE = 4096
MATMULS = ("tf.matmul", "numpy matmul")


def timed(function) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


SETTLE_SECONDS = 0.5
"""Idle time before each timed call. BLAS and OpenMP pools (NumPy's OpenBLAS, PyTorch's) keep
their threads spinning for 50-100 ms after a call: timed straight after NumPy's matmul, the
paper network's forward pass ran at 391-408 GFLOP/s instead of 423-436 (2-core Zen 5)."""


def interleaved(functions: dict, rounds: int) -> dict[str, list[float]]:
    """Times every function once per round, alternating them within each round.

    Each call starts after :data:`SETTLE_SECONDS` of idle, so that no contender pays for the
    threads the previous one left spinning.
    """
    times = {name: [] for name in functions}
    for round_ in range(rounds):
        for name, function in functions.items():
            time.sleep(SETTLE_SECONDS)
            times[name].append(timed(function))
        summary = ", ".join(f"{name} {values[-1]:.2f} s" for name, values in times.items())
        print(f"  round {round_ + 1}/{rounds}: {summary}", flush=True)
    return times


def matmul_calls(precision: str = "float32") -> dict:
    """The 4096^2 matmuls timed as this CPU's peak: TensorFlow's and, in float32, NumPy's (BLAS).

    TensorFlow's matmul is not always the fastest on the CPU: TensorFlow turns oneDNN on by
    default only on CPUs with AVX-512 VNNI/BF16 or AMX, and elsewhere multiplies with Eigen. On a
    2-core AVX2 EPYC that reached 70 GFLOP/s where NumPy's OpenBLAS reached 146, so the peak
    of a round is the faster of the two (:func:`peak_rates`).
    """
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a, b = (rng.normal(size=(MATMUL_SIZE, MATMUL_SIZE)).astype("float32") for _ in range(2))
    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
    ta, tb = tf.cast(a, dtype), tf.cast(b, dtype)
    matmul = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(ta, tb), tf.float32)))
    calls = {"tf.matmul": lambda: matmul().numpy()}
    if precision == "float32":
        calls["numpy matmul"] = lambda: a @ b
    for call in calls.values():
        call()
    return calls


def peak_rates(times: dict) -> np.ndarray:
    """GFLOP/s of the faster matmul of :func:`matmul_calls` in every round."""
    return np.max([2 * MATMUL_SIZE**3 / np.array(times[name]) / 1e9
                   for name in MATMULS if name in times], axis=0)


def unet_gflop(tile: int, **kwargs) -> float:
    """GFLOP of one ``tile`` x ``tile`` forward pass of ``build_unet``, summed over convolutions."""
    import keras

    from keras_unet import build_unet

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


def torch_gflop(net, shape: tuple[int, ...]) -> float:
    """GFLOP of one forward pass of a PyTorch network, summed over its (transposed) 2D and 3D
    convolutions."""
    import torch

    flops = []
    transposed = (torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)

    def count(module, inputs, output):
        kernel = int(np.prod(module.kernel_size))
        if isinstance(module, transposed):
            pixels = inputs[0].numel() // module.in_channels
            flops.append(2 * pixels * kernel * module.in_channels * module.out_channels)
        else:
            flops.append(2 * output.numel() * kernel * module.in_channels // module.groups)

    hooks = [module.register_forward_hook(count) for module in net.modules()
             if isinstance(module, (torch.nn.Conv2d, torch.nn.Conv3d, *transposed))]
    with torch.inference_mode():
        net(torch.zeros(shape))
    for hook in hooks:
        hook.remove()
    return sum(flops) / 1e9


def monai_basic_unet():
    """MONAI's BasicUNet with the paper's widths, in eval mode, using every core."""
    import torch
    from monai.networks.nets import BasicUNet

    torch.set_num_threads(os.cpu_count())
    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=2,
                     features=(64, 128, 256, 512, 1024, 64)).eval()


def peak(args: argparse.Namespace) -> None:
    """The paper network's forward pass on 572 tiles as a fraction of the matmul rate.

    Timed four ways: one tile per call; ``batch_size`` tiles per call, as ``predict_tiled``
    sends 572 tiles to the network by default; one tile per call under XLA; and, for
    comparison, the tile ``predict_tiled`` picks by default for a 4096 x 4096 image.
    """
    import inspect

    import tensorflow as tf

    from keras_unet import build_unet, predict_tiled
    from keras_unet.inference.network import compiled_forward, model_geometry
    from keras_unet.inference.plan import plan_tiles

    batch = inspect.signature(predict_tiled).parameters["batch_size"].default
    model = build_unet((None, None, 1), 2)
    geom = model_geometry(model)
    forward = compiled_forward(model, geom)
    xla = tf.function(lambda tiles: model(tiles, training=False), jit_compile=True)
    rng = np.random.default_rng(1)
    batched = rng.normal(size=(batch, 572, 572, 1)).astype("float32")
    one = batched[:1]
    default, _, default_batch = plan_tiles((4096, 4096), geom)
    large = rng.normal(size=(default_batch, default.tile, default.tile, 1)).astype("float32")
    rows = {"forward, 1 tile per call": (572, 1, lambda: forward(one).numpy()),
            f"forward, {batch} tiles per call (predict_tiled's batch_size)":
                (572, batch, lambda: forward(batched).numpy()),
            "forward XLA (jit_compile=True), 1 tile per call": (572, 1, lambda: xla(one).numpy()),
            f"forward, {default_batch} tile of {default.tile} per call (predict_tiled's default "
            "for 4096^2)": (default.tile, default_batch, lambda: forward(large).numpy())}
    functions = {**matmul_calls(), **{name: call for name, (*_, call) in rows.items()}}
    for function in functions.values():
        function()
    print(f"matmul 4096^2 and the forward passes, {args.rounds} rounds:", flush=True)
    times = {name: np.array(values) for name, values in interleaved(functions,
                                                                     args.rounds).items()}
    peaks = peak_rates(times)
    print()
    print(f"CPU: {os.cpu_count()} cores; paper network on a 572 tile: {unet_gflop(572):.1f} GFLOP; "
          "peak = the faster matmul of each round")
    print("| | GFLOP/s (median) | best round | fraction of peak: median of rounds | "
          "fraction: best / best |")
    print("|---|---|---|---|---|")
    for name in MATMULS:
        rates = 2 * MATMUL_SIZE**3 / times[name] / 1e9
        print(f"| {name} float32 4096^2 | {np.median(rates):.1f} | {rates.max():.1f} | | |")
    for name, (tile, tiles_per_call, _) in rows.items():
        rates = tiles_per_call * unet_gflop(tile) / times[name]
        print(f"| {name} | {np.median(rates):.1f} | {rates.max():.1f} | "
              f"{np.median(rates / peaks):.0%} | {rates.max() / peaks.max():.0%} |")


def speed(args: argparse.Namespace) -> None:
    """Ours vs MONAI's sliding_window_inference on an N x N image, with the paper's widths."""
    import torch
    from monai.inferers import sliding_window_inference

    from keras_unet import build_unet, predict_tiled
    from keras_unet.inference.network import compiled_forward, model_geometry
    from keras_unet.inference.plan import plan_tiles

    size, rounds = args.size, args.rounds
    image = np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)
    model = build_unet((None, None, 1), 2)
    geom = model_geometry(model)
    forward = compiled_forward(model, geom)
    rows, cols, batch = plan_tiles(image.shape, geom)
    net = monai_basic_unet()
    roi = args.monai_roi
    normalized = torch.from_numpy(((image - image.mean()) / image.std()).astype("float32"))

    def monai():
        with torch.inference_mode():
            return torch.softmax(sliding_window_inference(normalized[None, None], (roi, roi),
                                                          args.monai_batch, net), 1)

    print(f"{size} x {size} image, warm-up then {rounds} rounds:", flush=True)
    forward(np.zeros((1, rows.tile, cols.tile, 1), "float32")).numpy()  # trace, pick kernels
    with torch.inference_mode():
        net(torch.zeros((1, 1, roi, roi)))
    times = interleaved({"keras_unet": lambda: predict_tiled(model, image), "MONAI": monai},
                        rounds)
    ours = size * size / np.array(times["keras_unet"]) / 1e6
    theirs = size * size / np.array(times["MONAI"]) / 1e6

    monai_step = roi - int(roi * 0.25)
    windows = (max(1, -(-(size - roi) // monai_step) + 1)) ** 2
    monai_gflop = torch_gflop(net, (1, 1, roi, roi))
    our_gflop = rows.count * cols.count * unet_gflop(rows.tile)
    print()
    print(f"| {size}x{size} image, {os.cpu_count()} cores, median of {rounds} | keras_unet | "
          "MONAI | ours / MONAI |")
    print("|---|---|---|---|")
    print(f"| output megapixels/s | {np.median(ours):.4f} | {np.median(theirs):.4f} | "
          f"{np.median(ours / theirs):.2f} |")
    print(f"| tile or window | {rows.tile}x{cols.tile} valid, step {rows.step}, "
          f"{rows.count * cols.count} tiles, batch {batch} | {roi}x{roi} same, overlap 0.25, "
          f"{windows} windows, batch {args.monai_batch} | |")
    print(f"| input px computed per output px | "
          f"{rows.count * cols.count * rows.tile * cols.tile / size**2:.2f} | "
          f"{windows * roi**2 / size**2:.2f} | |")
    print(f"| conv GFLOP for the image | {our_gflop:.0f} | {windows * monai_gflop:.0f} | "
          f"{our_gflop / (windows * monai_gflop):.2f} |")
    print(f"| GFLOP/s achieved | {our_gflop / np.median(times['keras_unet']):.1f} | "
          f"{windows * monai_gflop / np.median(times['MONAI']):.1f} | |")


def tiles(args: argparse.Namespace) -> None:
    """The paper network on single tiles: waste, budgeted memory and speed per tile size."""
    from keras_unet import build_unet
    from keras_unet.geometry import tile_step
    from keras_unet.inference.network import compiled_forward, model_geometry
    from keras_unet.inference.plan import activation_bytes

    model = build_unet((None, None, 1), 2)
    geom = model_geometry(model)
    forward = compiled_forward(model, geom)
    inputs = {tile: np.random.default_rng(0).normal(size=(1, tile, tile, 1)).astype("float32")
              for tile in args.tiles}
    for tile in args.tiles:
        forward(inputs[tile]).numpy()
    print(f"paper network, one tile per call, {args.rounds} rounds:", flush=True)
    times = interleaved({str(tile): (lambda t=tile: forward(inputs[t]).numpy())
                         for tile in args.tiles}, args.rounds)
    print()
    print("| tile | output | step | input px per output px | budgeted memory | GFLOP | "
          "s/tile (median) | GFLOP/s | output MP/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tile in args.tiles:
        step = tile_step(tile, geom.depth, geom.padding)
        seconds = float(np.median(times[str(tile)]))
        gflop = unet_gflop(tile)
        memory = activation_bytes(geom, tile, tile) / MIB
        print(f"| {tile} | {tile - 2 * geom.border} | {step} | {(tile / step) ** 2:.2f} | "
              f"{memory:.0f} MiB | {gflop:.0f} | {seconds:.2f} | {gflop / seconds:.1f} | "
              f"{step**2 / seconds / 1e6:.4f} |")


class PeakAnonymous:
    """Samples this process's anonymous resident memory (RssAnon) in a thread; keeps the peak.

    Anonymous memory excludes pages of memory-mapped files, so it is the memory the computation
    itself holds; ``ru_maxrss`` (peak RSS) also counts the mapped input and output pages.
    """

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current(field: str = "RssAnon") -> int:
        """Bytes of ``field`` (``RssAnon``, ``VmRSS``, ...) in /proc/self/status now."""
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
        raise KeyError(field)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(self.interval)

    def __enter__(self) -> PeakAnonymous:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _child_forward(tile: int) -> dict:
    """In a fresh process: peak memory of one paper-network forward pass on a ``tile``."""
    from keras_unet import build_unet
    from keras_unet.geometry import valid_tile_size
    from keras_unet.inference.network import compiled_forward, model_geometry

    model = build_unet((None, None, 1), 2)
    forward = compiled_forward(model, model_geometry(model))
    small = valid_tile_size(1, 4, "valid")
    forward(np.zeros((1, small, small, 1), "float32")).numpy()
    inputs = np.zeros((1, tile, tile, 1), "float32")
    before = PeakAnonymous.current()
    with PeakAnonymous() as peak:
        forward(inputs).numpy()
    return {"before": before, "peak": peak.peak}


def _child_predict(path: str, streaming: bool, filters: int, tile_size: int | None) -> dict:
    """In a fresh process: segment the TIFF at ``path``, streaming or in memory; peak memory."""
    import keras
    import tifffile

    from keras_unet import build_unet, predict_tiled
    from keras_unet.class_layout import mask_from_probabilities
    from keras_unet.inference.network import model_geometry
    from keras_unet.inference.plan import plan_tiles
    from keras_unet.inference.streaming import predict_tiff, read_tiff

    keras.utils.set_random_seed(0)
    model = build_unet((None, None, 1), 2, filters=filters)
    predict_tiled(model, np.zeros((64, 64), "uint8"))  # trace and import everything first
    output = Path(path).with_name(f"mask_{'stream' if streaming else 'memory'}.tif")
    output.unlink(missing_ok=True)
    baseline = PeakAnonymous.current("VmRSS")
    anonymous_before = PeakAnonymous.current()
    start = time.perf_counter()
    with PeakAnonymous() as anonymous:
        if streaming:
            predict_tiff(model, path, output, tile_size=tile_size)
        else:
            probabilities = predict_tiled(model, tifffile.imread(path), tile_size=tile_size)
            tifffile.imwrite(output, mask_from_probabilities(probabilities))
    seconds = time.perf_counter() - start
    output.unlink()
    rows, cols, batch = plan_tiles(read_tiff(path).shape, model_geometry(model), tile_size)
    return {"baseline": baseline, "anonymous": anonymous.peak - anonymous_before,
            "seconds": seconds, "tiles": f"{rows.count}x{cols.count} of {rows.tile}, batch {batch}",
            "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def in_fresh_process(function, *args) -> dict:
    """``function(*args)`` in a new Python process (spawned, so nothing is inherited)."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def write_test_tiff(path: Path, size: int) -> None:
    """A uint8 ``size`` x ``size`` TIFF of blurred blobs, written in row chunks (never whole)."""
    import tifffile

    image = tifffile.memmap(path, shape=(size, size), dtype=np.uint8, photometric="minisblack")
    rng = np.random.default_rng(0)
    columns = np.arange(size)
    for top in range(0, size, 1024):
        rows = np.arange(top, min(top + 1024, size))[:, None]
        blobs = np.sin(rows / 37.0 + rng.random()) * np.cos(columns / 23.0)
        image[rows[:, 0]] = np.clip(128 + 100 * blobs + rng.normal(0, 10, blobs.shape), 0, 255)
    image.flush()
    del image


def memory(args: argparse.Namespace) -> None:
    """Peak memory of forward passes per tile, and of streaming against in-memory prediction."""
    from keras_unet.inference.network import ModelGeometry
    from keras_unet.inference.plan import ACTIVATION_FACTOR, activation_bytes

    paper = ModelGeometry(4, "valid", 1, 2, (None, None), 64)
    if args.tiles:
        print("paper network, one forward pass per tile:")
        print("| tile | budgeted (activation_bytes) | measured peak | measured factor "
              "(float32 maps of 64 channels) |")
        print("|---|---|---|---|")
    for tile in args.tiles:
        result = in_fresh_process(_child_forward, tile)
        used = result["peak"] - result["before"]
        budget = activation_bytes(paper, tile, tile)
        print(f"| {tile} | {budget / MIB:.0f} MiB | {used / MIB:.0f} MiB | "
              f"{used / budget * ACTIVATION_FACTOR:.2f} |", flush=True)
    print()
    tiles = f"tile_size={args.tile_size}" if args.tile_size else "default tiles"
    print(f"build_unet(filters={args.filters}), {tiles}; peak memory minus the process before "
          "the call:")
    print("| image | path | tiles | input + mask arrays | peak RSS (ru_maxrss) | "
          "peak RSS - arrays | peak anonymous memory | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        for size in args.sizes:
            path = Path(folder) / f"image_{size}.tif"
            write_test_tiff(path, size)
            arrays = 2 * size * size  # uint8 input + uint8 mask
            for streaming in (True, False):
                result = in_fresh_process(_child_predict, str(path), streaming, args.filters,
                                          args.tile_size)
                grown = result["maxrss"] - result["baseline"]
                print(f"| {size}x{size} | {'predict_tiff' if streaming else 'predict_tiled'} | "
                      f"{result['tiles']} | {arrays / MIB:.0f} MiB | {grown / MIB:.0f} MiB | "
                      f"{(grown - arrays) / MIB:.0f} MiB | {result['anonymous'] / MIB:.0f} MiB | "
                      f"{result['seconds']:.0f} |", flush=True)
            path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("peak", help="572-tile forward pass vs matmul peak")
    command.add_argument("--rounds", type=int, default=7)
    command.set_defaults(run=peak)
    command = commands.add_parser("speed", help="output megapixels/s, ours vs MONAI")
    command.add_argument("--size", type=int, default=4096, help="image size (4096)")
    command.add_argument("--rounds", type=int, default=2, help="timed rounds of each (2)")
    command.add_argument("--monai-roi", type=int, default=512, help="MONAI window size (512)")
    command.add_argument("--monai-batch", type=int, default=4,
                         help="MONAI windows per call (4, as our batch_size)")
    command.set_defaults(run=speed)
    command = commands.add_parser("tiles", help="speed, waste and memory per tile size")
    command.add_argument("--tiles", type=int, nargs="+",
                         default=[572, 764, 892, 1084, 1276, 1436])
    command.add_argument("--rounds", type=int, default=3)
    command.set_defaults(run=tiles)
    command = commands.add_parser("memory", help="peak memory: forward per tile, streaming")
    command.add_argument("--tiles", type=int, nargs="*", default=[572, 1084, 1436],
                         help="paper-network tiles to measure (none: --tiles with no value)")
    command.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    command.add_argument("--filters", type=int, default=4)
    command.add_argument("--tile-size", type=int, default=None,
                         help="one tile size for every image (default: predict_tiled's choice)")
    command.add_argument("--workdir", default=None, help="folder for the test TIFFs (a temp dir)")
    command.set_defaults(run=memory)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
