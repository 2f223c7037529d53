"""A bioimage.io model package (format 0.5) of a U-Net, built and validated with bioimageio.spec.

The zip holds ``rdf.yaml``, the weights in the two formats bioimage.io's runners execute
(ONNX, and a TensorFlow SavedModel bundle of the bare float32 network), test input and output
tensors (``.npy``) computed here, a cover (image | prediction), a README and the training
config. The rdf describes what consumers (deepImageJ, ilastik, napari, QuPath, bioimageio.core)
need to tile the unpadded network themselves: the input sizes ``min + n * step`` of
:mod:`keras_unet.geometry`, the output size as the input size less the border the network
crops, per-sample zero-mean unit-variance preprocessing as :mod:`keras_unet.normalization`
does it, and the class names as output channel names. Keras v3 weights are left out: loading
them needs keras_unet's custom layers, which the zoo's runners do not have.
"""

from __future__ import annotations

import dataclasses
import typing
import zipfile
from pathlib import Path

import keras
import numpy as np
import pydantic
import tensorflow as tf
import tifffile
import yaml
from bioimageio.spec import load_model_description, save_bioimageio_package
from bioimageio.spec.model import v0_5
from PIL import Image

from keras_unet import geometry
from keras_unet.data.synthetic import MIN_SIZE, MIN_VOLUME_SIZE, synthetic_cells, synthetic_volumes
from keras_unet.errors import InputError
from keras_unet.inference.network import ModelGeometry, model_geometry
from keras_unet.io.atomic import scratch_folder, written_atomically
from keras_unet.normalization import MIN_STD, normalize_image
from keras_unet.serving.bare_network import (
    final_activation,
    float32_network,
    write_bare_saved_model,
)
from keras_unet.serving.onnx_export import DEFAULT_OPSET, check_opset, onnx_model, output_name
from keras_unet.serving.targets import DEFAULT_PACKAGE_NAME, check_package_target

PAPER_DOI = "10.1007/978-3-319-24574-4_28"
PAPER = ("Ronneberger, O., Fischer, P., Brox, T. (2015). U-Net: Convolutional Networks for "
         "Biomedical Image Segmentation. MICCAI 2015, LNCS 9351, 234-241.")
DEFAULT_AUTHORS = ("keras_unet user",)
DEFAULT_LICENSE = "CC-BY-4.0"
INPUT_ID = "raw"
TEST_OUTPUT_PIXELS = 128
TEST_OUTPUT_VOXELS = 16
"""A 3D model's test output side (16^3 voxels: the test tensors stay small)."""

SPACE_AXES = ("z", "y", "x")
"""The space axes of a package, the last two for a 2D model."""
"""Output side of the test tensors (at least; the input is the next valid size)."""


@dataclasses.dataclass(frozen=True)
class PackageInfo:
    """What the rdf says about the model beyond its geometry: who, under which licence, why.

    Attributes:
        name: the model's name (letters, digits, ``_+- ()``; 5 to 128 characters).
        authors: names of the people who trained the model.
        license: an SPDX licence identifier, such as ``CC-BY-4.0`` or ``MIT``.
        description: one paragraph; by default generated from the geometry and classes.
        training_config: the training configuration (``config.yaml`` of a ``unet train`` run).

    Example:
        >>> PackageInfo(license="MIT").checked().license
        'MIT'
    """

    name: str = DEFAULT_PACKAGE_NAME
    authors: tuple[str, ...] = DEFAULT_AUTHORS
    license: str = DEFAULT_LICENSE
    description: str | None = None
    training_config: dict | None = None

    def checked(self) -> PackageInfo:
        """Itself, after checking the name, authors and licence against the spec's own rules.

        Raises:
            ValueError: naming the option (``--name``, ``--author``, ``--license``) and the rule.

        Example:
            >>> PackageInfo(name="my/unet").checked()
            Traceback (most recent call last):
            ...
            keras_unet.errors.InputError: --name 'my/unet': Value error, 'my/unet' is not ...
        """
        name_field = v0_5.ModelDescr.model_fields["name"]
        name_type = typing.Annotated[(name_field.annotation, *name_field.metadata)]
        _check("--name", self.name, name_type)
        _check("--license", self.license, v0_5.LicenseId)
        if not self.authors:
            raise InputError("--author: give at least one author name.")
        for author in self.authors:
            _check("--author", author, v0_5.Author, wrap=lambda value: {"name": value})
        if self.description is not None:
            _check("--description", self.description, typing.Annotated[
                str, pydantic.StringConstraints(min_length=1, max_length=1024)])
        return self


