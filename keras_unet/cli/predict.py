"""``unet predict``: segment images with a trained model.

    unet predict --model unet.keras --input images/ --output masks/ [--tta]
                 [--probabilities] [--instances] [--overlays] [--overwrite]

Masks keep the input's name (PNG input gives an 8-bit PNG, TIFF input a TIFF; other formats
give PNG) and hold the class mask, 0/255 for two classes (0/127/254 for background, cell and
border with three); models of four classes or more (semantic) give the class indices, as a PNG
with one palette colour per class or a TIFF, and their overlays colour each class.
``--probabilities`` adds ``<name>_probabilities.tif`` (float32, one channel per class),
``--instances`` adds ``<name>_instances.tif``, one label per cell (uint16, uint32 beyond
65,535 cells, as napari, Fiji and CellProfiler read label images), and
``--overlays`` adds ``<name>_overlay.png``, the image with the outlines of those cells. Cells
come from ``keras_unet.instances.instance_labels`` with the settings the model carries (what
``unet train`` chose on its validation images), or ``--instance-method`` and ``--min-size``;
the command says which it used and where they came from.
TIFFs of ``STREAM_PIXELS`` pixels or more are predicted band by band without loading them
whole, with masks and probabilities only.
A zarr or OME-Zarr ``--input`` is predicted block by block into the OME-Zarr store
``--output`` (probabilities, ``labels/mask``, with ``--instances`` ``labels/instances``);
``--scheduler`` runs the blocks on a dask.distributed cluster
(``keras_unet.inference.predict_zarr``).
Every output path is checked before TensorFlow starts (:func:`prepare`): nothing is
overwritten without ``--overwrite``, and outputs may never replace inputs. An image that cannot
be read or predicted is reported and skipped; the exit code is then 1.
A 3D U-Net predicts volumes: TIFF stacks (z, y, x[, c]) give TIFF stacks of the mask, the
probabilities and the cells, with the voxel size the input records (or ``--spacing``), and a
zarr / OME-Zarr ``--input`` is predicted in 3D blocks. A 2D model given a stack, or a 3D model
given a 2D image, is refused before anything is written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from keras_unet.cli import help_text, prepare_once
from keras_unet.cli.arguments import (
    add_instance_arguments,
    add_model_arguments,
    cell_settings,
    check_instance_arguments,
    check_model_arguments,
    check_volume_arguments,
    print_notes,
)
from keras_unet.errors import DamagedFileError, InputError, NotAFolderError, OutputExistsError
from keras_unet.inference.blocks import DEFAULT_BLOCK, DEFAULT_VOLUME_BLOCK
from keras_unet.io.paths import IMAGE_SUFFIXES, TIFF_SUFFIXES, existing_input, refuse_overlap
from keras_unet.io.zarr_images import is_zarr_path

STREAM_PIXELS = 2**25
"""TIFFs with at least this many pixels (e.g. 4096x8192) are predicted by streaming."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers ``unet predict``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_parser(parser.add_subparsers()).prog.endswith("predict")
        True
    """
    parser = subparsers.add_parser(
        "predict", help="segment images with a trained model",
        description=help_text(__doc__)[0], formatter_class=argparse.RawTextHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--input", required=True, type=Path,
                        help="an image file or a folder of images (PNG, TIFF, JPEG, BMP),\n"
                             "or a zarr / OME-Zarr store (predicted block by block)")
    parser.add_argument("--output", required=True, type=Path,
                        help="folder for the masks (zarr input: the OME-Zarr store to write)")
    parser.add_argument("--probabilities", action="store_true",
                        help="also write <name>_probabilities.tif (float32 per class)")
    parser.add_argument("--instances", action="store_true",
                        help="also write <name>_instances.tif, one label per cell (uint16/32)")
    parser.add_argument("--overlays", action="store_true",
                        help="also write <name>_overlay.png with the cell outlines")
    add_instance_arguments(parser, "--instances and --overlays")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_zarr_arguments(parser)
    parser.set_defaults(run=run, prepare=prepare)
    return parser


def prepare(args: argparse.Namespace) -> None:
    """Checks the options, the inputs and every output path before TensorFlow starts, so a
    mistake costs no time; keeps the images and their outputs as ``args.planned`` (None for a
    zarr ``--input``).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> _ = add_parser(parser.add_subparsers())
        >>> prepare(parser.parse_args(["predict", "--model", "no-such.keras", "--input", "a.png",
        ...                            "--output", "out"]))
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputNotFoundError: --model 'no-such.keras' does not exist.
    """
    check_instance_arguments(args)  # a bad --min-size is refused before the model loads
    check_model_arguments(args)
    if is_zarr_path(args.input):  # a zarr / OME-Zarr store: block-wise into an OME-Zarr store
        from keras_unet.io.zarr_images import check_output

        existing_input(args.input, "--input")
        refuse_overlap(args.output, {"--model": args.model})
        check_output(args.output, args.input, args.overwrite)
        args.planned = None
        return
    for option, value in (("--scheduler", args.scheduler), ("--block-size", args.block_size)):
        if value is not None:
            raise InputError(f"{option} applies to zarr / OME-Zarr inputs; --input "
                             f"{str(args.input)!r} is not one.")
    images = list_images(args.input)
    plans = [output_paths(image, args.output, probabilities=args.probabilities,
                          overlays=args.overlays, instances=args.instances) for image in images]
    check_outputs(images, args.output, plans, args.overwrite,
                  {"--input": args.input, "--model": args.model})
    args.planned = images, plans


def list_images(path: Path) -> list[Path]:
    """The image files to predict: ``path`` itself, or the images directly inside a folder.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for a folder without images or a file that is not an image.

    Example:
        >>> import tempfile
        >>> list_images(Path(tempfile.mkdtemp()))
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: --input folder ... has no images (.png, .tif, .tiff, ...
    """
    existing_input(path, "--input")
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise InputError(f"--input {str(path)!r} is not an image; expected one of "
                             f"{', '.join(IMAGE_SUFFIXES)}.")
        return [path]
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InputError(f"--input folder {str(path)!r} has no images "
                         f"({', '.join(IMAGE_SUFFIXES)}).")
    return images


def output_paths(image: Path, folder: Path, *, probabilities: bool, overlays: bool,
                 instances: bool = False) -> dict:
    """Where the outputs of one image go: ``mask``, optionally ``probabilities``, ``instances``
    and ``overlay``.

    Example:
        >>> sorted(output_paths(Path("in/a.jpg"), Path("out"), probabilities=True,
        ...                     overlays=False).items())
        [('mask', PosixPath('out/a.png')), ('probabilities', PosixPath('out/a_probabilities.tif'))]
    """
    suffix = ".tif" if image.suffix.lower() in TIFF_SUFFIXES else ".png"
    paths = {"mask": folder / f"{image.stem}{suffix}"}
    if probabilities:
        paths["probabilities"] = folder / f"{image.stem}_probabilities.tif"
    if instances:
        paths["instances"] = folder / f"{image.stem}_instances.tif"
    if overlays:
        paths["overlay"] = folder / f"{image.stem}_overlay.png"
    return paths


def check_outputs(images: list[Path], folder: Path, plans: list[dict], overwrite: bool,
                  inputs: dict[str, Path] | None = None) -> None:
    """Refuses outputs that would touch an input (the images, their folder, ``inputs``), each
    other, or (without ``overwrite``) existing files, dangling symlinks included.

    Example:
        >>> image = Path("data/a.png")
        >>> check_outputs([image], Path("data"), [{"mask": image}], False)
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: --output 'data' is the folder of --input 'data/a.png'; ...
    """
    if folder.exists() and not folder.is_dir():
        raise NotAFolderError(f"--output {str(folder)!r} exists and is not a folder.")
    refuse_overlap(folder, dict(inputs or {}))
    for image in images:
        if os.path.realpath(folder) == os.path.realpath(image.parent):
            raise InputError(f"--output {str(folder)!r} is the folder of --input "
                             f"{str(image)!r}; masks would lie among the images there.")
    inputs = {image.resolve() for image in images}
    seen: dict[Path, Path] = {}
    for image, plan in zip(images, plans):
        for path in plan.values():
            resolved = path.resolve()
            if resolved in inputs:
                raise InputError(f"output {str(path)!r} of {str(image)!r} would overwrite an "
                                 "input image; choose another --output folder.")
            if resolved in seen:
                raise InputError(f"{str(image)!r} and {str(seen[resolved])!r} would both write "
                                 f"{str(path)!r}; rename one of them.")
            seen[resolved] = image
    existing = [path for image, plan in zip(images, plans) for path in plan.values()
                if os.path.lexists(path)]
    if existing and not overwrite:
        raise OutputExistsError(f"{len(existing)} output file(s) exist, e.g. {str(existing[0])!r}; "
                                "pass --overwrite to replace them.")


def add_zarr_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--scheduler`` and ``--block-size`` (zarr input only).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_zarr_arguments(parser)
        >>> parser.parse_args(["--block-size", "512"]).block_size
        512
    """
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="zarr input: run the blocks on this dask.distributed scheduler\n"
                             "(e.g. tcp://host:8786; default: in this process)")
    parser.add_argument("--block-size", type=int, default=None, metavar="PX",
                        help="zarr input: output block side, also the output's chunks\n"
                             f"(default: {DEFAULT_BLOCK}; a 3D model's boxes: "
                             f"{DEFAULT_VOLUME_BLOCK})")


