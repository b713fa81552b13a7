"""Find, check and load librkllmrt.so: refuse a wrong runtime before it can crash the process.

Order of checks (each failure is a clear exception, never a segfault later):
1. where: explicit path, then ``$RKLLM_LIB_PATH``, then the usual install locations;
2. what: the file must be an ELF shared object for this machine's architecture;
3. which version: the runtime's version string is read from the file's bytes; anything other
   than 1.2.2/1.2.3 is refused. No version string at all is accepted with a logged warning
   (the symbol check below still guards the ABI);
4. dlopen (the loader's message is kept), then all 15 functions of the 1.2.3 API must exist.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import platform
import re
import struct
import threading
from pathlib import Path

from . import _capi
from .errors import ABIMismatchError, LibraryLoadError, LibraryNotFoundError

log = logging.getLogger("rkllm")

LIBRARY_NAME = "librkllmrt.so"
ENV_VAR = "RKLLM_LIB_PATH"
# 1.2.2 -> 1.2.3 only renamed RKLLMMultiModelInput; the layout is identical.
COMPATIBLE_VERSIONS = ("1.2.2", "1.2.3")

# Where Rockchip's packages, board images and rknn-llm's demos put the runtime.
DEFAULT_DIRS = (
    "/usr/lib",
    "/usr/local/lib",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/opt/rkllm/lib",
    "~/rknn-llm/rkllm-runtime/Linux/librkllm_api/aarch64",
    "~/rknn-llm/examples/rkllm_api_demo/deploy/install/demo_Linux_aarch64/lib",
    "~/rknn-llm/examples/DeepSeek-R1-Distill-Qwen-1.5B_Demo/deploy/install/demo_Linux_aarch64/lib",
)

_INSTALL_HINT = (
    "install Rockchip's librkllmrt.so 1.2.3 (rknn-llm release v1.2.3: "
    "rkllm-runtime/Linux/librkllm_api/aarch64/librkllmrt.so -> /usr/lib/)"
)
_SIM_HINT = (
    "without a board, build the simulator with `exo-rkllm sim build` and pass the path it "
    f"prints (load_library(path) or {ENV_VAR}=/path/librkllmrt-sim.so)"
)

# Version strings the runtime carries ("I rkllm: rkllm-runtime version: 1.2.3, ...") and
# similar spellings seen in Rockchip binaries.
_VERSION_PATTERNS = (
    re.compile(rb"rkllm[-_ ]runtime[ _-]version[:=]?\s*v?(\d+\.\d+\.\d+)", re.I),
    re.compile(rb"librkllmrt(?:\.so)?[ _-]version[:=]?\s*v?(\d+\.\d+\.\d+)", re.I),
    re.compile(rb"rkllm[ _-]version[:=]?\s*v?(\d+\.\d+\.\d+)", re.I),
    re.compile(rb"RKLLM_(?:RUNTIME_|API_)?VERSION\W{0,4}v?(\d+\.\d+\.\d+)"),
)

# ELF e_machine values by platform.machine() spelling.
_EM_BY_NAME = {62: "x86-64", 183: "aarch64", 40: "arm (32-bit)", 3: "i386", 243: "riscv", 8: "mips"}
_EM_FOR_MACHINE = {"x86_64": 62, "amd64": 62, "aarch64": 183, "arm64": 183}


def candidate_paths() -> list[Path]:
    """The usual install locations, in search order (after the explicit path and $RKLLM_LIB_PATH)."""
    dirs: list[str] = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    dirs.extend(DEFAULT_DIRS)
    seen: set[str] = set()
    out: list[Path] = []
    for d in dirs:
        p = Path(os.path.expanduser(d)) / LIBRARY_NAME
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


def find_library(path: str | os.PathLike[str] | None = None) -> Path:
    """Resolve which file to load; an explicit path or $RKLLM_LIB_PATH never falls back elsewhere."""
    for given, origin in ((path, "the path given"), (os.environ.get(ENV_VAR) or None, f"${ENV_VAR}")):
        if given is None:
            continue
        p = Path(os.path.expanduser(os.fspath(given)))
        if p.is_dir():
            p = p / LIBRARY_NAME
        if not p.exists():
            raise LibraryNotFoundError(
                f"RKLLM runtime library not found at {p} ({origin}); fix the path, {_INSTALL_HINT}, "
                f"or {_SIM_HINT}",
                tried=[str(p)],
            )
        return p
    tried = candidate_paths()
    for p in tried:
        if p.is_file():
            return p
    where = "\n  ".join(str(p) for p in tried)
    raise LibraryNotFoundError(
        f"RKLLM runtime library {LIBRARY_NAME} not found. Looked at (no path given, ${ENV_VAR} unset):\n"
        f"  {where}\nFix: {_INSTALL_HINT}; or pass its path / set {ENV_VAR}; or {_SIM_HINT}.",
        tried=[str(p) for p in tried],
    )


def check_elf(path: Path) -> None:
    """Refuse anything that is not an ELF shared object for this machine (before dlopen)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise LibraryLoadError(f"cannot read {path}: {e.strerror or e}") from e
    if head[:4] != b"\x7fELF":
        kind = _describe_non_elf(head)
        raise LibraryLoadError(
            f"{path} is not a shared library (found {kind}); expected {LIBRARY_NAME} 1.2.3, an ELF "
            f"shared object. Fix: point to the real library; {_SIM_HINT}"
        )
    ei_class, ei_data = head[4], head[5]
    endian = "<" if ei_data == 1 else ">"
    e_type, e_machine = struct.unpack_from(endian + "HH", head, 16)
    if e_type != 3:  # ET_DYN
        kinds = {1: "a relocatable object (.o)", 2: "an executable", 4: "a core dump"}
        raise LibraryLoadError(
            f"{path} is not a shared library (found ELF {kinds.get(e_type, f'type {e_type}')}); "
            f"expected {LIBRARY_NAME}, an ELF shared object"
        )
    want = _EM_FOR_MACHINE.get(platform.machine().lower())
    want_class = 2 if (struct.calcsize("P") == 8) else 1
    if (want is not None and e_machine != want) or ei_class != want_class:
        found = _EM_BY_NAME.get(e_machine, f"machine {e_machine}")
        bits = {1: "32-bit", 2: "64-bit"}.get(ei_class, "?")
        raise LibraryLoadError(
            f"{path} is a shared library for {found} ({bits}); this machine is "
            f"{platform.machine()} ({8 * struct.calcsize('P')}-bit). Fix: use the "
            f"{platform.machine()} build of {LIBRARY_NAME} (rknn-llm ships aarch64 for RK3588); "
            f"{_SIM_HINT}"
        )
    _check_elf_extent(path, head, endian, ei_class)


