"""Building the simulator: warning-clean, layout-checked header, cache keyed by sources, safe in parallel."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exo_rkllm.sim import build_simulator, simulator_sources

from ._util import clean_env

SIM_DIR = Path(__file__).resolve().parents[2] / "bindings" / "simulator"
FUNCTIONS = [
    "rkllm_createDefaultParam", "rkllm_init", "rkllm_load_lora", "rkllm_load_prompt_cache",
    "rkllm_release_prompt_cache", "rkllm_destroy", "rkllm_run", "rkllm_run_async", "rkllm_abort",
    "rkllm_is_running", "rkllm_clear_kv_cache", "rkllm_get_kv_cache_size", "rkllm_set_chat_template",
    "rkllm_set_function_tools", "rkllm_set_cross_attn_params",
]
NEW_API = {"rkllm_get_kv_cache_size", "rkllm_set_function_tools", "rkllm_set_cross_attn_params"}


def copy_sources(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for src in simulator_sources():
        shutil.copyfile(src, dest / src.name)
    return dest


def test_strict_c11_pedantic_build_is_warning_free(tmp_path):
    c_files = [str(p) for p in simulator_sources() if p.suffix == ".c"]
    proc = subprocess.run(["cc", "-std=c11", "-Wpedantic", "-Wall", "-Wextra", "-Werror", "-O2", "-fPIC", "-shared",
                           "-pthread", "-o", str(tmp_path / "lib.so"), *c_files, "-lm"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_library_exports_all_15_functions_and_the_version_string(sim_lib):
    lib = ctypes.CDLL(str(sim_lib))
    assert all(hasattr(lib, fn) for fn in FUNCTIONS)
    assert b"rkllm-runtime version: 1.2.3\0" in sim_lib.read_bytes()


def test_wrong_abi_variant_can_be_built_for_binding_tests(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    old = build_simulator(extra_flags=['-DRKLLM_SIM_VERSION="1.1.4"', "-DRKLLM_SIM_OMIT_NEW_API"])
    assert old != build_simulator()
    data = old.read_bytes()
    assert b"rkllm-runtime version: 1.1.4" in data and b"rkllm-runtime version: 1.2.3" not in data
    lib = ctypes.CDLL(str(old))
    assert not any(hasattr(lib, fn) for fn in NEW_API)
    assert all(hasattr(lib, fn) for fn in set(FUNCTIONS) - NEW_API)


def test_a_drifted_header_fails_to_compile(tmp_path):
    src = copy_sources(tmp_path / "src")
    header = (src / "rkllm.h").read_text()
    # the known-bad binding layout: an extra trailing use_gpu field makes RKLLMParam 216 bytes
    (src / "rkllm.h").write_text(header.replace("    RKLLMExtendParam extend_param;\n} RKLLMParam;",
                                                "    RKLLMExtendParam extend_param;\n    bool use_gpu;\n} RKLLMParam;"))
    proc = subprocess.run(["cc", "-fsyntax-only", str(src / "rkllm_sim.c")], capture_output=True, text=True)
    assert proc.returncode != 0 and "layout drifted" in proc.stderr and "sizeof(RKLLMParam) == 208" in proc.stderr


def test_cache_is_keyed_by_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    src = copy_sources(tmp_path / "src")
    first = build_simulator(source_dir=src)
    assert build_simulator(source_dir=src) == first
    run_c = src / "sim_run.c"
    run_c.write_text(run_c.read_text() + "\n/* changed */\n")
    second = build_simulator(source_dir=src)
    assert second != first and second.is_file() and first.is_file()


def test_parallel_builds_into_one_cache_both_succeed(tmp_path):
    src = copy_sources(tmp_path / "src")
    code = ("import sys; from pathlib import Path; from exo_rkllm.sim import build_simulator; "
            "print(build_simulator(source_dir=Path(sys.argv[1])))")
    env = clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(src)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    paths = {out.strip() for out, _ in results}
    assert len(paths) == 1
    lib = Path(paths.pop())
    ctypes.CDLL(str(lib))  # a complete, loadable library, not a half-written one
    leftovers = [p for p in lib.parent.iterdir() if p.name != lib.name]
    assert leftovers == []


def test_missing_sources_are_reported(tmp_path):
    with pytest.raises(Exception, match="no simulator C sources"):
        build_simulator(source_dir=tmp_path)
