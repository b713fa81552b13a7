"""load_library: the right runtime loads; anything else is refused with a message naming it."""

from __future__ import annotations

import ctypes
import logging
import platform
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import rkllm
from rkllm import library as rkllm_library

from rkllm_helpers import compile_sim_variant, write_model


def test_simulator_loads_with_version_and_all_prototypes(lib, sim_lib_path: Path) -> None:
    assert lib.rkllm_path == sim_lib_path
    assert lib.rkllm_version == "1.2.3"
    assert rkllm.runtime_version_of(sim_lib_path) == "1.2.3"
    for name in rkllm.FUNCTION_NAMES:
        fn = getattr(lib, name)
        assert fn.argtypes is not None, name
    assert lib.rkllm_createDefaultParam.restype is rkllm.RKLLMParam
    assert lib.rkllm_init.argtypes[2] is rkllm.LLMResultCallback
    # The same file loads once (cached).
    assert rkllm.load_library(sim_lib_path) is lib


def test_explicit_path_then_env_var(monkeypatch, sim_lib_path: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("RKLLM_LIB_PATH", str(sim_lib_path))
    assert rkllm.load_library().rkllm_path == sim_lib_path
    # A directory holding librkllmrt.so is accepted too.
    d = tmp_path / "lib"
    d.mkdir()
    shutil.copy(sim_lib_path, d / "librkllmrt.so")
    assert rkllm.load_library(d).rkllm_path == d / "librkllmrt.so"
    # An explicit wrong path never falls back to $RKLLM_LIB_PATH.
    with pytest.raises(rkllm.LibraryNotFoundError) as ei:
        rkllm.load_library(tmp_path / "nope.so")
    assert str(tmp_path / "nope.so") in str(ei.value)
    assert "exo-rkllm sim build" in str(ei.value)


def test_env_var_pointing_nowhere_is_an_error(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RKLLM_LIB_PATH", str(tmp_path / "missing.so"))
    with pytest.raises(rkllm.LibraryNotFoundError) as ei:
        rkllm.load_library()
    assert "$RKLLM_LIB_PATH" in str(ei.value) and "missing.so" in str(ei.value)


def test_not_found_lists_every_place_tried(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RKLLM_LIB_PATH", raising=False)
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path / "ld"))
    monkeypatch.setattr(rkllm_library, "DEFAULT_DIRS", (str(tmp_path / "usr-lib"), str(tmp_path / "opt")))
    with pytest.raises(rkllm.LibraryNotFoundError) as ei:
        rkllm.load_library()
    msg = str(ei.value)
    for d in ("ld", "usr-lib", "opt"):
        assert str(tmp_path / d / "librkllmrt.so") in msg
    assert len(ei.value.tried) == 3
    assert "exo-rkllm sim build" in msg and "RKLLM_LIB_PATH" in msg


def test_default_locations_include_the_usual_ones(monkeypatch) -> None:
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    paths = [str(p) for p in rkllm_library.candidate_paths()]
    for d in ("/usr/lib", "/usr/local/lib", "/usr/lib/aarch64-linux-gnu"):
        assert f"{d}/librkllmrt.so" in paths
    assert any("rknn-llm" in p for p in paths)


@pytest.mark.parametrize("version", ["1.1.4", "1.3.0"])
def test_other_runtime_version_refused(tmp_path: Path, version: str) -> None:
    so = compile_sim_variant(f'-DRKLLM_SIM_VERSION="{version}"')
    assert rkllm.runtime_version_of(so) == version
    with pytest.raises(rkllm.ABIMismatchError) as ei:
        rkllm.load_library(so)
    msg = str(ei.value)
    assert "needs librkllmrt.so 1.2.3" in msg and f"found {version} at {so}" in msg
    assert "exo-rkllm sim build" in msg
    assert ei.value.found_version == version


def test_old_api_without_new_functions_refused(tmp_path: Path) -> None:
    so = compile_sim_variant("-DRKLLM_SIM_OMIT_NEW_API")
    with pytest.raises(rkllm.ABIMismatchError) as ei:
        rkllm.load_library(so)
    missing = ei.value.missing
    assert "rkllm_get_kv_cache_size" in missing and "rkllm_set_function_tools" in missing
    assert "rkllm_run" not in missing
    assert "lacks" in str(ei.value) and "rkllm_set_function_tools" in str(ei.value)
    assert "probably an older RKLLM runtime" in str(ei.value)


def test_old_version_and_old_api_refused_on_the_version(tmp_path: Path) -> None:
    so = compile_sim_variant('-DRKLLM_SIM_VERSION="1.1.4"',
                             "-DRKLLM_SIM_OMIT_NEW_API")
    with pytest.raises(rkllm.ABIMismatchError, match=r"found 1\.1\.4"):
        rkllm.load_library(so)


def test_no_version_string_accepted_with_warning(tmp_path: Path, caplog) -> None:
    so = compile_sim_variant('-DRKLLM_SIM_VERSION=""')
    assert rkllm.runtime_version_of(so) is None
    with caplog.at_level(logging.WARNING, logger="rkllm"):
        lib = rkllm.load_library(so)
    assert lib.rkllm_version is None
    assert any("no RKLLM runtime version string" in r.getMessage() for r in caplog.records)


def test_library_without_rkllm_symbols_refused(tmp_path: Path) -> None:
    src = tmp_path / "other.c"
    src.write_text("int some_function(void) { return 1; }\n")
    so = tmp_path / "libother.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    with pytest.raises(rkllm.ABIMismatchError) as ei:
        rkllm.load_library(so)
    assert "not an RKLLM runtime at all" in str(ei.value)
    assert len(ei.value.missing) == 15


@pytest.mark.parametrize("content, found", [
    (b"hello, I am text\n", "a text file"),
    (b"", "an empty file"),
    (b"<!DOCTYPE html><html>404</html>", "HTML page"),
])
def test_non_library_file_refused(tmp_path: Path, content: bytes, found: str) -> None:
    p = tmp_path / "librkllmrt.so"
    p.write_bytes(content)
    with pytest.raises(rkllm.LibraryLoadError) as ei:
        rkllm.load_library(p)
    assert "is not a shared library" in str(ei.value) and found in str(ei.value)


def test_model_file_passed_as_library_refused(tmp_path: Path) -> None:
    p = write_model(tmp_path / "chat.rkllm")
    with pytest.raises(rkllm.LibraryLoadError, match="simulated model file"):
        rkllm.load_library(p)


def test_object_file_refused(tmp_path: Path) -> None:
    src = tmp_path / "x.c"
    src.write_text("int x(void) { return 0; }\n")
    obj = tmp_path / "x.o"
    subprocess.run(["gcc", "-c", "-o", str(obj), str(src)], check=True)
    with pytest.raises(rkllm.LibraryLoadError, match=r"relocatable object"):
        rkllm.load_library(obj)


def test_library_for_another_architecture_refused(tmp_path: Path) -> None:
    other = 62 if platform.machine().lower() in ("aarch64", "arm64") else 183
    head = bytearray(64)
    head[:4] = b"\x7fELF"
    head[4], head[5], head[6] = 2, 1, 1
    struct.pack_into("<HH", head, 16, 3, other)
    p = tmp_path / "librkllmrt.so"
    p.write_bytes(bytes(head) + b"\0" * 1024)
    with pytest.raises(rkllm.LibraryLoadError) as ei:
        rkllm.load_library(p)
    assert "aarch64" in str(ei.value) or "x86-64" in str(ei.value)
    assert platform.machine() in str(ei.value)


def test_truncated_library_refused_before_dlopen(tmp_path: Path, sim_lib_path: Path) -> None:
    # A cut download: dlopen would map past the end of the file and die of SIGBUS.
    p = tmp_path / "librkllmrt.so"
    p.write_bytes(sim_lib_path.read_bytes()[:2048])
    with pytest.raises(rkllm.LibraryLoadError, match="truncated or damaged"):
        rkllm.load_library(p)


def test_loader_refusal_keeps_the_loaders_message(tmp_path: Path) -> None:
    # A library whose dependency is gone: the ELF checks pass, dlopen refuses.
    (tmp_path / "dep.c").write_text("int dep(void) { return 2; }\n")
    (tmp_path / "main.c").write_text("int dep(void);\nint rkllm_init(void) { return dep(); }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "libgonedep.so"),
                    str(tmp_path / "dep.c")], check=True)
    so = tmp_path / "librkllmrt.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(so), str(tmp_path / "main.c"),
                    "-L", str(tmp_path), "-lgonedep"], check=True)
    (tmp_path / "libgonedep.so").unlink()
    with pytest.raises(rkllm.LibraryLoadError) as ei:
        rkllm.load_library(so)
    assert "the loader refused" in str(ei.value) and "libgonedep.so" in str(ei.value)
    assert isinstance(ei.value.__cause__, OSError)


def test_prototypes_can_be_set_on_any_cdll(sim_lib_path: Path) -> None:
    raw = ctypes.CDLL(str(sim_lib_path))
    rkllm.set_prototypes(raw)
    p = raw.rkllm_createDefaultParam()
    assert isinstance(p, rkllm.RKLLMParam) and p.max_context_len > 0