def _check(option: str, value, annotation, wrap=lambda value: value) -> None:
    try:
        pydantic.TypeAdapter(annotation).validate_python(wrap(value))
    except pydantic.ValidationError as error:
        [first, *_] = error.errors()
        message, context = first["msg"], first.get("ctx", {})
        if first["type"] in ("too_short", "too_long") and isinstance(value, str):  # not "items"
            bound = ("at least", context["min_length"]) if first["type"] == "too_short" \
                else ("at most", context["max_length"])
            message = f"must have {bound[0]} {bound[1]} characters, not {len(value)}"
        if len(message) > 160:
            message = message[:160] + "... (see https://spdx.org/licenses/)"
        raise InputError(f"{option} {value!r}: {message}") from None


def export_bioimageio(model: keras.Model, out, info: PackageInfo = PackageInfo(), *,
                      sample_image: np.ndarray | None = None, opset: int = DEFAULT_OPSET,
                      overwrite: bool = False) -> Path:
    """Writes a bioimage.io model package validated by bioimageio.spec: ``out`` if it names a
    ``.zip``, else ``out/<name>.zip``.

    Args:
        model: a U-Net from :func:`keras_unet.build_unet` (trained).
        out: the package's ``.zip``, or the folder to write ``<name>.zip`` to (created if
            missing).
        info: name, authors, licence, description and training config (:class:`PackageInfo`).
        sample_image: (H, W) or (H, W, C) image for the test tensors and the cover; by default
            a synthetic cell image. Cropped to the next valid size above 128 px of output.
        opset: ONNX opset of the ONNX weights.
        overwrite: replace a package of the same name.

    Returns:
        The path of the zip.

    Raises:
        ValueError: if the model is not a U-Net of this package, for a bad option, or if
            bioimageio.spec finds an error in the description (nothing is written then).
        FileExistsError: if the zip exists, or ``out`` already holds a package, and
            ``overwrite`` is false.

    Example:
        >>> import tempfile
        >>> from keras_unet import build_unet
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> path = export_bioimageio(model, tempfile.mkdtemp(), PackageInfo(name="tiny U-Net"))
        >>> path.name, "rdf.yaml" in zipfile.ZipFile(path).namelist()
        ('tiny_U-Net.zip', True)
    """
    info = info.checked()
    check_opset(opset)
    target = check_package_target(Path(out), info.name, overwrite=overwrite)
    geom = model_geometry(model)
    image = _test_image(geom, sample_image)
    with scratch_folder(target, option="--out") as staging:
        description = _describe(model, geom, info, image, opset, staging)
        with written_atomically(target, overwrite=overwrite, option="--out") as temporary:
            save_bioimageio_package(description, output_path=temporary)
            validate_package(temporary)
    return target


def validate_package(path: Path) -> list[str]:
    """Validates a package with bioimageio.spec (with file checks); returns the warnings.

    Raises:
        ValueError: listing the errors, if the package does not pass.

    Example:
        >>> validate_package(Path("no-such-package.zip"))
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: bioimage.io package 'no-such-package.zip' is invalid: ...
    """
    description = load_model_description(path, perform_io_checks=True) if Path(
        path).is_file() else None
    if description is None or description.validation_summary.status == "failed":
        errors = ("file not found" if description is None else "; ".join(
            f"{'.'.join(map(str, e.loc))}: {e.msg}"
            for e in description.validation_summary.errors))
        raise InputError(f"bioimage.io package {str(path)!r} is invalid: {errors}")
    return [f"{'.'.join(map(str, w.loc))}: {w.msg}"
            for w in description.validation_summary.warnings]


