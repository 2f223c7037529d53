"""An ONNX U-Net under onnxruntime, as a network :func:`keras_unet.predict_tiled` can tile.

``predict_tiled(OnnxNetwork.from_file("unet.onnx"), image)`` runs the same normalisation,
mirroring and seamless overlap-tile plan as for the Keras model; only the forward pass on the
tiles is onnxruntime's. The geometry comes from the file's metadata, written by
:func:`~keras_unet.serving.onnx_export.export_onnx`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime

from keras_unet.errors import DamagedFileError, InputError, InputNotFoundError
from keras_unet.inference.network import ModelGeometry

GEOMETRY_KEY = "keras_unet.geometry"
"""The ``metadata_props`` key holding :meth:`ModelGeometry.to_json` as JSON."""

CELLS_KEY = "keras_unet.cells"
"""The ``metadata_props`` key holding the model's cell settings
(:meth:`keras_unet.instances.settings.CellSettings.to_json`), when training recorded them."""


class OnnxNetwork:
    """An onnxruntime session with the U-Net geometry that tiling needs.

    Attributes:
        session: the ``onnxruntime.InferenceSession``.
        geometry: the model's :class:`~keras_unet.inference.ModelGeometry`.

    Example:
        >>> import tempfile
        >>> from keras_unet import build_unet, predict_tiled
        >>> from keras_unet.serving.onnx_export import export_onnx  # writes the geometry
        >>> path = export_onnx(build_unet((None, None, 1), 2, filters=4, depth=2),
        ...                    Path(tempfile.mkdtemp()) / "unet.onnx")
        >>> network = OnnxNetwork.from_file(path)
        >>> network.geometry.border, predict_tiled(network, np.zeros((50, 70))).shape
        (20, (50, 70, 2))
    """

    def __init__(self, session: onnxruntime.InferenceSession, geometry: ModelGeometry):
        self.session = session
        self.geometry = geometry
        self._input = session.get_inputs()[0].name

    @classmethod
    def from_file(cls, path, providers: list[str] | None = None,
                  option: str = "ONNX model") -> OnnxNetwork:
        """Opens an ONNX file written by ``export_onnx`` (CPU unless ``providers`` say otherwise).

        ``option`` names the file in messages.

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            ValueError: if it is not an ONNX model or has no keras_unet geometry.
            keras_unet.errors.DamagedFileError: if it is an ONNX file that cannot be read
                (truncated).

        Example:
            >>> OnnxNetwork.from_file("no-such-model.onnx")
            Traceback (most recent call last):
            ...
            keras_unet.errors.InputNotFoundError: ONNX model 'no-such-model.onnx' does not exist.
        """
        path = Path(path)
        if not path.is_file():
            raise InputNotFoundError(f"{option} {str(path)!r} does not exist.")
        try:
            session = onnxruntime.InferenceSession(
                str(path), providers=providers or ["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own types for a bad file
            with open(path, "rb") as file:  # an ONNX file starts with its ir_version, 0x08
                onnx_start = file.read(1) == b"\x08"
            if onnx_start and type(error).__name__ == "InvalidProtobuf":  # truncated, corrupt
                raise DamagedFileError(f"{option} {str(path)!r} cannot be read as an ONNX file "
                                 "(truncated or corrupt); copy or export it again.") from None
            raise InputError(f"{option} {str(path)!r} cannot be loaded by onnxruntime "
                             f"({type(error).__name__}).") from None
        metadata = session.get_modelmeta().custom_metadata_map
        if GEOMETRY_KEY not in metadata:
            raise InputError(f"{option} {str(path)!r} has no {GEOMETRY_KEY!r} metadata; "
                             "export it with keras_unet.serving.export_onnx (or `unet export`).")
        return cls(session, ModelGeometry.from_json(json.loads(metadata[GEOMETRY_KEY])))

    def predict_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """Class scores of float32 normalised tiles ``(N, h, w, C)``: ``(N, h', w', K)``.

        Example:
            >>> import tempfile
            >>> from keras_unet import build_unet
            >>> from keras_unet.serving.onnx_export import export_onnx
            >>> path = export_onnx(build_unet((None, None, 1), 2, filters=4, depth=2),
            ...                    Path(tempfile.mkdtemp()) / "unet.onnx")
            >>> network = OnnxNetwork.from_file(path)
            >>> network.predict_tiles(np.zeros((3, 44, 60, 1), "float32")).shape
            (3, 4, 20, 2)
        """
        tiles = np.ascontiguousarray(tiles, dtype=np.float32)
        return self.session.run(None, {self._input: tiles})[0]
