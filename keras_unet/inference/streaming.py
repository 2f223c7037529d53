"""Prediction of TIFF images larger than memory, one band of tile rows at a time.

The input is memory-mapped (uncompressed TIFFs; compressed ones are read whole), its
normalisation statistics are accumulated in row chunks (:func:`image_moments`), and the same
tiling as :func:`keras_unet.predict_tiled` runs band by band, writing the mask (and optionally
the probabilities) into memory-mapped output TIFFs as rows finish. Apart from the input and
output arrays, memory stays that of one band of tiles, whatever the image area.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import keras
import numpy as np
import tifffile

from keras_unet.errors import InputError, InputNotFoundError, OutputExistsError
from keras_unet.geometry import PREDICTION_BATCH
from keras_unet.inference.engine import iter_window_rows
from keras_unet.inference.network import TileNetwork, model_geometry
from keras_unet.inference.plan import tilings
from keras_unet.inference.tiled import check_image
from keras_unet.io.atomic import refuse_existing, written_atomically
from keras_unet.io.tiff import read_tiff
from keras_unet.normalization import image_moments, normalize_image


def predict_tiff(model: keras.Model | TileNetwork, input_path: str | os.PathLike,
                 output_path: str | os.PathLike, *, tile_size=None,
                 batch_size: int = PREDICTION_BATCH, tta: bool = False,
                 probabilities_path: str | os.PathLike | None = None,
                 overwrite: bool = False) -> Path:
    """Segments a TIFF of any size without holding more than one band of tiles in memory.

    Writes the 8-bit class mask of :func:`keras_unet.inference.mask_from_probabilities` (0/255
    for two classes) to ``output_path`` and, if given, the float32 (H, W, K) probabilities to
    ``probabilities_path``. Files are written under a temporary name and renamed when complete
    (:func:`keras_unet.io.atomic.written_atomically`).
    Without augmentation the result equals :func:`keras_unet.predict_tiled` (same tiles, same
    normalisation, statistics summed in float64). With ``tta=True`` each *tile* is averaged
    over the 8 flips/rotations (rotating the whole image would need all of it in memory), which
    differs slightly from ``predict_tiled(tta=True)``.

    Args:
        model: a U-Net from :func:`keras_unet.build_unet`, or a network as for
            :func:`keras_unet.predict_tiled`.
        input_path: 2D TIFF, grey or with channels, of any integer or float dtype.
        output_path: mask TIFF to create.
        tile_size, batch_size: as for :func:`keras_unet.predict_tiled`.
        tta: average every tile over the 8 flips/rotations.
        probabilities_path: optional float32 probability TIFF to create.
        overwrite: replace existing output files instead of refusing.

    Returns:
        ``output_path`` as a :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: if the input does not exist.
        FileExistsError: if an output exists and ``overwrite`` is false, or an output is the input.
        ValueError: if the image does not fit the model.

    Example:
        >>> import tempfile
        >>> from keras_unet import build_unet
        >>> folder = tempfile.mkdtemp()
        >>> image = np.random.default_rng(0).integers(0, 4096, (40, 70), dtype="uint16")
        >>> tifffile.imwrite(os.path.join(folder, "big.tif"), image)
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> path = predict_tiff(model, os.path.join(folder, "big.tif"),
        ...                     os.path.join(folder, "mask.tif"))
        >>> mask = tifffile.imread(path)
        >>> mask.shape, mask.dtype, set(np.unique(mask)) <= {0, 255}
        ((40, 70), dtype('uint8'), True)
    """
    input_path, output_path = Path(input_path), Path(output_path)
    outputs = _checked_outputs(input_path, output_path, probabilities_path, overwrite)
    geom = model_geometry(model)
    layout = geom.layout
    image = read_tiff(input_path)
    check_image(image[:1], geom.channels, name=str(input_path))
    height, width = image.shape[:2]
    rows, cols, _ = tilings(geom, tile_size, batch_size)
    if tta and rows.tile != cols.tile and None not in geom.input_size:
        raise InputError(f"tta needs square tiles for a model of fixed input size "
                         f"{geom.input_size}.")
    mean, std = image_moments(image)
    if not np.isfinite([mean, std]).all():
        raise InputError(f"{str(input_path)!r} contains NaN or infinite pixels.")

    def read_rows(row_index: np.ndarray, col_index: np.ndarray) -> np.ndarray:
        band = np.asarray(image[row_index]).reshape(len(row_index), width, -1)[:, col_index]
        return normalize_image(band, mean, std).numpy()

    with contextlib.ExitStack() as outputs_written:
        temporary = [outputs_written.enter_context(
            written_atomically(path, overwrite=overwrite, option="output")) for path in outputs]
        # The memory maps live only in this dict: clearing it releases them before the rename.
        arrays = {"mask": tifffile.memmap(temporary[0], shape=(height, width),
                                          dtype=layout.mask_dtype, photometric="minisblack")}
        if probabilities_path:
            arrays["probabilities"] = tifffile.memmap(
                temporary[1], shape=(height, width, geom.num_classes), dtype=np.float32,
                photometric="minisblack", planarconfig="contig")
        try:
            for start, block in iter_window_rows(model, read_rows, (height, width),
                                                 (0, 0, height, width), tile_size=tile_size,
                                                 batch_size=batch_size, tta=tta):
                arrays["mask"][start:start + len(block)] = layout.mask(block)
                if "probabilities" in arrays:
                    arrays["probabilities"][start:start + len(block)] = block
            for array in arrays.values():
                array.flush()
        finally:
            arrays.clear()
    return output_path


STACK_BLOCK = 128
"""Box side of :func:`predict_tiff_stack` (128^3 voxels and their context per model pass)."""


class _EncodedMask:
    """A mask array-like that stores class indices as the layout's mask values (0/255, ...)."""

    def __init__(self, array, layout):
        self.array, self.layout = array, layout
        self.shape, self.dtype = array.shape, array.dtype

    def __setitem__(self, key, classes) -> None:
        self.array[key] = self.layout.encode(classes)


