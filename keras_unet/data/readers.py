"""Readers for the common layouts of labelled microscopy data, behind :func:`load_samples`.

Three layouts are recognised:

* a folder with ``images/`` (PNG, TIFF, JPEG or BMP) and ``masks/`` (PNG or TIFF: lossless),
  image and mask matched by file stem;
* ISBI 2012 style multi-page TIFF pairs, ``<name>-volume.tif`` with ``<name>-labels.tif``
  (membranes 0, cells 255), one sample per page;
* the Cell Tracking Challenge layout, ``01/t000.tif`` with ``01_GT/SEG/man_seg000.tif`` (several
  sequences ``01``, ``02``, ...); only frames that have a SEG annotation become samples.

Labels come back as int32, read in one of two modes (:data:`keras_unet.class_layout.LABEL_MODES`).
``"instances"``: 0 background, one id per cell; binary masks (one non-zero value, e.g. 0/1 or
0/255) are split into cells by 4-connected components, label images that already hold several
ids are kept as they are. ``"semantic"``: the mask's values are class indices 0..K-1, kept.
Binary masks need no mode; a mask with several non-zero values is refused unless the mode is
given (ids or classes cannot be told apart), except in the Cell Tracking Challenge layout, whose
SEG annotations are instance ids by definition. Pixels holding ``ignore_label`` become
:data:`keras_unet.class_layout.UNLABELLED` in either mode. Anything wrong with the files is
reported as ``ValueError`` (or ``FileNotFoundError``) naming the file(s), before any training.

Volumes: in ``images/`` + ``masks/``, a mask that is a TIFF stack (z, y, x) or a zarr /
OME-Zarr store makes its pair a volume sample (binary masks are split by 6-connected
components), with the voxel size the files record (ImageJ ``spacing`` and resolution, OME
``PhysicalSize``, OME-Zarr scales) unless ``spacing`` is given. Cell Tracking Challenge 3D
datasets give a volume per frame with a 3D ``man_seg`` annotation; with ``ndim=3`` the slice
annotations (``man_seg_000_012.tif``) of a frame make one partially labelled volume (the other
planes unlabelled, as the 3D U-Net was trained), and an ISBI pair one volume.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import scipy.ndimage
import tifffile

from keras_unet.class_layout import LABEL_MODES, UNLABELLED, ClassLayout
from keras_unet.data.samples import Sample
from keras_unet.errors import DamagedFileError, InputError, InputNotFoundError
from keras_unet.io.paths import IMAGE_SUFFIXES, MASK_SUFFIXES, TIFF_SUFFIXES
from keras_unet.io.tiff import check_pixels, is_stack, max_image_pixels, read_tiff, read_volume

LAYOUTS = ("a folder with images/ (PNG, TIFF, JPEG or BMP) and masks/ (PNG or TIFF), matched "
           "by file stem; "
           "an ISBI 2012 pair train-volume.tif + train-labels.tif; "
           "a Cell Tracking Challenge folder (01/t000.tif with 01_GT/SEG/man_seg000.tif)")

_ISBI_FILE = re.compile(r"^(?P<name>.+)-(?P<kind>volume|labels)\.tiff?$", re.IGNORECASE)
_CTC_FRAME = re.compile(r"^t(?P<frame>\d+)\.tiff?$", re.IGNORECASE)
_CTC_SEG = re.compile(r"^man_seg_?(?P<frame>\d+)(?:_(?P<slice>\d+))?\.tiff?$", re.IGNORECASE)


def load_samples(path: str | os.PathLike, labels: str | None = None, *,
                 ignore_label: int | None = None,
                 num_classes: int | None = None, ndim: int | None = None,
                 spacing=None) -> list[Sample]:
    """Reads a labelled dataset, detecting its layout (see the module docstring).

    Args:
        path: the dataset folder, or an ISBI ``*-volume.tif`` / ``*-labels.tif`` file.
        labels: ``"instances"``, ``"semantic"`` or ``None`` (binary masks are instances; a mask
            with several non-zero values is an error asking for the mode).
        ignore_label: mask value of unlabelled pixels (partial annotations), or ``None``.
        num_classes: with ``labels="semantic"``, the classes K: a larger id, or a mask dtype
            that cannot hold K - 1, is an error naming the file.
        ndim: 3 reads Cell Tracking Challenge slice annotations and ISBI pairs as volumes;
            ``None`` (or 2): as the files are (stacks of masks are volumes all the same).
        spacing: the voxel size ``(z, y, x)`` of volumes, instead of what the files say.

    Returns:
        One :class:`Sample` per labelled image (per page for ISBI stacks, per annotated frame or
        slice for the Cell Tracking Challenge), in a stable sorted order, labels int32.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for an unrecognised layout, an empty folder, an image without a mask or the
            reverse, an unreadable file, image and mask of different sizes, a label image
            that does not hold non-negative integers, or an ambiguous mask without ``labels``.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> (folder / "images").mkdir(); (folder / "masks").mkdir()
        >>> Image.fromarray(np.zeros((4, 6), "uint8")).save(folder / "images" / "a.png")
        >>> mask = np.zeros((4, 6), "uint8"); mask[:, :2] = mask[:, 4:] = 255  # two cells
        >>> Image.fromarray(mask).save(folder / "masks" / "a.png")
        >>> [sample] = load_samples(folder)
        >>> sample.labels.dtype, sample.labels[0].tolist()
        (dtype('int32'), [1, 1, 0, 0, 2, 2])
        >>> mask[:, 4:] = 2; Image.fromarray(mask).save(folder / "masks" / "a.png")
        >>> load_samples(folder, "semantic", ignore_label=255)[0].labels[0].tolist()
        [-1, -1, 0, 0, 2, 2]
    """
    path = Path(path)
    _check_label_options(labels, ignore_label, num_classes)
    if spacing is not None:
        from keras_unet.geometry import check_spacing

        spacing = check_spacing(spacing, "--spacing")
        if len(spacing) != 3:
            raise InputError(f"--spacing must be three numbers z,y,x, got {spacing!r}.")
    read = dict(mode=labels, ignore_label=ignore_label, num_classes=num_classes)
    if not path.exists():
        raise InputNotFoundError(f"dataset {str(path)!r} does not exist.")
    if path.is_dir() and not any(path.iterdir()):
        raise InputError(f"dataset folder {str(path)!r} is empty; expected {LAYOUTS}.")
    if path.is_file():
        match = _ISBI_FILE.match(path.name)
        if match is None:
            raise InputError(f"dataset {str(path)!r} is a file; expected a folder ({LAYOUTS}) "
                             "or an ISBI '<name>-volume.tif' / '<name>-labels.tif' file.")
        isbi = _isbi_pairs(path.parent, only=match["name"])
    elif (path / "images").is_dir() or (path / "masks").is_dir():
        return _read_image_folders(path, read, spacing)
    else:
        isbi = _isbi_pairs(path)
    if isbi is not None:
        if ndim == 3:
            return [_read_isbi_volume(volume, masks, read, spacing) for volume, masks in isbi]
        return [sample for volume, masks in isbi for sample in _read_isbi_pair(volume, masks, read)]
    ctc = _ctc_frames(path)
    if ctc is not None:  # SEG annotations are instance ids by definition
        read["mode"] = labels or "instances"
        return _read_ctc(ctc, read, ndim, spacing)
    raise InputError(f"dataset folder {str(path)!r} has no recognised layout; expected {LAYOUTS}.")


def _check_label_options(labels, ignore_label, num_classes) -> None:
    if labels is not None and labels not in LABEL_MODES:
        raise InputError(f"labels must be one of {', '.join(LABEL_MODES)} (or None for binary "
                         f"masks), got {labels!r}.")
    if ignore_label is not None and (isinstance(ignore_label, bool)
                                     or not isinstance(ignore_label, (int, np.integer))
                                     or ignore_label < 0):
        raise InputError(f"ignore_label must be a non-negative integer mask value, got "
                         f"{ignore_label!r}.")
    if num_classes is not None and (isinstance(num_classes, bool)
                                    or not isinstance(num_classes, int) or num_classes < 2):
        raise InputError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    if labels == "semantic" and ignore_label is not None and num_classes is not None \
            and ignore_label < num_classes:
        raise InputError(f"ignore_label {ignore_label} is also a class id (0..{num_classes - 1}); "
                         "choose a value outside the classes, e.g. 255.")
    if labels == "instances" and ignore_label == 0:
        raise InputError("ignore_label 0 is the background of instance masks; choose another "
                         "value, e.g. 255 for masks whose cells are ids below it.")


def _integer_mask(mask: np.ndarray, path: str, volume: bool = False) -> np.ndarray:
    """A label image checked to be 2D non-negative integers (equal colour channels collapsed);
    a volume's (``volume=True``) to be 3D."""
    mask = np.asarray(mask)
    if volume:
        if mask.ndim != 3:
            raise InputError(f"label volume {path!r} has shape {mask.shape}; expected a 3D "
                             "(z, y, x) stack.")
    elif mask.ndim == 3 and mask.shape[-1] in (1, 3, 4):
        colour = mask[..., :3] if mask.shape[-1] == 4 else mask
        if not (colour == colour[..., :1]).all():
            raise InputError(f"label image {path!r} has {mask.shape[-1]} differing channels; "
                             "expected a single-channel label image.")
        mask = colour[..., 0]
    if mask.ndim != 2 and not volume:
        raise InputError(f"label image {path!r} has shape {mask.shape}; expected a 2D image.")
    if mask.dtype == bool:
        mask = mask.view(np.uint8)
    if np.issubdtype(mask.dtype, np.floating):
        fractional = mask[~np.isfinite(mask) | (mask != np.round(mask))]
        if fractional.size:
            raise InputError(f"label image {path!r} is not integer: dtype {mask.dtype} with "
                             f"fractional values such as {fractional[0]}.")
    elif not np.issubdtype(mask.dtype, np.integer):
        raise InputError(f"label image {path!r} has dtype {mask.dtype}; expected integer labels.")
    if mask.size and mask.min() < 0:
        raise InputError(f"label image {path!r} has negative values; expected 0 (background) "
                         "and positive ids.")
    if mask.size and mask.max() > np.iinfo(np.int32).max:
        raise InputError(f"label image {path!r} has ids up to {mask.max()}, beyond int32.")
    return mask


