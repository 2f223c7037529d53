"""Quality per CPU-minute: `unet train --time-limit M` against StarDist2D given the same minutes.

For each dataset (the GBM40 H&E nuclei split, the ISBI 2012 slices) and each budget M (2, 5 and
10 minutes by default), trains ours as a user would (``unet train --data <training images>
--time-limit M``, the defaults otherwise, in a subprocess) and StarDist2D 0.9.2 from scratch for
M minutes of training (its default ``Config2D``, ``optimize_thresholds`` on the same validation
images ours chooses its cell settings on), one after the other so both see the same machine,
and scores the held-out images with the one matcher:

* GBM40 (train 11-30, score 31-40): object F1 at IoU 0.5, counts pooled over the images; ours
  with the cell settings the model carries (what ``unet predict`` makes), and with the fixed
  defaults for reference;
* ISBI 2012 (train slices 0-14, score 15-19): the foreground-restricted rand error (mean over
  slices) of ours' ``membranes`` cells (``min_size`` 0, as ``benchmarks/isbi_benchmark.py``),
  also predicted with ``--tta`` (the mean of the 8 flips and rotations), and of the cells the
  model carries; StarDist's cells.

Each row also gives the training steps ours took, so a run on one CPU says what another
reaches in the same minutes (a 2-core AVX2 EPYC runs the default step in about 0.4 s).

    python benchmarks/quality_per_minute.py gbm40 isbi            # ours and StarDist
    python benchmarks/quality_per_minute.py isbi --minutes 5 --no-stardist

StarDist is best kept out of the dev venv (see ``instances_benchmark.py``): run this script
with a venv that has ``stardist==0.9.2 csbdeep`` and keras_unet. Real data is read from
``../shared/data``; a dataset that is absent is skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from instances_benchmark import (  # noqa: E402
    load_split,
    machine,
    score,
    stardist_labels,
    train_stardist,
)

BUDGETS = (2.0, 5.0, 10.0)
"""Minutes of training each contender gets."""

UNET = str(Path(sys.executable).with_name("unet"))


def train_ours(data: Path, minutes: float, run_dir: Path) -> dict:
    """``unet train --time-limit`` as a user types it (reused if the run finished before)."""
    record = run_dir / "benchmark.json"
    if record.exists():
        return json.loads(record.read_text())
    command = [UNET, "train", "--data", str(data), "--labels", "instances", "--run-dir",
               str(run_dir), "--time-limit", f"{minutes:g}", "--steps-per-epoch", "100000"]
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    print(output, flush=True)
    stopped = next(line for line in output.splitlines() if line.startswith("Stopped:"))
    spent = json.loads((run_dir / "training_time.json").read_text())
    info = {"wall_seconds": time.perf_counter() - start, "load_after": os.getloadavg(),
            "training_seconds": spent["epoch_ends"][-1], "stopped": stopped,
            "steps": int(re.search(r"(\d+) steps", stopped).group(1))}
    record.write_text(json.dumps(info))
    return info


def ours_scores(dataset: str, run_dir: Path, test) -> dict[str, float]:
    """The held-out scores of ours' best model, as ``unet predict`` makes its cells."""
    from keras_unet.inference import load_network
    from keras_unet.instances import instance_labels

    network = load_network(run_dir / "checkpoints" / "best.keras")
    truths = [s.labels for s in test]
    probabilities = [network.predict(s.image) for s in test]
    carried = [instance_labels(p, model=network) for p in probabilities]
    out = {"cells": network.cells.describe()}
    if dataset == "isbi":
        membranes = [instance_labels(p, method="membranes", min_size=0) for p in probabilities]
        out["rand_membranes"] = _rand(truths, membranes)
        averaged = [network.predict(s.image, tta=True) for s in test]
        out["rand_membranes_tta"] = _rand(
            truths, [instance_labels(p, method="membranes", min_size=0) for p in averaged])
        out["rand_carried"] = _rand(truths, carried)
    else:
        out["f1_carried"] = score(truths, carried)["f1@0.5"]
        out["f1_defaults"] = score(truths, [instance_labels(p, method="auto", min_size=10)
                                            for p in probabilities])["f1@0.5"]
    return out


def _rand(truths, labels) -> float:
    from keras_unet.evaluation import rand_error
    return float(np.mean([rand_error(t, p) for t, p in zip(truths, labels)]))


def stardist_scores(dataset: str, train, test, minutes: float, work: Path) -> dict[str, float]:
    model, seconds, load = train_stardist(train, minutes * 60, work)
    labels = stardist_labels(model, test)
    truths = [s.labels for s in test]
    out = {"training_seconds": seconds, "load_after": list(load)}
    if dataset == "isbi":
        out["rand"] = _rand(truths, labels)
    else:
        out["f1"] = score(truths, labels)["f1@0.5"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="+", choices=("gbm40", "isbi"))
    parser.add_argument("--minutes", type=float, nargs="+", default=list(BUDGETS))
    parser.add_argument("--no-stardist", action="store_true")
    parser.add_argument("--work", type=Path,
                        default=Path(tempfile.gettempdir()) / "quality_per_minute")
    args = parser.parse_args()
    print(machine(), flush=True)
    table = []
    for dataset in args.datasets:
        split = load_split(dataset)
        if split is None:
            print(f"skipped {dataset}: its folder under ../shared/data does not exist")
            continue
        train, test, data = split
        for minutes in args.minutes:
            work = args.work / dataset / f"{minutes:g}min"
            work.mkdir(parents=True, exist_ok=True)
            info = train_ours(data, minutes, work / "ours")
            row = {"dataset": dataset, "minutes": minutes, "ours": {
                **info, **ours_scores(dataset, work / "ours", test)}}
            if not args.no_stardist:
                row["stardist"] = stardist_scores(dataset, train, test, minutes, work)
            table.append(row)
            print(json.dumps(row), flush=True)
            (args.work / "results.json").write_text(json.dumps(table, indent=1))
    print(f"\n{machine()}\n")
    print("| dataset | minutes | ours steps | ours (cells it carries) | ours (reference) | "
          "StarDist2D |\n|---|---|---|---|---|---|")
    for row in table:
        ours, theirs = row["ours"], row.get("stardist", {})
        if row["dataset"] == "isbi":
            cells = (f"rand {ours['rand_carried']:.3f}", f"rand {ours['rand_membranes']:.3f} "
                     f"(membranes; {ours['rand_membranes_tta']:.3f} with --tta)",
                     f"rand {theirs['rand']:.3f}" if theirs else "-")
        else:
            cells = (f"F1 {ours['f1_carried']:.3f}", f"F1 {ours['f1_defaults']:.3f} (defaults)",
                     f"F1 {theirs['f1']:.3f}" if theirs else "-")
        print(f"| {row['dataset']} | {row['minutes']:g} | {ours['steps']} | " + " | ".join(cells)
              + " |")


if __name__ == "__main__":
    main()