def _memmap_stack(path: Path):
    """A TIFF stack (Z, Y, X[, C]) memory-mapped where the file allows it, else read; and its
    voxel size."""
    from keras_unet.io.tiff import _tiff_spacing, read_volume

    if not _mappable(path):
        return read_volume(path)
    with tifffile.TiffFile(path) as tif:
        spacing = _tiff_spacing(tif)
    return tifffile.memmap(path, mode="r"), spacing


def _mappable(path: Path) -> bool:
    """An uncompressed single-channel Z, Y, X stack, which tifffile maps as it is."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            if len(series.shape) != 3 or series.axes[-2:] != "YX":
                return False
        tifffile.memmap(path, mode="r")
        return True
    except (ValueError, tifffile.TiffFileError, OSError, IndexError):
        return False


def predict_tiff_stack(network, input_path: str | os.PathLike, output_path: str | os.PathLike,
                       *, tile_size=None, batch_size: int = PREDICTION_BATCH, tta: bool = False,
                       probabilities_path: str | os.PathLike | None = None,
                       block_size=STACK_BLOCK, spacing=None, overwrite: bool = False) -> Path:
    """Segments a TIFF stack larger than memory with a 3D U-Net, box by box.

    The stack is memory-mapped (uncompressed Z, Y, X stacks; others are read whole), its
    statistics are accumulated in slabs of planes, and every box of ``block_size`` voxels is
    predicted with its context (:func:`keras_unet.inference.blockwise.predict_array`, equal to
    :func:`keras_unet.predict_tiled` of the whole volume) into memory-mapped ImageJ stacks: the
    mask and, if asked, the float32 probabilities (ZCYX), with the voxel size (``spacing``, else
    the input's). Files are written under a temporary name and renamed when complete; memory is
    one box and its context, whatever the volume.

    Example:
        >>> import tempfile
        >>> from keras_unet import build_unet, predict_tiled
        >>> from keras_unet.io.images import write_stack
        >>> folder = Path(tempfile.mkdtemp())
        >>> volume = np.random.default_rng(0).integers(0, 255, (12, 40, 30), dtype="uint8")
        >>> write_stack(folder / "v.tif", volume, (2.0, 0.5, 0.5))
        >>> model = build_unet((None, None, None, 1), 2, filters=2, depth=1)
        >>> path = predict_tiff_stack(model, folder / "v.tif", folder / "mask.tif",
        ...                           probabilities_path=folder / "p.tif", block_size=16)
        >>> mask = tifffile.imread(path)
        >>> mask.shape, bool((mask == predict_tiled(model, volume).argmax(-1) * 255).all())
        ((12, 40, 30), True)
    """
    from keras_unet.inference.blockwise import predict_array

    input_path, output_path = Path(input_path), Path(output_path)
    outputs = _checked_outputs(input_path, output_path, probabilities_path, overwrite)
    geom = model_geometry(network)
    if geom.ndim != 3:
        raise InputError(f"{str(input_path)!r} is a stack; predict_tiff_stack needs a 3D U-Net.")
    volume, file_spacing = _memmap_stack(input_path)
    spacing = spacing or file_spacing
    shape, layout = tuple(volume.shape[:3]), geom.layout
    with contextlib.ExitStack() as outputs_written:
        temporary = [outputs_written.enter_context(
            written_atomically(path, overwrite=overwrite, option="output")) for path in outputs]
        # The memory maps live only in this dict: clearing it releases them before the rename.
        arrays = {"mask": tifffile.memmap(temporary[0], shape=shape, dtype=layout.mask_dtype,
                                          imagej=True, **_stack_options(spacing, "ZYX"))}
        if probabilities_path:
            arrays["probabilities"] = tifffile.memmap(
                temporary[1], shape=(shape[0], geom.num_classes, *shape[1:]), dtype=np.float32,
                imagej=True, **_stack_options(spacing, "ZCYX"))
        try:
            output = (np.moveaxis(arrays["probabilities"], 1, -1) if "probabilities" in arrays
                      else None)
            predict_array(network, volume, output=output,
                          classes=_EncodedMask(arrays["mask"], layout), block_size=block_size,
                          tile_size=tile_size, batch_size=batch_size, tta=tta,
                          name=str(input_path))
            for array in arrays.values():
                array.flush()
        finally:
            arrays.clear()
    return output_path


def _checked_outputs(input_path: Path, output_path: Path, probabilities_path,
                     overwrite: bool) -> list[Path]:
    """The output files of a streamed TIFF, refused before any work when they cannot be
    written: one is the input, or exists without ``overwrite``."""
    outputs = [output_path] + ([Path(probabilities_path)] if probabilities_path else [])
    if not input_path.is_file():
        raise InputNotFoundError(f"input TIFF {str(input_path)!r} does not exist.")
    for path in outputs:
        if path.resolve() == input_path.resolve():
            raise OutputExistsError(f"output {str(path)!r} is the input image; choose another "
                                    "path.")
        refuse_existing(path, overwrite=overwrite, option="output")
    return outputs


def _stack_options(spacing, axes: str) -> dict:
    """tifffile's ImageJ options for a stack of ``axes`` with the voxel size ``spacing``."""
    if spacing is None:
        return {"metadata": {"axes": axes}}
    return {"metadata": {"axes": axes, "spacing": float(spacing[0])},
            "resolution": (1.0 / float(spacing[1]), 1.0 / float(spacing[2]))}
