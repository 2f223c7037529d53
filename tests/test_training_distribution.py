"""Strategy and precision choice; MirroredStrategy and MultiWorkerMirroredStrategy for real.

The distributed tests run in fresh processes: logical CPU devices and collective ops must be
configured before TensorFlow initialises, which the test process itself has long done.
"""

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from keras_unet.training.cluster import Cluster, cluster_from_env
from keras_unet.training.distribution import (
    choose_policy,
    choose_strategy,
    cpu_supports_bfloat16,
)

TINY = {"synthetic_images": 3, "epochs": 2, "steps_per_epoch": 2, "batch_size": 4,
        "tile_size": 92, "depth": 2, "filters": 4, "val_fraction": 0.34,
        "mixed_precision": "off", "dropout": 0.0}


def _tf_config(workers, task_type="worker", index=0, chief=()):
    cluster = {"worker": list(workers)}
    if chief:
        cluster["chief"] = list(chief)
    return {"TF_CONFIG": json.dumps({"cluster": cluster,
                                     "task": {"type": task_type, "index": index}})}


def test_cluster_without_tf_config_is_a_single_chief():
    assert cluster_from_env({}) == Cluster(1, None, 0)
    assert cluster_from_env({}).is_chief


def test_worker_zero_is_chief_unless_the_cluster_has_a_chief():
    workers = ["127.0.0.1:1", "127.0.0.1:2"]
    assert cluster_from_env(_tf_config(workers, index=0)).is_chief
    assert not cluster_from_env(_tf_config(workers, index=1)).is_chief
    with_chief = _tf_config(workers, index=0, chief=["127.0.0.1:3"])
    assert cluster_from_env(with_chief).num_tasks == 3
    assert not cluster_from_env(with_chief).is_chief
    assert cluster_from_env(_tf_config(workers, "chief", 0, chief=["127.0.0.1:3"])).is_chief


@pytest.mark.parametrize("text", ["not json", '{"cluster": {}}', '{"task": {"type": "worker"}}'])
def test_malformed_tf_config_is_refused_with_the_expected_form(text):
    with pytest.raises(ValueError, match="TF_CONFIG must be JSON like"):
        cluster_from_env({"TF_CONFIG": text})


def test_task_outside_its_cluster_is_refused():
    with pytest.raises(ValueError, match="TF_CONFIG task 'worker' #2 is not in its cluster"):
        cluster_from_env(_tf_config(["127.0.0.1:1", "127.0.0.1:2"], index=2))


def test_multi_worker_without_tf_config_is_refused(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="--strategy multi-worker needs TF_CONFIG"):
        choose_strategy("multi-worker")


def test_default_and_auto_on_one_cpu_are_the_default_strategy():
    import tensorflow as tf

    assert choose_strategy("default", Cluster(1, None, 0)) is tf.distribute.get_strategy()
    assert choose_strategy("auto", Cluster(1, None, 0)) is tf.distribute.get_strategy()


@pytest.mark.parametrize("setting, gpu, bf16, policy", [
    ("auto", True, False, "mixed_float16"),
    ("auto", False, True, "mixed_bfloat16"),
    ("auto", False, False, "float32"),
    ("off", True, True, "float32"),
    ("float16", False, False, "mixed_float16"),
    ("bfloat16", False, False, "mixed_bfloat16"),
])
def test_policy_choice(setting, gpu, bf16, policy):
    assert choose_policy(setting, has_gpu=gpu, cpu_bfloat16=bf16) == policy


def test_bfloat16_cpu_flags_x86_and_arm():
    assert cpu_supports_bfloat16("processor : 0\nflags : fpu sse avx512f amx_bf16 amx_tile\n")
    assert cpu_supports_bfloat16("processor : 0\nFeatures : fp asimd sve bf16 i8mm\n")
    assert not cpu_supports_bfloat16("processor : 0\nFeatures : fp asimd sve\n")
    assert not cpu_supports_bfloat16("model name : avx512_bf16 in a name is not a flag\n")


def _run_python(code, env=None, timeout=180):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process, timeout=180):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"process timed out:\n{out}\n{err[-3000:]}")
    assert process.returncode == 0, f"{out}\n{err[-3000:]}"
    return out


