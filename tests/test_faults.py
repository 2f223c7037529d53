"""Nothing lost, whatever happens: faults, races, symlinks and hostile input against `unet`, as
users run it (subprocesses), each checked for its exit code, its one line, and what is left on
disk (issue 23).

A full disk is a per-process file-size limit (``RLIMIT_FSIZE``, so writes fail with EFBIG as
they would with ENOSPC) and, where the tests run as root, a real 1 MiB tmpfs.
"""

import contextlib
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from keras_unet.cli import build_parser
from keras_unet.cli.train import resolved_config
from keras_unet.training.run_dir import prepare_run_dir

UNET = str(Path(sys.executable).with_name("unet"))


def _unet(*args, file_limit=None, cwd=None, timeout=300, **env):
    """Runs ``unet ARGS``; ``file_limit`` caps the size of every file it writes (bytes)."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not death, past the limit
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run([UNET, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, **env},
                          preexec_fn=limit if file_limit else None)


def _refused_before_tensorflow(*args):
    """Runs ``unet ARGS`` as :func:`_unet` does, in a process that also tells whether the command
    imported TensorFlow before it stopped (input checks must not wait for it)."""
    code = ("import sys\nfrom keras_unet.cli import main\ncode = main(sys.argv[1:])\n"
            "print('imported tensorflow:', 'tensorflow' in sys.modules)\nsys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                            text=True, timeout=300)
    assert result.stdout.splitlines()[-1] == "imported tensorflow: False", result.stdout
    return result


@contextlib.contextmanager
def _tmpfs(folder: Path, options: str):
    """A real tmpfs mounted at ``folder`` (``size=1m``, ``size=1m,ro``) while the block runs;
    the test is skipped where mounting is not allowed."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"no tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def _one_line(result, code):
    """The command ended with ``code`` and said why in one line, without a traceback."""
    assert result.returncode == code, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return errors[0]


def _leftovers(folder: Path) -> list[str]:
    """Hidden temporary names the atomic writer uses, anywhere below ``folder``."""
    return sorted(p.name for p in folder.rglob(".*") if ".tmp-" in p.name)


def _grey(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 255, shape).astype("uint8")


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(_grey((64, 80))).save(folder / "a.png")
    Image.fromarray(_grey((64, 80), 1)).save(folder / "b.png")
    return folder


def test_an_output_containing_the_input_is_refused_and_the_input_kept(tmp_path, model_file):
    outer = zarr.open_group(tmp_path / "outer.zarr", mode="w")
    outer.create_array("img", shape=(40, 50), chunks=(32, 32), dtype="uint8")[:] = 7
    result = _refused_before_tensorflow("predict", "--model", model_file, "--input",
                                        tmp_path / "outer.zarr" / "img", "--output",
                                        tmp_path / "outer.zarr", "--overwrite")
    assert "contains --input" in _one_line(result, 2)
    assert (zarr.open_array(tmp_path / "outer.zarr" / "img", mode="r")[:] == 7).all()


def test_a_full_disk_leaves_no_half_file_and_names_it(tmp_path, model_file, images):
    out = tmp_path / "out"  # masks are about 5 kB, the probabilities 41 kB
    result = _unet("predict", "--model", model_file, "--input", images, "--output", out,
                   "--probabilities", file_limit=20_000)
    line = _one_line(result, 1)
    assert "output '" in line and "a_probabilities.tif' could not be written" in line
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]  # complete, or nothing
    assert _leftovers(tmp_path) == []


