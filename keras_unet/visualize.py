"""Pictures of predictions: overlays for files and viewers, panels for TensorBoard.

Colours come from the class layout (:func:`keras_unet.class_layout.class_colour`), so a mask
file, an overlay, a TensorBoard panel and a napari labels layer show each class alike. Cell
outlines are drawn by scikit-image (:func:`skimage.segmentation.mark_boundaries`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from keras_unet.class_layout import class_colour, default_class_names

OUTLINE = (255, 255, 0)
"""The colour of cell outlines in overlays (yellow)."""

CLASS_OPACITY = 0.45
"""How strongly a class overlay tints the image with each class's colour."""

PANEL_GAP = 4
"""Pixels of white between the columns of a validation panel."""

PANEL_TILE_PIXELS = 256
"""Smallest size a validation tile is shown at in TensorBoard (whole-factor enlargement)."""

PANEL_TITLE = 16
"""Rows of the strip above a validation panel that names its columns."""

PANEL_COLUMNS = ("input", "ground truth", "prediction", "weight map")
"""The columns of a validation panel, left to right."""

PANEL_LEGEND = 16
"""Rows of the strip below the titles that shows each class's colour and name."""


def display_rgb(image) -> np.ndarray:
    """An image as 8-bit RGB for display: 3-channel images in colour (H&E stays pink and
    purple), others grey with their channels averaged; one 1st-99th percentile stretch for all
    channels, so that hues keep their balance.

    Example:
        >>> display_rgb(np.arange(5.0)[None])[..., 0].tolist()
        [[0, 62, 128, 193, 255]]
        >>> display_rgb(np.array([[[255.0, 0, 0], [0, 0, 255]]])).tolist()
        [[[255, 0, 0], [0, 0, 255]]]
    """
    image = np.asarray(image, np.float64)
    shown = _shown_channels(image if image.ndim == 3 else image[..., None])
    low, high = np.percentile(shown, (1, 99))
    shown = np.clip((shown - low) / max(high - low, 1e-12) * 255, 0, 255).round().astype(np.uint8)
    return _as_rgb(shown)


def _shown_channels(image: np.ndarray) -> np.ndarray:
    """What a picture shows of ``(..., C)`` pixels: 3 channels as they are, else their mean."""
    return image if image.shape[-1] == 3 else image.mean(-1, keepdims=True)


