"""exo-rkllm tune / --undo against a fake sysfs tree the test builds (values as Rockchip's fix_freq script)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from exo_rkllm.ops.board import read_frequencies, read_npu_load
from exo_rkllm.ops.tune import TuneError, tune, undo

from .fakeboard import make_board
from .helpers import run_cmd


def read(p):
    return p.read_text().strip()


def test_tune_pins_and_undo_restores(tmp_path):
    root = make_board(tmp_path / "board")
    state = tmp_path / "state.json"
    steps = tune(root, state_file=state, euid=0)
    assert all(s.status == "PASS" for s in steps), steps
    npu = root / "sys/class/devfreq/fdab0000.npu"
    cpu4 = root / "sys/devices/system/cpu/cpufreq/policy4"
    assert read(npu / "governor") == "userspace" and read(npu / "userspace/set_freq") == "1000000000"
    assert read(cpu4 / "scaling_governor") == "userspace" and read(cpu4 / "scaling_setspeed") == "2352000"
    assert read(root / "sys/class/devfreq/dmc/userspace/set_freq") == "2112000000"
    assert read(root / "sys/devices/system/cpu/cpu5/cpuidle/state1/disable") == "1"
    saved = json.loads(state.read_text())
    assert saved["units"]["npu"]["governor"] == "rknpu_ondemand"
    # Tuning twice keeps the original settings for undo.
    tune(root, state_file=state, euid=0)
    assert json.loads(state.read_text())["units"]["cpu_policy4"]["governor"] == "schedutil"
    steps = undo(root, state_file=state, euid=0)
    assert all(s.status == "PASS" for s in steps)
    assert read(npu / "governor") == "rknpu_ondemand" and read(cpu4 / "scaling_governor") == "schedutil"
    assert read(root / "sys/devices/system/cpu/cpu5/cpuidle/state1/disable") == "0"
    assert not state.exists()
    with pytest.raises(TuneError, match="nothing to undo"):
        undo(root, state_file=state, euid=0)


def test_without_userspace_governor_falls_back_to_performance_and_says_so(tmp_path):
    root = make_board(tmp_path / "b", userspace=False)
    steps = {s.what: s for s in tune(root, state_file=tmp_path / "s.json", euid=0)}
    assert steps["npu"].status == "WARN" and "performance" in steps["npu"].detail
    assert read(root / "sys/class/devfreq/fdab0000.npu/governor") == "performance"


def test_not_root_is_refused_before_touching_anything(tmp_path):
    root = make_board(tmp_path / "b")
    with pytest.raises(TuneError, match="must run as root.*sudo exo-rkllm tune"):
        tune(root, state_file=tmp_path / "s.json", euid=1000)
    assert read(root / "sys/class/devfreq/fdab0000.npu/governor") == "rknpu_ondemand"
    assert not (tmp_path / "s.json").exists()


def test_real_non_root_process_gets_the_message(tmp_path):
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv not installed: cannot start a real non-root process")
    import os
    if os.geteuid() != 0:
        pytest.skip("test runs as non-root already; covered by the injected-euid test")
    root = make_board(tmp_path / "b")
    code = ("import sys; from exo_rkllm.cli import main; "
            "from exo_rkllm.commands import tune; import argparse; p = argparse.ArgumentParser(); "
            "s = p.add_subparsers(); tune.register(s); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))")
    res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code,
                          "tune", "--sysfs-root", str(root), "--state-file", str(tmp_path / "s.json")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "must run as root" in res.stderr and "Traceback" not in res.stderr


def test_off_board_tune_says_nothing_to_tune(tmp_path):
    with pytest.raises(TuneError, match="nothing to tune"):
        tune(tmp_path / "empty", state_file=tmp_path / "s.json", euid=0)


def test_cli_tune_and_undo(tmp_path):
    root = make_board(tmp_path / "b")
    state = str(tmp_path / "s.json")
    code, out, _ = run_cmd("tune", ["tune", "--sysfs-root", str(root), "--state-file", state])
    assert code == 0 and "PASS npu" in out
    code, out, _ = run_cmd("tune", ["tune", "--undo", "--sysfs-root", str(root), "--state-file", state])
    assert code == 0 and "restored" in out


def test_frequency_and_load_readers_for_metrics(tmp_path):
    root = make_board(tmp_path / "b", pinned=True)
    freqs = read_frequencies(root)
    assert freqs == {"npu": 1_000_000_000, "cpu_policy0": 1_800_000_000, "cpu_policy4": 2_352_000_000,
                     "cpu_policy6": 2_352_000_000, "ddr": 2_112_000_000}
    assert read_npu_load(root) == {"0": 35, "1": 0, "2": 7}
    assert read_frequencies(tmp_path / "none") == {} and read_npu_load(tmp_path / "none") == {}


def test_npu_load_reader_handles_multi_and_single_core_formats(tmp_path):
    load = tmp_path / "sys/kernel/debug/rknpu/load"
    load.parent.mkdir(parents=True)
    load.write_text("NPU load:  Core0: 37%, Core1:  0%, Core2: 100%,\n")
    assert read_npu_load(tmp_path) == {"0": 37, "1": 0, "2": 100}
    load.write_text("NPU load:  12%\n")  # older single-core driver format
    assert read_npu_load(tmp_path) == {"0": 12}
    load.unlink()
    assert read_npu_load(tmp_path) == {}