def test_a_full_disk_keeps_the_old_report_until_the_new_one_is_whole(tmp_path, model_file):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    Image.fromarray(_grey((64, 80))).save(data / "images" / "a.png")
    mask = np.zeros((64, 80), "uint8")
    mask[10:30, 10:30] = 255
    Image.fromarray(mask).save(data / "masks" / "a.png")
    report = tmp_path / "report"
    report.mkdir()
    (report / "evaluation.csv").write_text("the old report")
    result = _unet("evaluate", "--model", model_file, "--data", data, "--report", report,
                   "--overwrite", file_limit=100)
    assert "evaluation.csv' could not be written" in _one_line(result, 1)
    assert (report / "evaluation.csv").read_text() == "the old report"
    assert sorted(p.name for p in report.iterdir()) == ["evaluation.csv"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_really_full_disk_is_a_fault_in_one_line(tmp_path, model_file, images):
    with _tmpfs(tmp_path / "disk", "size=1m") as disk:
        (disk / "filler").write_bytes(b"\0" * (1024 * 1024 - 16 * 1024))
        result = _unet("export", "--model", model_file, "--out", disk / "models",
                       "--no-warmup")
        assert _one_line(result, 1).endswith("could not be written: No space left on device.")
        assert not (disk / "models" / "1").exists() and _leftovers(disk) == []


def test_full_disks_during_exports_are_faults(tmp_path, model_file):
    result = _unet("export", "--model", model_file, "--out", tmp_path / "unet.onnx",
                   "--format", "onnx", file_limit=1000)
    assert "unet.onnx' could not be written" in _one_line(result, 1)
    result = _unet("export", "--model", model_file, "--out", tmp_path / "served",
                   "--no-warmup", file_limit=1000)
    assert "could not be written" in _one_line(result, 1)
    assert list((tmp_path / "served").iterdir()) == [] and not (tmp_path / "unet.onnx").exists()
    result = _unet("export", "--model", model_file, "--out", tmp_path / "zoo", "--format",
                   "bioimageio", file_limit=20_000)  # its weights, zipped, pass the limit
    assert "zoo/keras_unet_U-Net.zip' could not be written" in _one_line(result, 1)
    assert list((tmp_path / "zoo").iterdir()) == []  # its parts removed too


def test_two_runs_on_one_output_one_wins_the_other_stops_and_replaces_nothing(
        tmp_path, model_file, images):
    out = tmp_path / "out"
    command = [UNET, "predict", "--model", str(model_file), "--input", str(images), "--output",
               str(out), "--probabilities"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [run.communicate(timeout=300) for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes == [0, 2], results
    [stopped] = [err for run, (_, err) in zip(runs, results) if run.returncode == 2]
    assert "already exists" in stopped or "appeared while this run was writing" in stopped
    assert sorted(p.name for p in out.iterdir()) == [
        "a.png", "a_probabilities.tif", "b.png", "b_probabilities.tif"]
    assert tifffile.imread(out / "b_probabilities.tif").shape == (64, 80, 2)
    assert _leftovers(tmp_path) == []


def test_a_symlink_at_an_output_name_is_refused_or_replaced_never_written_through(
        tmp_path, model_file, images):
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "outside.png"
    (out / "a.png").symlink_to(outside)  # dangling: exists() says no
    result = _refused_before_tensorflow("predict", "--model", model_file, "--input",
                                        images / "a.png", "--output", out)
    assert "exist" in _one_line(result, 2)
    result = _unet("predict", "--model", model_file, "--input", images / "a.png", "--output",
                   out, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert not outside.exists() and not (out / "a.png").is_symlink()
    assert np.asarray(Image.open(out / "a.png")).shape == (64, 80)


def test_a_non_utf8_config_and_a_yaml_alias_bomb_are_refused_in_one_line(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes("epochs: 3 # café\n".encode("latin-1"))
    assert "is not UTF-8 text" in _one_line(
        _unet("train", "--config", tmp_path / "latin1.yaml", "--run-dir", tmp_path / "r"), 2)
    bomb = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi")) + "class_names: *i\n"
    (tmp_path / "bomb.yaml").write_text(bomb)
    assert len(bomb) < 500
    line = _one_line(_unet("train", "--config", tmp_path / "bomb.yaml", "--run-dir",
                           tmp_path / "r", timeout=60), 2)
    assert "more than 16 aliases" in line and len(line) < 300
    assert not (tmp_path / "r").exists()


def _tiff_claiming(path: Path, height: int, width: int, compression: int = 1) -> int:
    """A tiny TIFF whose header claims ``height`` x ``width`` 8-bit pixels; returns its size."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, compression),
               (262, 3, 1), (273, 4, 8), (277, 3, 1), (278, 4, height), (279, 4, 10)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, 1)
        + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, value in entries) + struct.pack("<I", 0)
    data = b"II*\x00" + struct.pack("<I", 18) + b"\0" * 10 + ifd
    path.write_bytes(data)
    return len(data)


@pytest.mark.parametrize("compression", [1, 8], ids=["raw", "deflate"])
def test_a_tiff_claiming_more_than_it_holds_is_refused_before_any_allocation(
        tmp_path, model_file, compression):
    (tmp_path / "in").mkdir()
    assert _tiff_claiming(tmp_path / "in" / "bomb.tif", 100000, 100000, compression) < 200
    result = _unet("predict", "--model", model_file, "--input", tmp_path / "in" / "bomb.tif",
                   "--output", tmp_path / "out")  # the one image: one line, exit 2
    assert "bomb.tif' claims 100000 x 100000 pixels" in _one_line(result, 2)
    assert not (tmp_path / "out").exists()
    result = _unet("predict", "--model", model_file, "--input", tmp_path / "in", "--output",
                   tmp_path / "out")  # in a folder: skipped, and the run fails at the end
    assert result.returncode == 1
    [skipped] = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert "claims 100000 x 100000 pixels" in skipped and "bomb.tif" in skipped
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("tile, message", [
    ("100000", "needs about"),
    ("50", "input size 50 does not fit"),
])
def test_size_options_are_checked_against_the_model_before_any_work(tmp_path, model_file,
                                                                    images, tile, message):
    result = _unet("predict", "--model", model_file, "--input", images, "--output",
                   tmp_path / "out", "--tile-size", tile)
    assert f"--tile-size {tile}: " in (line := _one_line(result, 2)) and message in line
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_corrupt_zarr_chunk_is_a_fault_naming_the_store(tmp_path, model_file):
    array = zarr.create_array(tmp_path / "in.zarr", shape=(64, 64), chunks=(32, 32),
                              dtype="uint16")
    array[:] = 9
    chunk = next(p for p in (tmp_path / "in.zarr").rglob("*") if p.is_file()
                 and p.name not in ("zarr.json",))
    chunk.write_bytes(b"\x28\xb5\x2f\xfd garbage, not zstd")
    result = _unet("predict", "--model", model_file, "--input", tmp_path / "in.zarr",
                   "--output", tmp_path / "out.ome.zarr")
    assert "a chunk could not be read" in (line := _one_line(result, 1)) and "in.zarr" in line
    assert not (tmp_path / "out.ome.zarr").exists() and _leftovers(tmp_path) == []


def test_a_resume_whose_two_backups_are_broken_says_how_to_start_over(tmp_path):
    settings = tmp_path / "tiny.yaml"
    settings.write_text("synthetic_images: 2\nepochs: 3\nsteps_per_epoch: 1\nbatch_size: 2\n"
                        "tile_size: 92\ndepth: 2\nfilters: 2\nmixed_precision: 'off'\n"
                        "val_fraction: 0\n")
    run = tmp_path / "run"
    command = ["train", "--config", settings, "--run-dir", run, "--epochs", "2"]
    config = resolved_config(build_parser().parse_args(map(str, command)))
    prepare_run_dir(config.replace(num_classes=2))  # as the run resolves it from its data
    (run / "backup").mkdir(exist_ok=True)  # as if killed in epoch 2 ...
    for name in ("latest.weights.h5", "latest.weights.h5.bkp"):
        (run / "backup" / name).write_bytes(b"\x89HDF\r\n\x1a\n truncated")  # ... mid-write
    (run / "backup" / "training_metadata.json").write_text('{"epoch": 0}')
    line = _one_line(_unet(*command), 1)
    assert "both weight backups of the interrupted run are unreadable" in line
    assert f"to start the run over, delete '{run}' or choose another --run-dir" in line
    (run / "backup" / "latest.weights.h5.bkp").unlink()  # killed during its first backup
    line = _one_line(_unet(*command), 1)
    assert "the weight backup of the interrupted run is unreadable" in line
    shutil.rmtree(run)  # as the line says
    started = _unet(*command)
    assert started.returncode == 0, started.stderr[-2000:]


def test_a_killed_exports_leftover_is_removed_by_the_next_export(tmp_path, model_file):
    base = tmp_path / "served"
    base.mkdir()
    (base / ".1.tmp-999999999-dead0000").mkdir()  # its process is gone
    (base / ".1.tmp-999999999-dead0000" / "saved_model.pb").write_bytes(b"half")
    result = _unet("export", "--model", model_file, "--out", base, "--no-warmup")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in base.iterdir()) == ["1"]
    parts = tmp_path / "zoo" / ".cells.zip.parts.tmp-999999999-dead0000"  # a killed package's
    parts.mkdir(parents=True)
    (parts / "weights.onnx").write_bytes(b"half")
    result = _unet("export", "--model", model_file, "--out", tmp_path / "zoo" / "cells.zip",
                   "--format", "bioimageio")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "zoo").iterdir()) == ["cells.zip"]


def test_smaller_refusals_come_before_any_work(tmp_path, model_file, images):
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    assert "points to itself" in _one_line(_refused_before_tensorflow(
        "predict", "--model", model_file, "--input", loop, "--output", tmp_path / "o"), 2)
    (tmp_path / "report.txt").write_text("not a folder")
    assert "is a file" in _one_line(_refused_before_tensorflow(
        "evaluate", "--model", model_file, "--data", images, "--report",
        tmp_path / "report.txt"), 2)
    (tmp_path / "served" / "1").mkdir(parents=True)
    assert "version 1 already exists" in _one_line(_refused_before_tensorflow(
        "export", "--model", model_file, "--out", tmp_path / "served", "--version", "1"), 2)
    (tmp_path / "old.onnx").write_bytes(b"kept")
    assert "exists" in _one_line(_refused_before_tensorflow(
        "export", "--format", "onnx", "--model", model_file, "--out", tmp_path / "old.onnx"), 2)
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "rdf.yaml").write_text("type: model")
    assert "already holds a bioimage.io package" in _one_line(_refused_before_tensorflow(
        "export", "--format", "bioimageio", "--model", model_file, "--out", tmp_path / "zoo"), 2)
    assert (tmp_path / "old.onnx").read_bytes() == b"kept"
    assert sorted(p.name for p in (tmp_path / "served").iterdir()) == ["1"]
    for extra, message in [(["--model", tmp_path / "gone.keras"], "gone.keras' does not exist"),
                           (["--model", model_file, "--tile-size", "0"], "--tile-size must be"),
                           (["--model", model_file, "--batch-size", "-1"], "--batch-size must")]:
        for command in (["predict", "--input", images, "--output", tmp_path / "o"],
                        ["evaluate", "--data", images]):
            assert message in _one_line(_refused_before_tensorflow(*command, *extra), 2)
    (tmp_path / "afile").write_text("a file, not a folder")
    for command, option in [("predict", "--output"), ("evaluate", "--report"),
                            ("export", "--out")]:
        inputs = {"predict": ["--input", images], "evaluate": ["--data", images]}
        line = _one_line(_refused_before_tensorflow(command, "--model", model_file,
                                                    *inputs.get(command, []), option,
                                                    tmp_path / "afile" / "x"), 2)
        assert f"{option} '{tmp_path / 'afile' / 'x'}' lies under '{tmp_path / 'afile'}', " \
               "which is a file, not a folder" in line, line


def test_a_damaged_image_is_a_fault_and_skipped_in_a_folder(tmp_path, model_file, images):
    data = (images / "a.png").read_bytes()
    (images / "a.png").write_bytes(data[:len(data) // 2])  # a copy that stopped halfway
    result = _unet("predict", "--model", model_file, "--input", images / "a.png", "--output",
                   tmp_path / "out")
    assert "a.png' is damaged (truncated or corrupt" in _one_line(result, 1)
    assert not (tmp_path / "out").exists()
    result = _unet("predict", "--model", model_file, "--input", images, "--output",
                   tmp_path / "out")
    assert result.returncode == 1 and "skipped" in result.stderr and "is damaged" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.png"]


def test_a_read_only_folder_is_a_fault_naming_the_output(tmp_path, model_file, images):
    with _tmpfs(tmp_path / "read-only", "size=1m,ro") as disk:
        result = _unet("predict", "--model", model_file, "--input", images / "a.png",
                       "--output", disk)
        assert _one_line(result, 1).endswith(f"output '{disk / 'a.png'}' could not be written: "
                                             "Read-only file system.")
        result = _unet("train", "--run-dir", disk / "run", "--epochs", "1",
                       "--steps-per-epoch", "1")
        assert _one_line(result, 1).endswith(f"run dir '{disk / 'run'}' could not be written: "
                                             "Read-only file system.")


def test_a_foreign_savedmodel_of_rank_one_is_refused(tmp_path, images):
    import tensorflow as tf

    class Flat(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def serve(self, values):
            return {"out": values * 2}

    flat = Flat()
    tf.saved_model.save(flat, str(tmp_path / "flat"), signatures={"serving_default": flat.serve})
    result = _unet("predict", "--model", tmp_path / "flat", "--input", images, "--output",
                   tmp_path / "out")
    assert "takes a rank-1 input" in _one_line(result, 2)


def test_commands_leave_nothing_in_the_working_directory(tmp_path, model_file, images):
    work = tmp_path / "cwd"
    work.mkdir()
    result = _unet("predict", "--model", model_file, "--input", images, "--output",
                   tmp_path / "out", "--instances", "--overlays", cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(work.iterdir()) == []
    shutil.rmtree(tmp_path / "out")
