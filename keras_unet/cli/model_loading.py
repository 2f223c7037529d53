"""Loading the ``--model`` of ``unet predict``, ``unet evaluate`` and ``unet export``.

Every kind of model is predicted the same way: a ``.keras`` U-Net is normalised and tiled by
:func:`keras_unet.predict_tiled`; a SavedModel exported by keras_unet (it says so in
``assets.extra/keras_unet.json``) normalises and tiles in its graph, so it gets raw pixels and
gives the same masks. A foreign SavedModel gets raw pixels too, and the command says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_unet.errors import InputError, InputNotFoundError

FOREIGN_SAVED_MODEL = ("{path!r} was not exported by keras_unet (it has no "
                       "assets.extra/keras_unet.json), so its serving_default is assumed to take "
                       "the raw pixels of a whole image and return class probabilities of the "
                       "same size, as a keras_unet export does.")
"""What ``unet`` says it assumes about a SavedModel it did not write."""


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
        raise InputError(f"--batch-size must be >= 1, got {batch_size}.")
    if not path.exists():
        raise InputNotFoundError(f"--model {str(path)!r} does not exist.")
    if path.is_dir():
        if tile_size is not None:
            raise InputError("--tile-size applies to .keras models; a SavedModel tiles itself.")
        if not (path / "saved_model.pb").is_file():
            raise InputError(f"--model {str(path)!r} is a folder without saved_model.pb; expected "
                             "a .keras file or a SavedModel folder.")
        return _load_saved_model(path, tta)
    import keras

    import keras_unet.layers  # noqa: F401  (registers the layers a saved U-Net names)
    import keras_unet.model  # noqa: F401  (registers the UNet model class)
    from keras_unet.inference import model_geometry, predict_tiled

    if not zipfile.is_zipfile(path):
        raise InputError(f"--model {str(path)!r} is not a Keras model: a .keras file is a zip "
                         "archive and this file is not one; expected a .keras file or a "
                         "SavedModel folder.")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a file that is not a model
        reason = " ".join(str(error).split()) or "no message"
        raise InputError(f"--model {str(path)!r} is not a loadable Keras model: "
                         f"{type(error).__name__}: {reason}") from None
    try:
        geom = model_geometry(model)
    except ValueError as error:
        raise InputError(f"--model {str(path)!r}: {error}") from None

    def predict(image: np.ndarray) -> np.ndarray:
        return predict_tiled(model, image, tile_size=tile_size, batch_size=batch_size, tta=tta)

    return Predictor(predict, geom.channels, model)


def _load_saved_model(path: Path, tta: bool) -> Predictor:
    import tensorflow as tf

    from keras_unet.inference import check_image, dihedral
    from keras_unet.serving import read_export_metadata

    record = read_export_metadata(path)
    if record is None:
        print(f"unet: note: --model {FOREIGN_SAVED_MODEL.format(path=str(path))}",
              file=sys.stderr)
    try:
        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures["serving_default"]
    except Exception as error:  # TensorFlow raises many types for a broken SavedModel
        raise InputError(f"--model {str(path)!r} is not a loadable SavedModel with a "
                         f"serving_default signature ({type(error).__name__}).") from None
    specs = signature.structured_input_signature[1]
    if len(specs) != 1:
        raise InputError(f"--model {str(path)!r}: serving_default takes {sorted(specs)}; expected "
                         "one image input.")
    (name, spec), = specs.items()
    channels = spec.shape[-1] if spec.shape.rank == 4 else None
    if record is not None:
        channels = record["geometry"]["channels"]

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
            raise InputError(f"--model {str(path)!r} returned {probabilities.shape[:2]} for an "
                             f"image of {image.shape[:2]}; export it with keras_unet.serving.")
        return probabilities

    return Predictor(predict, channels)
