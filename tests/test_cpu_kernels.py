"""Which CPU kernels `unet train` trains with: oneDNN turned on where it trains faster, off
where it cannot compute the bfloat16 asked for."""

import argparse
import os
import subprocess
import sys

import pytest

from keras_unet.cli import train as train_cli
from keras_unet.errors import InputError
from keras_unet.training import cpu_kernels
from keras_unet.training.cpu_kernels import (
    AVX512_CORE,
    bfloat16_convolutions_fail,
    choose_training_kernels,
    cpu_flags,
    onednn_helps_training,
    refuse_failing_bfloat16,
    turn_on_onednn_for_training,
)
from keras_unet.training.distribution import choose_policy

AVX2 = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"})  # a Zen 2/3 EPYC: Eigen by default
AVX_VNNI = AVX2 | {"avx_vnni"}  # an Alder Lake laptop: TensorFlow turns oneDNN on, no AVX-512
ZEN5 = AVX2 | AVX512_CORE | {"avx512_vnni", "avx512_bf16", "avx_vnni"}
CASCADE_LAKE = AVX2 | AVX512_CORE | {"avx512_vnni"}  # oneDNN emulates bfloat16 there


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
    assert choose_training_kernels(16, flags=AVX2) == "oneDNN"
    assert before_tensorflow["TF_ENABLE_ONEDNN_OPTS"] == "1"
    fresh = {}
    assert turn_on_onednn_for_training(16, flags=AVX2, environ=fresh)  # the quickstart's call
    assert fresh == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    on_already = {}
    assert not turn_on_onednn_for_training(16, flags=AVX_VNNI, environ=on_already)
    assert on_already == {}

    users = {"TF_ENABLE_ONEDNN_OPTS": "0"}
    assert choose_training_kernels(16, flags=AVX2, environ=users) is None
    assert users == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    users = {"TF_ENABLE_ONEDNN_OPTS": "1"}
    assert choose_training_kernels(16, "bfloat16", flags=AVX_VNNI, environ=users) is None
    assert users == {"TF_ENABLE_ONEDNN_OPTS": "1"}

    late = {}  # TensorFlow has read the variable already: setting it would change nothing here
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    assert choose_training_kernels(16, flags=AVX2, environ=late) is None
    assert choose_training_kernels(16, "bfloat16", flags=AVX_VNNI, environ=late) is None
    assert late == {}


@pytest.mark.parametrize("flags, environ, fails", [
    (AVX_VNNI, {}, True),  # oneDNN on by TensorFlow's rule, no AVX-512: no bf16 convolutions
    (AVX2, {"TF_ENABLE_ONEDNN_OPTS": "1"}, True),  # the user's oneDNN on an AVX2 CPU
    (AVX2 | {"avx512f"}, {}, False),  # TensorFlow runs Eigen, which emulates bfloat16
    (AVX_VNNI, {"TF_ENABLE_ONEDNN_OPTS": "0"}, False),
    (AVX_VNNI, {"TF_ENABLE_ONEDNN_OPTS": "false"}, False),
    (CASCADE_LAKE, {}, False),  # oneDNN's avx512_core emulates bfloat16
    (ZEN5, {}, False),
    (AVX2 | {"amx_tile", "amx_bf16"}, {}, False),
])
def test_bfloat16_convolutions_fail_only_on_onednn_without_avx512(flags, environ, fails):
    assert bfloat16_convolutions_fail(flags, environ) is fails


def test_bfloat16_on_failing_kernels_is_refused_in_one_line_before_any_work(monkeypatch):
    with pytest.raises(InputError, match=r"^mixed_precision bfloat16: .*TF_ENABLE_ONEDNN_OPTS=0"):
        refuse_failing_bfloat16(AVX_VNNI, environ={})
    refuse_failing_bfloat16(ZEN5, environ={})
    monkeypatch.setattr(cpu_kernels, "cpu_flags", lambda cpuinfo=None: AVX_VNNI)
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    with pytest.raises(InputError, match="no bfloat16 convolutions"):
        choose_policy("bfloat16", has_gpu=False)
    assert choose_policy("bfloat16", has_gpu=True) == "mixed_bfloat16"  # convolutions on the GPU
    assert choose_policy("auto", has_gpu=False, cpu_bfloat16=False) == "float32"