def _check_elf_extent(path: Path, head: bytes, endian: str, ei_class: int) -> None:
    """Refuse a truncated ELF (a cut download): dlopen would map past the end and die of SIGBUS."""
    try:
        size = path.stat().st_size
        if ei_class == 2:
            phoff, shoff = struct.unpack_from(endian + "QQ", head, 32)
            phentsize, phnum, shentsize, shnum = struct.unpack_from(endian + "HHHH", head, 54)
            ph_fmt, ph_off_field = endian + "IIQQQQQQ", (2, 5)  # p_offset, p_filesz
        else:
            phoff, shoff = struct.unpack_from(endian + "II", head, 28)
            phentsize, phnum, shentsize, shnum = struct.unpack_from(endian + "HHHH", head, 42)
            ph_fmt, ph_off_field = endian + "IIIIIIII", (1, 4)
        problem = None
        if phnum == 0 or phoff + phnum * phentsize > size:
            problem = "its program headers lie past the end of the file"
        elif shoff + shnum * shentsize > size:
            problem = "its section headers lie past the end of the file"
        else:
            with open(path, "rb") as f:
                f.seek(phoff)
                table = f.read(phnum * phentsize)
            for i in range(phnum):
                entry = struct.unpack_from(ph_fmt, table, i * phentsize)
                p_type = entry[0]
                off, filesz = entry[ph_off_field[0]], entry[ph_off_field[1]]
                if p_type == 1 and off + filesz > size:  # PT_LOAD
                    problem = f"a loadable segment ends at byte {off + filesz}"
                    break
    except (OSError, struct.error) as e:
        raise LibraryLoadError(f"{path} is a damaged ELF file ({e}); reinstall {LIBRARY_NAME}") from e
    if problem:
        raise LibraryLoadError(
            f"{path} is truncated or damaged: {problem}, but the file has {size} bytes "
            f"(an interrupted copy or download?). Fix: reinstall {LIBRARY_NAME} 1.2.3")