def instance_labels(mask: np.ndarray, path: str, *,
                    ignore_label: int | None = None, volume: bool = False) -> np.ndarray:
    """A label image as int32 instances: binary masks split by connected components.

    A mask with at most one non-zero value (0/1, 0/255, ...) is a binary cell mask and its
    4-connected components become the cells 1..N; a mask with several non-zero values already
    holds instance ids and is kept. A colour mask whose channels are all equal is read as one
    channel. Whole-number floats are accepted. Pixels equal to ``ignore_label`` are left out of
    both decisions and become :data:`~keras_unet.class_layout.UNLABELLED`.

    Args:
        mask: ``(H, W)`` (or ``(H, W, C)`` with equal channels) label image.
        path: where the mask came from, for error messages.
        ignore_label: the mask value of unlabelled pixels, or ``None``.

    Raises:
        ValueError: for fractional, negative or non-numeric values, differing channels, or a
            shape that is not a 2D image.

    Example:
        >>> instance_labels(np.array([[255, 0, 255]], "uint8"), "m.png").tolist()
        [[1, 0, 2]]
        >>> instance_labels(np.array([[3, 0, 7]], "uint16"), "m.png").tolist()
        [[3, 0, 7]]
        >>> instance_labels(np.array([[1, 1, 9, 0, 1]], "uint8"), "m.png", ignore_label=9).tolist()
        [[1, 1, -1, 0, 2]]
        >>> instance_labels(np.array([[0.5, 0.0]]), "m.tif")
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: label image 'm.tif' is not integer: dtype float64 with ...
    """
    mask = _integer_mask(mask, path, volume)
    unlabelled = _unlabelled(mask, ignore_label)
    cells = mask[(mask > 0) & ~unlabelled]
    if cells.size == 0 or (cells == cells[0]).all():
        result = scipy.ndimage.label((mask > 0) & ~unlabelled)[0].astype(np.int32)
    else:
        result = mask.astype(np.int32)
    result[unlabelled] = UNLABELLED
    return result