def _test_image(geom: ModelGeometry, sample_image: np.ndarray | None) -> np.ndarray:
    """A raw (H, W, C) float32 image of a valid input size: the sample's centre, or cells (a 3D
    model's (D, H, W, C) volume: the sample's, or synthetic nuclei)."""
    output = TEST_OUTPUT_PIXELS if geom.ndim == 2 else TEST_OUTPUT_VOXELS
    sizes = tuple(fixed or geometry.valid_input_size(output, geom.depth, geom.padding,
                                                     pools=pools, kernels=kernels)
                  for fixed, (pools, kernels) in zip(geom.input_size, geom.axis_layouts))
    if sample_image is None:
        if geom.ndim == 2:
            sample = synthetic_cells(1, size=max(*sizes, MIN_SIZE))[0].image
        else:
            sample = synthetic_volumes(1, size=max(*sizes[1:], MIN_VOLUME_SIZE),
                                       depth=sizes[0])[0].image
        sample_image = np.repeat(sample[..., None], geom.channels, axis=-1)
    image = np.asarray(sample_image)
    image = image[..., None] if image.ndim == geom.ndim else image
    if image.ndim != geom.ndim + 1 or image.shape[-1] != geom.channels:
        shape = "(H, W[, C]) images" if geom.ndim == 2 else "(D, H, W[, C]) volumes"
        raise InputError(f"--sample-image has shape {image.shape}; the model takes "
                         f"{geom.channels}-channel {shape}.")
    if any(have < need for have, need in zip(image.shape, sizes)):
        raise InputError(f"--sample-image is {'x'.join(map(str, image.shape[:-1]))} px; the "
                         f"test tensors need at least {'x'.join(map(str, sizes))}.")
    corner = [(have - need) // 2 for have, need in zip(image.shape, sizes)]
    return image[tuple(slice(c, c + n) for c, n in zip(corner, sizes))].astype(np.float32)


def _size_rule(geom: ModelGeometry, fixed: int | None,
               axis: int = 0) -> int | v0_5.ParameterizedSize:
    """The input sizes the network takes along ``axis``: fixed, or ``min + n * step`` from the
    geometry."""
    if fixed is not None:
        return fixed
    pools, kernels = geom.axis_layouts[axis]
    layout = {"pools": pools, "kernels": kernels}
    smallest = geometry.valid_input_size(1, geom.depth, geom.padding, **layout)
    following = geometry.valid_input_size(
        geometry.output_size(smallest, geom.depth, geom.padding, **layout) + 1, geom.depth,
        geom.padding, **layout)
    return v0_5.ParameterizedSize(min=smallest, step=following - smallest)


def _describe(model: keras.Model, geom: ModelGeometry, info: PackageInfo, image: np.ndarray,
              opset: int, staging: Path) -> v0_5.ModelDescr:
    """Writes every file of the package into ``staging`` and returns the description."""
    network = float32_network(model)
    scores = network(normalize_image(image[None], ndim=geom.ndim), training=False)
    activation = final_activation(model)
    probabilities = np.asarray(tf.nn.softmax(scores, -1) if activation is None else scores,
                               np.float32)
    np.save(staging / "test_input.npy", image[None])
    np.save(staging / "test_output.npy", probabilities)
    tifffile.imwrite(staging / "sample_input.tif", image[..., 0] if geom.channels == 1 else image,
                     photometric="minisblack")
    tifffile.imwrite(staging / "sample_output.tif", probabilities[0], photometric="minisblack")
    _write_cover(image, probabilities[0], geom.borders, staging / "cover.png")
    tensor_name = output_name(model)
    (staging / "model.onnx").write_bytes(onnx_model(model, opset).SerializeToString())
    write_bare_saved_model(model, staging / "saved_model", tensor_name)
    _zip_folder(staging / "saved_model", staging / "tf_saved_model_bundle.zip")
    (staging / "training_config.yaml").write_text(
        yaml.safe_dump(info.training_config or {}, sort_keys=False))
    (staging / "README.md").write_text(_readme(geom, info, activation))
    weights = v0_5.WeightsDescr(
        tensorflow_saved_model_bundle=v0_5.TensorflowSavedModelBundleWeightsDescr(
            source=staging / "tf_saved_model_bundle.zip",
            tensorflow_version=v0_5.Version(tf.__version__),
            comment="The bare float32 network (endpoint 'serve'), exported with Keras "
                    f"{keras.__version__} from the trained .keras model."),
        onnx=v0_5.OnnxWeightsDescr(
            source=staging / "model.onnx", opset_version=opset,
            parent="tensorflow_saved_model_bundle",
            comment="Converted with tf2onnx from the same float32 network."),
    )
    try:
        return v0_5.ModelDescr(
            name=info.name,
            description=info.description or _description(geom, activation),
            authors=[v0_5.Author(name=author) for author in info.authors],
            cite=[v0_5.CiteEntry(text=PAPER, doi=v0_5.Doi(PAPER_DOI))],
            license=v0_5.LicenseId(info.license),
            documentation=v0_5.FileDescr(source=staging / "README.md"),
            covers=[v0_5.FileDescr(source=staging / "cover.png")],
            attachments=[v0_5.FileDescr(source=staging / "training_config.yaml")],
            tags=["unet", "segmentation", f"{geom.ndim}d", "keras_unet", "tensorflow", "onnx"],
            inputs=[_input_tensor(geom, staging)],
            outputs=[_output_tensor(geom, tensor_name, activation, staging)],
            weights=weights,
            config={"keras_unet": {"geometry": geom.to_json(),
                                   "cells": getattr(model, "arguments", {}).get("cells"),
                                   "training": info.training_config or {}}},
        )
    except pydantic.ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in error.errors())
        raise InputError(f"the bioimage.io description is invalid: {problems}") from None