def run(args: argparse.Namespace) -> int:
    """Runs ``unet predict``; returns 1 if some images failed, else 0.

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> from PIL import Image
        >>> from keras_unet import build_unet
        >>> folder = Path(tempfile.mkdtemp())
        >>> build_unet((None, None, 1), 2, filters=4, depth=2).save(folder / "unet.keras")
        >>> Image.fromarray(np.zeros((20, 30), "uint8")).save(folder / "a.png")
        >>> parser = argparse.ArgumentParser()
        >>> _ = add_parser(parser.add_subparsers())
        >>> run(parser.parse_args(["predict", "--model", str(folder / "unet.keras"), "--input",
        ...                        str(folder / "a.png"), "--output", str(folder / "out")]))
        /tmp/.../a.png -> /tmp/.../out/a.png
        0
    """
    from keras_unet.inference.loading import load_network

    prepare_once(args)
    if args.planned is None:
        return _run_zarr(args)
    images, plans = args.planned
    network = load_network(args.model)
    network.check_options(tile_size=args.tile_size, batch_size=args.batch_size)
    check_volume_arguments(args, network)
    check_kinds(images, network.ndim, args.model)
    if args.instances and network.layout is not None:  # a foreign model's: once it predicted
        network.layout.require_cells(str(args.model))
    print_notes("predict", network.notes)
    cells = cell_settings(args, network.cells)
    if (args.instances or args.overlays) and (network.layout is None or network.layout.cells):
        print(f"unet predict: cells: {cells.describe()}")
    one_file = args.input.is_file()  # its failure is the command's: one line, its exit code
    failed = 0
    for image, plan in zip(images, plans):
        try:
            _predict_one(network, image, plan, cells, args)
        except OutputExistsError:  # another run wrote it meanwhile: stop, leave it as it is
            raise
        except (ValueError, OSError, DamagedFileError) as error:  # unreadable, unpredictable
            if one_file:
                raise
            failed += 1
            print(f"unet predict: skipped {str(image)!r}: {error}", file=sys.stderr)
            continue
        print(f"{image} -> {plan['mask']}")
    if failed:
        print(f"unet predict: {failed} of {len(images)} image(s) failed.", file=sys.stderr)
    return 1 if failed else 0


