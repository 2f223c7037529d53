"""Zarr and OME-Zarr images in, OME-Zarr predictions out, without loading either whole.

Reading: an OME-Zarr multiscale image (NGFF 0.4 or 0.5, parsed by ``ome-zarr``) gives its
level 0; a plain zarr array is read as (y, x) or (y, x, c). Each 2D plane (every index of the
axes other than y, x and c, such as t or z) is a :class:`PlaneView`, an array-like (H, W, C)
that :func:`keras_unet.inference.blockwise.predict_array` reads block by block.

Writing (:class:`PredictionStore`): one OME-Zarr store holding the probabilities as its image
(a ``c`` axis of classes) and, under ``labels/``, the class mask and optionally the cells, each
with a nearest-neighbour multiscale pyramid, so napari opens them with the input image. The
store is written under a temporary name and published when complete by the one atomic writer
(:mod:`keras_unet.io.atomic`): nothing appears under the output name before then, and an
output that appeared meanwhile is not replaced.

For a 3D U-Net the unit is a volume instead of a plane: every index of the axes other than z,
y, x and c is a :class:`PlaneView` of spatial axes (z, y, x), and the store's label images keep
the z axis (chunked in blocks along it too).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import zarr

from keras_unet.class_layout import ClassLayout
from keras_unet.errors import DamagedFileError, InputError, OutputExistsError
from keras_unet.io.atomic import discard, publish, remove_leftovers, temporary_path
from keras_unet.io.paths import existing_input, refuse_overlap

PYRAMID_TOP = 512
"""The pyramid halves its levels until the longer side is at most this many pixels."""

ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup", ".zattrs")
"""The files that make a folder a zarr store (v3, v2)."""


def is_zarr_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a zarr store (by its metadata files or a ``.zarr`` name).

    Cheap (no zarr import), so the command line can choose its path before loading anything.

    Example:
        >>> is_zarr_path("big.ome.zarr"), is_zarr_path("cells.tif")
        (True, False)
    """
    path = Path(path)
    return path.suffix.lower() == ".zarr" or _has_zarr_metadata(path)


def _has_zarr_metadata(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in ZARR_METADATA)


class PlaneView:
    """One 2D plane of a zarr array as an array-like ``(y, x[, c])``, read and written lazily.

    ``axes`` names the array's axes (``"y"`` and ``"x"`` required, ``"c"`` optional);
    ``index`` fixes every other axis. Slicing takes ``[rows, cols]`` (a third, channel, key is
    ignored: channels are always whole) and returns (or accepts) ``(rows, cols[, c])``, so the
    plane behaves like a channels-last image. With ``spatial=("z", "y", "x")`` it is one volume
    ``(z, y, x[, c])``, sliced ``[planes, rows, cols]``.

    Example:
        >>> stack = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # z, c, y, x
        >>> plane = PlaneView(stack, ("z", "c", "y", "x"), {"z": 1})
        >>> plane.shape, plane[1:3, 0:2].shape, int(plane[0:1, 0:1][0, 0, 2])
        ((4, 5, 3), (2, 2, 3), 100)
    """

    def __init__(self, array, axes: tuple[str, ...], index: dict[str, int],
                 spatial: tuple[str, ...] = ("y", "x"), name: str = "array"):
        self.array, self.axes, self.index, self.name = array, tuple(axes), dict(index), name
        self.spatial = tuple(spatial)
        self.has_channels = "c" in self.axes
        kept = [axis for axis in self.axes if axis not in self.index]
        self._order = [kept.index(axis) for axis in (*self.spatial, "c") if axis in kept]
        self.shape = tuple(int(array.shape[self.axes.index(a)]) for a in (*self.spatial, "c")
                           if a in self.axes)
        self.dtype = np.dtype(array.dtype)
        chunks = getattr(array, "chunks", None)
        self.chunks = (tuple(int(chunks[self.axes.index(a)]) for a in self.spatial)
                       if chunks else None)

    def _key(self, key) -> tuple:
        count = len(self.spatial)
        keys = ((key if isinstance(key, tuple) else (key,)) + (slice(None),) * count)[:count]
        where = {**dict(zip(self.spatial, keys)), "c": slice(None), **self.index}
        return tuple(where[axis] for axis in self.axes)

    def __getitem__(self, key) -> np.ndarray:
        try:
            pixels = np.asarray(self.array[self._key(key)])
        except Exception as error:  # zarr and its codecs raise many types for a corrupt chunk
            raise DamagedFileError(f"{self.name}: a chunk could not be read "
                                   f"({type(error).__name__}: "
                                   f"{' '.join(str(error).split())[:160]}).") from None
        return np.transpose(pixels, self._order)

    def __setitem__(self, key, value) -> None:
        self.array[self._key(key)] = np.transpose(np.asarray(value), np.argsort(self._order))


