"""One way to open a model: ``.keras``, SavedModel (keras_unet's or foreign), ONNX or a
bioimage.io package.

:func:`load_network` returns a :class:`Network`, which predicts class probabilities of an image
of any size whatever the file: a ``.keras`` U-Net, an ONNX file and the ONNX weights of a
bioimage.io zip written by ``unet export --format bioimageio`` are normalised and tiled by
:func:`keras_unet.predict_tiled`; a SavedModel exported by keras_unet normalises and tiles in
its graph (it says so in ``assets.extra/keras_unet.json``), so it gets raw pixels and gives the
same result; a foreign SavedModel gets raw pixels too, with a note saying what is assumed. The
network also says what its classes are (:class:`~keras_unet.class_layout.ClassLayout`) and how
its output becomes cells (:class:`~keras_unet.instances.settings.CellSettings`, what training
recorded). The command line, fine-tuning, the dask workers, evaluation and the napari plugin all
open models here.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_unet.class_layout import ClassLayout
from keras_unet.errors import DamagedFileError, InputError
from keras_unet.geometry import PREDICTION_BATCH
from keras_unet.inference.network import ModelGeometry, model_geometry
from keras_unet.instances.settings import CellSettings, recorded_settings
from keras_unet.io.paths import existing_input

KINDS = ("keras", "savedmodel", "onnx", "bioimageio")
"""What :func:`load_network` opens: a ``.keras`` file, a SavedModel folder, an ``.onnx`` file,
a bioimage.io ``.zip`` of keras_unet's (its ONNX weights)."""

EXPECTED = ("expected a .keras file, a SavedModel folder, an .onnx file or a bioimage.io .zip "
            "written by unet export")
"""What a model path may be, for the messages that refuse one."""

KERAS_MODULES = ("layers", "losses", "metrics", "model")
"""The modules whose classes a saved U-Net may name; importing them registers the classes."""

FOREIGN_SAVED_MODEL = ("{path!r} was not exported by keras_unet (it has no "
                       "assets.extra/keras_unet.json), so its serving_default is assumed to take "
                       "the raw pixels of a whole image and return class probabilities of the "
                       "same size, as a keras_unet export does.")
"""What a network opened from a SavedModel keras_unet did not write says it assumes."""


@dataclasses.dataclass(frozen=True)
class Network:
    """A model opened by :func:`load_network`: predicts images of any size, whatever its format.

    Attributes:
        path: the file or folder it was opened from.
        kind: one of :data:`KINDS`.
        geometry: the U-Net's geometry and classes; ``None`` for a foreign SavedModel.
        cells: the cell settings it carries (or the defaults, for a model that carries none).
        notes: one-line notes for the user (a foreign SavedModel's assumptions, stored settings
            that could not be read and were replaced by the defaults).
        tiles: what the tiling engine runs on tiles (the Keras model, or an
            :class:`~keras_unet.serving.OnnxNetwork`, also for a bioimage.io zip); ``None`` for
            a SavedModel, which tiles
            in its own graph.

    Example:
        >>> import tempfile
        >>> from keras_unet import build_unet
        >>> path = Path(tempfile.mkdtemp()) / "unet.keras"
        >>> build_unet((None, None, 1), 2, filters=4, depth=2).save(path)
        >>> network = load_network(path)
        >>> network.kind, network.layout.labels, network.cells.describe()
        ('keras', 'instances', 'method auto, min_size 10 (from the defaults)')
        >>> network.predict(np.zeros((30, 40), "uint8")).shape
        (30, 40, 2)
    """

    path: Path
    kind: str
    geometry: ModelGeometry | None
    cells: CellSettings
    notes: tuple[str, ...] = ()
    tiles: object | None = None
    serve: Callable[[np.ndarray], np.ndarray] | None = dataclasses.field(default=None,
                                                                         repr=False)

    @property
    def keras_model(self):
        """The Keras model of a ``.keras`` file (``None`` for the other kinds)."""
        return self.tiles if self.kind == "keras" else None

    @property
    def layout(self) -> ClassLayout | None:
        """What the classes are and how masks hold them (``None``: a foreign SavedModel)."""
        return None if self.geometry is None else self.geometry.layout

    @property
    def channels(self) -> int | None:
        """Image channels the model takes (``None``: a foreign SavedModel that does not say)."""
        return None if self.geometry is None else self.geometry.channels

    @property
    def ndim(self) -> int:
        """Spatial axes of its input: 2 (images), or 3 for a 3D U-Net (volumes)."""
        return 2 if self.geometry is None else self.geometry.ndim

    def check_options(self, *, tile_size=None, batch_size: int = PREDICTION_BATCH,
                      option: str = "--model") -> None:
        """Refuses tile and batch sizes this network cannot take, before any work.

        Example:
            >>> import tempfile
            >>> from keras_unet import build_unet
            >>> path = Path(tempfile.mkdtemp()) / "unet.keras"
            >>> build_unet((None, None, 1), 2, filters=4, depth=2).save(path)
            >>> load_network(path).check_options(tile_size=50)
            Traceback (most recent call last):
            ...
            keras_unet.errors.InputError: --tile-size 50: input size 50 does not fit ...
        """
        from keras_unet.inference.plan import tilings

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"--batch-size must be a positive integer, got {batch_size!r}.")
        if self.tiles is None:
            if tile_size is not None:
                raise InputError(f"--tile-size applies to .keras and .onnx models; {option} "
                                 f"{str(self.path)!r} is a SavedModel, which tiles itself.")
            return
        try:
            tilings(self.geometry, tile_size, batch_size)
        except ValueError as error:
            message = str(error).removeprefix(f"tile_size {tile_size!r}: ")
            raise InputError(f"--tile-size {tile_size}: {message}") from None

    def predict(self, image, *, tta: bool = False, tile_size=None,
                batch_size: int = PREDICTION_BATCH) -> np.ndarray:
        """float32 ``(H, W, K)`` class probabilities of an ``(H, W[, C])`` image of any size
        (a 3D model's ``(D, H, W, K)`` of a ``(D, H, W[, C])`` volume).

        ``tta`` averages the 8 flips/rotations of the image (:mod:`keras_unet.inference.tta`);
        ``tile_size`` and ``batch_size`` as for :func:`keras_unet.predict_tiled` (a SavedModel
        tiles with the tile it was exported with).
        """
        if self.serve is None:
            from keras_unet.inference.tiled import predict_tiled

            return predict_tiled(self.tiles, image, tile_size=tile_size, batch_size=batch_size,
                                 tta=tta)
        from keras_unet.inference.tiled import check_image
        from keras_unet.inference.tta import averaged_image

        ndim = self.ndim
        image = check_image(image, self.channels or (np.shape(image)[-1]
                                                     if np.ndim(image) == ndim + 1 else 1),
                            ndim=ndim)
        probabilities = (averaged_image(self.serve, image, axes=tuple(range(ndim))) if tta
                         else self.serve(image))
        if probabilities.shape[:ndim] != image.shape[:ndim] or probabilities.ndim != ndim + 1:
            raise InputError(f"--model {str(self.path)!r} returned an output of shape "
                             f"{probabilities.shape} for an image of {image.shape[:ndim]}; "
                             "export it with keras_unet.serving.")
        return probabilities