def semantic_labels(mask: np.ndarray, path: str, *, num_classes: int | None = None,
                    ignore_label: int | None = None, volume: bool = False) -> np.ndarray:
    """A label image of class indices ``0..K-1`` as int32, checked against ``num_classes``.

    Pixels equal to ``ignore_label`` become :data:`~keras_unet.class_layout.UNLABELLED`. For 2
    or 3 classes, the masks ``unet predict`` writes (0/255, 0/127/254:
    :meth:`~keras_unet.class_layout.ClassLayout.encode`) read back as their class indices.

    Raises:
        ValueError: naming ``path``, for what :func:`instance_labels` refuses, a class id
            ``>= num_classes``, or a mask dtype whose range cannot hold ``num_classes - 1``.

    Example:
        >>> semantic_labels(np.array([[0, 3, 255]], "uint8"), "m.png", num_classes=4,
        ...                 ignore_label=255).tolist()
        [[0, 3, -1]]
        >>> semantic_labels(np.array([[0, 127, 254]], "uint8"), "m.png", num_classes=3).tolist()
        [[0, 1, 2]]
        >>> semantic_labels(np.array([[0, 4]], "uint8"), "m.png", num_classes=4)
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: mask 'm.png' holds class id 4 but num_classes is 4 (ids ...
    """
    raw = np.asarray(mask)
    mask = _integer_mask(raw, path, volume)
    unlabelled = _unlabelled(mask, ignore_label)
    if num_classes is not None:
        kind = raw.dtype
        if kind.kind == "b" or (np.issubdtype(kind, np.integer)
                                and np.iinfo(kind).max < num_classes - 1):
            top = 1 if kind.kind == "b" else np.iinfo(kind).max
            raise InputError(f"mask {path!r} is {kind}, which holds ids up to {top}, but "
                             f"num_classes is {num_classes}; save it with a wider dtype "
                             "(uint16 TIFF or 16-bit PNG).")
        labelled = mask[~unlabelled]
        layout = ClassLayout.of(num_classes, "semantic")
        if (labelled.size and labelled.max() >= num_classes
                and not np.any(labelled % layout.mask_scale)):  # our own 0/255, 0/127/254
            mask = np.where(unlabelled, mask, layout.decode(mask))
            labelled = mask[~unlabelled]
        if labelled.size and labelled.max() >= num_classes:
            raise InputError(f"mask {path!r} holds class id {labelled.max()} but num_classes is "
                             f"{num_classes} (ids 0..{num_classes - 1}); mark that value "
                             "unlabelled (ignore_label) or use more classes.")
    result = mask.astype(np.int32)
    result[unlabelled] = UNLABELLED
    return result


