"""`exo-rkllm sim build|model` as a user runs them: real subprocesses, a private cache directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from exo_rkllm.sim import SIM_MODELS

from ._util import clean_env


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exo_rkllm.cli", "sim", *args], capture_output=True, text=True,
                          env=clean_env(**env), timeout=120)


def test_build_prints_the_cached_library_path_last_and_reuses_it(tmp_path):
    first = cli("build", XDG_CACHE_HOME=str(tmp_path))
    assert first.returncode == 0, first.stderr
    lib = Path(first.stdout.strip().splitlines()[-1])
    assert lib.is_absolute() and lib.is_file() and lib.name == "librkllmrt-sim.so"
    assert lib.is_relative_to(tmp_path / "exo-rkllm" / "sim")
    assert lib.read_bytes()[:4] == b"\x7fELF" and b"rkllm-runtime version: 1.2.3" in lib.read_bytes()
    stamp = lib.stat().st_mtime_ns, lib.stat().st_ino

    again = cli("build", XDG_CACHE_HOME=str(tmp_path))
    assert again.stdout.strip().splitlines()[-1] == str(lib)
    assert (lib.stat().st_mtime_ns, lib.stat().st_ino) == stamp  # cached, not rebuilt

    forced = cli("build", "--force", XDG_CACHE_HOME=str(tmp_path))
    assert forced.returncode == 0 and forced.stdout.strip().splitlines()[-1] == str(lib)
    assert (lib.stat().st_mtime_ns, lib.stat().st_ino) != stamp


def test_build_without_a_compiler_says_how_to_install_one(tmp_path):
    proc = cli("build", XDG_CACHE_HOME=str(tmp_path), CC=str(tmp_path / "no-such-cc"))
    assert proc.returncode == 1
    assert "no C compiler found" in proc.stderr and "apt-get install gcc" in proc.stderr


def test_model_prints_each_shipped_model_path():
    for name in SIM_MODELS:
        proc = cli("model", name)
        assert proc.returncode == 0, proc.stderr
        path = Path(proc.stdout.strip())
        assert path.is_absolute() and path.name == f"{name}.rkllm"
        assert path.read_text().splitlines()[0] == "RKLLM-SIM 1"


def test_unknown_model_exits_2_listing_the_names():
    proc = cli("model", "gpt-5")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "'gpt-5'" in proc.stderr and all(name in proc.stderr for name in SIM_MODELS)


def test_build_output_never_claims_npu_results(tmp_path):
    proc = cli("build", XDG_CACHE_HOME=str(tmp_path))
    assert "simulated" in proc.stderr and "not an NPU" in proc.stderr
    assert os.path.isfile(proc.stdout.strip())
