"""A zarr or OME-Zarr image in, an OME-Zarr prediction out: block by block, here or on dask.

Every 2D plane of the input (an OME-Zarr image's level 0, or a plain zarr array) is predicted
block by block (:func:`keras_unet.inference.blockwise.predict_array`, or its dask graph on a
``dask.distributed`` scheduler, :mod:`keras_unet.inference.dask_graph`) into one OME-Zarr store
(:class:`keras_unet.io.zarr_images.PredictionStore`): the probabilities as its image,
``labels/mask`` (the class of each pixel, named by the model's class names) and, for cells,
``labels/instances`` (one label per cell across blocks, :mod:`keras_unet.instances.blockwise`,
with the cell settings the model carries unless others are given), each with a
nearest-neighbour pyramid. The store is written under a temporary name and published when done
(:mod:`keras_unet.io.atomic`).
A 3D U-Net predicts every volume (z, y, x) of the input in boxes the same way, equal to the
whole volume, with one label per cell across box faces; memory is that of one box.
"""

from __future__ import annotations

import os
from pathlib import Path

from keras_unet.errors import InputError
from keras_unet.geometry import PREDICTION_BATCH
from keras_unet.inference.loading import Network
from keras_unet.io.atomic import faults_named
from keras_unet.instances.settings import CellSettings


def predict_zarr(network: Network, input_path: str | os.PathLike,
                 output_path: str | os.PathLike, *, instances: bool = False,
                 cells: CellSettings | None = None, block_size: int | None = None,
                 tile_size=None, batch_size: int = PREDICTION_BATCH, tta: bool = False,
                 scheduler: str | None = None, overwrite: bool = False) -> Path:
    """Predicts a zarr / OME-Zarr image into an OME-Zarr store; returns the store's path.

    Every check (input store, output, options against the model, channels, scheduler) runs
    before any pixel is predicted, and a failure leaves nothing under the output name.

    Args:
        network: a ``.keras`` or ONNX model opened by :func:`keras_unet.inference.load_network`
            (a SavedModel tiles whole images in its graph and cannot predict blocks).
        input_path: the zarr array or OME-Zarr multiscale image.
        output_path: the OME-Zarr store to write.
        instances: also write ``labels/instances``, one label per cell.
        cells: how the cells are made (default: what the model carries).
        block_size: output block side, also the output's chunks (default 2048).
        tile_size, batch_size, tta: as for :func:`keras_unet.predict_tiled`.
        scheduler: a ``dask.distributed`` scheduler address to run the blocks on.
        overwrite: replace an existing output store.

    Raises:
        FileNotFoundError, FileExistsError, ValueError, ConnectionError: naming what is wrong.

    Example:
        >>> import tempfile
        >>> import numpy as np, zarr
        >>> from keras_unet import build_unet
        >>> from keras_unet.inference import load_network
        >>> folder = Path(tempfile.mkdtemp())
        >>> build_unet((None, None, 1), 5, filters=4, depth=2).save(folder / "unet.keras")
        >>> image = zarr.create_array(folder / "in.zarr", shape=(40, 60), chunks=(32, 32),
        ...                           dtype="uint8")
        >>> image[:] = np.random.default_rng(0).integers(0, 255, (40, 60))
        >>> network = load_network(folder / "unet.keras")
        >>> out = predict_zarr(network, folder / "in.zarr", folder / "out.ome.zarr",
        ...                    block_size=32)
        >>> store = zarr.open_group(out, mode="r")
        >>> bool((store["labels/mask/0"][:] == np.argmax(store["0"][:], axis=0)).all())
        True
    """
    from keras_unet.inference.blocks import DEFAULT_BLOCK, DEFAULT_VOLUME_BLOCK, block_shape
    from keras_unet.inference.blockwise import check_array
    from keras_unet.io.zarr_images import PredictionStore, check_output, open_zarr_image

    input_path, output_path = Path(input_path), Path(output_path)
    if block_size is not None and (isinstance(block_size, bool) or block_size < 1):
        raise InputError(f"--block-size must be >= 1 (pixels), got {block_size}.")
    if network.tiles is None:
        raise InputError(f"--model {str(network.path)!r} is a SavedModel; zarr inputs are "
                         "predicted block by block and need the .keras or .onnx model.")
    network.check_options(tile_size=tile_size, batch_size=batch_size)
    layout = network.layout
    if instances:
        layout.require_cells(str(network.path))
    image = open_zarr_image(input_path)
    check_output(output_path, input_path, overwrite)
    ndim = network.ndim
    planes = image.planes(ndim)
    check_array(planes[0][1], network.channels, f"--input {str(input_path)!r}", ndim)
    block = block_shape(block_size or (DEFAULT_BLOCK if ndim == 2 else DEFAULT_VOLUME_BLOCK),
                        ndim)
    cells = network.cells if cells is None else cells
    client = None
    if scheduler:  # before any pixel: an address that does not answer fails fast
        from keras_unet.inference.dask_graph import connect

        client = connect(scheduler)
    try:
        with faults_named(output_path, "--output"):
            store = PredictionStore(output_path, image, layout, block, instances=instances,
                                    overwrite=overwrite)
            try:
                for index, plane in planes:
                    name = f"--input {str(input_path)!r}" + (f" plane {index}" if index else "")
                    _predict_plane(network, plane, store.views(index), block, name, cells,
                                   client is not None, tile_size=tile_size,
                                   batch_size=batch_size, tta=tta)
                return store.finish()
            except BaseException:
                store.discard()
                raise
    finally:
        if client is not None:
            client.close()


def _predict_plane(network: Network, plane, views: dict, block: tuple[int, ...], name: str,
                   cells: CellSettings, on_cluster: bool, **options) -> None:
    """One plane's probabilities, class mask and (if asked) cells, into the store's views."""
    from keras_unet.inference.blockwise import predict_array

    if not on_cluster:
        predict_array(network.tiles, plane, output=views["probabilities"],
                      classes=views["mask"], block_size=block, name=name, **options)
    else:
        import dask.array as da

        from keras_unet.class_layout import predicted_classes
        from keras_unet.inference.dask_graph import predict_dask

        graph = predict_dask(network.path, plane, block_size=block, name=name, **options)
        classes = graph.map_blocks(predicted_classes, drop_axis=graph.ndim - 1,
                                   dtype=network.layout.mask_dtype)
        da.store([graph, classes], [views["probabilities"], views["mask"]], lock=False)
    if "instances" in views:
        from keras_unet.instances.blockwise import blockwise_instance_labels

        volume = {} if len(block) == 2 or network.geometry is None else {
            "spacing": network.geometry.spacing}
        blockwise_instance_labels(views["probabilities"], views["instances"], block_size=block,
                                  **cells.options, **volume)