def _unlabelled(mask: np.ndarray, ignore_label: int | None) -> np.ndarray:
    if ignore_label is None:
        return np.zeros(mask.shape, bool)
    return mask == ignore_label


def mask_labels(mask: np.ndarray, path: str, mode: str | None = None, *,
                ignore_label: int | None = None, num_classes: int | None = None,
                volume: bool = False) -> np.ndarray:
    """A mask read in label ``mode`` (None: binary masks as instances, others refused).

    Raises:
        ValueError: naming ``path``, for an ambiguous mask (several non-zero values) without a
            mode, or for what :func:`instance_labels` / :func:`semantic_labels` refuse.

    Example:
        >>> mask_labels(np.array([[0, 1, 1]]), "m.png").tolist()
        [[0, 1, 1]]
        >>> mask_labels(np.array([[0, 1, 2]]), "m.png")
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: mask 'm.png' holds 2 different non-zero values (1, 2): ...
    """
    if mode == "semantic":
        return semantic_labels(mask, path, num_classes=num_classes, ignore_label=ignore_label,
                               volume=volume)
    if mode is None:
        checked = _integer_mask(mask, path, volume)
        values = np.unique(checked[~_unlabelled(checked, ignore_label)])
        values = values[values != 0]
        if values.size > 1:
            shown = ", ".join(str(v) for v in values[:5]) + (", ..." if values.size > 5 else "")
            raise InputError(f"mask {path!r} holds {values.size} different non-zero values "
                             f"({shown}): instance ids or class indices? Pass "
                             "labels='instances' or 'semantic' (unet train --labels).")
    return instance_labels(mask, path, ignore_label=ignore_label, volume=volume)


def _sample(image: np.ndarray, mask: np.ndarray, image_path: str, mask_path: str,
            read: dict) -> Sample:
    image = np.asarray(image)
    if image.ndim not in (2, 3) or not (np.issubdtype(image.dtype, np.number)
                                        or image.dtype == bool):
        raise InputError(f"image {image_path!r} has shape {image.shape} and dtype {image.dtype}; "
                         "expected a 2D grey or multi-channel image of real numbers.")
    if np.iscomplexobj(image):
        raise InputError(f"image {image_path!r} is complex-valued; expected real intensities.")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise InputError(f"image {image_path!r} holds NaN or infinite values.")
    labels = mask_labels(mask, mask_path, **read)
    if image.shape[:2] != labels.shape:
        raise InputError(f"image {image_path!r} is {image.shape[0]}x{image.shape[1]} but its "
                         f"mask {mask_path!r} is {labels.shape[0]}x{labels.shape[1]}.")
    return Sample(image, labels, image_path)


IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+",
                    b"\xff\xd8\xff", b"BM")
"""How PNG, TIFF (and BigTIFF), JPEG and BMP files begin."""


def _starts_as_an_image(path: Path) -> bool:
    """Whether a file begins as an image of a format we read: if it then cannot be decoded, it
    was damaged (truncated, corrupt), not a wrong file."""
    try:
        with open(path, "rb") as file:
            return file.read(8).startswith(IMAGE_SIGNATURES)
    except OSError:
        return False


def read_image(path: str | os.PathLike, *, labels: bool = False) -> np.ndarray:
    """One image file as (H, W) or (H, W, C): TIFF with tifffile, other formats with Pillow.

    TIFFs stay memory-mapped where the file allows it (:func:`keras_unet.io.tiff.read_tiff`;
    channel-first files become channels-last). For an image, palette and alpha are dropped (RGB
    or grey); for ``labels=True`` a palette image keeps its indices, which are the labels.

    Raises:
        ValueError: naming the file, if it cannot be read as an image.
        keras_unet.errors.DamagedFileError: if it begins as an image but cannot be decoded.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "a.png"
        >>> Image.fromarray(np.zeros((3, 4, 4), "uint8")).save(path)  # RGBA
        >>> read_image(path).shape
        (3, 4, 3)
    """
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            return read_tiff(path)
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = max_image_pixels()  # Pillow's own bomb check agrees with ours
        with warnings.catch_warnings():  # check_pixels says it in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)  # reads the header only
        with opened as image:
            check_pixels(path, image.height, image.width)
            if not labels and image.mode in ("P", "PA", "RGBA", "LA", "CMYK"):
                image = image.convert("L" if image.mode == "LA" else "RGB")
            return np.asarray(image)
    except ValueError as error:
        if str(path) in str(error):  # already a message naming the file
            raise
        raise InputError(f"cannot read {str(path)!r} ({error}).") from None
    except (NameError, ImportError, AssertionError):  # a bug of ours keeps its traceback
        raise
    except Exception as error:  # Pillow and tifffile raise many types for a broken file
        if type(error).__name__ == "DecompressionBombError":  # over twice our limit
            raise InputError(f"{str(path)!r} claims more pixels than the {max_image_pixels()} "
                             "that are read into memory (UNET_MAX_IMAGE_PIXELS): "
                             f"{error}") from None
        if _starts_as_an_image(path):
            raise DamagedFileError(f"{str(path)!r} is damaged (truncated or corrupt: "
                                   f"{type(error).__name__}: {error}); copy it again.") from None
        raise InputError(f"cannot read {str(path)!r} as an image ({type(error).__name__}: "
                         f"{error}).") from None


def _read_file(path: Path, *, labels: bool) -> np.ndarray:
    """One file of a sample as a writable in-memory copy (no mapped TIFF stays open)."""
    return np.array(read_image(path, labels=labels))


def _volume_sample(image: np.ndarray, mask: np.ndarray, image_path: str, mask_path: str,
                   read: dict, spacing) -> Sample:
    """A volume and its label volume as a checked sample (``mask`` may already be labels)."""
    image = np.asarray(image)
    if image.ndim not in (3, 4) or not (np.issubdtype(image.dtype, np.number)
                                        or image.dtype == bool) or np.iscomplexobj(image):
        raise InputError(f"image {image_path!r} has shape {image.shape} and dtype {image.dtype}; "
                         "expected a (z, y, x) stack of real numbers, optionally with channels.")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise InputError(f"image {image_path!r} holds NaN or infinite values.")
    labels = mask if read is None else mask_labels(mask, mask_path, **read, volume=True)
    if image.shape[:3] != labels.shape:
        raise InputError(f"image {image_path!r} has {image.shape[0]} planes of "
                         f"{image.shape[1]}x{image.shape[2]} but its mask {mask_path!r} has "
                         f"{labels.shape[0]} planes of {labels.shape[1]}x{labels.shape[2]}.")
    return Sample(image, labels, image_path, None if spacing is None else tuple(spacing))