def check_kinds(images: list[Path], ndim: int, model: Path) -> None:
    """Refuses a volume (a TIFF stack) for a 2D model and a 2D image for a 3D model, naming the
    file, before anything is written.

    Example:
        >>> import tempfile, tifffile, numpy as np
        >>> path = Path(tempfile.mkdtemp()) / "v.tif"
        >>> tifffile.imwrite(path, np.zeros((4, 8, 8), "uint8"), photometric="minisblack")
        >>> check_kinds([path], 2, Path("m.keras"))
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: --input '...v.tif' is a volume (a TIFF stack), but --model ...
    """
    from keras_unet.io.tiff import is_stack

    for image in images:
        volume = image.suffix.lower() in TIFF_SUFFIXES and is_stack(image)
        if volume and ndim == 2:
            raise InputError(f"--input {str(image)!r} is a volume (a TIFF stack), but --model "
                             f"{str(model)!r} is a 2D U-Net; use a 3D U-Net (unet train "
                             "--ndim 3), or predict its planes as zarr input.")
        if not volume and ndim == 3:
            raise InputError(f"--input {str(image)!r} is a 2D image, but --model {str(model)!r} "
                             "is a 3D U-Net; it takes volumes (TIFF stacks or zarr).")


def _run_zarr(args: argparse.Namespace) -> int:
    """Predicts a zarr / OME-Zarr ``--input`` into the OME-Zarr store ``--output`` (its paths
    checked by :func:`prepare`)."""
    from keras_unet.inference.loading import load_network
    from keras_unet.inference.zarr_prediction import predict_zarr

    if args.probabilities:
        print("unet predict: note: zarr output always holds the probabilities (its image).",
              file=sys.stderr)
    if args.overlays:
        print(f"unet predict: no overlay for {str(args.input)!r}: zarr output holds the "
              "labels for napari instead.", file=sys.stderr)
    network = load_network(args.model)
    check_volume_arguments(args, network)
    if args.instances:
        network.layout.require_cells(str(args.model))
    print_notes("predict", network.notes)
    cells = cell_settings(args, network.cells)
    if args.instances:
        print(f"unet predict: cells: {cells.describe()}")
    predict_zarr(network, args.input, args.output, instances=args.instances, cells=cells,
                 block_size=args.block_size, tile_size=args.tile_size,
                 batch_size=args.batch_size, tta=args.tta, scheduler=args.scheduler,
                 overwrite=args.overwrite)
    print(f"{args.input} -> {args.output}")
    return 0


