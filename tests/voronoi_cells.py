"""EM-like test data: Voronoi cells that tile the image, with a 2 px membrane between them."""

import numpy as np
import scipy.ndimage
import skimage.measure
import skimage.segmentation


def voronoi_cells(size: int, cells: int, seed: int, margin: int = 0):
    """``(regions, membrane)``: labels 1..N covering the image, and the boolean membrane
    (each region's inner boundary, so two regions meet across 2 px)."""
    rng = np.random.default_rng(seed)
    points = np.zeros((size, size), bool)
    points[tuple(rng.integers(margin, size - margin, (2, cells)))] = True
    _, (rows, cols) = scipy.ndimage.distance_transform_edt(~points, return_indices=True)
    regions = skimage.measure.label(points)[rows, cols]
    return regions, skimage.segmentation.find_boundaries(regions, mode="inner")