def _read_stack(path: Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """A volume file (TIFF stack or zarr / OME-Zarr store) and the voxel size it records."""
    from keras_unet.io.zarr_images import is_zarr_path

    if is_zarr_path(path):
        return _read_zarr_volume(path)
    return read_volume(path)


def _read_zarr_volume(path: Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """A zarr array ``(z, y, x[, c])`` or an OME-Zarr image's level 0 as ``(z, y, x[, c])``
    (a time axis of one point dropped) and its voxel size from the OME scales."""
    import zarr

    from keras_unet.io.zarr_images import open_zarr_image

    try:
        plain = zarr.open_array(str(path), mode="r")
    except Exception:  # not a plain array: an OME-Zarr group
        plain = None
    if plain is not None:
        if plain.ndim not in (3, 4):
            raise InputError(f"zarr array {str(path)!r} has shape {plain.shape}; expected a "
                             "volume (z, y, x) or (z, y, x, c).")
        return np.asarray(plain[...]), None
    image = open_zarr_image(path, name="volume")
    axes = list(image.axes)
    data = np.asarray(image.array[...])
    if "z" not in axes:
        raise InputError(f"OME-Zarr {str(path)!r} has axes {axes}; a volume needs a z axis.")
    for axis in [a for a in axes if a not in ("z", "y", "x", "c")]:
        if data.shape[axes.index(axis)] != 1:
            raise InputError(f"OME-Zarr {str(path)!r} has {data.shape[axes.index(axis)]} points "
                             f"along {axis!r}; one volume per store, please.")
        data = np.take(data, 0, axis=axes.index(axis))
        axes.remove(axis)
    order = [axes.index(a) for a in ("z", "y", "x", "c") if a in axes]
    scales = _ome_scales(path, image.axes)
    spacing = None if scales is None else tuple(scales[a] for a in ("z", "y", "x"))
    return np.transpose(data, order), spacing


def _ome_scales(path: Path, axes) -> dict[str, float] | None:
    """Level 0's scale of each axis in an OME-Zarr store's multiscales metadata, if any."""
    import zarr

    try:
        attributes = dict(zarr.open_group(str(path), mode="r").attrs)
        multiscales = attributes.get("ome", attributes).get("multiscales")
        transforms = multiscales[0]["datasets"][0]["coordinateTransformations"]
        scale = next(t["scale"] for t in transforms if t.get("type") == "scale")
    except (KeyError, IndexError, TypeError, StopIteration, ValueError):
        return None
    if len(scale) != len(axes) or not all(float(v) > 0 for v in scale):
        return None
    return {axis: float(v) for axis, v in zip(axes, scale)}


def _read_pages(path: Path) -> np.ndarray:
    """A multi-page TIFF as a (pages, H, W) array."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            pages, axes = series.asarray(), series.axes
    except Exception as error:  # tifffile raises many types for a broken file
        raise InputError(f"cannot read {str(path)!r} as a TIFF ({type(error).__name__}: "
                         f"{error}).") from None
    if pages.ndim == 2:
        return pages[None]
    if pages.ndim != 3 or not axes.endswith("YX"):
        raise InputError(f"{str(path)!r} has axes {axes!r} and shape {pages.shape}; expected a "
                         "stack of 2D grey pages.")
    return pages


def _stem(path: Path) -> str:
    """A file's name without its suffix; a zarr store's without ``.zarr`` and ``.ome``."""
    name = path.name
    for suffix in (".ome.zarr", ".zarr"):
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return path.stem


def _image_files(folder: Path, suffixes: tuple[str, ...], kinds: str) -> dict[str, Path]:
    """The files of ``suffixes`` (``kinds`` in messages) and zarr stores of volumes in a folder,
    by stem, refusing other files and repeated stems."""
    from keras_unet.io.zarr_images import is_zarr_path

    files = sorted(p for p in folder.iterdir() if not p.name.startswith(".")
                   and (p.is_file() or is_zarr_path(p)))
    unsupported = [p.name for p in files if p.suffix.lower() not in suffixes
                   and not is_zarr_path(p)]
    if unsupported:
        raise InputError(f"{str(folder)!r} holds files that are not {kinds}: "
                         f"{_listing(unsupported)}.")
    by_stem: dict[str, Path] = {}
    for file in files:
        if _stem(file) in by_stem:
            raise InputError(f"{str(by_stem[_stem(file)])!r} and {str(file)!r} have the same "
                             "stem; images and masks are matched by stem, keep only one.")
        by_stem[_stem(file)] = file
    return by_stem


def _listing(names: list[str], shown: int = 5) -> str:
    text = ", ".join(repr(name) for name in names[:shown])
    return text + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _read_image_folders(root: Path, read: dict, spacing=None) -> list[Sample]:
    folders = {name: root / name for name in ("images", "masks")}
    for name, folder in folders.items():
        if not folder.is_dir():
            raise InputError(f"dataset {str(root)!r} has no {name}/ folder; the images/ + "
                             "masks/ layout needs both.")
    images = _image_files(folders["images"], IMAGE_SUFFIXES, "PNG, TIFF, JPEG or BMP images")
    masks = _image_files(folders["masks"], MASK_SUFFIXES, "PNG or TIFF masks (lossless)")
    if not images:
        raise InputError(f"{str(folders['images'])!r} has no images ({', '.join(IMAGE_SUFFIXES)}).")
    without_mask = sorted(images.keys() - masks.keys())
    without_image = sorted(masks.keys() - images.keys())
    if without_mask or without_image:
        problems = []
        if without_mask:
            problems.append(f"images without a mask in {str(folders['masks'])!r}: "
                            f"{_listing([images[stem].name for stem in without_mask])}")
        if without_image:
            problems.append(f"masks without an image in {str(folders['images'])!r}: "
                            f"{_listing([masks[stem].name for stem in without_image])}")
        raise InputError("; ".join(problems) + " (matched by file stem).")
    return [_read_volume_pair(images[stem], masks[stem], read, spacing)
            if _is_volume(masks[stem]) or _is_volume(images[stem]) else
            _sample(_read_file(images[stem], labels=False), _read_file(masks[stem], labels=True),
                    str(images[stem]), str(masks[stem]), read) for stem in sorted(images)]


def _is_volume(path: Path) -> bool:
    """Whether a file of images/ or masks/ is a volume: a TIFF stack or a zarr store."""
    from keras_unet.io.zarr_images import is_zarr_path

    return is_zarr_path(path) or path.suffix.lower() in TIFF_SUFFIXES and is_stack(path)


def _read_volume_pair(image_path: Path, mask_path: Path, read: dict, spacing) -> Sample:
    """An image volume and its mask volume, with the voxel size given, else the files'."""
    image, image_spacing = _read_stack(image_path)
    if not _is_volume(mask_path):
        raise InputError(f"image {str(image_path)!r} is a volume but its mask {str(mask_path)!r} "
                         "is a 2D image; a volume's mask is a stack of the same planes.")
    mask, mask_spacing = _read_stack(mask_path)
    return _volume_sample(image, mask, str(image_path), str(mask_path), read,
                          spacing or image_spacing or mask_spacing)


def _isbi_files(folder: Path) -> dict[str, dict[str, Path]]:
    """ISBI-named files of a folder: {name: {"volume": path, "labels": path}} (either may lack)."""
    files: dict[str, dict[str, Path]] = {}
    for file in sorted(folder.iterdir()):
        if (match := _ISBI_FILE.match(file.name)) and file.is_file():
            files.setdefault(match["name"], {})[match["kind"].lower()] = file
    return files


def _isbi_pairs(folder: Path, only: str | None = None) -> list[tuple[Path, Path]] | None:
    """The (volume, labels) pairs of a folder (or of the one name ``only``), None if it has none.

    A volume without labels (ISBI's unlabelled test-volume.tif) is not a sample and is skipped
    when the folder has at least one labelled pair; labels without their volume are an error.
    """
    files = _isbi_files(folder)
    if only is not None:
        files = {only: files[only]}
    if not files:
        return None
    for name, kinds in files.items():
        if "volume" not in kinds:
            raise InputError(f"ISBI labels {str(kinds['labels'])!r} have no {name}-volume.tif "
                             f"beside them in {str(folder)!r}.")
    pairs = [(kinds["volume"], kinds["labels"]) for kinds in files.values() if "labels" in kinds]
    if not pairs:
        volumes = [kinds["volume"].name for kinds in files.values()]
        raise InputError(f"ISBI volume(s) {_listing(volumes)} in {str(folder)!r} have no "
                         "<name>-labels.tif beside them.")
    return pairs


def _read_isbi_pair(volume_path: Path, labels_path: Path, read: dict) -> list[Sample]:
    volume, labels = _read_pages(volume_path), _read_pages(labels_path)
    if len(volume) != len(labels):
        raise InputError(f"{str(volume_path)!r} has {len(volume)} pages but {str(labels_path)!r} "
                         f"has {len(labels)}.")
    return [_sample(image, mask, f"{volume_path}[{page}]", f"{labels_path}[{page}]", read)
            for page, (image, mask) in enumerate(zip(volume, labels))]


def _read_isbi_volume(volume_path: Path, labels_path: Path, read: dict, spacing) -> Sample:
    """An ISBI pair as one volume (the sections its planes)."""
    volume, labels = _read_pages(volume_path), _read_pages(labels_path)
    return _volume_sample(volume, labels, str(volume_path), str(labels_path), read, spacing)


def _read_ctc(frames, read: dict, ndim: int | None, spacing) -> list[Sample]:
    """The samples of a Cell Tracking Challenge folder: 2D frames, 3D frames with a 3D
    annotation, and with ``ndim=3`` the slice annotations of a frame as one volume."""
    samples, partial = [], {}
    for image, annotation, z in frames:
        if z is not None and ndim == 3:
            partial.setdefault(image, []).append((annotation, z))
        elif z is None and _is_volume(annotation):
            samples.append(_read_volume_pair(image, annotation, read, spacing))
        else:
            samples.append(_read_ctc_frame(image, annotation, z, read))
    for image, slices in partial.items():
        samples.append(_read_ctc_slices(image, slices, read, spacing))
    return samples


def _read_ctc_slices(image_path: Path, slices, read: dict, spacing) -> Sample:
    """A 3D frame whose annotations are some of its planes: those planes labelled (ids made
    distinct between planes), the others :data:`~keras_unet.class_layout.UNLABELLED`."""
    volume, file_spacing = read_volume(image_path)
    labels = np.full(volume.shape[:3], UNLABELLED, np.int32)
    offset = 0
    for annotation, z in sorted(slices, key=lambda item: item[1]):
        if z >= len(volume):
            raise InputError(f"annotation {str(annotation)!r} is for slice {z} but "
                             f"{str(image_path)!r} has {len(volume)} slices.")
        plane = mask_labels(_read_file(annotation, labels=True), str(annotation), **read)
        if plane.shape != volume.shape[1:3]:
            raise InputError(f"annotation {str(annotation)!r} is {plane.shape[0]}x"
                             f"{plane.shape[1]} but the planes of {str(image_path)!r} are "
                             f"{volume.shape[1]}x{volume.shape[2]}.")
        plane = np.where(plane > 0, plane + offset, plane)
        offset = max(offset, int(plane.max(initial=0)))
        labels[z] = plane
    return _volume_sample(volume, labels, str(image_path), str(image_path), None,
                          spacing or file_spacing)


def _ctc_frames(root: Path) -> list[tuple[Path, Path, int | None]] | None:
    """(image, annotation, slice or None) of every annotated CTC frame; None if not a CTC folder."""
    sequences = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    ground_truths = sorted(p for p in root.iterdir()
                           if p.is_dir() and re.fullmatch(r"\d+_GT", p.name))
    if not sequences and not ground_truths:
        return None
    for truth in ground_truths:
        if not (root / truth.name[:-3]).is_dir():
            raise InputError(f"Cell Tracking Challenge folder {str(truth)!r} has no image "
                             f"sequence {str(root / truth.name[:-3])!r}.")
    frames = []
    for sequence in sequences:
        seg = root / f"{sequence.name}_GT" / "SEG"
        if not seg.is_dir():
            continue
        images = {int(m["frame"]): p for p in sequence.iterdir() if (m := _CTC_FRAME.match(p.name))}
        for annotation in sorted(seg.iterdir()):
            match = _CTC_SEG.match(annotation.name)
            if match is None:
                continue
            image = images.get(int(match["frame"]))
            if image is None:
                raise InputError(f"annotation {str(annotation)!r} has no frame "
                                 f"t{match['frame']}.tif in {str(sequence)!r}.")
            z = None if match["slice"] is None else int(match["slice"])
            frames.append((image, annotation, z))
    if not frames:
        raise InputError(f"Cell Tracking Challenge folder {str(root)!r} has no SEG annotations "
                         f"(expected e.g. {str(root / '01_GT' / 'SEG' / 'man_seg000.tif')!r}).")
    return frames


def _read_ctc_frame(image_path: Path, annotation: Path, z: int | None, read: dict) -> Sample:
    if z is None:
        return _sample(_read_file(image_path, labels=False), _read_file(annotation, labels=True),
                       str(image_path), str(annotation), read)
    stack = _read_pages(image_path)
    if z >= len(stack):
        raise InputError(f"annotation {str(annotation)!r} is for slice {z} but "
                         f"{str(image_path)!r} has {len(stack)} slices.")
    return _sample(stack[z], _read_file(annotation, labels=True), f"{image_path}[{z}]",
                   str(annotation), read)
