"""ISBI 2012 membranes: `unet train` on slices 0-14, scored on 15-19, against a classic baseline.

Cells (mask 255) are the foreground, membranes the background. For each contender the script
reports, on the five held-out slices (means over slices):

* for the cells of each ``instance_labels`` method (``min_size=0``): ``"components"``, the
  4-connected components of the argmax cell class, and ``"membranes"``, the watershed from
  confident cell cores that gives every membrane pixel to a cell: the foreground-restricted
  rand error (``keras_unet.evaluation.rand_error``), the foreground-restricted variation of
  information (split + merge, bits) and object F1 at IoU 0.5 and 0.75
  (``keras_unet.evaluation.matching_dataset``, counts summed over slices),
* the ISBI ranking form: the challenge's rand error at the best of its thresholds 0, 0.1, ..., 1
  of the cell probability, per slice (``keras_unet.evaluation.rand_error_thresholds``),
* the training wall time (the whole ``unet train`` command: start-up, tf.function/XLA compile,
  validation, checkpoints, export).

A trained run is scored twice: predicted as ``unet evaluate`` does by default, and with its
``--tta`` (the mean over the 8 flips and rotations).

    python benchmarks/isbi_benchmark.py cli                     # `unet train` defaults
    python benchmarks/isbi_benchmark.py config                  # training/isbi2012.yaml
    python benchmarks/isbi_benchmark.py baseline                # smoothing + Otsu + components
    python benchmarks/isbi_benchmark.py evaluate /tmp/runs/isbi_cli   # score a finished run

Training runs ``unet train --data <symlinks to slices 0-14> --run-dir <run dir>`` in a
subprocess, exactly as a user would; the run directory (default under /tmp) keeps the model
and ``benchmark.json`` with the wall time, so ``evaluate`` can score it again. The data is read
from ``../shared/data/isbi2012`` (relative to the repository); without it the script says so
and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from instances_benchmark import REPO, SPLITS, baseline_labels, fit_baseline, load_split, machine  # noqa: E402

CONFIG = REPO / "training" / "isbi2012.yaml"


METHODS = ("components", "membranes")
"""The ``instance_labels`` methods scored: the argmax cells, and the EM one."""


def label_scores(truths, labels) -> dict[str, float]:
    """Rand error, VI and object F1 @0.5 / @0.75 of instance labels (means over slices)."""
    from keras_unet import evaluation
    matched = evaluation.matching_dataset(truths, labels, thresholds=(0.5, 0.75))
    return {"rand": float(np.mean([evaluation.rand_error(t, p) for p, t in zip(labels, truths)])),
            "vi": float(np.mean([evaluation.variation_of_information_error(t, p)
                                 for p, t in zip(labels, truths)])),
            "f1@0.5": matched[0].f1, "f1@0.75": matched[1].f1}


def scores(truths, probabilities=None, labels=None) -> dict:
    """The ISBI metrics of probability maps, per instance method (or of labels alone)."""
    from keras_unet import evaluation
    from keras_unet.instances import instance_labels
    if labels is not None:
        return {"methods": {"baseline": label_scores(truths, labels)}}
    out = {"methods": {method: label_scores(truths, [instance_labels(p, method=method, min_size=0)
                                                     for p in probabilities])
                       for method in METHODS}}
    best = [evaluation.rand_error_thresholds(t, p[..., 1]) for p, t in zip(probabilities, truths)]
    out["rand_ranking"] = float(np.mean([error for error, _ in best]))
    out["thresholds"] = [threshold for _, threshold in best]
    return out


def train_run(run_dir: Path, config: Path | None, data: Path) -> float:
    """Runs `unet train` as a user would; returns its wall time and records it in the run dir."""
    command = ["unet", "train", "--data", str(data), "--run-dir", str(run_dir)]
    if config is not None:
        command[2:2] = ["--config", str(config)]
    print("$", " ".join(command), flush=True)
    load_before = os.getloadavg()
    start = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - start
    (run_dir / "benchmark.json").write_text(json.dumps(
        {"command": command, "seconds": seconds, "load_before": load_before,
         "load_after": os.getloadavg()}))
    return seconds


def evaluate_run(run_dir: Path, test) -> dict[str, dict]:
    """Scores of the best checkpoint, predicted plainly and with test-time augmentation."""
    import keras

    from keras_unet import predict_tiled
    model = keras.models.load_model(run_dir / "checkpoints" / "best.keras", compile=False)
    info = run_dir / "benchmark.json"
    record = json.loads(info.read_text()) if info.exists() else {}
    results = {}
    for tta in (False, True):
        probabilities = [predict_tiled(model, s.image, tta=tta) for s in test]
        result = scores([s.labels for s in test], probabilities=probabilities)
        result["seconds"], result["load"] = record.get("seconds"), record.get("load_after")
        results["tta" if tta else "plain"] = result
    return results


def print_rows(name: str, result: dict) -> None:
    ranking = result.get("rand_ranking")
    seconds = f"{result['seconds']:.0f}" if result.get("seconds") else "-"
    print("| contender | instances | rand error | rand error (ISBI form) | VI (bits) | "
          "object F1 @0.5 | F1 @0.75 | train wall s |\n|---|---|---|---|---|---|---|---|")
    for method, row in result["methods"].items():
        print(f"| {name} | {method} | {row['rand']:.4f} | "
              f"{'-' if ranking is None else f'{ranking:.4f}'} | {row['vi']:.3f} | "
              f"{row['f1@0.5']:.3f} | {row['f1@0.75']:.3f} | {seconds} |")
    if result.get("load"):
        print(f"load average after training: {' '.join(f'{x:.2f}' for x in result['load'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("cli", "config", "baseline", "evaluate"))
    parser.add_argument("run_dir", nargs="?", type=Path, default=None,
                        help="run directory (default /tmp/isbi_runs/<what>)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="for `config`")
    args = parser.parse_args()
    split = load_split("isbi")
    if split is None:
        print(f"skipped: {REPO.parent / 'shared' / 'data' / SPLITS['isbi'][0]} does not exist")
        return
    train, test, data = split
    print(f"ISBI 2012: {len(train)} training slices, {len(test)} held-out slices; {machine()}",
          flush=True)
    if args.what == "baseline":
        sigma, bright = fit_baseline(train)
        start = time.perf_counter()
        labels = [baseline_labels(s.image, sigma, bright) for s in test]
        result = scores([s.labels for s in test], labels=labels)
        print(f"baseline: {time.perf_counter() - start:.1f} s for {len(test)} slices")
        print_rows(f"Gaussian sigma {sigma} + Otsu", result)
        return
    run_dir = args.run_dir or Path("/tmp/isbi_runs") / args.what
    if args.what in ("cli", "config"):
        train_run(run_dir, args.config if args.what == "config" else None, data)
    for mode, result in evaluate_run(run_dir, test).items():
        print_rows(f"{args.what} ({run_dir}){', --tta' if mode == 'tta' else ''}", result)


if __name__ == "__main__":
    sys.exit(main())