def load_network(path: str | os.PathLike, *, option: str = "--model") -> Network:
    """Opens a ``.keras`` U-Net, a SavedModel folder, an ONNX file or a bioimage.io zip as a
    :class:`Network`.

    A ``.zip`` is a bioimage.io package written by ``unet export --format bioimageio``
    (:func:`keras_unet.serving.export_bioimageio`): its ONNX weights are opened, with the
    geometry and the cell settings its ``rdf.yaml`` records under ``config.keras_unet``.
    ``option`` names the path in messages (``--model``, ``--init``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not a model of a kind described above.

    Example:
        >>> load_network("no-such-model.keras")
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputNotFoundError: --model 'no-such-model.keras' does not exist.
    """
    path = existing_input(path, option)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise InputError(f"{option} {str(path)!r} is a folder without saved_model.pb; "
                             f"{EXPECTED}.")
        return _saved_model(path, option)
    if path.suffix.lower() == ".onnx":
        return _onnx(path, option)
    if path.suffix.lower() == ".zip":
        return _bioimageio(path, option)
    return _keras(path, option)


def register_keras_classes() -> None:
    """Imports the modules whose classes a saved U-Net names, registering them with Keras.

    Example:
        >>> register_keras_classes()
        >>> import keras
        >>> keras.saving.get_registered_object("keras_unet>UNet").__name__
        'UNet'
    """
    for module in KERAS_MODULES:
        importlib.import_module(f"keras_unet.{module}")


def _damaged_zip(path: Path, option: str) -> None:
    """Refuses, as a fault, a file that starts as a zip archive but cannot be read as one: a
    truncated copy or download, a corrupt member (a model is a zip: ``.keras``, a package)."""
    with open(path, "rb") as file:
        if file.read(4) != b"PK\x03\x04":
            return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as error:  # zipfile, zlib and the OS raise several types for a bad archive
        bad, why = None, f"{type(error).__name__}: {error}"
    else:
        why = None if bad is None else f"its member {bad!r} is corrupt"
    if why is not None:
        raise DamagedFileError(f"{option} {str(path)!r} is a damaged zip archive (truncated or "
                               f"corrupt: {why}); copy or save it again.")


def _keras(path: Path, option: str) -> Network:
    import keras

    register_keras_classes()
    _damaged_zip(path, option)
    if not zipfile.is_zipfile(path):
        other = "" if path.suffix.lower() == ".keras" else f"; {EXPECTED}"
        raise InputError(f"{option} {str(path)!r} is not a Keras model: a .keras file is a zip "
                         f"archive and this file is not one{other}.")
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a file that is not a model
        reason = " ".join(str(error).split())[:300] or "no message"
        raise InputError(f"{option} {str(path)!r} is not a loadable Keras model: "
                         f"{type(error).__name__}: {reason}") from None
    try:
        geometry = model_geometry(model)
    except ValueError as error:
        raise InputError(f"{option} {str(path)!r}: {error}") from None
    arguments = getattr(model, "arguments", {})
    cells, note = recorded_settings(arguments.get("cells"), str(path))
    return Network(path, "keras", geometry, cells, _notes(note), model)