@pytest.mark.parametrize("flags, argv, expected", [
    (AVX2, [], "1"),                                   # the demo: 16 filters
    (AVX2, ["--filters", "64"], None),                # wide: Eigen trains it faster
    (AVX2, ["--mixed-precision", "bfloat16"], None),  # Eigen already, which emulates it
    (AVX2, ["--init", "model.keras"], None),          # its width is read only after TF starts
    (AVX_VNNI, [], None),                             # oneDNN already
    (AVX_VNNI, ["--mixed-precision", "bfloat16"], "0"),  # oneDNN cannot: Eigen
    (AVX_VNNI, ["--init", "model.keras", "--mixed-precision", "bfloat16"], "0"),
    (ZEN5, ["--mixed-precision", "bfloat16"], None),  # native bfloat16 on oneDNN
])
def test_unet_train_chooses_the_kernels_while_it_prepares(before_tensorflow, monkeypatch,
                                                          flags, argv, expected):
    monkeypatch.setattr(cpu_kernels, "cpu_flags", lambda cpuinfo=None: flags)
    parser = argparse.ArgumentParser()
    args = train_cli.add_parser(parser.add_subparsers()).parse_args(argv)
    train_cli.prepare(args)
    assert args.cpu_kernels == {None: None, "1": "oneDNN", "0": "Eigen"}[expected]
    assert before_tensorflow.get("TF_ENABLE_ONEDNN_OPTS") == expected


LAPTOP = ("import sys; from keras_unet.training import cpu_kernels; "
          f"cpu_kernels.cpu_flags = lambda cpuinfo=None: frozenset({sorted(AVX_VNNI)!r}); "
          "from keras_unet.cli import main; sys.exit(main(sys.argv[1:]))")
"""``unet`` as on a laptop with AVX-VNNI and no AVX-512: its flags, and (below) oneDNN capped
at what such a CPU runs (``ONEDNN_MAX_CPU_ISA=AVX2_VNNI``; where TensorFlow runs Eigen anyway,
as on AVX2 CPUs, the cap changes nothing)."""


def _train_bfloat16_on_a_laptop(tmp_path, **environment):
    command = [sys.executable, "-c", LAPTOP, "train", "--run-dir", str(tmp_path / "run"),
               "--mixed-precision", "bfloat16", "--epochs", "1", "--steps-per-epoch", "2",
               "--batch-size", "2", "--tile-size", "92", "--depth", "2", "--filters", "4",
               "--no-export"]
    environ = {key: value for key, value in os.environ.items()
               if key not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL")}
    environ.update(ONEDNN_MAX_CPU_ISA="AVX2_VNNI", **environment)
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=environ,
                          timeout=300)


@pytest.mark.slow
def test_unet_train_in_bfloat16_on_a_cpu_without_onednns_bfloat16_trains_on_eigen(tmp_path):
    done = _train_bfloat16_on_a_laptop(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "mixed_bfloat16 precision" in done.stdout
    assert "CPU kernels:     Eigen, for bfloat16" in done.stdout
    assert (tmp_path / "run" / "checkpoints" / "best.keras").is_file()


def test_unet_train_in_bfloat16_with_the_users_onednn_there_is_refused_before_any_work(
        tmp_path):
    done = _train_bfloat16_on_a_laptop(tmp_path, TF_ENABLE_ONEDNN_OPTS="1")
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("unet train: error: --mixed-precision bfloat16: TensorFlow runs "
                           "oneDNN's kernels on this CPU, which have no bfloat16 convolutions")
    assert not (tmp_path / "run").exists()