def _input_tensor(geom: ModelGeometry, staging: Path) -> v0_5.InputTensorDescr:
    names = SPACE_AXES[-geom.ndim:]
    sizes = [_size_rule(geom, fixed, axis) for axis, fixed in enumerate(geom.input_size)]
    # normalize_image standardises over the space axes and channels of each image
    axes = list(names) + ([] if geom.channels == 1 else ["channel"])
    return v0_5.InputTensorDescr(
        id=v0_5.TensorId(INPUT_ID),
        description=("raw image" if geom.ndim == 2 else "raw volume")
        + "; the rdf's preprocessing standardises it per image",
        axes=[v0_5.BatchAxis(),
              *(v0_5.SpaceInputAxis(id=v0_5.AxisId(name), size=size)
                for name, size in zip(names, sizes)),
              v0_5.ChannelAxis(channel_names=[v0_5.Identifier(f"channel{i}")
                                              for i in range(geom.channels)])],
        test_tensor=v0_5.FileDescr(source=staging / "test_input.npy"),
        sample_tensor=v0_5.FileDescr(source=staging / "sample_input.tif"),
        data=v0_5.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=[v0_5.ZeroMeanUnitVarianceDescr(kwargs=v0_5.ZeroMeanUnitVarianceKwargs(
            axes=[v0_5.AxisId(axis) for axis in axes], eps=MIN_STD))],
    )


def _output_tensor(geom: ModelGeometry, name: str, activation: str | None,
                   staging: Path) -> v0_5.OutputTensorDescr:
    def cropped(axis: str, border: int) -> v0_5.SizeReference:  # the network crops it itself
        return v0_5.SizeReference(tensor_id=v0_5.TensorId(INPUT_ID), axis_id=v0_5.AxisId(axis),
                                  offset=-2 * border)

    names = SPACE_AXES[-geom.ndim:]
    return v0_5.OutputTensorDescr(
        id=v0_5.TensorId(name),
        description="class probabilities of the centre of the input (border cropped)",
        axes=[v0_5.BatchAxis(),
              *(v0_5.SpaceOutputAxis(id=v0_5.AxisId(axis), size=cropped(axis, border))
                for axis, border in zip(names, geom.borders)),
              v0_5.ChannelAxis(channel_names=[v0_5.Identifier(class_name)
                                              for class_name in geom.class_names])],
        test_tensor=v0_5.FileDescr(source=staging / "test_output.npy"),
        sample_tensor=v0_5.FileDescr(source=staging / "sample_output.tif"),
        data=v0_5.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        postprocessing=[] if activation == "softmax" else [
            v0_5.SoftmaxDescr(kwargs=v0_5.SoftmaxKwargs(axis=v0_5.AxisId("channel")))],
    )