def _describe_non_elf(head: bytes) -> str:
    if not head:
        return "an empty file"
    if head.startswith(b"RKLLM-SIM"):
        return "a simulated model file, not a library"
    if head.startswith(b"#!"):
        return "a script"
    if head.startswith(b"PK"):
        return "a zip archive"
    if head.startswith(b"!<arch>"):
        return "a static archive (.a)"
    if head.startswith((b"\x1f\x8b", b"\xfd7zXZ")):
        return "a compressed archive"
    if head.lstrip().startswith((b"<!DOCTYPE", b"<html", b"<HTML")):
        return "an HTML page (a failed download?)"
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer (run `git lfs pull`)"
    try:
        head.decode("ascii")
        return "a text file"
    except UnicodeDecodeError:
        return f"unknown data starting {head[:8]!r}"


def runtime_version_of(path: str | os.PathLike[str]) -> str | None:
    """The RKLLM runtime version written in the library's bytes ("1.2.3"), or None if absent."""
    try:
        with open(path, "rb") as f:
            try:
                data: bytes | mmap.mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # empty file
                return None
            try:
                for pattern in _VERSION_PATTERNS:
                    m = pattern.search(data)
                    if m:
                        return m.group(1).decode("ascii")
            finally:
                if isinstance(data, mmap.mmap):
                    data.close()
    except OSError:
        return None
    return None


def _probable_version(missing: list[str]) -> str:
    if len(missing) == len(_capi.FUNCTION_NAMES):
        return "not an RKLLM runtime at all"
    if "rkllm_run" in missing or "rkllm_init" in missing:
        return "a damaged or unrelated build"
    return "probably an older RKLLM runtime (before 1.2.2) whose API lacks them"


_cache: dict[tuple[str, int, int], ctypes.CDLL] = {}
_cache_lock = threading.Lock()


def load_library(path: str | os.PathLike[str] | None = None) -> ctypes.CDLL:
    """Find, check and dlopen librkllmrt.so; returns the CDLL with all 15 prototypes set.

    The returned object also carries ``rkllm_path`` (Path) and ``rkllm_version`` (str | None).
    """
    p = find_library(path)
    try:
        st = p.stat()
    except OSError as e:
        raise LibraryLoadError(f"cannot read {p}: {e.strerror or e}") from e
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        lib = _load_checked(p)
        _cache[key] = lib
        return lib


def _load_checked(p: Path) -> ctypes.CDLL:
    check_elf(p)
    version = runtime_version_of(p)
    if version is not None and version not in COMPATIBLE_VERSIONS:
        raise ABIMismatchError(
            f"this project needs {LIBRARY_NAME} {_capi.RKLLM_ABI_VERSION} (ABI of 1.2.2/1.2.3); "
            f"found {version} at {p}. Its structs and callback differ, so calling it would corrupt "
            f"memory. Fix: {_INSTALL_HINT}; or {_SIM_HINT}",
            path=str(p), found_version=version,
        )
    try:
        lib = ctypes.CDLL(str(p), mode=getattr(os, "RTLD_NOW", 2) | getattr(os, "RTLD_LOCAL", 0))
    except OSError as e:
        raise LibraryLoadError(
            f"the loader refused {p}: {e}. Fix: install the library's dependencies (ldd {p}) or "
            f"use the build for this machine; {_SIM_HINT}"
        ) from e
    missing = _capi.missing_symbols(lib)
    if missing:
        raise ABIMismatchError(
            f"{p} is not RKLLM runtime {_capi.RKLLM_ABI_VERSION}: it lacks {', '.join(missing)} "
            f"({_probable_version(missing)}; version string: {version or 'none found'}). "
            f"Fix: {_INSTALL_HINT}; or {_SIM_HINT}",
            path=str(p), found_version=version, missing=missing,
        )
    if version is None:
        log.warning(
            "%s carries no RKLLM runtime version string; accepting it because all %d functions of "
            "the %s API are present. If it crashes, check it is rknn-llm 1.2.3's librkllmrt.so.",
            p, len(_capi.FUNCTION_NAMES), _capi.RKLLM_ABI_VERSION,
        )
    _capi.set_prototypes(lib)
    lib.rkllm_path = p  # type: ignore[attr-defined]
    lib.rkllm_version = version  # type: ignore[attr-defined]
    return lib
