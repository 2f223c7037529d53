"""The zarr / OME-Zarr path of ``unet predict``: block-wise, in this process or on dask.

    unet predict --model unet.keras --input big.ome.zarr --output out.ome.zarr
                 [--scheduler tcp://host:8786] [--block-size 2048] [--instances]

Every 2D plane of the input (an OME-Zarr image's level 0, or a plain zarr array) is predicted
block by block (:func:`keras_unet.blockwise.predict_array`, or its dask graph on the scheduler
given, :mod:`keras_unet.dask_prediction`) into one OME-Zarr store: the probabilities as its
image, ``labels/mask`` (the class of each pixel) and with ``--instances`` ``labels/instances``
(one label per cell across blocks, :mod:`keras_unet.blockwise_instances`), each with a
nearest-neighbour pyramid. The store is written as ``<output>.partial`` and renamed when done.
"""

from __future__ import annotations

import argparse
import sys

from keras_unet.errors import InputError


def add_zarr_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--scheduler`` and ``--block-size`` to ``unet predict``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_zarr_arguments(parser)
        >>> parser.parse_args(["--block-size", "512"]).block_size
        512
    """
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="zarr input: run the blocks on this dask.distributed scheduler\n"
                             "(e.g. tcp://host:8786; default: in this process)")
    parser.add_argument("--block-size", type=int, default=None, metavar="PX",
                        help="zarr input: output block side, also the output's chunks\n"
                             "(default: 2048)")


def predicts_zarr(args: argparse.Namespace) -> bool:
    """Whether ``args.input`` is a zarr store, which this module predicts.

    Raises:
        ValueError: if ``--scheduler`` or ``--block-size`` is given for another input.

    Example:
        >>> from pathlib import Path
        >>> predicts_zarr(argparse.Namespace(input=Path("a.png"), scheduler=None,
        ...                                  block_size=None))
        False
    """
    from keras_unet.ome_zarr_io import is_zarr_path

    if is_zarr_path(args.input):
        return True
    for option, value in (("--scheduler", args.scheduler), ("--block-size", args.block_size)):
        if value is not None:
            raise InputError(f"{option} applies to zarr / OME-Zarr inputs; --input "
                             f"{str(args.input)!r} is not one.")
    return False


def run_zarr(args: argparse.Namespace) -> int:
    """Predicts a zarr / OME-Zarr ``--input`` into the OME-Zarr store ``--output``; returns 0.

    Every check (input store, output, model, channels, scheduler) runs before any pixel is
    predicted, and a failure leaves nothing under the output name.

    Raises:
        FileNotFoundError, FileExistsError, ValueError, ConnectionError: naming the option.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np, zarr
        >>> from keras_unet import build_unet
        >>> folder = Path(tempfile.mkdtemp())
        >>> build_unet((None, None, 1), 2, filters=4, depth=2).save(folder / "unet.keras")
        >>> image = zarr.create_array(folder / "in.zarr", shape=(40, 60), chunks=(32, 32),
        ...                           dtype="uint8")
        >>> image[:] = np.random.default_rng(0).integers(0, 255, (40, 60))
        >>> args = argparse.Namespace(
        ...     model=folder / "unet.keras", input=folder / "in.zarr",
        ...     output=folder / "out.ome.zarr", scheduler=None, block_size=32, tta=False,
        ...     tile_size=None, batch_size=4, instances=True, instance_method="auto",
        ...     min_size=10, overwrite=False, probabilities=False, overlays=False)
        >>> run_zarr(args)
        /tmp/.../in.zarr -> /tmp/.../out.ome.zarr
        0
    """
    from keras_unet.ome_zarr_io import check_output, open_zarr_image

    if args.block_size is not None and args.block_size < 1:
        raise InputError(f"--block-size must be >= 1 (pixels), got {args.block_size}.")
    image = open_zarr_image(args.input)
    check_output(args.output, args.input, args.overwrite)
    client = None
    if args.scheduler:  # before loading the model: an address that does not answer fails fast
        from keras_unet.dask_prediction import connect

        client = connect(args.scheduler)
    try:
        _predict_store(args, image, client)
    finally:
        if client is not None:
            client.close()
    print(f"{args.input} -> {args.output}")
    return 0


def _predict_store(args: argparse.Namespace, image, client) -> None:
    from keras_unet.blockwise import DEFAULT_BLOCK, block_pair, check_array
    from keras_unet.inference import model_geometry
    from keras_unet.ome_zarr_io import PredictionStore

    block = block_pair(args.block_size or DEFAULT_BLOCK)
    model = _load_model(args)
    geom = model_geometry(model)
    planes = image.planes()
    check_array(planes[0][1], geom.channels, f"--input {str(args.input)!r}")
    if args.instances and geom.num_classes not in (2, 3):
        raise InputError(f"--instances needs a 2- or 3-class model; --model {str(args.model)!r} "
                         f"has {geom.num_classes} classes.")
    if args.overlays:
        print(f"unet predict: no overlay for {str(args.input)!r}: zarr output holds the "
              "labels for napari instead.", file=sys.stderr)
    store = PredictionStore(args.output, image, geom.num_classes, block,
                            instances=args.instances, overwrite=args.overwrite)
    try:
        for index, plane in planes:
            name = f"--input {str(args.input)!r}" + (f" plane {index}" if index else "")
            _predict_plane(args, model, plane, store.views(index), block, name, client)
        store.finish()
    except BaseException:
        store.discard()
        raise


def _load_model(args: argparse.Namespace):
    from keras_unet.cli.model_loading import load_predictor

    predictor = load_predictor(args.model, tta=args.tta, tile_size=args.tile_size,
                               batch_size=args.batch_size)
    if predictor.keras_model is None:
        raise InputError(f"--model {str(args.model)!r} is a SavedModel; zarr inputs are "
                         "predicted block by block and need the .keras model.")
    return predictor.keras_model


def _predict_plane(args, model, plane, views, block, name: str, client) -> None:
    from keras_unet.blockwise import predict_array

    options = dict(block_size=block, tile_size=args.tile_size, batch_size=args.batch_size,
                   tta=args.tta, name=name)
    if client is None:
        predict_array(model, plane, output=views["probabilities"], classes=views["mask"],
                      **options)
    else:
        import dask.array as da
        import numpy as np

        from keras_unet.blockwise import class_indices
        from keras_unet.dask_prediction import predict_dask

        graph = predict_dask(args.model, plane, **options)
        classes = graph.map_blocks(class_indices, drop_axis=2, dtype=np.uint8)
        da.store([graph, classes], [views["probabilities"], views["mask"]], lock=False)
    if "instances" in views:
        from keras_unet.blockwise_instances import blockwise_instance_labels

        blockwise_instance_labels(views["probabilities"], views["instances"], block_size=block,
                                  method=args.instance_method, min_size=args.min_size)

