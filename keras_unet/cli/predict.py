"""``unet predict``: segment images with a trained model.

    unet predict --model unet.keras --input images/ --output masks/ [--tta]
                 [--probabilities] [--instances] [--overlays] [--overwrite]

Masks keep the input's name (PNG input gives an 8-bit PNG, TIFF input a TIFF; other formats
give PNG) and hold the class mask, 0/255 for two classes (0/127/254 for background, cell and
border with three). ``--probabilities`` adds ``<name>_probabilities.tif`` (float32, one
channel per class), ``--instances`` adds ``<name>_instances.tif``, one label per cell (uint16,
uint32 beyond 65,535 cells, as napari, Fiji and CellProfiler read label images), and
``--overlays`` adds ``<name>_overlay.png``, the image with the outlines of those cells. Cells
come from ``keras_unet.instances.instance_labels`` (``--instance-method``, ``--min-size``).
TIFFs of ``STREAM_PIXELS`` pixels or more are predicted band by band without loading them
whole, with masks and probabilities only.
Every output path is checked before the model is loaded: nothing is overwritten without
``--overwrite``, and outputs may never replace inputs. An image that cannot be read or
predicted is reported and skipped; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_unet.cli import help_text

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
TIFF_SUFFIXES = (".tif", ".tiff")
STREAM_PIXELS = 2**25
"""TIFFs with at least this many pixels (e.g. 4096x8192) are predicted by streaming."""
INSTANCE_METHODS = ("auto", "components", "watershed")
INSTANCE_MIN_SIZE = 10
"""``keras_unet.instances.METHODS`` and ``MIN_SIZE`` (the tests check that they agree), restated
so that ``unet --help`` does not wait for SciPy and scikit-image."""


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
                        help="an image file or a folder of images (PNG, TIFF, JPEG, BMP)")
    parser.add_argument("--output", required=True, type=Path, help="folder for the masks")
    parser.add_argument("--probabilities", action="store_true",
                        help="also write <name>_probabilities.tif (float32 per class)")
    parser.add_argument("--instances", action="store_true",
                        help="also write <name>_instances.tif, one label per cell (uint16/32)")
    parser.add_argument("--overlays", action="store_true",
                        help="also write <name>_overlay.png with the cell outlines")
    parser.add_argument("--instance-method", choices=INSTANCE_METHODS, default="auto",
                        help="how cells are found for --instances and --overlays: 'auto' is\n"
                             "'watershed' from the cell interiors for 3-class models, connected\n"
                             "'components' for 2-class ones (default: %(default)s)")
    parser.add_argument("--min-size", type=int, default=INSTANCE_MIN_SIZE,
                        help="drop cells under this many pixels (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(run=run)
    return parser


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model options shared by ``unet predict`` and ``unet evaluate``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_model_arguments(parser)
        >>> parser.parse_args(["--model", "m.keras", "--tta"]).tta
        True
    """
    parser.add_argument("--model", required=True, type=Path,
                        help="a .keras file or a SavedModel folder")
    parser.add_argument("--tta", action="store_true",
                        help="average the 8 flips/rotations of every image (8x slower)")
    parser.add_argument("--tile-size", type=int, default=None,
                        help="model input tile size (.keras models; default: chosen per image)")
    parser.add_argument("--batch-size", type=int, default=4,
                        help="tiles per model call (default: %(default)s)")


@dataclasses.dataclass
class Predictor:
    """A loaded model as a function ``image (H, W[, C]) -> probabilities (H, W, K)``.

    Attributes:
        predict: the function.
        channels: image channels the model takes, if known.
        keras_model: the Keras model, for streaming large TIFFs (None for a SavedModel).

    Example:
        >>> predictor = Predictor(lambda image: np.stack([image, 1 - image], -1), channels=1)
        >>> predictor.predict(np.zeros((2, 3))).shape
        (2, 3, 2)
    """

    predict: Callable[[np.ndarray], np.ndarray]
    channels: int | None
    keras_model: object | None = None


def load_predictor(path: Path, *, tta: bool = False, tile_size: int | None = None,
                   batch_size: int = 4) -> Predictor:
    """Loads a ``.keras`` model (tiled with :func:`keras_unet.predict_tiled`) or a SavedModel.

    A SavedModel's ``serving_default`` signature is called on the whole image; it must take one
    image tensor (rank 2-4, any size) and return the probabilities (key ``probabilities`` when
    there are several outputs), as :mod:`keras_unet.serving` exports do.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not a loadable model of a kind described above, or for a
            ``batch_size`` below 1.

    Example:
        >>> load_predictor(Path("no-such-model.keras"))
        Traceback (most recent call last):
        ...
        FileNotFoundError: --model 'no-such-model.keras' does not exist.
    """
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}.")
    if not path.exists():
        raise FileNotFoundError(f"--model {str(path)!r} does not exist.")
    if path.is_dir():
        if tile_size is not None:
            raise ValueError("--tile-size applies to .keras models; a SavedModel tiles itself.")
        if not (path / "saved_model.pb").is_file():
            raise ValueError(f"--model {str(path)!r} is a folder without saved_model.pb; expected "
                             "a .keras file or a SavedModel folder.")
        return _load_saved_model(path, tta)
    import keras

    import keras_unet.layers  # noqa: F401  (registers the layers a saved U-Net names)
    from keras_unet.inference import model_geometry, predict_tiled

    if not zipfile.is_zipfile(path):
        raise ValueError(f"--model {str(path)!r} is not a Keras model: a .keras file is a zip "
                         "archive and this file is not one; expected a .keras file or a "
                         "SavedModel folder.")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a file that is not a model
        reason = " ".join(str(error).split()) or "no message"
        raise ValueError(f"--model {str(path)!r} is not a loadable Keras model: "
                         f"{type(error).__name__}: {reason}") from None
    try:
        geom = model_geometry(model)
    except ValueError as error:
        raise ValueError(f"--model {str(path)!r}: {error}") from None

    def predict(image: np.ndarray) -> np.ndarray:
        return predict_tiled(model, image, tile_size=tile_size, batch_size=batch_size, tta=tta)

    return Predictor(predict, geom.channels, model)


