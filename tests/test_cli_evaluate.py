"""`unet evaluate`: the table per image and for the dataset, the files it writes, its refusals."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from keras_unet.cli import main
from keras_unet.evaluation import METRICS, POOLING, PROBABILITY_METRICS

COLUMNS = [*METRICS, *PROBABILITY_METRICS]


@pytest.fixture
def dataset(tmp_path):
    """Two labelled images: one cell, and two cells."""
    folder = tmp_path / "ds"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for index in range(2):
        mask = np.zeros((36, 44), "uint8")
        mask[4:16, 5:20] = 255
        if index:
            mask[20:32, 24:40] = 255
        Image.fromarray(mask).save(folder / "masks" / f"{index}.png")
        Image.fromarray((mask // 2 + 30).astype("uint8")).save(folder / "images" / f"{index}.png")
    return folder


def _evaluate(model_file, dataset, report, *extra):
    return main(["evaluate", "--model", str(model_file), "--data", str(dataset), "--report",
                 str(report), *extra])


def test_evaluate_prints_the_table_per_image_and_for_the_dataset(tmp_path, model_file, dataset,
                                                                 capsys):
    report = tmp_path / "report"
    assert _evaluate(model_file, dataset, report) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines.pop(0) == "unet evaluate: cells: method auto, min_size 10 (from the defaults)"
    assert lines[0].split() == COLUMNS
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:5]}
    assert list(rows) == [str(dataset / "images" / "0.png"), str(dataset / "images" / "1.png"),
                          "mean", "dataset"]
    assert all(len(cells) == len(COLUMNS) for cells in rows.values())
    assert [cells[0] for cells in rows.values()] == ["1", "2", "1.5000", "3"]  # n_true
    legend = lines[5:lines.index(next(line for line in lines if line.startswith("wrote")))]
    assert " ".join(legend) == POOLING
    assert lines[-2:] == [f"wrote {report / name}" for name in ("evaluation.csv",
                                                                 "evaluation.json")]

    with open(report / "evaluation.csv") as file:
        saved = list(csv.DictReader(file))
    assert [row["image"] for row in saved][2:] == ["mean", "dataset"]
    assert list(saved[0]) == ["image", *COLUMNS]
    document = json.loads((report / "evaluation.json").read_text())
    assert len(document["images"]) == 2 and document["pooling"] == POOLING
    assert list(document["dataset"]) == COLUMNS and document["dataset"]["n_true"] == 3
    for row, printed in zip(document["images"] + [document["dataset"]],
                            [rows[name] for name in list(rows) if name != "mean"]):
        for name, cell in zip(COLUMNS, printed):
            value = row[name]
            assert cell == ("nan" if value is None else
                            str(value) if isinstance(value, int) else f"{value:.4f}"), name
        assert 0 <= row["rand_error_isbi"] <= 1 and row["rand_threshold"] in [
            round(0.1 * i, 1) for i in range(11)]


def test_evaluate_refuses_to_overwrite_a_report(tmp_path, model_file, dataset, capsys):
    report = tmp_path / "report"
    assert _evaluate(model_file, dataset, report) == 0
    first = (report / "evaluation.json").read_text()
    capsys.readouterr()
    assert _evaluate(model_file, dataset, report) == 2
    error = capsys.readouterr().err
    assert error.startswith("unet evaluate: error: ") and "--overwrite" in error
    assert len(error.strip().splitlines()) == 1
    assert _evaluate(model_file, dataset, report, "--overwrite") == 0
    assert json.loads((report / "evaluation.json").read_text()) == json.loads(first)


def test_evaluate_rejects_missing_data_and_models(tmp_path, model_file, dataset, capsys):
    assert _evaluate(model_file, tmp_path / "nothing", tmp_path / "report") == 2
    assert "--data" in capsys.readouterr().err
    assert _evaluate(tmp_path / "none.keras", dataset, tmp_path / "report") == 2
    assert "--model" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("method", ["components", "membranes"])
def test_evaluate_scores_the_cells_of_the_instance_method(tmp_path, model_file, dataset, method):
    import keras

    from keras_unet import predict_tiled
    from keras_unet.data import load_samples
    from keras_unet.evaluation import evaluate_probabilities
    from keras_unet.instances import instance_labels

    report = tmp_path / "report"
    assert _evaluate(model_file, dataset, report, "--instance-method", method,
                     "--min-size", "3") == 0
    model = keras.models.load_model(model_file, compile=False)
    expected = evaluate_probabilities(
        lambda image: predict_tiled(model, image), load_samples(dataset),
        to_labels=lambda p: instance_labels(p, method=method, min_size=3))
    document = json.loads((report / "evaluation.json").read_text())
    assert document["dataset"]["n_pred"] == expected.dataset["n_pred"]
    assert [row["n_pred"] for row in document["images"]] == [
        row["n_pred"] for row in expected.rows]


def test_evaluate_refuses_a_negative_min_size_before_loading(tmp_path, dataset, capsys):
    assert _evaluate(tmp_path / "none.keras", dataset, tmp_path / "r", "--min-size", "-2") == 2
    assert capsys.readouterr().err.strip() == (
        "unet evaluate: error: --min-size must be >= 0 (pixels), got -2.")


def test_the_em_recipe_with_tta_runs_as_commands(tmp_path, model_file, em_folder):
    """`unet evaluate` and `unet predict` with `--tta --instance-method membranes`, as
    training/README.md recommends for EM, typed as a user types them: the cells scored and
    written are those of the averaged map (on these images, not those of the plain one)."""
    import subprocess
    import sys
    from pathlib import Path

    import keras
    import tifffile

    from keras_unet import predict_tiled
    from keras_unet.data import load_samples
    from keras_unet.evaluation import evaluate_probabilities
    from keras_unet.instances import instance_labels

    data = em_folder(2, size=80)
    unet = str(Path(sys.executable).with_name("unet"))
    cells = ["--tta", "--instance-method", "membranes", "--min-size", "0"]
    report, out = tmp_path / "report", tmp_path / "out"
    for command in (["evaluate", "--model", model_file, "--data", data, "--report", report],
                    ["predict", "--model", model_file, "--input", data / "images", "--output",
                     out, "--instances"]):
        done = subprocess.run([unet, *map(str, command), *cells], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr

    model = keras.models.load_model(model_file, compile=False)
    samples = load_samples(data)

    def cells_of(image, tta):
        return instance_labels(predict_tiled(model, image, tta=tta), method="membranes",
                               min_size=0)

    def scored(tta):
        return evaluate_probabilities(lambda image: predict_tiled(model, image, tta=tta),
                                      samples, to_labels=lambda p: instance_labels(
                                          p, method="membranes", min_size=0)).rows

    averaged, plain = scored(True), scored(False)
    document = json.loads((report / "evaluation.json").read_text())
    assert [row["n_pred"] for row in document["images"]] == [row["n_pred"] for row in averaged]
    assert [row["rand_error"] for row in document["images"]] == pytest.approx(
        [row["rand_error"] for row in averaged], abs=1e-6)
    assert [row["n_pred"] for row in averaged] != [row["n_pred"] for row in plain]
    for sample in samples:
        written = tifffile.imread(out / f"{Path(sample.path).stem}_instances.tif")
        np.testing.assert_array_equal(written, cells_of(sample.image, tta=True))