def _predict_one(network, image_path: Path, plan: dict, cells, args: argparse.Namespace) -> None:
    from keras_unet.class_layout import ClassLayout, predicted_classes
    from keras_unet.data.readers import read_image
    from keras_unet.instances.labels import instance_labels
    from keras_unet.io.images import (
        write_class_mask,
        write_instances,
        write_picture,
        write_probabilities,
    )
    from keras_unet.visualize import class_overlay, outline_overlay

    if network.ndim == 3:
        return _predict_volume(network, image_path, plan, cells, args)
    image = read_image(image_path)  # an uncompressed TIFF is only mapped, not read yet
    if (image_path.suffix.lower() in TIFF_SUFFIXES and network.tiles is not None
            and image.shape[0] * image.shape[1] >= STREAM_PIXELS):
        from keras_unet.inference.streaming import predict_tiff

        plan["mask"].parent.mkdir(parents=True, exist_ok=True)
        predict_tiff(network.tiles, image_path, plan["mask"], tile_size=args.tile_size,
                     batch_size=args.batch_size, tta=args.tta,
                     probabilities_path=plan.get("probabilities"), overwrite=args.overwrite)
        for kind, what in (("instances", "label"), ("overlay", "draw")):
            if kind in plan:
                print(f"unet predict: no {kind} for {str(image_path)!r}: too large to {what}.",
                      file=sys.stderr)
        return
    probabilities = network.predict(image, tta=args.tta, tile_size=args.tile_size,
                                    batch_size=args.batch_size)
    layout = network.layout or ClassLayout.of(probabilities.shape[-1])
    classes = predicted_classes(probabilities)
    labels = None
    if "instances" in plan:  # before writing
        layout.require_cells(str(args.model))
    if layout.cells and ("instances" in plan or "overlay" in plan):
        labels = instance_labels(probabilities, **cells.options)
    plan["mask"].parent.mkdir(parents=True, exist_ok=True)  # once there is something to write
    write_class_mask(plan["mask"], classes, layout, overwrite=args.overwrite)
    if "probabilities" in plan:
        write_probabilities(plan["probabilities"], probabilities, overwrite=args.overwrite)
    if "instances" in plan:
        write_instances(plan["instances"], labels, overwrite=args.overwrite)
    if "overlay" in plan:
        picture = outline_overlay(image, labels) if labels is not None else \
            class_overlay(image, classes)
        write_picture(plan["overlay"], picture, overwrite=args.overwrite)


