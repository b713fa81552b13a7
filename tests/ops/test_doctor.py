"""exo-rkllm doctor against fake boards built by the test, and against the real simulator."""

from __future__ import annotations

import pytest

from exo_rkllm.ops.doctor import Doctor, exit_code

from .fakeboard import make_board, write
from .helpers import run_cmd


def by_name(lines):
    return {line.name: line for line in lines}


def test_good_board_facts(tmp_path):
    root = make_board(tmp_path / "b", pinned=True)
    lines = by_name(Doctor(root=root, models_dir=tmp_path / "m", smoke=False, lib_path=str(tmp_path / "none.so"),
                           dmesg=lambda: "").run())
    assert lines["soc"].status == "PASS" and "rockchip,rk3588" in lines["soc"].detail
    assert lines["npu driver"].status == "PASS" and "0.9.8" in lines["npu driver"].detail
    assert lines["npu device"].status == "PASS"
    for unit in ("npu", "cpu_policy4", "cpu_policy6", "ddr"):
        assert lines[f"freq {unit}"].status == "PASS", lines[f"freq {unit}"]
    assert lines["memory"].status == "PASS" and "5859 MB available" in lines["memory"].detail
    # No real runtime on this machine: a FAIL that says where it looked and how to fix it.
    assert lines["runtime"].status == "FAIL" and "librkllmrt.so" in lines["runtime"].fix


def test_old_driver_fails_with_the_fix(tmp_path):
    root = make_board(tmp_path / "b", driver="RKNPU driver: v0.9.6")
    lines = Doctor(root=root, models_dir=tmp_path / "m", smoke=False, dmesg=lambda: "").run()
    drv = by_name(lines)["npu driver"]
    assert drv.status == "FAIL" and "0.9.6 is older than 0.9.8" in drv.detail and "0.9.8" in drv.fix
    assert exit_code(lines) == 1


def test_driver_version_from_sys_module_and_dmesg(tmp_path):
    root = make_board(tmp_path / "b", driver=None)
    write(root / "sys/module/rknpu/version", "0.9.8\n")
    assert by_name(Doctor(root=root, smoke=False, models_dir=tmp_path / "m").run())["npu driver"].status == "PASS"
    root2 = make_board(tmp_path / "c", driver=None)
    dmesg = "[    2.1] RKNPU fdab0000.npu: RKNPU: rknpu iommu is enabled\n[    2.3] [drm] Initialized rknpu 0.9.7 20240424\n"
    drv = by_name(Doctor(root=root2, smoke=False, models_dir=tmp_path / "m", dmesg=lambda: dmesg).run())["npu driver"]
    assert drv.status == "FAIL" and "0.9.7" in drv.detail and "dmesg" in drv.detail


def test_without_debugfs_says_so(tmp_path):
    root = make_board(tmp_path / "b", driver=None)
    import shutil
    shutil.rmtree(root / "sys/kernel/debug")
    drv = by_name(Doctor(root=root, smoke=False, models_dir=tmp_path / "m", dmesg=lambda: "").run())["npu driver"]
    assert drv.status == "FAIL" and "debugfs" in drv.detail


def test_unpinned_frequencies_warn_with_tune(tmp_path):
    root = make_board(tmp_path / "b", pinned=False)
    lines = by_name(Doctor(root=root, smoke=False, models_dir=tmp_path / "m", dmesg=lambda: "").run())
    npu = lines["freq npu"]
    assert npu.status == "WARN" and "300 MHz" in npu.detail and "exo-rkllm tune" in npu.fix


def test_off_board_never_raises_and_names_what_is_missing(tmp_path):
    lines = Doctor(root=tmp_path / "nothing", models_dir=tmp_path / "m", smoke=False, dmesg=lambda: "").run()
    names = by_name(lines)
    assert names["soc"].status == "WARN" and "not found" in names["soc"].detail
    assert names["npu driver"].status == "FAIL"
    assert names["frequencies"].status == "WARN"
    assert names["memory"].status == "WARN"
    assert all(line.status in ("PASS", "WARN", "FAIL", "SKIP") for line in lines)


def test_installed_model_is_verified(tmp_path):
    root = make_board(tmp_path / "b", pinned=True, mem_available_kb=1_000_000)
    models = tmp_path / "m"
    write(models / "qwen2.5-1.5b-instruct" / "Qwen2.5-1.5B-Instruct_w8a8_RK3588.rkllm", "GGUF not an rkllm")
    line = by_name(Doctor(root=root, models_dir=models, smoke=False, dmesg=lambda: "").run())[
        "model qwen2.5-1.5b-instruct"]
    assert line.status == "FAIL" and "GGUF" in line.detail and "memory" in line.detail


def test_simulated_doctor_runs_a_labelled_smoke_generation(tmp_path):
    pytest.importorskip("exo_rkllm.sim")
    code, out, err = run_cmd("doctor", ["doctor", "--simulate", "--model", "sim-instant", "--sysfs-root",
                                        str(tmp_path), "--models-dir", str(tmp_path / "m")])
    assert "SIMULATED" in out
    smoke = [line for line in out.splitlines() if "smoke test" in line][0]
    assert smoke.startswith("PASS") and "sim-instant (SIMULATED): 20 tokens" in smoke and "tokens/s" in smoke
    assert code == 0, out + err


def test_smoke_model_must_match_mode(tmp_path):
    pytest.importorskip("exo_rkllm.sim")
    code, out, _ = run_cmd("doctor", ["doctor", "--simulate", "--model", "qwen3-4b", "--sysfs-root", str(tmp_path),
                                      "--models-dir", str(tmp_path / "m")])
    assert code == 1 and "qwen3-4b is a real model; drop --simulate" in out


def test_simulator_library_is_never_taken_for_the_real_runtime(tmp_path):
    sim = pytest.importorskip("exo_rkllm.sim")
    lib = sim.build_simulator()
    root = make_board(tmp_path / "b", pinned=True)
    lines = by_name(Doctor(root=root, models_dir=tmp_path / "m", lib_path=str(lib), dmesg=lambda: "").run())
    assert lines["runtime"].status == "FAIL" and "simulator" in lines["runtime"].detail
    assert lines["smoke test"].status == "SKIP"

