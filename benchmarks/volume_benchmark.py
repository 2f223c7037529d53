"""Volumes: our 3D U-Net against StarDist3D (instances) and MONAI (tiled inference speed).

Two measurements, each a subcommand:

* ``instances``: synthetic touching nuclei (``keras_unet.data.synthetic_volumes``, 64^3 voxels,
  nuclei about 14 px across). Our 3D U-Net (3 classes: background, nucleus, the border ring that
  keeps touching nuclei apart; the paper's weighted cross-entropy) is trained with
  ``keras_unet.training.train`` for ``--minutes`` of training time; StarDist3D (0.9.2) from
  scratch on the same training volumes for the same wall time (a callback stops it), flips and
  in-plane rotations as augmentation. Both get the same volumes held out for validation: ours
  chooses its cell settings there (``best_cell_settings``, what ``unet train`` records),
  StarDist its probability and NMS thresholds (``optimize_thresholds``). Both are scored on the
  same test volumes by ``keras_unet.evaluation.matching_dataset``: object F1 and AP at IoU 0.5
  and 0.75, counts summed over the volumes. Each contender runs in its own process.
* ``speed``: output megavoxels/s of ``predict_tiled`` on a D x N x N volume against MONAI's
  ``sliding_window_inference`` with ``BasicUNet(spatial_dims=3)`` of the same first width, at
  MONAI's default overlap of 0.25, in one process on the same CPU. FLOPs are counted from the
  layer shapes (multiply and add apart) for both networks, as in ``inference_benchmark.py``;
  rounds alternate (ours, MONAI, ours, ...) and medians are reported.

    python benchmarks/volume_benchmark.py instances --minutes 10
    python benchmarks/volume_benchmark.py speed --rounds 3

StarDist and MONAI are best kept out of the dev venv: ``python3 -m venv /work/bench-venv &&
/work/bench-venv/bin/pip install -e . stardist==0.9.2 csbdeep && /work/bench-venv/bin/pip
install torch==2.13.0 monai`` (the CPU build of torch lies on disk here).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_benchmark import interleaved, torch_gflop  # noqa: E402
from instances_benchmark import machine, stardist_time_limit  # noqa: E402

SIZE = 64
TRAIN, VALIDATION, TEST = 8, 2, 4
SEEDS = {"train": 1, "validation": 2, "test": 3}
THRESHOLDS = (0.5, 0.75)


# --------------------------------------------------------------------------- instances

def volumes(part: str) -> list:
    """The synthetic nuclei of one part (disjoint seeds)."""
    from keras_unet.data import synthetic_volumes

    count = {"train": TRAIN, "validation": VALIDATION, "test": TEST}[part]
    return synthetic_volumes(count, size=SIZE, seed=SEEDS[part])


VAL_FRACTION = VALIDATION / (TRAIN + VALIDATION)


def data_folder(work: Path) -> Path:
    """The training and validation volumes as images/ + masks/, what ``unet train`` reads."""
    from keras_unet.data import save_samples

    data = work / "data"
    if not data.exists():
        save_samples(volumes("train") + volumes("validation"), data)
    return data


def split(work: Path) -> tuple[list, list]:
    """The training and validation volumes exactly as ``train()`` splits the folder, so that
    StarDist trains and chooses its thresholds on the same ones."""
    from keras_unet.data import load_samples
    from keras_unet.training import split_samples

    return split_samples(load_samples(data_folder(work), "instances"), VAL_FRACTION, 0)


def scores(truths, predictions) -> dict:
    from keras_unet.evaluation import matching_dataset

    results = matching_dataset(truths, predictions, THRESHOLDS)
    return {f"{name}_{int(t * 100)}": float(getattr(result, attr))
            for t, result in zip(THRESHOLDS, results)
            for name, attr in (("f1", "f1"), ("ap", "accuracy"))}


def run_ours(work: Path, minutes: float) -> dict:
    """Our 3D U-Net trained for ``minutes`` on the training volumes, cells chosen on the
    validation volumes, scored on the test volumes."""
    import keras

    from keras_unet.inference.tiled import predict_tiled
    from keras_unet.instances import instance_labels
    from keras_unet.training import train

    start = time.perf_counter()
    result = train({"data": str(data_folder(work)), "labels": "instances", "num_classes": 3,
                    "filters": 16, "depth": 2, "tile_size": 60, "batch_size": 2,
                    "epochs": 15, "steps_per_epoch": 10_000, "time_limit": minutes,
                    "val_fraction": VAL_FRACTION, "seed": 0,
                    "run_dir": str(work / "ours")}, overwrite=True, verbose=1)
    wall = time.perf_counter() - start
    model = keras.models.load_model(result.run.checkpoints / "best.keras")
    test = volumes("test")
    labels = [instance_labels(predict_tiled(model, v.image), model=model) for v in test]
    return {"name": "keras_unet 3D U-Net", "training_seconds": result.training_seconds,
            "wall_seconds": wall, "steps": result.steps, "cells": result.cells.describe(),
            "validation": sorted(s.path for s in split(work)[1]),
            **scores([v.labels for v in test], labels)}


def run_stardist(work: Path, minutes: float) -> dict:
    """StarDist3D trained for the same wall time on the same volumes, thresholds optimised on
    the same validation volumes, scored on the test volumes."""
    from csbdeep.utils import normalize
    from stardist import Rays_GoldenSpiral, fill_label_holes
    from stardist.models import Config3D, StarDist3D

    def prepare(samples):
        return ([normalize(s.image, 1, 99.8, axis=(0, 1, 2)).astype(np.float32) for s in samples],
                [fill_label_holes(s.labels) for s in samples])

    train_samples, validation = split(work)
    train_x, train_y = prepare(train_samples)
    val_x, val_y = prepare(validation)
    config = Config3D(rays=Rays_GoldenSpiral(96), grid=(2, 2, 2), anisotropy=(1, 1, 1),
                      n_channel_in=1, train_patch_size=(48, 48, 48), train_batch_size=2,
                      use_gpu=False)
    model = StarDist3D(config, name="stardist", basedir=str(work))

    def augment(x, y):  # flips and in-plane rotations, as the StarDist 3D examples
        k = np.random.randint(4)
        x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k, axes=(1, 2))
        for axis in range(3):
            if np.random.rand() < 0.5:
                x, y = np.flip(x, axis), np.flip(y, axis)
        return np.ascontiguousarray(x), np.ascontiguousarray(y)

    model.prepare_for_training()
    model.callbacks.append(stardist_time_limit(minutes * 60))
    start = time.perf_counter()
    model.train(train_x, train_y, validation_data=(val_x, val_y), augmenter=augment,
                epochs=10_000, steps_per_epoch=50)
    seconds = time.perf_counter() - start
    model.optimize_thresholds(val_x, val_y)
    test = volumes("test")
    labels = [model.predict_instances(normalize(v.image, 1, 99.8, axis=(0, 1, 2)))[0]
              .astype(np.int32) for v in test]
    return {"name": "StarDist3D 0.9.2", "training_seconds": seconds, "wall_seconds": seconds,
            "thresholds": model.thresholds._asdict(),
            "validation": sorted(s.path for s in validation),
            **scores([v.labels for v in test], labels)}


def instances(args: argparse.Namespace) -> None:
    work = Path(args.work or tempfile.mkdtemp(prefix="volume_benchmark_"))
    results = []
    print(f"machine: {machine()}", flush=True)
    for side in ("ours", "stardist"):
        out = work / f"{side}.json"
        if not out.exists():
            subprocess.run([sys.executable, __file__, "one", side, "--work", str(work),
                            "--minutes", str(args.minutes)], check=True)
        results.append(json.loads(out.read_text()))
    print(f"\nmachine at the end: {machine()}")
    print(f"\nsynthetic touching nuclei, {SIZE}^3 voxels: {TRAIN} training, {VALIDATION} "
          f"validation, {TEST} test volumes; {args.minutes:g} min of training each")
    print("| method | training s | F1@0.5 | AP@0.5 | F1@0.75 | AP@0.75 | chosen on validation |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        chosen = r.get("cells") or ", ".join(f"{k} {v:.3g}" for k, v in
                                             r.get("thresholds", {}).items())
        print(f"| {r['name']} | {r['training_seconds']:.0f} | {r['f1_50']:.3f} | "
              f"{r['ap_50']:.3f} | {r['f1_75']:.3f} | {r['ap_75']:.3f} | {chosen} |")


def one(args: argparse.Namespace) -> None:
    work = Path(args.work)
    result = (run_ours if args.side == "ours" else run_stardist)(work, args.minutes)
    result["load_after"] = os.getloadavg()
    (work / f"{args.side}.json").write_text(json.dumps(result, indent=2, default=str))


# --------------------------------------------------------------------------- speed

def keras_gflop(model, shape) -> float:
    """GFLOP of one forward pass of a Keras 3D U-Net on ``shape`` (z, y, x), its convolutions."""
    import keras

    from keras_unet import build_unet

    arguments = dict(model.arguments)
    probe = build_unet((*shape, arguments["input_shape"][-1]), arguments["num_classes"],
                       filters=arguments["filters"], depth=arguments["depth"],
                       pooling=arguments.get("pooling"),
                       kernel_sizes=arguments.get("kernel_sizes"))
    flops = 0
    for layer in probe.layers:
        if isinstance(layer, keras.layers.Conv3DTranspose):  # each input voxel -> k^3 outputs
            voxels = np.prod(layer.input.shape[1:4])
            channels = layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Conv3D):
            voxels = np.prod(layer.output.shape[1:4])
            channels = layer.input.shape[-1]
        else:
            continue
        flops += 2 * voxels * np.prod(layer.kernel_size) * channels * layer.filters
    return flops / 1e9


def speed(args: argparse.Namespace) -> None:
    """Ours vs MONAI's sliding_window_inference of BasicUNet(spatial_dims=3) on one volume."""
    import torch
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import BasicUNet

    from keras_unet import build_unet, predict_tiled
    from keras_unet.inference.network import compiled_forward, model_geometry
    from keras_unet.inference.plan import plan_tiles

    depth_px, size, rounds, width = args.depth_px, args.size, args.rounds, args.filters
    volume = np.random.default_rng(0).integers(0, 256, (depth_px, size, size), dtype=np.uint8)
    model = build_unet((None, None, None, 1), 2, filters=width, depth=3, dropout=0.0)
    geom = model_geometry(model)
    *plans, batch = plan_tiles(volume.shape, geom)
    torch.set_num_threads(os.cpu_count())
    net = BasicUNet(spatial_dims=3, in_channels=1, out_channels=2,
                    features=(width, 2 * width, 4 * width, 8 * width, 16 * width, width)).eval()
    roi = args.monai_roi
    normalized = torch.from_numpy(((volume - volume.mean()) / volume.std()).astype("float32"))

    def monai():
        with torch.inference_mode():
            return torch.softmax(sliding_window_inference(normalized[None, None], (roi,) * 3,
                                                          args.monai_batch, net), 1)

    print(f"machine: {machine()}")
    print(f"{depth_px} x {size} x {size} volume, warm-up then {rounds} rounds:", flush=True)
    forward = compiled_forward(model, geom)
    forward(np.zeros((1, *(p.tile for p in plans), 1), "float32")).numpy()
    with torch.inference_mode():
        net(torch.zeros((1, 1, roi, roi, roi)))
    times = interleaved({"keras_unet": lambda: predict_tiled(model, volume), "MONAI": monai},
                        rounds)
    voxels = volume.size
    ours = voxels / np.array(times["keras_unet"]) / 1e6
    theirs = voxels / np.array(times["MONAI"]) / 1e6
    step = roi - int(roi * 0.25)
    windows = int(np.prod([max(1, -(-(n - roi) // step) + 1) for n in volume.shape]))
    monai_gflop = windows * torch_gflop(net, (1, 1, roi, roi, roi))
    tiles = int(np.prod([p.count for p in plans]))
    our_gflop = tiles * keras_gflop(model, tuple(p.tile for p in plans))
    print(f"\n| {depth_px}x{size}x{size} volume, {os.cpu_count()} cores, median of {rounds} | "
          "keras_unet | MONAI | ours / MONAI |")
    print("|---|---|---|---|")
    print(f"| output megavoxels/s | {np.median(ours):.4f} | {np.median(theirs):.4f} | "
          f"{np.median(ours / theirs):.2f} |")
    print(f"| network | 3D U-Net, valid, depth 3, {width} filters | BasicUNet, same, depth 4, "
          f"{width} filters | |")
    print(f"| tile or window | {'x'.join(str(p.tile) for p in plans)}, {tiles} tiles, batch "
          f"{batch} | {roi}^3, overlap 0.25, {windows} windows, batch {args.monai_batch} | |")
    print(f"| input voxels computed per output voxel | "
          f"{tiles * np.prod([p.tile for p in plans]) / voxels:.2f} | "
          f"{windows * roi**3 / voxels:.2f} | |")
    print(f"| conv GFLOP for the volume | {our_gflop:.0f} | {monai_gflop:.0f} | "
          f"{our_gflop / monai_gflop:.2f} |")
    print(f"| GFLOP/s achieved | {our_gflop / np.median(times['keras_unet']):.1f} | "
          f"{monai_gflop / np.median(times['MONAI']):.1f} | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    parts = commands.add_parser("instances", help="ours vs StarDist3D, same volumes and time")
    parts.add_argument("--minutes", type=float, default=10.0)
    parts.add_argument("--work", default=None, help="folder for the runs (default: a new one)")
    one_side = commands.add_parser("one", help=argparse.SUPPRESS)
    one_side.add_argument("side", choices=("ours", "stardist"))
    one_side.add_argument("--work", required=True)
    one_side.add_argument("--minutes", type=float, required=True)
    fast = commands.add_parser("speed", help="ours vs MONAI sliding_window_inference, 3D")
    fast.add_argument("--size", type=int, default=192, help="y and x of the volume")
    fast.add_argument("--depth-px", type=int, default=96, help="z of the volume")
    fast.add_argument("--filters", type=int, default=16, help="first width of both networks")
    fast.add_argument("--rounds", type=int, default=3)
    fast.add_argument("--monai-roi", type=int, default=96)
    fast.add_argument("--monai-batch", type=int, default=1)
    args = parser.parse_args()
    {"instances": instances, "one": one, "speed": speed}[args.command](args)


if __name__ == "__main__":
    main()