def _classes(geom: ModelGeometry) -> str:
    return ", ".join(f"{index} {name}" for index, name in enumerate(geom.class_names))


def _crop_text(geom: ModelGeometry) -> str:
    """How much smaller the output is than the input: one number, or one per axis."""
    borders = set(geom.borders)
    if len(borders) == 1:
        return f"{2 * borders.pop()} px"
    return " x ".join(f"{2 * b}" for b in geom.borders) + " px (z x y x x)"


def _description(geom: ModelGeometry, activation: str | None) -> str:
    kind = ("U-Net (Ronneberger et al. 2015) for 2D segmentation" if geom.ndim == 2 else
            "3D U-Net (Cicek et al. 2016) for volume segmentation")
    return (f"{kind}, trained with keras_unet: "
            f"depth {geom.depth}, {geom.filters} filters, {geom.padding} padding (the output is "
            f"{_crop_text(geom)} smaller than the input), {geom.channels}-channel input. "
            f"Output channels (classes): {_classes(geom)}"
            f"{'' if activation == 'softmax' else ' (softmax applied as postprocessing)'}.")


def _readme(geom: ModelGeometry, info: PackageInfo, activation: str | None) -> str:
    rules = []
    for axis, fixed in enumerate(geom.input_size):
        size = _size_rule(geom, fixed, axis)
        rules.append(f"{size.min} + n * {size.step} px" if isinstance(
            size, v0_5.ParameterizedSize) else f"{size} px")
    axes = "b,y,x,c" if geom.ndim == 2 else "b,z,y,x,c"
    if geom.ndim == 2 and rules[0] == rules[1]:
        sizes = f"height and width {rules[0]}"
    else:
        sizes = ", ".join(f"{name} {rule}" for name, rule in
                          zip(SPACE_AXES[-geom.ndim:], rules))
    over = ", ".join(SPACE_AXES[-geom.ndim:])
    return f"""# {info.name}

{_description(geom, activation)}

Exported by keras_unet. Cite Ronneberger, Fischer and Brox (2015), doi:{PAPER_DOI}.

## Input and output

* Input `{INPUT_ID}`: `{axes}` float32, {sizes}; standardised per image to
  zero mean and unit variance over {over}{'' if geom.channels == 1 else ' and channels'}
  (epsilon {MIN_STD}), as keras_unet does in training.
* Output: `{axes}` float32 class probabilities of the input's centre: {_crop_text(geom)}
  smaller per axis (half of it lost on each side). Tile with that overlap.
* Classes: {_classes(geom)}.

## Weights

* `tensorflow_saved_model_bundle`: the bare float32 network, TensorFlow {tf.__version__}.
* `onnx`: the same network converted with tf2onnx.

Keras v3 weights are not included: they need keras_unet's custom layers to load.

## Training

The training configuration is attached as `training_config.yaml` (empty if unknown).

## Validation

The test tensors were computed by keras_unet from the packaged image; bioimageio.core's
`bioimageio test` reproduces them with each weight format. Validate the model on labelled
images of your own with `unet evaluate` (object F1, AP, SEG, Rand error) before relying on it.
"""


def _write_cover(image: np.ndarray, probabilities: np.ndarray, borders: tuple[int, ...],
                 path: Path) -> None:
    """image | prediction, side by side over the output area, 2:1 as the zoo asks (a volume's
    middle output plane)."""
    if probabilities.ndim == 4:  # a volume: its middle output plane
        middle = probabilities.shape[0] // 2
        image, probabilities = image[borders[0] + middle], probabilities[middle]
        borders = borders[1:]
    height, width = probabilities.shape[:2]
    top, left = borders
    crop = image[top:top + height, left:left + width].mean(axis=-1)
    low, high = np.percentile(crop, (1, 99))
    shown = np.clip((crop - low) / max(high - low, 1e-6), 0, 1)
    foreground = 1.0 - probabilities[..., 0]
    panel = np.concatenate([shown, foreground], axis=1)
    Image.fromarray((panel * 255).astype(np.uint8)).save(path)


def _zip_folder(folder: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(folder.rglob("*")):
            bundle.write(path, path.relative_to(folder))