@pytest.mark.slow
def test_mirrored_over_two_cpus_matches_one_device_training(tmp_path):
    """Two replicas of half the global batch take the same steps as one device with all of it."""
    code = f"""
        import json, numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        devices = [tf.config.LogicalDeviceConfiguration()] * 2
        tf.config.set_logical_device_configuration(cpu, devices)
        from keras_unet.training import train
        config = dict({TINY!r}, elastic=False, export=False)
        one = train(dict(config, strategy="default", run_dir={str(tmp_path / 'one')!r}), verbose=0)
        two = train(dict(config, strategy="auto", run_dir={str(tmp_path / 'two')!r}), verbose=0)
        np.savez({str(tmp_path / 'weights.npz')!r}, *one.model.get_weights(),
                 *two.model.get_weights())
        try:
            train(dict(config, batch_size=3, run_dir={str(tmp_path / 'three')!r}), verbose=0)
        except ValueError as error:
            refused = str(error)
        print(json.dumps([one.strategy, two.strategy,
                          two.model.distribute_strategy.num_replicas_in_sync, refused]))
    """
    out = _finish(_run_python(code))
    assert json.loads(out.strip().splitlines()[-1]) == [
        "default", "MirroredStrategy", 2,
        "batch_size 3 does not split evenly over 2 replicas; use a multiple of 2."]
    assert not (tmp_path / "three").exists()
    weights = list(np.load(tmp_path / "weights.npz").values())
    one, two = weights[:len(weights) // 2], weights[len(weights) // 2:]
    assert any(np.abs(w).max() > 0 for w in one)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow
def test_the_documented_multi_worker_command_runs_on_two_localhost_workers(tmp_path):
    """training/README.md's recipe as users run it: the same command on every worker with its
    own TF_CONFIG (one says --strategy multi-worker, the other relies on auto)."""
    import keras

    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    (tmp_path / "tiny.yaml").write_text("synthetic_images: 3\n")
    command = [os.path.join(os.path.dirname(sys.executable), "unet"), "train", "--config",
               str(tmp_path / "tiny.yaml"), "--run-dir", str(tmp_path / "run"), "--epochs", "2",
               "--steps-per-epoch", "2", "--batch-size", "2", "--tile-size", "92", "--depth",
               "2", "--filters", "2", "--mixed-precision", "off", "--val-fraction", "0.34"]
    processes = [subprocess.Popen(command + ["--strategy", strategy],
                                  env={**os.environ, **_tf_config(workers, index=index)},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for index, strategy in enumerate(("multi-worker", "auto"))]
    outputs = [_finish(process, timeout=300) for process in processes]
    assert "MultiWorkerMirroredStrategy with 2 replica(s)" in outputs[0]
    assert "Served model:" in outputs[0] and "Served model:" not in outputs[1]
    chief, worker = (keras.models.load_model(path, compile=False) for path in (
        tmp_path / "run" / "checkpoints" / "last.keras",
        tmp_path / "run" / "workers" / "worker-1" / "checkpoints" / "last.keras"))
    for a, b in zip(chief.get_weights(), worker.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "run" / "export").is_dir()
    assert not (tmp_path / "run" / "workers" / "worker-1" / "backup").exists()


def test_the_mirrored_recipe_runs_as_a_command(tmp_path):
    """``--strategy mirrored`` over the visible devices (one CPU here), as training/README.md has
    it."""
    (tmp_path / "tiny.yaml").write_text("synthetic_images: 2\n")
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "unet"), "train", "--config",
         str(tmp_path / "tiny.yaml"), "--strategy", "mirrored", "--run-dir", str(tmp_path / "run"),
         "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--tile-size", "92",
         "--depth", "2", "--filters", "2", "--mixed-precision", "off", "--val-fraction", "0"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MirroredStrategy with 1 replica(s)" in result.stdout
    # one epoch and no validation images, said as such (was "all 1 epochs", "IoU nan")
    assert re.search(r"^Stopped: +its one epoch done in .* \(1 steps\)$", result.stdout, re.M)
    assert re.search(r"^Last epoch: +loss \d\.\d{3} \(no validation images\), ", result.stdout,
                     re.M), result.stdout


def test_a_batch_that_cannot_split_over_the_workers_is_refused_before_connecting(tmp_path):
    """A worker whose peers never come waits on them for good; a mistake it can see alone is
    refused before it connects."""
    environment = {**os.environ, **_tf_config(["127.0.0.1:1", "127.0.0.1:2"])}
    result = subprocess.run([str(Path(sys.executable).with_name("unet")), "train", "--run-dir",
                             str(tmp_path / "run"), "--batch-size", "3"], env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr == ("unet train: error: batch_size 3 does not split evenly over 2 "
                             "workers; use a multiple of 2.\n")
    assert not (tmp_path / "run").exists()
