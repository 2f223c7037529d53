"""The notebooks run end to end (in their quick mode) and are stored without outputs.

Each notebook's first code cell is its parameters cell: it reads ``UNET_NOTEBOOK_QUICK`` and picks
tiny sizes when it is ``1``, which is what these tests set. The notebooks write into the working
directory, here a temporary folder; their own ``assert`` statements check the numbers that must
agree (e.g. the served model against ``predict_tiled``), so any failure stops the execution.
"""

import base64
import io
import json
import pathlib

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from PIL import Image

from keras_unet.data import synthetic_cells
from keras_unet.training import split_samples

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("quickstart.ipynb", "paper_reproduction.ipynb")
QUICK_VARIABLE = "UNET_NOTEBOOK_QUICK"


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _execute(name, folder, monkeypatch, **environment):
    monkeypatch.setenv(QUICK_VARIABLE, "1")
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return notebook


def _figures(notebook):
    """The PNG figures the notebook displayed, as arrays."""
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(output["data"]["image/png"]))))
            for cell in _code_cells(notebook) for output in cell.outputs
            if "image/png" in output.get("data", {})]


def _text(notebook):
    return "".join(output.get("text", "") for cell in _code_cells(notebook)
                   for output in cell.outputs)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    cells = _code_cells(notebook)
    assert [(cell.outputs, cell.execution_count) for cell in cells] == [([], None)] * len(cells)


@pytest.mark.parametrize("name", NAMES)
def test_first_code_cell_is_the_parameters_cell(name):
    first = _code_cells(nbformat.read(NOTEBOOKS / name, as_version=4))[0]
    assert "parameters" in first.metadata.get("tags", [])
    assert QUICK_VARIABLE in first.source


@pytest.mark.slow
def test_quickstart_runs_from_samples_to_served_model(tmp_path, monkeypatch):
    _execute("quickstart.ipynb", tmp_path, monkeypatch)
    notebook = _execute("quickstart.ipynb", tmp_path, monkeypatch)  # "Run all" once more
    run = tmp_path / "runs" / "quickstart"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert (run / "unet.keras").is_file()
    events = list((run / "logs").rglob("events.out.tfevents.*"))
    assert len(events) == len({event.parent for event in events})  # one run's files, not two
    assert sorted(p.name for p in (run / "serving" / "unet").iterdir()) == ["1"]
    assert (run / "serving" / "unet" / "1" / "saved_model.pb").is_file()
    rows = json.loads((run / "evaluation" / "evaluation.json").read_text())["images"]
    held_out = split_samples(synthetic_cells(6, size=128), 0.34)[1]  # as `unet train` splits
    assert [row["image"] for row in rows] == [sample.path for sample in held_out]
    figures = _figures(notebook)
    assert len(figures) == 4  # samples, deformation, training curves, predictions
    # Figures are drawn, not blank: every one has a spread of pixel values.
    assert all(figure[..., :3].std() > 10 for figure in figures)
    assert "largest difference to predict_tiled" in _text(notebook)


def _comparison(text):
    """The rows of the paper-versus-yours table: {(dataset, measure): (paper, yours)}."""
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[1] in ("rand_error_isbi", "warping_error", "seg"):
            rows[parts[0], parts[1]] = (parts[2], parts[3])
    return rows


@pytest.mark.slow
def test_paper_reproduction_without_the_data_says_so_and_runs_on_synthetic_cells(
        tmp_path, monkeypatch):
    notebook = _execute("paper_reproduction.ipynb", tmp_path, monkeypatch,
                        UNET_NOTEBOOK_DATASET="isbi2012")
    first_output = "".join(output.get("text", "") for output in _code_cells(notebook)[0].outputs)
    assert "'data/isbi2012' does not exist" in first_output and "synthetic" in first_output
    assert (tmp_path / "runs" / "paper" / "synthetic" / "checkpoints" / "best.keras").is_file()
    assert _comparison(_text(notebook)) == {  # the paper's figures beside "-": no ISBI score
        ("isbi2012", "rand_error_isbi"): ("0.0382", "-"),
        ("isbi2012", "warping_error"): ("0.000353", "-"),
        ("PhC-C2DH-U373", "seg"): ("0.9203", "-"),
        ("DIC-C2DH-HeLa", "seg"): ("0.7756", "-"),
    }
    assert len(_figures(notebook)) == 2  # the data, the result


@pytest.mark.slow
def test_paper_reproduction_reads_an_isbi_2012_download(tmp_path, monkeypatch):
    """data/isbi2012/train-{volume,labels}.tif as downloaded: the ISBI rows get your numbers."""
    import tifffile

    from keras_unet.data import synthetic_cells

    samples = synthetic_cells(4, size=96)
    folder = tmp_path / "data" / "isbi2012"
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "train-volume.tif", np.stack([s.image for s in samples]),
                     photometric="minisblack")
    tifffile.imwrite(folder / "train-labels.tif",
                     np.stack([np.where(s.labels > 0, 255, 0).astype("uint8") for s in samples]),
                     photometric="minisblack")
    notebook = _execute("paper_reproduction.ipynb", tmp_path, monkeypatch,
                        UNET_NOTEBOOK_DATASET="isbi2012")
    rows = _comparison(_text(notebook))
    report = json.loads((tmp_path / "runs" / "paper" / "isbi2012" / "evaluation" /
                         "evaluation.json").read_text())
    assert len(report["images"]) == 2  # val_fraction 0.5 of the 4 slices
    for measure in ("rand_error_isbi", "warping_error"):
        assert float(rows["isbi2012", measure][1]) == pytest.approx(report["mean"][measure],
                                                                    abs=1e-4)
    assert rows["PhC-C2DH-U373", "seg"][1] == "-"
