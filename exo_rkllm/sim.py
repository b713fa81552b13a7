"""Build and locate the simulated RKLLM runtime (the project's only stand-in for an NPU).

The C sources, simulated models and tokenizers ship as package data of ``rkllm_simulator``;
the library is compiled on first use with the system C compiler and cached under
``$XDG_CACHE_HOME/exo-rkllm/sim/<sha256 of sources+flags>/librkllmrt-sim.so``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

SIM_PACKAGE = "rkllm_simulator"
LIB_NAME = "librkllmrt-sim.so"
SIM_MODELS: tuple[str, ...] = ("chat", "reasoning", "chat-instant", "reasoning-instant")
SIM_TOKENIZERS: tuple[str, ...] = ("chat", "reasoning")
CFLAGS: tuple[str, ...] = ("-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2", "-fPIC", "-shared", "-pthread")
LDLIBS: tuple[str, ...] = ("-lm",)


class SimulatorError(RuntimeError):
    """The simulator could not be built or a simulated asset does not exist."""


class UnknownSimModelError(SimulatorError, KeyError):
    """A simulated model or tokenizer name that is not shipped."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def _package_root() -> Path:
    root = resources.files(SIM_PACKAGE)
    path = Path(str(root))
    if not path.is_dir():
        raise SimulatorError(f"{SIM_PACKAGE} is not installed as plain files ({root}); reinstall exo-rkllm unzipped")
    return path


def simulator_sources(source_dir: Path | None = None) -> list[Path]:
    """The C sources and headers the library is compiled from, sorted."""
    root = Path(source_dir) if source_dir is not None else _package_root()
    files = sorted([*root.glob("*.c"), *root.glob("*.h")])
    if not any(f.suffix == ".c" for f in files):
        raise SimulatorError(f"no simulator C sources found in {root}; the exo-rkllm install is incomplete")
    return files


def find_compiler() -> str:
    """$CC, else cc, else gcc; a clear error naming the fix when none exists."""
    candidates = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc"]
    for cand in candidates:
        found = shutil.which(cand.split()[0])
        if found:
            return cand
    raise SimulatorError(
        f"no C compiler found (looked for {', '.join(candidates)}); the simulator is built from C source: "
        "install gcc: apt-get install gcc (or set CC to your compiler)"
    )


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "exo-rkllm" / "sim"


def _digest(sources: Sequence[Path], flags: Sequence[str], compiler: str) -> str:
    h = hashlib.sha256()
    for part in (compiler, *flags):
        h.update(part.encode() + b"\0")
    for src in sources:
        h.update(src.name.encode() + b"\0")
        h.update(src.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def build_simulator(force: bool = False, extra_flags: Sequence[str] = (), source_dir: Path | None = None) -> Path:
    """Compile librkllmrt-sim.so if needed and return its absolute path.

    ``extra_flags`` lets tests build variants, e.g. ``-DRKLLM_SIM_VERSION="1.1.4"`` or
    ``-DRKLLM_SIM_OMIT_NEW_API`` for a wrong-ABI library; each variant gets its own cache entry.
    ``source_dir`` builds another copy of the sources (tests). Safe under concurrency: the
    compiler writes into a private temporary directory and the result is renamed into place.
    """
    sources = simulator_sources(source_dir)
    compiler = find_compiler()
    flags = [*CFLAGS, *extra_flags]
    target_dir = cache_root() / _digest(sources, flags, compiler)
    target = target_dir / LIB_NAME
    if target.is_file() and not force:
        return target.resolve()
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=target_dir) as tmp:
        tmpdir = Path(tmp)
        for src in sources:  # compile a private copy: the package may be read-only or zipped
            shutil.copyfile(src, tmpdir / src.name)
        out = tmpdir / LIB_NAME
        c_files = sorted(str(tmpdir / s.name) for s in sources if s.suffix == ".c")
        cmd = [*compiler.split(), *flags, "-o", str(out), *c_files, *LDLIBS]
        try:
            proc = subprocess.run(cmd, cwd=tmpdir, capture_output=True, text=True, timeout=300)
        except OSError as exc:
            raise SimulatorError(
                f"cannot run the C compiler {compiler!r}: {exc}; install gcc: apt-get install gcc"
            ) from exc
        if proc.returncode != 0 or not out.is_file():
            raise SimulatorError(
                f"building the simulator failed ({' '.join(cmd)}), exit {proc.returncode}:\n{proc.stderr.strip()}"
            )
        os.replace(out, target)
    return target.resolve()


def sim_model_path(name: str) -> Path:
    """Path of a shipped simulated model file (``SIM_MODELS``)."""
    if name not in SIM_MODELS:
        raise UnknownSimModelError(f"unknown simulated model {name!r}; shipped: {', '.join(SIM_MODELS)}")
    path = _package_root() / "models" / f"{name}.rkllm"
    if not path.is_file():
        raise SimulatorError(f"simulated model file missing: {path}; the exo-rkllm install is incomplete")
    return path


def sim_tokenizer_dir(name: str) -> Path:
    """Hugging Face tokenizer directory for a simulated model (``chat-instant`` uses ``chat``'s)."""
    base = name[: -len("-instant")] if name.endswith("-instant") else name
    if base not in SIM_TOKENIZERS:
        raise UnknownSimModelError(
            f"unknown simulated tokenizer {name!r}; shipped: {', '.join(SIM_TOKENIZERS)} "
            f"(or a model name: {', '.join(SIM_MODELS)})"
        )
    path = _package_root() / "tokenizers" / base
    if not (path / "tokenizer.json").is_file():
        raise SimulatorError(f"simulated tokenizer missing: {path}; the exo-rkllm install is incomplete")
    return path
