"""Which CPU kernels `unet train` trains with: oneDNN turned on where it trains faster."""

import argparse
import os
import sys

import pytest

from keras_unet.cli import train as train_cli
from keras_unet.training import cpu_kernels
from keras_unet.training.cpu_kernels import (
    cpu_flags,
    onednn_helps_training,
    turn_on_onednn_for_training,
)

AVX2 = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"})  # a Zen 2/3 EPYC: Eigen by default


def test_cpu_flags_are_read_from_the_flags_or_features_lines_only():
    x86 = "processor\t: 0\nmodel name\t: avx512_vnni is no flag\nflags\t\t: fpu avx2 fma\n"
    assert cpu_flags(x86) == {"fpu", "avx2", "fma"}
    assert cpu_flags("processor : 0\nFeatures : fp asimd bf16\n") == {"fp", "asimd", "bf16"}
    assert cpu_flags("") == frozenset()


@pytest.mark.parametrize("flags, filters, precision, expected", [
    (AVX2, 16, "auto", True),  # the CPU defaults' network: 1.9x faster on oneDNN's AVX2 kernels
    (AVX2, 16, "off", True),
    (AVX2, 32, "auto", True),  # 1.22x
    (AVX2, 33, "auto", False),  # wider: Eigen (64 filters 0.93x, the paper's network 0.71x)
    (AVX2, 16, "bfloat16", False),  # oneDNN's AVX2 kernels refuse bfloat16 convolutions
    (AVX2, 16, "float16", False),
    (AVX2 | {"avx512f", "avx512_vnni"}, 16, "auto", False),  # TensorFlow turns it on itself
    (AVX2 | {"avx_vnni"}, 16, "auto", False),
    (AVX2 | {"amx_tile"}, 16, "auto", False),
    (frozenset({"fpu", "sse4_2", "avx"}), 16, "auto", False),  # no AVX2: not measured
    (frozenset({"fp", "asimd"}), 16, "auto", False),  # Arm
])
def test_onednn_trains_narrow_float32_networks_on_cpus_where_tensorflow_leaves_it_off(
        flags, filters, precision, expected):
    assert onednn_helps_training(filters, precision, flags) is expected


@pytest.fixture
def before_tensorflow(monkeypatch):
    """A process that has not imported TensorFlow, with no TF_ENABLE_ONEDNN_OPTS of its own."""
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    environ = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    monkeypatch.setattr(os, "environ", environ)
    return environ


def test_the_switch_is_set_before_tensorflow_starts_and_never_over_the_users(before_tensorflow,
                                                                             monkeypatch):
    assert turn_on_onednn_for_training(16, flags=AVX2)
    assert before_tensorflow["TF_ENABLE_ONEDNN_OPTS"] == "1"

    users = {"TF_ENABLE_ONEDNN_OPTS": "0"}
    assert not turn_on_onednn_for_training(16, flags=AVX2, environ=users)
    assert users == {"TF_ENABLE_ONEDNN_OPTS": "0"}

    late = {}  # TensorFlow has read the variable already: setting it would change nothing here
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    assert not turn_on_onednn_for_training(16, flags=AVX2, environ=late)
    assert late == {}


@pytest.mark.parametrize("argv, expected", [
    ([], "1"),                                 # the demo: 16 filters
    (["--filters", "64"], None),              # wide: Eigen trains it faster
    (["--mixed-precision", "bfloat16"], None),  # oneDNN's AVX2 kernels refuse it
    (["--init", "model.keras"], None),        # its width is read only after TensorFlow starts
])
def test_unet_train_chooses_the_kernels_while_it_prepares(before_tensorflow, monkeypatch,
                                                          argv, expected):
    monkeypatch.setattr(cpu_kernels, "cpu_flags", lambda cpuinfo=None: AVX2)
    parser = argparse.ArgumentParser()
    args = train_cli.add_parser(parser.add_subparsers()).parse_args(argv)
    train_cli.prepare(args)
    assert args.onednn is (expected is not None)
    assert before_tensorflow.get("TF_ENABLE_ONEDNN_OPTS") == expected