def _as_rgb(shown: np.ndarray) -> np.ndarray:
    """``(..., 3)`` RGB of :func:`_shown_channels`' 3 channels or 1 (repeated as grey)."""
    return np.repeat(shown, 3 // shown.shape[-1], axis=-1)


def outline_overlay(image, labels) -> np.ndarray:
    """The image as 8-bit RGB (:func:`display_rgb`) with the outlines of the labelled cells.

    Example:
        >>> labels = np.zeros((5, 5), int); labels[1:4, 1:4] = 1
        >>> outline_overlay(np.zeros((5, 5)), labels)[2, :, 0].tolist()
        [0, 255, 0, 255, 0]
    """
    from skimage.segmentation import mark_boundaries

    marked = mark_boundaries(display_rgb(image), np.asarray(labels),
                             color=np.array(OUTLINE) / 255.0, mode="inner")
    return np.round(marked * 255).astype(np.uint8)


def class_overlay(image, classes, opacity: float = CLASS_OPACITY) -> np.ndarray:
    """The image as 8-bit RGB (:func:`display_rgb`) with every class but background tinted in
    its colour.

    Example:
        >>> class_overlay(np.zeros((1, 3)), np.array([[0, 1, 2]]), opacity=1.0)[0].tolist()
        [[0, 0, 0], [230, 25, 75], [60, 180, 75]]
    """
    classes = np.asarray(classes)
    rgb = display_rgb(image).astype(np.float64)
    colours = class_colours(int(np.max(classes, initial=0)) + 1) * 255.0
    tinted = classes > 0
    rgb[tinted] = (1 - opacity) * rgb[tinted] + opacity * colours[classes[tinted]]
    return np.round(rgb).astype(np.uint8)


def class_colours(count: int) -> np.ndarray:
    """``(count, 3)`` float32 colours in [0, 1] of classes 0..count-1.

    Example:
        >>> class_colours(2).round(3).tolist()
        [[0.0, 0.0, 0.0], [0.902, 0.098, 0.294]]
    """
    return np.array([class_colour(index) for index in range(count)], np.float32) / 255.0


def middle_planes(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                  weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """The middle plane of the output of volume tiles, as the tiles :func:`validation_panel`
    shows: ``(N, T, T, C)`` input planes (the one at the same depth), ``(N, O, O)`` labels and
    weights, ``(N, O, O, K)`` probabilities. Images pass through unchanged.

    Example:
        >>> images = np.arange(5.0).reshape(1, 5, 1, 1, 1)
        >>> labels = np.arange(3).reshape(1, 3, 1, 1)
        >>> planes = middle_planes(images, labels, np.ones((1, 3, 1, 1, 2)), np.ones((1, 3, 1, 1)))
        >>> float(planes[0][0, 0, 0, 0]), int(planes[1][0, 0, 0])  # output plane 1: input's 2
        (2.0, 1)
    """
    if np.ndim(labels) != 4:
        return images, labels, probabilities, weights
    middle = labels.shape[1] // 2
    plane = (images.shape[1] - labels.shape[1]) // 2 + middle
    return (images[:, plane], labels[:, middle], probabilities[:, middle], weights[:, middle])


def validation_panel(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                     weights: np.ndarray, class_names: Sequence[str] | None = None) -> np.ndarray:
    """Pictures of input / ground truth / prediction / weight map side by side, one per tile.

    All four are shown over the output area of the network: the input tile is centre-cropped to
    it (a valid-padding network predicts only the centre of its input). The input is shown as
    :func:`display_rgb` shows images (3 channels in colour, others grey with their channels
    averaged), scaled by the tile's own minimum and maximum; the ground truth shows each class
    in its fixed colour (:func:`keras_unet.class_layout.class_colour`, unlabelled pixels
    mid-grey); the prediction shows the argmax class in its colour, as bright as its
    probability; the weight map is grey, scaled by its maximum. Small tiles are enlarged by a
    whole factor (nearest neighbour) to at least :data:`PANEL_TILE_PIXELS`; a strip of
    :data:`PANEL_TITLE` rows on top names the columns and one of :data:`PANEL_LEGEND` rows below
    it the class colours.

    Volume tiles are shown by their middle output plane (:func:`middle_planes`).

    Args:
        images: ``(N, T, T, C)`` input tiles.
        labels: ``(N, O, O)`` integer class labels (-1: unlabelled).
        probabilities: ``(N, O, O, K)`` predicted class probabilities.
        weights: ``(N, O, O)`` pixel weights.
        class_names: the K names for the legend (default:
            :func:`keras_unet.class_layout.default_class_names`).

    Returns:
        float32 RGB ``(N, PANEL_TITLE + PANEL_LEGEND + s * O, 4 * s * O + 3 * PANEL_GAP, 3)``
        pictures in [0, 1] for ``tf.summary.image``, with ``s = ceil(PANEL_TILE_PIXELS / O)``.

    Example:
        >>> images = np.zeros((1, 6, 6, 1)); images[0, 2, 2] = 1
        >>> probabilities = np.stack([np.ones((1, 2, 2)), np.zeros((1, 2, 2))], -1)
        >>> panel = validation_panel(images, np.ones((1, 2, 2), int), probabilities,
        ...                          np.full((1, 2, 2), 3.0))
        >>> panel.shape  # 2x2 tiles shown as 256x256
        (1, 288, 1036, 3)
        >>> row = panel[0, PANEL_TITLE + PANEL_LEGEND]  # the top row of the four pictures
        >>> [row[column * (256 + PANEL_GAP)].round(3).tolist() for column in range(4)]
        [[1.0, 1.0, 1.0], [0.902, 0.098, 0.294], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
    """
    images, labels, probabilities, weights = middle_planes(images, labels, probabilities, weights)
    size = labels.shape[1]
    classes = probabilities.shape[-1]
    names = tuple(class_names) if class_names is not None else default_class_names(classes)
    top = (images.shape[1] - size) // 2
    left = (images.shape[2] - size) // 2
    picture = _shown_channels(np.asarray(images[:, top:top + size, left:left + size],
                                         np.float32))
    low = picture.min(axis=(1, 2, 3), keepdims=True)
    high = picture.max(axis=(1, 2, 3), keepdims=True)
    picture = _as_rgb((picture - low) / np.maximum(high - low, 1e-6))
    colours = class_colours(max(classes, int(np.max(labels, initial=0)) + 1))
    labels = np.asarray(labels)
    truth = np.where((labels < 0)[..., None], UNLABELLED_GREY, colours[np.maximum(labels, 0)])
    predicted = np.argmax(probabilities, axis=-1)
    confidence = np.max(probabilities, axis=-1)[..., None].astype(np.float32)
    prediction = colours[predicted] * confidence
    weights = np.asarray(weights, np.float32)
    weights = weights / np.maximum(weights.max(axis=(1, 2), keepdims=True), 1e-6)
    scale = math.ceil(PANEL_TILE_PIXELS / size)
    gap = np.ones((labels.shape[0], size * scale, PANEL_GAP, 3), np.float32)
    row = [gap] * 7
    row[::2] = [np.repeat(np.repeat(part, scale, axis=1), scale, axis=2)
                for part in (picture, truth, prediction, _grey(weights))]
    row = np.concatenate(row, axis=2)
    strips = np.concatenate([_column_titles(row.shape[2], size * scale + PANEL_GAP),
                             _legend(row.shape[2], names, colours)], axis=0)
    return np.concatenate([np.broadcast_to(strips, (len(row), *strips.shape)), row],
                          axis=1).astype(np.float32)


UNLABELLED_GREY = np.float32(0.5)
"""The shade of unlabelled ground-truth pixels in a validation panel."""


def _grey(picture: np.ndarray) -> np.ndarray:
    return np.repeat(picture[..., None], 3, axis=-1)


def _column_titles(width: int, column_width: int) -> np.ndarray:
    """A ``(PANEL_TITLE, width, 3)`` strip with the names of :data:`PANEL_COLUMNS`."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, PANEL_TITLE), (0, 0, 0))
    draw = ImageDraw.Draw(strip)
    for index, name in enumerate(PANEL_COLUMNS):
        draw.text((index * column_width + 2, 2), name, fill=(255, 255, 255))
    return np.asarray(strip, np.float32) / 255.0


def _legend(width: int, names: Sequence[str], colours: np.ndarray) -> np.ndarray:
    """A ``(PANEL_LEGEND, width, 3)`` strip: a square of each class's colour and its name."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, PANEL_LEGEND), (0, 0, 0))
    draw = ImageDraw.Draw(strip)
    x = 2
    for index, name in enumerate(names):
        colour = tuple(int(round(c * 255)) for c in colours[index])
        draw.rectangle((x, 3, x + 9, 12), fill=colour, outline=(255, 255, 255))
        draw.text((x + 13, 2), f"{index} {name}", fill=(255, 255, 255))
        x += 13 + int(draw.textlength(f"{index} {name}")) + 12
    return np.asarray(strip, np.float32) / 255.0
