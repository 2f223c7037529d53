"""Block-wise prediction on a dask.distributed cluster of 2 worker processes, started here."""

import os
import signal
import socket
import time

import dask
import dask.array as da
import keras
import numpy as np
import pytest
import zarr

from keras_unet import build_unet
from keras_unet.errors import SchedulerUnreachableError
from keras_unet.inference.blockwise import predict_array
from keras_unet.inference.dask_graph import cached_network, connect, predict_dask
from keras_unet.inference.engine import read_span

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow  # worker processes


@pytest.fixture(scope="module")
def cluster():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=None, worker_dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    keras.utils.set_random_seed(2)
    path = tmp_path_factory.mktemp("model") / "unet.keras"
    build_unet((None, None, 1), 2, filters=4, depth=2).save(path)
    return str(path)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 128 x 176 uint16 zarr image in 64 px chunks, which the workers open themselves."""
    image = np.random.default_rng(3).integers(0, 65535, (128, 176)).astype("uint16")
    array = zarr.create_array(tmp_path_factory.mktemp("in") / "in.zarr", shape=image.shape,
                              chunks=(64, 64), dtype=image.dtype)
    array[:] = image
    return array


@pytest.fixture(scope="module")
def expected(model_path, source):
    return predict_array(keras.models.load_model(model_path), source[:], block_size=64)


def test_zarr_and_dask_inputs_give_exactly_the_single_process_result_loading_once(
        cluster, model_path, source, expected):
    graph = predict_dask(model_path, source)  # one task per 64 px chunk: 6 tasks
    assert graph.numblocks[:2] == (2, 3)
    assert (graph.compute() == expected).all()
    lazy = da.from_zarr(source)  # a dask array: each task gets its block and context
    assert (predict_dask(model_path, lazy, block_size=64).compute() == expected).all()
    loads = cluster.run(lambda: cached_network.cache_info().misses)
    assert sorted(loads.values()) == [1, 1]  # both workers worked, each loaded it once


def test_unet_predict_runs_the_blocks_on_the_scheduler_given(cluster, model_path, source,
                                                             expected, tmp_path, capsys):
    from keras_unet.cli import main

    out = tmp_path / "out.ome.zarr"
    code = main(["predict", "--model", model_path, "--input", str(source.store.root),
                 "--output", str(out), "--block-size", "64",
                 "--scheduler", cluster.scheduler.address])
    assert code == 0, capsys.readouterr().err
    probabilities = np.moveaxis(zarr.open_group(out, mode="r")["0"][:], 0, -1)  # c, y, x
    assert (probabilities == expected).all()


def test_a_killed_worker_is_replaced_and_no_chunk_is_half_written(cluster, model_path, source,
                                                                  expected, tmp_path):
    output = zarr.create_array(tmp_path / "out.zarr", shape=(*source.shape, 2),
                               chunks=(64, 64, 2), dtype="float32", fill_value=np.nan)
    job = cluster.compute(da.store(predict_dask(model_path, source), output,
                                   lock=False, compute=False))
    pids = cluster.run(os.getpid)
    deadline = time.monotonic() + 60
    while not any((tmp_path / "out.zarr" / "c").rglob("*")):  # the first chunk is written
        assert time.monotonic() < deadline
        time.sleep(0.05)
    killed = next(iter(pids.values()))
    os.kill(killed, signal.SIGKILL)
    job.result(timeout=120)
    assert killed not in cluster.run(os.getpid).values()  # it died mid-run
    assert (output[:] == expected).all()  # every chunk whole and right


def test_read_span_covers_what_the_engine_reads_and_no_more():
    from keras_unet.inference.network import ModelGeometry

    geom = ModelGeometry(2, "valid", 1, 2, (None, None), 4)
    (r0, r1), (c0, c1) = read_span(geom, (64, 96, 32, 32), (512, 512))
    assert r0 == 64 - 20 and c0 == 96 - 20  # the border of a depth-2 network
    assert 32 + 40 <= r1 - r0 <= 32 + 40 + 8  # plus at most one pooling step of rounding


def test_a_scheduler_that_does_not_answer_fails_within_seconds_naming_it():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(SchedulerUnreachableError, match=f"tcp://127.0.0.1:{port}"):
        connect(f"tcp://127.0.0.1:{port}", timeout=2)
    assert time.monotonic() - start < 10


def test_what_is_not_an_address_is_named_as_a_mistake():
    before = dask.config.get("scheduler", None)
    with pytest.raises(ValueError, match="^--scheduler 'notanaddress' is not a scheduler address "
                                         r"\(.*\); give one like tcp://host:8786\.$"):
        connect("notanaddress", timeout=2)
    assert dask.config.get("scheduler", None) == before  # later computations run as before


def test_a_missing_model_file_is_named(source):
    with pytest.raises(FileNotFoundError, match="no-such.keras"):
        predict_dask("no-such.keras", source)