def _onnx(path: Path, option: str) -> Network:
    import json

    from keras_unet.serving.onnx_network import CELLS_KEY, OnnxNetwork

    network = OnnxNetwork.from_file(path, option=option)
    metadata = network.session.get_modelmeta().custom_metadata_map
    try:
        record = json.loads(metadata[CELLS_KEY]) if CELLS_KEY in metadata else None
    except ValueError:
        record = "not JSON"
    cells, note = recorded_settings(record, str(path))
    return Network(path, "onnx", network.geometry, cells, _notes(note), network)


def _bioimageio(path: Path, option: str) -> Network:
    """The ONNX weights of a bioimage.io package of keras_unet's, with what its rdf records."""
    import onnxruntime
    import yaml

    from keras_unet.serving.onnx_network import OnnxNetwork

    name = f"{option} {str(path)!r}"
    _damaged_zip(path, option)
    try:
        with zipfile.ZipFile(path) as package:
            rdf = yaml.safe_load(package.read("rdf.yaml"))
            record = rdf.get("config", {}).get("keras_unet") if isinstance(rdf, dict) else None
            if not isinstance(record, dict) or "geometry" not in record:
                raise InputError(f"{name} is a bioimage.io package that unet export did not "
                                 "write (its rdf.yaml has no config.keras_unet.geometry).")
            source = (rdf.get("weights") or {}).get("onnx", {}).get("source")
            if not isinstance(source, str) or source not in package.namelist():
                raise InputError(f"{name} has no ONNX weights inside the package "
                                 f"(weights.onnx.source is {source!r}).")
            weights = package.read(source)
    except zipfile.BadZipFile:
        raise InputError(f"{name} is not a zip archive; {EXPECTED}.") from None
    except KeyError:
        raise InputError(f"{name} is not a bioimage.io package (no rdf.yaml); "
                         f"{EXPECTED}.") from None
    except (yaml.YAMLError, AttributeError) as error:
        raise InputError(f"{name}: its rdf.yaml is not a bioimage.io description "
                         f"({type(error).__name__}).") from None
    try:
        geometry = ModelGeometry.from_json(record["geometry"])
        session = onnxruntime.InferenceSession(weights, providers=["CPUExecutionProvider"])
    except Exception as error:  # a bad record (TypeError) or onnxruntime's own types
        raise InputError(f"{name}: its ONNX weights cannot be opened "
                         f"({type(error).__name__}).") from None
    cells, note = recorded_settings(record.get("cells"), str(path))
    return Network(path, "bioimageio", geometry, cells, _notes(note),
                   OnnxNetwork(session, geometry))


def _saved_model(path: Path, option: str) -> Network:
    import tensorflow as tf

    from keras_unet.serving.export import read_export_metadata
    from keras_unet.serving.signatures import DEFAULT_SIGNATURE, PROBABILITIES_OUTPUT

    record = read_export_metadata(path)
    notes = [] if record is not None else [FOREIGN_SAVED_MODEL.format(path=str(path))]
    try:
        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures[DEFAULT_SIGNATURE]
    except Exception as error:  # TensorFlow raises many types for a broken SavedModel
        raise InputError(f"{option} {str(path)!r} is not a loadable SavedModel with a "
                         f"serving_default signature ({type(error).__name__}).") from None
    specs = signature.structured_input_signature[1]
    if len(specs) != 1:
        raise InputError(f"{option} {str(path)!r}: serving_default takes {sorted(specs)}; "
                         "expected one image input.")
    (name, spec), = specs.items()
    geometry = None
    cells = CellSettings()
    if record is not None:
        geometry = ModelGeometry.from_json(record["geometry"])
        cells, note = recorded_settings(record.get("cells"), str(path))
        notes += _notes(note)
    ndim = 2 if geometry is None else geometry.ndim
    if spec.shape.rank not in (ndim, ndim + 1, ndim + 2):
        raise InputError(f"{option} {str(path)!r}: serving_default takes a rank-"
                         f"{spec.shape.rank} input {name!r}; expected an image (height, width"
                         "[, channels]) or a batch of them.")

    def serve(image: np.ndarray) -> np.ndarray:
        tensor = tf.cast(image, spec.dtype)
        tensor = tensor[None] if spec.shape.rank == ndim + 2 else tensor
        tensor = tensor[..., 0] if spec.shape.rank == ndim else tensor
        outputs = signature(**{name: tensor})
        result = outputs.get(PROBABILITIES_OUTPUT, next(iter(outputs.values())))
        result = np.asarray(result, np.float32)
        return result[0] if result.ndim == ndim + 2 else result

    return Network(path, "savedmodel", geometry, cells, tuple(notes), None,
                   serve)


def _notes(note: str | None) -> tuple[str, ...]:
    return () if note is None else (note,)