def _load_saved_model(path: Path, tta: bool) -> Predictor:
    import tensorflow as tf

    from keras_unet.inference import check_image, dihedral

    try:
        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures["serving_default"]
    except Exception as error:  # TensorFlow raises many types for a broken SavedModel
        raise ValueError(f"--model {str(path)!r} is not a loadable SavedModel with a "
                         f"serving_default signature ({type(error).__name__}).") from None
    specs = signature.structured_input_signature[1]
    if len(specs) != 1:
        raise ValueError(f"--model {str(path)!r}: serving_default takes {sorted(specs)}; expected "
                         "one image input.")
    (name, spec), = specs.items()
    channels = spec.shape[-1] if spec.shape.rank == 4 else None

    def call(image: np.ndarray) -> np.ndarray:
        tensor = tf.cast(image, spec.dtype)
        tensor = tensor[None] if spec.shape.rank == 4 else tensor
        tensor = tensor[..., 0] if spec.shape.rank == 2 else tensor
        outputs = signature(**{name: tensor})
        result = outputs["probabilities"] if "probabilities" in outputs else next(
            iter(outputs.values()))
        result = np.asarray(result, np.float32)
        return result[0] if result.ndim == 4 else result

    def predict(image: np.ndarray) -> np.ndarray:
        if channels is None:
            expected = np.shape(image)[-1] if np.ndim(image) == 3 else 1
        image = check_image(image, channels or expected)
        if not tta:
            probabilities = call(image)
        else:
            probabilities = sum(dihedral(call(np.ascontiguousarray(dihedral(image, k))), k,
                                         inverse=True) for k in range(8)) / 8
        if probabilities.shape[:2] != image.shape[:2]:
            raise ValueError(f"--model {str(path)!r} returned {probabilities.shape[:2]} for an "
                             f"image of {image.shape[:2]}; export it with keras_unet.serving.")
        return probabilities

    return Predictor(predict, channels)


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
        raise FileNotFoundError(f"--input {str(path)!r} does not exist.")
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"--input {str(path)!r} is not an image; expected one of "
                             f"{', '.join(IMAGE_SUFFIXES)}.")
        return [path]
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"--input folder {str(path)!r} has no images "
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
        raise NotADirectoryError(f"--output {str(folder)!r} exists and is not a folder.")
    if any(image.parent.resolve() == folder.resolve() for image in images):
        raise ValueError(f"--output {str(folder)!r} is the input folder; masks would overwrite "
                         "the images there.")
    seen: dict[Path, Path] = {}
    for image, plan in zip(images, plans):
        for path in plan.values():
            resolved = path.resolve()
            if resolved in inputs:
                raise ValueError(f"output {str(path)!r} of {str(image)!r} would overwrite an "
                                 "input image; choose another --output folder.")
            if resolved in seen:
                raise ValueError(f"{str(image)!r} and {str(seen[resolved])!r} would both write "
                                 f"{str(path)!r}; rename one of them.")
            seen[resolved] = image
    existing = [path for path in seen if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{len(existing)} output file(s) exist, e.g. {str(existing[0])!r}; "
                              "pass --overwrite to replace them.")


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
    if args.min_size < 0:
        raise ValueError(f"--min-size must be >= 0 (pixels), got {args.min_size}.")
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
    from keras_unet.data.writers import write_instances
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
    if "instances" in plan or "overlay" in plan:  # before writing, so a failure leaves nothing
        labels = instance_labels(probabilities, method=args.instance_method,
                                 min_size=args.min_size)
    mask = mask_from_probabilities(probabilities)
    if plan["mask"].suffix == ".tif":
        tifffile.imwrite(plan["mask"], mask)
    else:
        Image.fromarray(mask).save(plan["mask"])
    if "probabilities" in plan:
        tifffile.imwrite(plan["probabilities"], probabilities, photometric="minisblack")
    if "instances" in plan:
        write_instances(plan["instances"], labels)
    if "overlay" in plan:
        Image.fromarray(overlay(image, labels)).save(plan["overlay"])