class ZarrImage:
    """A zarr or OME-Zarr image opened for reading: level 0, its axes, its 2D planes.

    Attributes:
        path: the store.
        array: the zarr array of level 0 (workers can open it again from its store).
        axes: axis names, e.g. ``("c", "y", "x")``; a plain array is ``("y", "x"[, "c"])``.
        axis_types: the OME type of each axis (``"space"``, ``"channel"``, ``"time"``, ...).
        ome: whether it is an OME-Zarr multiscale image.
        scale, translation, units: level 0's coordinate transformations and the axes' units by
            axis name (OME-Zarr only; what the prediction store records for its level 0).

    Example:
        >>> import tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "a.zarr")
        >>> _ = zarr.create_array(path, shape=(30, 40), chunks=(16, 16), dtype="uint16")
        >>> image = open_zarr_image(path)
        >>> image.axes, [(index, plane.shape) for index, plane in image.planes()]
        (('y', 'x'), [({}, (30, 40))])
    """

    def __init__(self, path: Path, array, axes, axis_types, ome: bool, *,
                 scale: dict[str, float] | None = None,
                 translation: dict[str, float] | None = None,
                 units: dict[str, str] | None = None):
        self.path, self.array, self.ome = path, array, ome
        self.axes, self.axis_types = tuple(axes), tuple(axis_types)
        self.scale, self.translation = dict(scale or {}), dict(translation or {})
        self.units = dict(units or {})

    @property
    def plane_axes(self) -> tuple[str, ...]:
        """The axes that number the planes (all but y, x and c)."""
        return tuple(axis for axis in self.axes if axis not in ("y", "x", "c"))

    def planes(self, ndim: int = 2) -> list[tuple[dict[str, int], PlaneView]]:
        """Every 2D plane as ``(index, view)``, with ``index`` the plane axes' positions;
        ``ndim=3``: every volume (z, y, x), indexed by the axes other than z, y, x and c.

        Raises:
            ValueError: for ``ndim=3`` and an image without a z axis, naming it.
        """
        spatial = ("y", "x") if ndim == 2 else ("z", "y", "x")
        if ndim == 3 and "z" not in self.axes:
            raise InputError(f"--input {str(self.path)!r} has axes {list(self.axes)}: no z axis "
                             "for a 3D U-Net (a plain zarr volume has none; write it as "
                             "OME-Zarr with axes z, y, x).")
        others = tuple(axis for axis in self.axes if axis not in (*spatial, "c"))
        sizes = [self.array.shape[self.axes.index(axis)] for axis in others]
        return [(dict(zip(others, map(int, position))),
                 PlaneView(self.array, self.axes, dict(zip(others, map(int, position))), spatial,
                           name=f"--input {str(self.path)!r}"))
                for position in np.ndindex(*sizes)]


def open_zarr_image(path: str | os.PathLike, name: str = "--input") -> ZarrImage:
    """Opens an OME-Zarr multiscale image (level 0) or a plain zarr array for reading.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is neither a zarr array nor an OME-Zarr image (e.g. a plate, a
            folder of TIFFs), or has no y and x axes, naming ``path``.

    Example:
        >>> open_zarr_image("no-such.ome.zarr")
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputNotFoundError: --input 'no-such.ome.zarr' does not exist.
    """
    path = existing_input(path, name)
    opened = _open_ome(path) or _open_plain(path)
    if opened is None:
        _refuse_damaged_metadata(path, name)
        found = [file for file in ZARR_METADATA if (path / file).is_file()]
        raise InputError(f"{name} {str(path)!r} is not a zarr array or an OME-Zarr multiscale "
                         "image (" + (f"its {found[0]} describes neither; a group of images? "
                                      "pass one of them" if found else
                                      "no zarr.json, .zarray or OME 'multiscales' metadata")
                         + ").")
    array, axes, types, ome, placement = opened
    if not ome and not axes:
        raise InputError(f"{name} {str(path)!r} is a plain zarr array of shape {array.shape}; a "
                         "plain array is (y, x) or (y, x, c): write other layouts as OME-Zarr, "
                         "whose axes are named (t, c, z, y, x).")
    if "y" not in axes or "x" not in axes or len(axes) != array.ndim:
        raise InputError(f"{name} {str(path)!r} has axes {list(axes)} for shape {array.shape}; "
                         "expected y and x axes (and optionally c, t, z).")
    return ZarrImage(path, array, axes, types, ome, **placement)


ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup", ".zattrs")
"""The metadata files of a zarr store (v3, then v2)."""


