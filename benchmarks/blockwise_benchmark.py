"""Block-wise prediction of zarr images: peak memory, throughput against predict_tiled, and a
2-worker dask LocalCluster against one process.

    python benchmarks/blockwise_benchmark.py rss --sizes 4096 8192 16384
    python benchmarks/blockwise_benchmark.py throughput --size 4096
    python benchmarks/blockwise_benchmark.py cluster --size 4096

``rss`` predicts a synthetic uint8 zarr image of each size into zarr probabilities and classes
in a fresh child process per size and prints the child's peak resident memory (goal: under
2 GiB, the same for every size). ``throughput`` times ``predict_array`` (zarr in, zarr out)
and ``predict_tiled`` (NumPy in, NumPy out) on the same image, alternating, best of
``--repeats`` (goal >= 0.9x). ``cluster`` times a ``LocalCluster(n_workers=2, processes=True,
threads_per_worker=1)`` (after a warm-up that loads the model in both workers) against one
process. The network is ``build_unet((None, None, 1), 2, filters=F, depth=D)``, default the
tiny F=4, D=2, since the paper network would take hours on 2 CPU cores; results are recorded
in benchmarks/README.md, "Block-wise prediction (zarr, dask)".
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _make_image(path: Path, size: int, block: int):
    import numpy as np
    import zarr

    array = zarr.create_array(path, shape=(size, size), chunks=(block, block), dtype="uint8")
    rng = np.random.default_rng(0)
    for top in range(0, size, block):  # block rows: never the whole image in memory
        rows = min(block, size - top)
        array[top:top + rows] = rng.integers(0, 255, (rows, size), dtype=np.uint8)
    return array


def _outputs(folder: Path, size: int, block: int):
    import zarr

    probabilities = zarr.create_array(folder / "p.zarr", shape=(size, size, 2),
                                      chunks=(block, block, 2), dtype="float32")
    classes = zarr.create_array(folder / "c.zarr", shape=(size, size), chunks=(block, block),
                                dtype="uint8")
    return probabilities, classes


def _model_file(folder: Path, filters: int, depth: int) -> Path:
    import keras

    from keras_unet import build_unet

    keras.utils.set_random_seed(0)
    path = folder / "unet.keras"
    build_unet((None, None, 1), 2, filters=filters, depth=depth).save(path)
    return path


def rss_child(folder: str, block: int) -> None:
    """Runs in a fresh process: predicts folder/in.zarr and prints seconds and peak RSS."""
    import keras
    import zarr

    from keras_unet import predict_array

    folder = Path(folder)
    model = keras.models.load_model(folder / "unet.keras", compile=False)
    image = zarr.open_array(folder / "in.zarr", mode="r")
    probabilities, classes = _outputs(folder, image.shape[0], block)
    start = time.perf_counter()
    predict_array(model, image, output=probabilities, classes=classes, block_size=block)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"{seconds:.1f} {peak:.3f}")


def run_rss(args) -> None:
    print("| image | pixels | seconds | output MP/s | peak RSS |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        with tempfile.TemporaryDirectory(dir=args.scratch) as folder:
            folder = Path(folder)
            _make_image(folder / "in.zarr", size, args.block)
            _model_file(folder, args.filters, args.depth)
            result = subprocess.run(
                [sys.executable, __file__, "_rss_child", str(folder), str(args.block)],
                check=True, capture_output=True, text=True)
            seconds, peak = map(float, result.stdout.split()[-2:])
            print(f"| {size}x{size} zarr | {size * size / 1e6:.0f} MP | {seconds:.0f} | "
                  f"{size * size / 1e6 / seconds:.2f} | {peak:.2f} GiB |", flush=True)


def run_throughput(args) -> None:
    import keras
    import numpy as np

    from keras_unet import predict_array, predict_tiled

    with tempfile.TemporaryDirectory(dir=args.scratch) as folder:
        folder = Path(folder)
        image = _make_image(folder / "in.zarr", args.size, args.block)
        pixels = image[:]
        model = keras.models.load_model(_model_file(folder, args.filters, args.depth),
                                        compile=False)
        probabilities, classes = _outputs(folder, args.size, args.block)
        predict_tiled(model, pixels[:256, :256])  # trace once
        times = {"predict_tiled": [], "predict_array": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            tiled = predict_tiled(model, pixels)
            times["predict_tiled"].append(time.perf_counter() - start)
            start = time.perf_counter()
            predict_array(model, image, output=probabilities, classes=classes,
                          block_size=args.block)
            times["predict_array"].append(time.perf_counter() - start)
        difference = float(np.abs(probabilities[:] - tiled).max())
    megapixels = args.size**2 / 1e6
    best = {name: min(values) for name, values in times.items()}
    print(f"| {args.size}x{args.size}, block {args.block} | predict_tiled (NumPy) | "
          f"predict_array (zarr in, zarr out) | ratio | max difference |")
    print("|---|---|---|---|---|")
    print(f"| output MP/s, best of {args.repeats} | {megapixels / best['predict_tiled']:.2f} | "
          f"{megapixels / best['predict_array']:.2f} | "
          f"{best['predict_tiled'] / best['predict_array']:.2f}x | {difference:.1e} |")


def run_cluster(args) -> None:
    import dask.array as da
    import keras
    from distributed import Client, LocalCluster

    from keras_unet import predict_array
    from keras_unet.inference.dask_graph import predict_dask

    with tempfile.TemporaryDirectory(dir=args.scratch) as folder:
        folder = Path(folder)
        image = _make_image(folder / "in.zarr", args.size, args.block)
        model_path = _model_file(folder, args.filters, args.depth)
        model = keras.models.load_model(model_path, compile=False)
        probabilities, classes = _outputs(folder, args.size, args.block)
        predict_array(model, image[:256, :256])  # trace once
        start = time.perf_counter()
        predict_array(model, image, output=probabilities, classes=classes,
                      block_size=args.block)
        single = time.perf_counter() - start
        expected = probabilities[:]
        with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            warm = image[:2 * args.block // 4, :2 * args.block // 4]
            predict_dask(model_path, warm, block_size=args.block // 4).compute()  # both load
            start = time.perf_counter()
            da.store(predict_dask(model_path, image, block_size=args.block), probabilities,
                     lock=False)
            distributed_seconds = time.perf_counter() - start
            workers = len(client.scheduler_info()["workers"])
        same = bool((probabilities[:] == expected).all())
    megapixels = args.size**2 / 1e6
    print(f"| {args.size}x{args.size}, block {args.block} | one process | LocalCluster, "
          f"{workers} workers x 1 thread | ratio | identical |")
    print("|---|---|---|---|---|")
    print(f"| output MP/s | {megapixels / single:.2f} | {megapixels / distributed_seconds:.2f} "
          f"| {single / distributed_seconds:.2f}x | {same} |")


def main() -> None:
    if sys.argv[1:2] == ["_rss_child"]:
        return rss_child(sys.argv[2], int(sys.argv[3]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("rss", "throughput", "cluster"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 16384])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--filters", type=int, default=4)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--scratch", default=None, help="folder for the temporary zarr stores")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; network "
          f"filters={args.filters}, depth={args.depth}")
    {"rss": run_rss, "throughput": run_throughput, "cluster": run_cluster}[args.what](args)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
