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
come from ``keras_unet.instances.instance_labels`` (``--instance-method``, ``--min-size``).
TIFFs of ``STREAM_PIXELS`` pixels or more are predicted band by band without loading them
whole, with masks and probabilities only.
A zarr or OME-Zarr ``--input`` is predicted block by block into the OME-Zarr store
``--output`` (probabilities, ``labels/mask``, with ``--instances`` ``labels/instances``);
``--scheduler`` runs the blocks on a dask.distributed cluster (``keras_unet.cli.predict_zarr``).
Every output path is checked before the model is loaded: nothing is overwritten without
``--overwrite``, and outputs may never replace inputs. An image that cannot be read or
predicted is reported and skipped; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from keras_unet.cli import help_text
from keras_unet.cli.instance_arguments import add_instance_arguments, instance_options
from keras_unet.cli.model_loading import Predictor, add_model_arguments, load_predictor
from keras_unet.cli.predict_zarr import add_zarr_arguments, predicts_zarr, run_zarr
from keras_unet.errors import InputError, InputNotFoundError, NotAFolderError, OutputExistsError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
TIFF_SUFFIXES = (".tif", ".tiff")
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
    parser.set_defaults(run=run)
    return parser


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
        ValueError: --input folder ... has no images (.png, .tif, .tiff, .jpg, .jpeg, .bmp).
    """
    if not path.exists():
        raise InputNotFoundError(f"--input {str(path)!r} does not exist.")
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


def check_outputs(images: list[Path], folder: Path, plans: list[dict], overwrite: bool) -> None:
    """Refuses outputs that would replace an input, each other, or (without ``overwrite``) files.

    Example:
        >>> image = Path("data/a.png")
        >>> check_outputs([image], Path("data"), [{"mask": image}], False)
        Traceback (most recent call last):
        ...
        ValueError: --output 'data' is the input folder; masks would overwrite the images there.
    """
    inputs = {image.resolve() for image in images}
    if folder.exists() and not folder.is_dir():
        raise NotAFolderError(f"--output {str(folder)!r} exists and is not a folder.")
    if any(image.parent.resolve() == folder.resolve() for image in images):
        raise InputError(f"--output {str(folder)!r} is the input folder; masks would overwrite "
                         "the images there.")
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
    existing = [path for path in seen if path.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{len(existing)} output file(s) exist, e.g. {str(existing[0])!r}; "
                                "pass --overwrite to replace them.")


def class_overlay(image: np.ndarray, classes: np.ndarray, opacity: float = 0.45) -> np.ndarray:
    """The image as 8-bit RGB with every class but background tinted in its colour.

    Colours are :func:`keras_unet.class_layout.class_colour`, the masks' palette.

    Example:
        >>> class_overlay(np.zeros((1, 3)), np.array([[0, 1, 2]]), opacity=1.0)[0].tolist()
        [[0, 0, 0], [230, 25, 75], [60, 180, 75]]
    """
    from keras_unet.class_layout import class_colour

    rgb = overlay(image, np.zeros(np.shape(classes), np.int32)).astype(np.float64)
    colours = np.array([class_colour(k) for k in range(int(np.max(classes, initial=0)) + 1)],
                       np.float64)
    tinted = classes > 0
    rgb[tinted] = (1 - opacity) * rgb[tinted] + opacity * colours[classes[tinted]]
    return np.round(rgb).astype(np.uint8)


def overlay(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The image as 8-bit RGB (1st-99th percentile stretch) with yellow object outlines.

    Example:
        >>> labels = np.zeros((5, 5), int); labels[1:4, 1:4] = 1
        >>> overlay(np.zeros((5, 5)), labels)[2, :, 0].tolist()
        [0, 255, 0, 255, 0]
    """
    from skimage.segmentation import find_boundaries

    image = np.asarray(image, np.float64)
    grey = image if image.ndim == 2 else image[..., :3].mean(-1)
    low, high = np.percentile(grey, (1, 99))
    grey = np.clip((grey - low) / max(high - low, 1e-12) * 255, 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    rgb[find_boundaries(labels, mode="inner")] = (255, 255, 0)
    return rgb


def run(args: argparse.Namespace) -> int:
    """Runs ``unet predict``; returns 1 if some images failed, else 0.

    Example:
        >>> import tempfile
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
    instance_options(args)  # a bad --min-size is refused before the model loads
    if predicts_zarr(args):  # a zarr / OME-Zarr store: block-wise into an OME-Zarr store
        return run_zarr(args)
    images = list_images(args.input)
    plans = [output_paths(image, args.output, probabilities=args.probabilities,
                          overlays=args.overlays, instances=args.instances) for image in images]
    check_outputs(images, args.output, plans, args.overwrite)
    predictor = load_predictor(args.model, tta=args.tta, tile_size=args.tile_size,
                               batch_size=args.batch_size)
    args.output.mkdir(parents=True, exist_ok=True)
    failed = 0
    for image, plan in zip(images, plans):
        try:
            _predict_one(predictor, image, plan, args)
        except (ValueError, OSError) as error:
            failed += 1
            print(f"unet predict: skipped {str(image)!r}: {error}", file=sys.stderr)
            continue
        print(f"{image} -> {plan['mask']}")
    if failed:
        print(f"unet predict: {failed} of {len(images)} image(s) failed.", file=sys.stderr)
    return 1 if failed else 0


def _predict_one(predictor: Predictor, image_path: Path, plan: dict,
                 args: argparse.Namespace) -> None:
    import tifffile
    from PIL import Image

    from keras_unet.data.readers import read_image
    from keras_unet.data.writers import write_class_mask, write_instances
    from keras_unet.inference import mask_from_probabilities
    from keras_unet.instances import instance_labels

    image = read_image(image_path)  # an uncompressed TIFF is only mapped, not read yet
    if (image_path.suffix.lower() in TIFF_SUFFIXES and predictor.keras_model is not None
            and image.shape[0] * image.shape[1] >= STREAM_PIXELS):
        from keras_unet.streaming import predict_tiff

        predict_tiff(predictor.keras_model, image_path, plan["mask"], tile_size=args.tile_size,
                     batch_size=args.batch_size, tta=args.tta,
                     probabilities_path=plan.get("probabilities"), overwrite=args.overwrite)
        if "instances" in plan:
            print(f"unet predict: no instances for {str(image_path)!r}: too large to label.",
                  file=sys.stderr)
        if "overlay" in plan:
            print(f"unet predict: no overlay for {str(image_path)!r}: too large to draw.",
                  file=sys.stderr)
        return
    probabilities = predictor.predict(image)
    semantic = probabilities.shape[-1] > 3  # class indices, not cells
    if "instances" in plan or ("overlay" in plan and not semantic):  # before writing
        labels = instance_labels(probabilities, **instance_options(args))
    mask = mask_from_probabilities(probabilities)
    write_class_mask(plan["mask"], mask, probabilities.shape[-1])
    if "probabilities" in plan:
        tifffile.imwrite(plan["probabilities"], probabilities, photometric="minisblack")
    if "instances" in plan:
        write_instances(plan["instances"], labels)
    if "overlay" in plan:
        picture = class_overlay(image, mask) if semantic else overlay(image, labels)
        Image.fromarray(picture).save(plan["overlay"])