def _predict_volume(network, image_path: Path, plan: dict, cells, args: argparse.Namespace
                    ) -> None:
    """A TIFF stack through a 3D U-Net: mask, probabilities and cells as TIFF stacks that
    record the voxel size (``--spacing``, else the input's, else the model's). Stacks of
    ``STREAM_PIXELS`` voxels or more are predicted box by box from a memory map
    (:func:`keras_unet.inference.streaming.predict_tiff_stack`), with mask and probabilities."""
    import numpy as np

    import tifffile

    from keras_unet.class_layout import ClassLayout, predicted_classes
    from keras_unet.instances.labels import instance_labels
    from keras_unet.io.images import write_class_mask, write_instances, write_probabilities
    from keras_unet.io.tiff import read_volume

    with tifffile.TiffFile(image_path) as tif:
        voxels = int(np.prod(tif.series[0].shape))
    if network.tiles is not None and voxels >= STREAM_PIXELS:  # larger than memory: in boxes
        from keras_unet.inference.streaming import predict_tiff_stack

        plan["mask"].parent.mkdir(parents=True, exist_ok=True)
        predict_tiff_stack(network.tiles, image_path, plan["mask"], tile_size=args.tile_size,
                           batch_size=args.batch_size, tta=args.tta,
                           probabilities_path=plan.get("probabilities"),
                           spacing=args.voxel_spacing, overwrite=args.overwrite)
        for kind in ("instances", "overlay"):
            if kind in plan:
                print(f"unet predict: no {kind} for {str(image_path)!r}: too large to label "
                      "whole; predict it as zarr for the cells.", file=sys.stderr)
        return
    volume, file_spacing = read_volume(image_path)
    spacing = (args.voxel_spacing or file_spacing
               or (network.geometry.spacing if network.geometry is not None else None))
    probabilities = network.predict(volume, tta=args.tta, tile_size=args.tile_size,
                                    batch_size=args.batch_size)
    layout = network.layout or ClassLayout.of(probabilities.shape[-1])
    classes = predicted_classes(probabilities)
    labels = None
    if "instances" in plan:
        layout.require_cells(str(args.model))
        labels = instance_labels(probabilities, **cells.options, spacing=spacing)
    plan["mask"].parent.mkdir(parents=True, exist_ok=True)
    write_class_mask(plan["mask"], classes, layout, overwrite=args.overwrite, spacing=spacing)
    if "probabilities" in plan:
        write_probabilities(plan["probabilities"], probabilities, overwrite=args.overwrite,
                            spacing=spacing)
    if "instances" in plan:
        write_instances(plan["instances"], labels, overwrite=args.overwrite, spacing=spacing)
    if "overlay" in plan:
        print(f"unet predict: no overlay for {str(image_path)!r}: a volume; open the mask and "
              "the cells in napari or Fiji beside it.", file=sys.stderr)
