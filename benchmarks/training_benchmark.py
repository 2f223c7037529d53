"""Training speed: keras_unet's train step and model.fit against MONAI's BasicUNet in PyTorch.

For two networks, the paper's (64 filters, depth 4, one 572 x 572 tile per step, SGD momentum
0.99) and the ``unet train`` default (TrainConfig(): 16 filters, depth 3, 8 tiles of 124 x 124,
Adam), in float32 and, on CPUs with native bfloat16, in bfloat16 (Keras ``mixed_bfloat16``;
PyTorch ``autocast``):

* the bare train step: ``model.fit`` over one constant batch (no input pipeline), in tiles/s,
  in GFLOP/s (a train step counted as 3x the forward FLOPs, convolutions only) and as a fraction
  of this CPU's matmul peak in the same precision (4096 x 4096, the faster of ``tf.matmul``
  and, in float32, NumPy's BLAS: see ``inference_benchmark.matmul_calls``);
* MONAI's ``BasicUNet`` with the same widths (its depth is always 4, its padding "same": for
  the depth-3 default it has one level more) trained the same way with PyTorch on the same
  cores: ``SGD``/``Adam``, pixel-weighted cross-entropy; compared per FLOP, since the networks
  differ in FLOPs per tile;
* the input pipeline alone (``keras_unet.data.make_dataset`` with elastic deformation and the
  weight maps) and a full ``model.fit`` fed by it, against the bare step.

Rounds alternate ours / peer (and the matmul) and medians are reported, so that load from other
processes affects both alike. FLOP counting and the round timer come from inference_benchmark.py.

    python benchmarks/training_benchmark.py              # both networks, 3 rounds
    python benchmarks/training_benchmark.py --quick      # the default network, 1 round
"""

from __future__ import annotations

import argparse
import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from inference_benchmark import (  # noqa: E402
    MATMULS,
    interleaved,
    matmul_calls,
    peak_rates,
    torch_gflop,
    unet_gflop,
)

PIPELINE_TILES = 256
"""Tiles the input pipeline alone produces per timed call."""


@dataclasses.dataclass(frozen=True)
class Network:
    """One network to train, in both frameworks."""

    name: str
    filters: int
    depth: int
    tile: int          # our (valid padding) input tile
    monai_tile: int    # MONAI's (same padding) tile: the nearest multiple of 16
    batch: int
    optimizer: str     # "sgd" (momentum 0.99) or "adam"
    learning_rate: float
    steps: int         # train steps per timed call


def networks(quick: bool) -> list[Network]:
    from keras_unet.training import TrainConfig

    demo = TrainConfig()
    default = Network("unet train default", demo.filters, demo.depth, demo.tile_size,
                      -(-demo.tile_size // 16) * 16, demo.batch_size, demo.optimizer,
                      demo.learning_rate, 10)
    paper = Network("paper", 64, 4, 572, 576, 1, "sgd", 0.01, 2)
    return [default] if quick else [paper, default]


def keras_batch(net: Network):
    """A constant batch of (image, label, weight) for our network."""
    import keras_unet

    out = keras_unet.output_size(net.tile, net.depth)
    rng = np.random.default_rng(0)
    return (rng.normal(size=(net.batch, net.tile, net.tile, 1)).astype("float32"),
            rng.integers(0, 2, (net.batch, out, out)).astype("int32"),
            rng.uniform(1, 10, (net.batch, out, out)).astype("float32"))


def keras_model(net: Network, precision: str):
    """Our network, compiled as ``unet train`` compiles it, under ``precision``."""
    import keras

    import keras_unet
    from keras_unet.losses import WeightedCrossentropy

    keras.mixed_precision.set_global_policy(
        "mixed_bfloat16" if precision == "bfloat16" else "float32")
    model = keras_unet.build_unet((None, None, 1), 2, filters=net.filters, depth=net.depth)
    optimizer = (keras.optimizers.SGD(net.learning_rate, momentum=0.99)
                 if net.optimizer == "sgd" else keras.optimizers.Adam(net.learning_rate))
    model.compile(optimizer=optimizer, loss=WeightedCrossentropy())
    keras.mixed_precision.set_global_policy("float32")
    return model


def keras_fit(model, dataset, steps: int):
    """``model.fit`` for ``steps`` steps of an endless dataset."""
    return lambda: model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)


def constant_batches(net: Network):
    """One constant batch, repeated, with tf.data's autotuner off as in ``make_dataset``."""
    import tensorflow as tf

    from keras_unet.data import fixed_parallelism

    return tf.data.Dataset.from_tensors(keras_batch(net)).repeat().with_options(
        fixed_parallelism())


def keras_step(net: Network, precision: str):
    """The bare train step: fit over one constant batch repeated."""
    model = keras_model(net, precision)
    run = keras_fit(model, constant_batches(net), net.steps)
    run()  # trace and compile
    return run


def pipeline(net: Network, samples):
    """The training input pipeline as ``unet train`` builds it (all augmentations)."""
    from keras_unet.data import make_dataset

    return make_dataset(samples, tile_size=net.tile, batch_size=net.batch, depth=net.depth,
                        augment=True, seed=0)