def _refuse_damaged_metadata(path: Path, name: str) -> None:
    """A store whose metadata file is not JSON was damaged (a truncated copy): a fault."""
    for file in (file for file in ZARR_METADATA if (path / file).is_file()):
        try:
            json.loads((path / file).read_bytes())
        except (ValueError, OSError) as error:
            raise DamagedFileError(f"{name} {str(path)!r}: its {file} is damaged "
                                   f"({type(error).__name__}); copy the store again.") from None


def _open_ome(path: Path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    quiet = logging.getLogger("ome_zarr.io")  # it warns of every NGFF 0.4 store it reads
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        location = parse_url(str(path))
        nodes = list(Reader(location)()) if location is not None else []
    except Exception:  # ome-zarr raises many types for stores it does not understand
        return None
    finally:
        quiet.setLevel(level)
    for node in nodes:
        specs = [spec for spec in node.specs if isinstance(spec, Multiscales)]
        if specs:
            axes = node.metadata.get("axes") or ["t", "c", "z", "y", "x"][-node.data[0].ndim:]
            names = [axis["name"] if isinstance(axis, dict) else axis for axis in axes]
            types = [axis.get("type", _axis_type(axis["name"])) if isinstance(axis, dict)
                     else _axis_type(axis) for axis in axes]
            array = zarr.open_group(str(path), mode="r")[specs[0].datasets[0]]
            return array, names, types, True, _placement(node.metadata, names, axes)
    return None


def _placement(metadata: dict, names: list[str], axes: list) -> dict[str, dict]:
    """Level 0's scale and translation and the axes' units, by axis name."""
    placement = {"units": {axis["name"]: axis["unit"] for axis in axes
                           if isinstance(axis, dict) and axis.get("unit")}}
    for transform in (metadata.get("coordinateTransformations") or [None])[0] or []:
        if transform.get("type") in ("scale", "translation") and transform["type"] in transform:
            placement[transform["type"]] = dict(zip(names, map(float,
                                                               transform[transform["type"]])))
    return placement


def _open_plain(path: Path):
    try:
        array = zarr.open_array(str(path), mode="r")
    except Exception:  # zarr raises several types for a path that is not an array
        return None
    axes = {2: ("y", "x"), 3: ("y", "x", "c")}.get(array.ndim, ())
    return array, axes, tuple(_axis_type(axis) for axis in axes), False, {}


def _axis_type(name: str) -> str:
    return {"c": "channel", "t": "time"}.get(name, "space")


class PredictionStore:
    """An OME-Zarr store being written: probabilities and label images, level 0 first.

    Create it with the image's geometry and the model's class layout (the mask holds class
    indices, named by the layout's class names), fill the plane views of :meth:`views`, then
    :meth:`finish` writes the pyramids and metadata and publishes the store, written under a
    temporary name, as ``path`` (:func:`keras_unet.io.atomic.publish`); :meth:`discard` removes
    the partial store instead. An existing ``path`` is
    refused unless ``overwrite``, and then replaced only if it is a zarr store.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> image = ZarrImage(Path(folder, "in.zarr"), np.zeros((40, 30)), ("y", "x"),
        ...                   ("space", "space"), False)
        >>> store = PredictionStore(Path(folder, "out.ome.zarr"), image, ClassLayout.of(2),
        ...                         (16, 16))
        >>> views = store.views({})
        >>> views["probabilities"][:, :] = np.full((40, 30, 2), 0.5, "float32")
        >>> views["mask"][:, :] = np.ones((40, 30), "uint8")
        >>> store.finish()
        PosixPath('.../out.ome.zarr')
        >>> sorted(zarr.open_group(Path(folder, "out.ome.zarr"), mode="r")["labels"].keys())
        ['mask']
    """

    def __init__(self, path: str | os.PathLike, image: ZarrImage, layout: ClassLayout,
                 block: tuple[int, ...], *, instances: bool = False, overwrite: bool = False):
        self.path = Path(path)
        check_output(self.path, image.path, overwrite)
        remove_leftovers(self.path)
        self.partial, self.overwrite = temporary_path(self.path), overwrite
        self.layout = layout
        num_classes = layout.num_classes
        self.spatial = ("y", "x") if len(block) == 2 else ("z", "y", "x")  # volumes: 3 blocks
        block_of = dict(zip(self.spatial, block))
        plane = [axis for axis in image.axes if axis not in (*self.spatial, "c")]
        types = dict(zip(image.axes, image.axis_types))
        sizes = dict(zip(image.axes, (int(n) for n in image.array.shape)))
        sizes["c"], types["c"] = num_classes, "channel"
        label_axes = tuple(plane) + self.spatial
        first_space = next(i for i, axis in enumerate(label_axes)
                           if types.get(axis) == "space" or axis in self.spatial)
        probability_axes = label_axes[:first_space] + ("c",) + label_axes[first_space:]
        self.axes = {"probabilities": probability_axes, "mask": label_axes}
        if instances:
            self.axes["instances"] = label_axes
        self.types = types
        self.image = image  # its level 0's scale, translation and units, recorded in finish
        self.root = zarr.open_group(str(self.partial), mode="w")
        labels = self.root.create_group("labels")
        dtypes = {"probabilities": np.float32, "mask": layout.mask_dtype, "instances": np.uint32}
        self.arrays = {}
        for key, axes in self.axes.items():
            group = self.root if key == "probabilities" else labels.create_group(key)
            chunks = tuple(block_of[a] if a in block_of
                           else num_classes if a == "c" else 1 for a in axes)
            self.arrays[key] = group.create_array(
                "0", shape=tuple(sizes[a] for a in axes), chunks=chunks, dtype=dtypes[key],
                fill_value=0, dimension_names=axes)

    def views(self, index: dict[str, int]) -> dict[str, PlaneView]:
        """The (y, x[, c]) views of one plane's outputs, to write into (a volume's (z, y, x[,
        c]))."""
        return {key: PlaneView(array, self.axes[key], index, self.spatial)
                for key, array in self.arrays.items()}

    def finish(self) -> Path:
        """Writes the pyramids and OME metadata, then moves the store to its name."""
        from ome_zarr.writer import write_label_metadata, write_multiscales_metadata

        for key, level0 in self.arrays.items():
            group = self.root if key == "probabilities" else self.root["labels"][key]
            names = self.axes[key]
            steps = self._pyramid(group, level0, names)
            axes = [{"name": a, "type": self.types.get(a, "space"),
                     **({"unit": self.image.units[a]} if a in self.image.units else {})}
                    for a in names]
            size = {a: 1.0 if a == "c" else self.image.scale.get(a, 1.0) for a in names}
            shift = ([{"type": "translation", "translation": [  # c: the classes, not the input's
                0.0 if a == "c" else self.image.translation.get(a, 0.0) for a in names]}]
                if self.image.translation else [])  # kept by every other pixel from pixel 0
            datasets = [{"path": str(level), "coordinateTransformations": [
                {"type": "scale", "scale": [size[a] * step
                                            for a, step in zip(names, steps_of_level)]},
                *shift]} for level, steps_of_level in enumerate(steps)]
            write_multiscales_metadata(group, datasets, axes=axes, name=key)
        labels = self.root["labels"]
        write_label_metadata(labels, "mask", properties=[
            {"label-value": value, "class": name}
            for value, name in enumerate(self.layout.class_names)])
        if "instances" in self.arrays:
            write_label_metadata(labels, "instances")
        publish(self.partial, self.path, overwrite=self.overwrite, option="--output")
        return self.path

    def discard(self) -> None:
        """Removes the partial store (after a failure)."""
        discard(self.partial)

    def _pyramid(self, group, level0, axes: tuple[str, ...]) -> list[list[float]]:
        """Levels 1.. of ``level0`` by taking every other pixel (nearest neighbour); the pixel
        size of each level in level 0's pixels, per axis."""
        import dask.array as da

        spatial = [axes.index("y"), axes.index("x")]
        longest = max(level0.shape[i] for i in spatial)
        levels = max(1, 1 + math.ceil(math.log2(max(longest / PYRAMID_TOP, 1))))
        previous = level0
        scales = [[1.0] * len(axes)]
        for level in range(1, levels):
            step = tuple(slice(None, None, 2) if i in spatial else slice(None)
                         for i in range(len(axes)))
            shrunk = da.from_zarr(previous)[step]
            array = group.create_array(str(level), shape=shrunk.shape, chunks=level0.chunks,
                                       dtype=level0.dtype, fill_value=0, dimension_names=axes)
            da.store(shrunk.rechunk(level0.chunks), array, lock=False)
            scales.append([2.0**level if i in spatial else 1.0 for i in range(len(axes))])
            previous = array
        return scales


def check_output(path: Path, input_path: Path | None, overwrite: bool) -> None:
    """Refuses an output store that is, lies inside or contains the input, or exists without
    ``overwrite``, or exists and is not a zarr store (never replaced).

    Example:
        >>> check_output(Path("a.zarr"), Path("a.zarr"), False)
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: --output 'a.zarr' is --input 'a.zarr'; an output must ...
    """
    refuse_overlap(path, {"--input": input_path})
    if os.path.lexists(path):
        if not overwrite:
            raise OutputExistsError(f"--output {str(path)!r} exists; pass --overwrite to "
                                    "replace it.")
        if not _has_zarr_metadata(path):
            raise OutputExistsError(f"--output {str(path)!r} exists and is not a zarr store; "
                                    "it is not replaced even with --overwrite.")
