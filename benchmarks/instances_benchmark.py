"""Instance segmentation: our U-Net + instance_labels against StarDist2D, same images, same time.

On one dataset per run (synthetic touching cells, the GBM40 H&E split, or the ISBI 2012 slices),
trains our U-Net (3 classes: background, cell, border between touching cells; the paper's
weighted cross-entropy) with ``keras_unet.training.train`` for a fixed number of steps, then
StarDist2D from scratch on the same training images for the same wall time (a callback stops
it). Both get the same images held out for validation (ours for checkpoints, StarDist for its
probability/NMS thresholds). Every contender is scored by ``keras_unet.evaluation.matching``
on the same held-out images: object F1 and AP (StarDist's "accuracy", TP / (TP + FP + FN)) at
IoU 0.5 and 0.75, counts summed over the images. Ours is scored with every
``keras_unet.instances.instance_labels`` method and a few ``min_size`` values (the measurement
that chooses ``auto`` and the default ``min_size``), and with the ``min_size`` that scores best
on the validation images, as StarDist picks its thresholds there; a classic baseline (Gaussian
smoothing, Otsu threshold, connected components; on H&E the haematoxylin channel of
``rgb2hed``; sigma and polarity chosen on the training images) is scored alongside.

    python benchmarks/instances_benchmark.py gbm40              # ours, StarDist, baseline
    python benchmarks/instances_benchmark.py synthetic
    python benchmarks/instances_benchmark.py isbi
    python benchmarks/instances_benchmark.py gbm40 --no-stardist --epochs 10 --steps 40

StarDist (``stardist==0.9.2``, ``csbdeep``; see requirements.txt) is best kept out of the dev
venv: ``python3 -m venv /tmp/bench_venv && /tmp/bench_venv/bin/pip install -e . -r
benchmarks/requirements.txt``. Without it, ``--no-stardist`` runs the rest. Real data is read
from ``../shared/data`` (relative to the repository); a dataset that is absent is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_unet.evaluation import MIN_SIZE_CANDIDATES as MIN_SIZES  # noqa: E402  (unet train's)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
THRESHOLDS = (0.5, 0.75)
METHODS = ("components", "watershed", "membranes", "auto")

# name: (folder, training ids, test ids); ids are file-name stems.
SPLITS = {
    "gbm40": ("gbm40", [str(i) for i in range(11, 31)], [str(i) for i in range(31, 41)]),
    "isbi": ("isbi2012", [f"slice{i:02d}" for i in range(15)],
             [f"slice{i:02d}" for i in range(15, 20)]),
}
SYNTHETIC_TRAIN, SYNTHETIC_TEST, SYNTHETIC_TEST_SEED = 24, 8, 1000


# --------------------------------------------------------------------------- data

def machine() -> str:
    """CPU model, cores, load averages and versions, for the table header."""
    try:
        model = next(line.split(":", 1)[1].strip() for line in
                     subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                     if line.startswith("Model name"))
    except (StopIteration, OSError):
        model = platform.processor() or "unknown CPU"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    import keras
    import tensorflow as tf
    return (f"{model}, {os.cpu_count()} cores, load average {load}; Python "
            f"{platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}")


def load_split(name: str):
    """(train samples, test samples, folder of symlinks to the training images or None)."""
    from keras_unet.data import load_samples, synthetic_cells
    if name == "synthetic":
        return (synthetic_cells(SYNTHETIC_TRAIN),
                synthetic_cells(SYNTHETIC_TEST, seed=SYNTHETIC_TEST_SEED), None)
    folder, train_ids, test_ids = SPLITS[name]
    root = SHARED / folder
    if not root.is_dir():
        return None
    samples = {Path(s.path).stem: s for s in load_samples(root, "instances")}
    return ([samples[i] for i in train_ids], [samples[i] for i in test_ids],
            symlink_folder(root, train_ids))


def symlink_folder(root: Path, ids: list[str]) -> Path:
    """A temporary images/ + masks/ folder of symlinks to the given ids (never copies)."""
    out = Path(tempfile.mkdtemp(prefix=f"{root.name}_train_"))
    for sub in ("images", "masks"):
        (out / sub).mkdir()
        for path in sorted((root / sub).iterdir()):
            if path.stem in ids:
                (out / sub / path.name).symlink_to(path)
    return out


# --------------------------------------------------------------------------- scoring

def score(truths, predictions, thresholds=THRESHOLDS) -> dict[str, float]:
    """Object F1 and AP at each IoU threshold, counts summed over the images (one matcher)."""
    from keras_unet.evaluation import matching_dataset
    out = {}
    for stats in matching_dataset(truths, predictions, thresholds=thresholds):
        out[f"f1@{stats.thresh}"], out[f"ap@{stats.thresh}"] = stats.f1, stats.accuracy
        out["objects"] = float(stats.n_pred)
    return out


def row(name: str, result: dict[str, float], seconds: float | None) -> str:
    cells = [f"{result[f'{k}@{t}']:.3f}" for t in THRESHOLDS for k in ("f1", "ap")]
    time_cell = f"{seconds:.0f}" if seconds is not None else "-"
    return f"| {name} | " + " | ".join(cells) + f" | {result['objects']:.0f} | {time_cell} |"


def header(truths) -> str:
    n = sum(len(np.unique(t)) - 1 for t in truths)
    cols = " | ".join(f"{k} @{t}" for t in THRESHOLDS for k in ("F1", "AP"))
    return (f"| contender | {cols} | objects (truth {n}) | train s |\n"
            + "|---" * (3 + 2 * len(THRESHOLDS)) + "|")


# --------------------------------------------------------------------------- classic baseline

def baseline_labels(image: np.ndarray, sigma: float, bright: bool) -> np.ndarray:
    """Gaussian smoothing + Otsu threshold + 4-connected components (H&E: haematoxylin)."""
    import scipy.ndimage
    import skimage.color
    import skimage.filters
    image = np.asarray(image, np.float64)
    if image.ndim == 3:  # H&E: haematoxylin optical density, nuclei high
        image = skimage.color.rgb2hed(image / 255.0)[..., 0]
    smooth = skimage.filters.gaussian(image, sigma) if sigma else image
    mask = smooth > skimage.filters.threshold_otsu(smooth)
    labels, _ = scipy.ndimage.label(mask if bright else ~mask)
    return labels.astype(np.int32)


def fit_baseline(train) -> tuple[float, bool]:
    """Sigma and polarity with the best object F1 at IoU 0.5 on the training images."""
    best = max(((score([s.labels for s in train],
                       [baseline_labels(s.image, sigma, bright) for s in train])["f1@0.5"],
                 sigma, bright) for sigma in (0, 1, 2, 4) for bright in (True, False)))
    return best[1], best[2]


# --------------------------------------------------------------------------- ours

def ours_config(name: str, data: Path | None, run_dir: Path, args) -> dict:
    """The CLI defaults with the border class, and what the command line changes."""
    config = {"data": str(data) if data else None, "run_dir": str(run_dir), "num_classes": 3}
    if args.steps is not None:
        config["steps_per_epoch"] = args.steps
    for key in ("epochs", "tile_size", "batch_size", "filters"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if name == "synthetic":
        config["synthetic_images"] = SYNTHETIC_TRAIN
    else:
        config["labels"] = "instances"  # instance-id masks must say so
    return config


def train_ours(name: str, data, args):
    """Trains ours in ``<work>/ours`` (or reuses a finished run there); returns (model, s)."""
    import keras

    from keras_unet.training import train
    run_dir = args.work / "ours"
    record = args.work / "ours.json"
    if not record.exists():
        start = time.perf_counter()
        train(ours_config(name, data, run_dir, args), verbose=2)
        record.write_text(json.dumps({"seconds": time.perf_counter() - start,
                                      "load": os.getloadavg()}))
    info = json.loads(record.read_text())
    model = keras.models.load_model(run_dir / "checkpoints" / "best.keras", compile=False)
    return model, info["seconds"], info["load"]


def ours_probabilities(model, test) -> list[np.ndarray]:
    from keras_unet import predict_tiled
    return [predict_tiled(model, s.image) for s in test]


def validation_samples(train) -> list:
    """The training images that ours and StarDist hold out (same split, fraction and seed)."""
    from keras_unet.training import TrainConfig
    from keras_unet.training.run import split_samples
    defaults = TrainConfig()
    return split_samples(list(train), defaults.val_fraction, defaults.seed)[1]


def min_size_on_validation(model, validation) -> int:
    """The ``min_size`` that ``unet train`` prints: the best object F1 @0.5 on the validation
    images (``keras_unet.evaluation.best_min_size``), as StarDist's ``optimize_thresholds``
    picks its thresholds on them."""
    from keras_unet.evaluation import best_min_size
    return best_min_size([s.labels for s in validation], ours_probabilities(model, validation))[0]


def interior_components(probabilities: np.ndarray) -> np.ndarray:
    """4-connected components of the argmax cell class alone (the 3-class ring left out)."""
    import scipy.ndimage
    labels, _ = scipy.ndimage.label(np.argmax(probabilities, axis=-1) == 1)
    return labels.astype(np.int32)


# --------------------------------------------------------------------------- StarDist

def stardist_time_limit(seconds: float):
    """A callback of the Keras StarDist trains with that stops it ``seconds`` after it is made."""
    from csbdeep.utils.tf import keras_import

    class TimeLimit(keras_import("callbacks", "Callback")):
        def __init__(self, limit):
            super().__init__()
            self.limit, self.start = limit, time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if time.perf_counter() - self.start > self.limit:
                self.model.stop_training = True

    return TimeLimit(seconds)


def train_stardist(train, seconds: float, work: Path):
    """StarDist2D from scratch in ``<work>/stardist`` (or reused), stopped after ``seconds``."""
    from csbdeep.utils import normalize
    from stardist import fill_label_holes
    from stardist.models import Config2D, StarDist2D

    record = work / "stardist.json"
    if record.exists():
        info = json.loads(record.read_text())
        model = StarDist2D(None, name="stardist", basedir=str(work))
        return model, info["seconds"], info["load"]
    images = [normalize(s.image, 1, 99.8, axis=(0, 1)).astype(np.float32) for s in train]
    labels = [fill_label_holes(s.labels) for s in train]
    index = {id(s): i for i, s in enumerate(train)}
    val = [index[id(s)] for s in validation_samples(train)]
    trn = [i for i in range(len(train)) if i not in val]
    channels = 1 if images[0].ndim == 2 else images[0].shape[-1]
    config = Config2D(n_rays=32, grid=(2, 2), n_channel_in=channels, use_gpu=False,
                      train_patch_size=(256, 256), train_batch_size=4)
    model = StarDist2D(config, name="stardist", basedir=str(work))

    def augment(x, y):  # flips and 90 degree rotations, as in the StarDist examples
        k = np.random.randint(4)
        x, y = np.rot90(x, k, axes=(0, 1)), np.rot90(y, k)
        if np.random.rand() < 0.5:
            x, y = np.flip(x, 1), np.flip(y, 1)
        return np.ascontiguousarray(x), np.ascontiguousarray(y)

    model.prepare_for_training()
    model.callbacks.append(stardist_time_limit(seconds))
    start = time.perf_counter()
    model.train([images[i] for i in trn], [labels[i] for i in trn],
                validation_data=([images[i] for i in val], [labels[i] for i in val]),
                augmenter=augment, epochs=10_000, steps_per_epoch=10)
    train_seconds = time.perf_counter() - start
    model.optimize_thresholds([images[i] for i in val], [labels[i] for i in val])
    record.write_text(json.dumps({"seconds": train_seconds, "load": os.getloadavg()}))
    return model, train_seconds, os.getloadavg()


def stardist_labels(model, test) -> list[np.ndarray]:
    from csbdeep.utils import normalize
    return [model.predict_instances(normalize(s.image, 1, 99.8, axis=(0, 1)))[0].astype(np.int32)
            for s in test]


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=("synthetic", "gbm40", "isbi"))
    parser.add_argument("--epochs", type=int, default=None, help="ours (default: the CLI's)")
    parser.add_argument("--steps", type=int, default=None,
                        help="ours: steps per epoch (default: the CLI's)")
    parser.add_argument("--tile-size", type=int, default=None, help="ours (default: the CLI's)")
    parser.add_argument("--batch-size", type=int, default=None, help="ours (default: the CLI's)")
    parser.add_argument("--filters", type=int, default=None, help="ours (default: the CLI's)")
    parser.add_argument("--no-stardist", action="store_true", help="skip StarDist2D")
    parser.add_argument("--stardist-seconds", type=float, default=None,
                        help="StarDist training time (default: ours' measured training time)")
    parser.add_argument("--work", type=Path, default=None,
                        help="where the models go (default /tmp/instances_benchmark/<dataset>); "
                             "a finished model there is reused, not trained again")
    parser.add_argument("--train-only", action="store_true", help="train, do not score")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    args.work = args.work or Path(tempfile.gettempdir()) / "instances_benchmark" / args.dataset
    args.work.mkdir(parents=True, exist_ok=True)

    split = load_split(args.dataset)
    if split is None:
        print(f"skipped: {SHARED / SPLITS[args.dataset][0]} does not exist")
        return
    train, test, data = split
    truths = [s.labels for s in test]
    print(f"{args.dataset}: {len(train)} training images, {len(test)} held-out test images")
    print(machine(), flush=True)

    model, ours_seconds, ours_load = train_ours(args.dataset, data, args)
    print(f"ours trained {ours_seconds:.0f} s (load average after: {_load(ours_load)})",
          flush=True)
    if not args.no_stardist:
        budget = args.stardist_seconds or ours_seconds
        sd_model, sd_seconds, sd_load = train_stardist(train, budget, args.work)
        print(f"StarDist2D trained {sd_seconds:.0f} s (load average after: {_load(sd_load)})",
              flush=True)
    if args.train_only:
        return

    results, lines = {}, []
    sigma, bright = fit_baseline(train)
    results["baseline"] = score(truths, [baseline_labels(s.image, sigma, bright) for s in test])
    lines.append(row(f"classic (sigma {sigma}, {'bright' if bright else 'dark'} objects)",
                     results["baseline"], None))
    probabilities = ours_probabilities(model, test)
    from keras_unet.instances import instance_labels
    results["ours default"] = score(truths, [instance_labels(p) for p in probabilities])
    lines.append(row("**ours, instance_labels defaults**", results["ours default"], ours_seconds))
    chosen = min_size_on_validation(model, validation_samples(train))
    results["ours validated"] = score(truths, [instance_labels(p, min_size=chosen)
                                               for p in probabilities])
    results["ours validated"]["min_size"] = chosen
    lines.append(row(f"ours, min_size chosen on the validation images ({chosen})",
                     results["ours validated"], ours_seconds))
    results["ours interiors"] = score(truths, [interior_components(p) for p in probabilities])
    lines.append(row("ours, components of the cell class only (no border ring)",
                     results["ours interiors"], ours_seconds))
    for method in METHODS:
        for min_size in MIN_SIZES:
            key = f"ours {method} min_size={min_size}"
            results[key] = score(truths, [instance_labels(p, method=method, min_size=min_size)
                                          for p in probabilities])
            lines.append(row(key, results[key], ours_seconds))
    if not args.no_stardist:
        import stardist
        results["stardist"] = score(truths, stardist_labels(sd_model, test))
        lines.append(row(f"StarDist2D {stardist.__version__}", results["stardist"], sd_seconds))

    print(f"\n{args.dataset}: {len(test)} held-out images; {machine()}\n")
    print(header(truths))
    print("\n".join(lines))
    if "stardist" in results:
        theirs = results["stardist"]["f1@0.5"]
        for key in ("ours default", "ours validated"):
            ours = results[key]["f1@0.5"]
            print(f"goal ours F1@0.5 >= StarDist's ({key}): {ours:.3f} vs {theirs:.3f}: "
                  f"{'met' if ours >= theirs else 'missed'}")
    if args.json:
        args.json.write_text(json.dumps({"dataset": args.dataset, "machine": machine(),
                                         "results": results}, indent=1))


def _load(values) -> str:
    return " ".join(f"{x:.2f}" for x in values)


if __name__ == "__main__":
    sys.exit(main())