def monai_step(net: Network, precision: str):
    """MONAI's BasicUNet of the same widths, trained the same way in PyTorch."""
    import torch
    from monai.networks.nets import BasicUNet

    torch.manual_seed(0)
    widths = tuple(net.filters * 2**level for level in range(5)) + (net.filters,)
    model = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=widths).train()
    optimizer = (torch.optim.SGD(model.parameters(), net.learning_rate, momentum=0.99)
                 if net.optimizer == "sgd" else torch.optim.Adam(model.parameters(),
                                                                 net.learning_rate))
    rng = np.random.default_rng(0)
    shape = (net.batch, 1, net.monai_tile, net.monai_tile)
    images = torch.from_numpy(rng.normal(size=shape).astype("float32"))
    labels = torch.from_numpy(rng.integers(0, 2, (net.batch, *shape[2:])))
    weights = torch.from_numpy(rng.uniform(1, 10, (net.batch, *shape[2:])).astype("float32"))

    def run():
        for _ in range(net.steps):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
                scores = model(images)
            losses = torch.nn.functional.cross_entropy(scores.float(), labels, reduction="none")
            (losses * weights).mean().backward()
            optimizer.step()

    run()
    return run, torch_gflop(model.eval(), (1, *shape[1:]))


def default_precisions() -> list[str]:
    """float32, and bfloat16 where the CPU computes it natively (emulated bf16 measures nothing)."""
    from keras_unet.training.distribution import cpu_supports_bfloat16

    return ["float32", "bfloat16"] if cpu_supports_bfloat16() else ["float32"]


def train_rows(net: Network, rounds: int, precisions: list[str]) -> list[dict]:
    """Ours and MONAI's train steps and the matmul in each precision, interleaved."""
    import torch

    torch.set_num_threads(os.cpu_count())
    rows = []
    for precision in precisions:
        ours = keras_step(net, precision)
        theirs, monai_gflop = monai_step(net, precision)
        print(f"{net.name}, {precision}: {rounds} rounds", flush=True)
        times = interleaved({**matmul_calls(precision), "keras_unet": ours, "MONAI": theirs},
                            rounds)
        peak = peak_rates(times)
        tiles = net.steps * net.batch
        ours_rate = tiles / np.array(times["keras_unet"])
        theirs_rate = tiles / np.array(times["MONAI"])
        ours_gflops = 3 * unet_gflop(net.tile, filters=net.filters, depth=net.depth) * ours_rate
        theirs_gflops = 3 * monai_gflop * theirs_rate
        rows.append(dict(net=net, precision=precision, peak=np.median(peak),
                         ours=np.median(ours_rate), ours_gflops=np.median(ours_gflops),
                         ours_peak=np.median(ours_gflops / peak),
                         theirs=np.median(theirs_rate), theirs_gflops=np.median(theirs_gflops),
                         theirs_peak=np.median(theirs_gflops / peak),
                         per_flop=np.median(ours_gflops / theirs_gflops)))
    return rows


def pipeline_row(net: Network, rounds: int) -> dict:
    """Input pipeline alone, full model.fit fed by it, and the bare step, in the auto precision."""
    from keras_unet.data import synthetic_cells
    from keras_unet.training.distribution import choose_policy

    precision = "bfloat16" if choose_policy("auto") == "mixed_bfloat16" else "float32"
    samples = synthetic_cells(19, seed=0)  # the demo's training images
    data = pipeline(net, samples)
    steps = 3 * net.steps  # longer calls: each fit starts a new iterator of the pipeline
    read_batches = PIPELINE_TILES // net.batch

    def read():  # a new iterator per call: nothing prefetched while the others ran counts
        for _ in data.take(read_batches):
            pass

    read()
    fed = keras_fit(keras_model(net, precision), data, steps)
    fed()
    bare = keras_fit(keras_model(net, precision), constant_batches(net), steps)
    bare()
    print(f"{net.name}: input pipeline, model.fit with it, bare step; {rounds} rounds",
          flush=True)
    times = interleaved({"pipeline": read, "fit": fed, "bare step": bare}, rounds)
    tiles = {"pipeline": read_batches * net.batch, "fit": steps * net.batch,
             "bare step": steps * net.batch}
    rates = {name: tiles[name] / np.array(values) for name, values in times.items()}
    return dict(net=net, precision=precision,
                **{name: np.median(rate) for name, rate in rates.items()},
                fit_share=np.median(rates["fit"] / rates["bare step"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="default network only, 1 round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3)")
    parser.add_argument("--precisions", nargs="+", choices=("float32", "bfloat16"),
                        help="default: float32, and bfloat16 if the CPU has native bfloat16")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    precisions = args.precisions or default_precisions()
    rows, feeds = [], []
    for net in networks(args.quick):
        rows += train_rows(net, rounds, precisions)
        feeds.append(pipeline_row(net, rounds))

    print()
    print(f"{os.cpu_count()} cores, median of {rounds} rounds; train step = 3x forward FLOPs; "
          f"peak = the faster of {' and '.join(MATMULS)} 4096^2 in each round, same precision")
    print()
    print("| network, precision | tiles/step | keras_unet tiles/s | GFLOP/s | of peak | "
          "MONAI tiles/s | GFLOP/s | of peak | ours/MONAI per FLOP |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        net = row["net"]
        print(f"| {net.name} ({net.tile} / MONAI {net.monai_tile}), {row['precision']} "
              f"(peak {row['peak']:.0f}) | {net.batch} | {row['ours']:.2f} | "
              f"{row['ours_gflops']:.0f} | {row['ours_peak']:.0%} | {row['theirs']:.2f} | "
              f"{row['theirs_gflops']:.0f} | {row['theirs_peak']:.0%} | {row['per_flop']:.2f} |")
    print()
    print("| network, precision | input pipeline tiles/s | model.fit with it tiles/s | "
          "bare step tiles/s | fit / bare |")
    print("|---|---|---|---|---|")
    for feed in feeds:
        print(f"| {feed['net'].name}, {feed['precision']} | {feed['pipeline']:.1f} | "
              f"{feed['fit']:.2f} | {feed['bare step']:.2f} | {feed['fit_share']:.0%} |")


if __name__ == "__main__":
    main()
