"""Writes a numbered SavedModel version that TF-Serving can pick up at any moment.

TF-Serving watches ``BASE/`` and loads every sub-folder whose name is an integer. A version is
therefore written to a hidden temporary folder inside ``BASE`` (a name that is not a number, on
the same file system) and renamed to ``BASE/<version>`` only when complete
(:mod:`keras_unet.io.atomic`): the server never sees half a model. An existing version is never
replaced, not even one that appears while the export runs.
"""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import keras
import tensorflow as tf

from keras_unet.errors import FaultError, InputError, OutputExistsError
from keras_unet.inference.network import model_geometry
from keras_unet.io.atomic import written_atomically
from keras_unet.serving.graph import ServingTiling, serving_tiling
from keras_unet.serving.signatures import serving_functions
from keras_unet.serving.targets import (
    DEFAULT_MAX_IMAGE_PIXELS,
    check_export_target,
    existing_versions,
)
from keras_unet.serving.warmup import (
    WARMUP_SIZE,
    WARMUP_VOLUME_SIZE,
    warmup_logs,
    write_warmup,
)

METADATA_FILE = "assets.extra/keras_unet.json"
"""Where an export says what it is: geometry, class layout, the cell settings training chose,
in-graph normalisation, tiling."""


def export_metadata(model: keras.Model, tiling: ServingTiling, max_image_pixels: int,
                    signatures: list[str]) -> dict:
    """The JSON record :func:`export_for_serving` writes to :data:`METADATA_FILE`.

    Example:
        >>> from keras_unet import build_unet
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> record = export_metadata(model, serving_tiling(model, 64), 10**6, ["serving_default"])
        >>> record["geometry"]["class_names"], record["normalization"], record["tile_size"]
        (['background', 'cell'], 'in_graph', [64, 64])
    """
    return {
        "format": "keras_unet.saved_model",
        "format_version": 1,
        "geometry": model_geometry(model).to_json(),
        "cells": getattr(model, "arguments", {}).get("cells"),
        "normalization": "in_graph",  # images are sent as raw pixels, see keras_unet.normalization
        "tile_size": [axis.tile for axis in tiling.axes],
        "max_image_pixels": max_image_pixels,
        "signatures": signatures,
    }


def read_export_metadata(saved_model: str | os.PathLike) -> dict | None:
    """The :data:`METADATA_FILE` record of a SavedModel folder, or None for a foreign export.

    Raises:
        ValueError: if the file exists but is not a keras_unet record.

    Example:
        >>> import tempfile
        >>> read_export_metadata(tempfile.mkdtemp()) is None
        True
    """
    path = Path(saved_model) / METADATA_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{str(path)!r} is not readable JSON ({error}).") from None
    if not isinstance(record, dict) or record.get("format") != "keras_unet.saved_model":
        raise InputError(f"{str(path)!r} is not a keras_unet export record.")
    return record


def export_for_serving(model: keras.Model, export_base, *, version: int | None = None,
                       tile_size: int | tuple[int, int] | None = None,
                       max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                       warmup: bool = True) -> Path:
    """Exports a U-Net as ``export_base/<version>/``, a SavedModel TF-Serving loads as it is.

    The graph takes raw images of any size and returns masks of the same size: normalisation,
    mirror padding and overlap-tiling run inside it (:mod:`keras_unet.serving.graph`), so its
    result equals :func:`keras_unet.predict_tiled` with the same ``tile_size``. Signatures
    ``serving_default`` (float32 pixels) and ``encoded`` (PNG/JPEG bytes) are described in
    :mod:`keras_unet.serving.signatures`; only standard TensorFlow ops are used. A 3D U-Net's
    export tiles volumes in its graph the same way (``serving_default`` only). The export
    records what it is (geometry, class names, in-graph normalisation) in
    :data:`METADATA_FILE`, read back by :func:`read_export_metadata`.

    Args:
        model: a U-Net from :func:`keras_unet.build_unet` (trained).
        export_base: the folder TF-Serving watches (created if missing).
        version: the version number; by default one more than the largest present.
        tile_size: model input tile, as for ``predict_tiled``; by default the model's fixed input
            size, else the tile whose output is 512 px per side.
        max_image_pixels: largest height * width per image; larger requests are refused with
            InvalidArgument (default :data:`DEFAULT_MAX_IMAGE_PIXELS`, 64 Mpx).
        warmup: write ``assets.extra/tf_serving_warmup_requests`` (one 512 x 512 request per
            signature, smaller if ``max_image_pixels`` is) for TF-Serving to replay at load.

    Returns:
        The path of the new version folder.

    Raises:
        ValueError: if the model is not a U-Net that can be tiled, or an argument is invalid.
        NotADirectoryError: if ``export_base`` is a file.
        FileExistsError: if ``version`` already exists.

    Example:
        >>> import tempfile
        >>> import tensorflow as tf
        >>> from keras_unet import build_unet
        >>> base = Path(tempfile.mkdtemp())
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> path = export_for_serving(model, base, warmup=False)
        >>> path.name, existing_versions(base)
        ('1', [1])
        >>> serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        >>> serve(image=tf.zeros((1, 30, 41, 1)))["labels"].shape
        TensorShape([1, 30, 41])
    """
    export_base = Path(export_base)
    check_export_target(export_base, version, max_image_pixels)
    tiling = serving_tiling(model, tile_size)
    functions = serving_functions(model, tiling, max_image_pixels)
    export_base.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = max(existing_versions(export_base), default=0) + 1
    final = export_base / str(version)
    # A hidden name that is not a number, so TF-Serving never loads a version being written.
    try:
        with written_atomically(final, folder=True, option="version") as temporary:
            _write_version(temporary, final, model, tiling, functions, max_image_pixels,
                           warmup_name=export_base.resolve().name if warmup else None)
    except OutputExistsError:  # checked free above: another export took the number meanwhile
        raise OutputExistsError(
            f"version {version} appeared in {str(export_base)!r} while this export was writing "
            f"it (another export?); it was left as it is. Run the export again: it writes "
            f"version {max(existing_versions(export_base), default=0) + 1}.") from None
    return final


FAULT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO)
"""The operating-system errors a TensorFlow write reports inside its long message."""


def _write_version(temporary: Path, final: Path, model, tiling, functions: dict,
                   max_image_pixels: int, warmup_name: str | None) -> None:
    """Writes the SavedModel, its metadata and (for model ``warmup_name``) its warmup requests
    into ``temporary``, which becomes ``final``."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (function, input_signature) in functions.items():
        archive.add_endpoint(name, function, input_signature=input_signature)
    try:
        archive.write_out(str(temporary), verbose=False)
    except tf.errors.OpError as error:  # TensorFlow's own errors for a full disk and kin
        message = " ".join(error.message.split())
        reason = next((os.strerror(code) for code in FAULT_ERRNOS
                       if os.strerror(code) in message), message[-200:])  # its end says why
        raise FaultError(f"version {str(final)!r} could not be written: {reason}.") from None
    (temporary / METADATA_FILE).parent.mkdir(exist_ok=True)
    (temporary / METADATA_FILE).write_text(json.dumps(
        export_metadata(model, tiling, max_image_pixels, list(functions)), indent=2))
    if warmup_name is not None:
        ndim = len(tiling.axes)
        size = min(WARMUP_SIZE if ndim == 2 else WARMUP_VOLUME_SIZE,  # must pass the limit
                   math.isqrt(max_image_pixels) if ndim == 2 else
                   math.floor(max_image_pixels ** (1 / 3) + 1e-9))
        write_warmup(temporary, warmup_logs(warmup_name, list(functions), tiling.channels, size,
                                            ndim))
