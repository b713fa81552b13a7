"""`exo-rkllm doctor`: is this board ready to serve? One PASS/WARN/FAIL/SKIP line per fact, with the fix.

The failures users report most are version mismatches (NPU driver too old for runtime 1.2.x, a
runtime of another ABI, a model converted by another toolkit) and unpinned frequencies; each gets
a line here. Everything is read under an injectable root, so a test can hand it a fake board.
Off a board it says what it could not find; it never raises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

from exo_rkllm.ops import board, memory
from exo_rkllm.ops.store import Check

STATUSES = ("PASS", "WARN", "FAIL", "SKIP")


def render(line: Check) -> str:
    """One doctor line: status, check name, detail, then the fix on its own line for WARN and FAIL."""
    fix = f"\n       fix: {line.fix}" if line.fix and line.status in ("WARN", "FAIL") else ""
    return f"{line.status:4} {line.name:14} {line.detail}{fix}"


def _dmesg() -> str:
    try:
        return subprocess.run(["dmesg"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


class Doctor:
    """Collects the report; every check catches its own errors and turns them into a line."""

    def __init__(self, *, root: str | os.PathLike[str] = "/", models_dir: str | os.PathLike[str] | None = None,
                 lib_path: str | None = None, simulate: bool = False, smoke: bool = True,
                 smoke_model: str | None = None, smoke_tokens: int = 20,
                 dmesg: Callable[[], str] | None = None, euid: int | None = None):
        self.root = Path(root)
        self.models_dir = models_dir
        self.lib_path = lib_path
        self.simulate = simulate
        self.smoke = smoke
        self.smoke_model = smoke_model
        self.smoke_tokens = smoke_tokens
        self.dmesg = dmesg or (_dmesg if str(self.root) == "/" else (lambda: ""))
        self.euid = os.geteuid() if euid is None else euid
        self.lines: list[Check] = []
        self._lib_file: Path | None = None

    def run(self) -> list[Check]:
        checks = [self.check_soc, self.check_driver, self.check_device_nodes, self.check_runtime,
                  self.check_frequencies, self.check_memory, self.check_models, self.check_smoke]
        for check in checks:
            try:
                check()
            except Exception as exc:  # a bug in one check must not hide the others
                self.add("FAIL", check.__name__.replace("check_", ""), f"check crashed: {type(exc).__name__}: {exc}",
                         "report this as a bug in exo-rkllm doctor")
        return self.lines

    def add(self, status: str, name: str, detail: str, fix: str = "") -> None:
        self.lines.append(Check(name, status, detail, fix))

    # -- the board ----------------------------------------------------------------------------
    def check_soc(self) -> None:
        path = self.root / board.DEVICE_TREE_COMPATIBLE
        raw = board.read_text(path)
        if raw is None:
            self.add("SKIP" if self.simulate else "WARN", "soc", f"{path} not found: no device tree, so this "
                     f"is not an ARM board (or /proc/device-tree is hidden)",
                     "" if self.simulate else "run on the RK3588 board, or use --simulate to check the rest")
            return
        compat = [c for c in raw.replace("\x00", "\n").splitlines() if c.strip()]
        if any(c.startswith("rockchip,rk3588") for c in compat):
            self.add("PASS", "soc", ", ".join(compat))
        else:
            self.add("WARN", "soc", f"not an RK3588: {', '.join(compat) or 'empty compatible'}",
                     "RKLLM 1.2.3 figures and tuning here assume RK3588/RK3588S")

    def check_driver(self) -> None:
        if self.simulate:
            self.add("SKIP", "npu driver", "simulated run: no NPU driver needed")
            return
        need = ".".join(map(str, board.REQUIRED_DRIVER))
        found: list[tuple[str, str]] = []
        for rel in board.NPU_VERSION_FILES:
            text = board.read_text(self.root / rel)
            if text:
                found.append((str(self.root / rel), text))
        if not found:
            for line in self.dmesg().splitlines():
                if "rknpu" in line.lower() and board.parse_version(line):
                    found.append(("dmesg", line.strip()))
                    break
        if not found:
            debugfs = self.root / "sys/kernel/debug"
            hint = ""
            if not (debugfs.is_dir() and any(debugfs.iterdir() if debugfs.is_dir() else [])):
                hint = ("; debugfs is not mounted or not readable: run as root, or `mount -t debugfs none "
                        "/sys/kernel/debug`")
            elif self.euid != 0:
                hint = "; run as root (debugfs is root-only)"
            self.add("FAIL", "npu driver", f"no rknpu driver version found (looked at "
                     f"{', '.join(board.NPU_VERSION_FILES)} and dmesg){hint}",
                     f"on an RK3588 board: use a kernel with rknpu >= {need}; without a board: --simulate")
            return
        where, text = found[0]
        version = board.parse_version(text)
        if version is None:
            self.add("WARN", "npu driver", f"unparseable version {text!r} ({where})")
        elif version >= board.REQUIRED_DRIVER:
            self.add("PASS", "npu driver", f"rknpu {'.'.join(map(str, version))} >= {need} ({where})")
        else:
            self.add("FAIL", "npu driver", f"rknpu {'.'.join(map(str, version))} is older than {need}, which "
                     f"runtime 1.2.x needs (symptoms: 'matmul run failed', 'driver version is too low'; {where})",
                     f"update the kernel / rknpu driver to >= {need} (Rockchip's rknpu_driver_0.9.8 package, "
                     f"or a newer board image)")

    def check_device_nodes(self) -> None:
        if self.simulate:
            self.add("SKIP", "npu device", "simulated run: no device node needed")
            return
        nodes = [str(self.root / n) for n in board.NPU_DEVICE_NODES if (self.root / n).exists()]
        if nodes:
            self.add("PASS", "npu device", ", ".join(nodes))
        else:
            self.add("WARN", "npu device", f"none of {', '.join('/' + n for n in board.NPU_DEVICE_NODES)} exists",
                     "load the rknpu driver; the systemd unit's DeviceAllow= lists these nodes")

    def check_runtime(self) -> None:
        try:
            import rkllm
        except ImportError as exc:
            self.add("FAIL", "runtime", f"python package rkllm missing ({exc})", "reinstall exo-rkllm")
            return
        if self.simulate:
            try:
                from exo_rkllm.sim import build_simulator

                self._lib_file = Path(build_simulator())
            except Exception as exc:
                self.add("FAIL", "runtime", f"simulator could not be built: {type(exc).__name__}: {exc}",
                         "install a C compiler (cc/gcc); `exo-rkllm sim build` shows the details")
                return
            self.add("PASS", "runtime", f"SIMULATED runtime {self._lib_file} (no NPU)")
            return
        try:
            path = rkllm.find_library(self.lib_path)
        except rkllm.LibraryNotFoundError as exc:
            self.add("FAIL", "runtime", f"librkllmrt.so not found; looked at: {', '.join(exc.tried)}",
                     "install librkllmrt.so 1.2.3 from rknn-llm (rkllm-runtime/Linux/librkllm_api/aarch64) "
                     "into /usr/lib, or set RKLLM_LIB_PATH; without a board, `exo-rkllm doctor --simulate`")
            return
        except rkllm.RKLLMError as exc:
            self.add("FAIL", "runtime", " ".join(str(exc).split()),
                     "install librkllmrt.so 1.2.3 from rknn-llm (rkllm-runtime/Linux/librkllm_api/aarch64) "
                     "into /usr/lib, or set RKLLM_LIB_PATH")
            return
        version = rkllm.runtime_version_of(path)
        try:
            lib = rkllm.load_library(path)
        except rkllm.RKLLMError as exc:
            self.add("FAIL", "runtime", f"{path}: {exc}", "install librkllmrt.so 1.2.3 for aarch64")
            return
        if hasattr(lib, "rkllm_sim_version_banner"):  # exported only by exo-rkllm's simulator
            self.add("FAIL", "runtime", f"{path} is exo-rkllm's simulator, not Rockchip's runtime (no NPU)",
                     "install Rockchip's librkllmrt.so 1.2.3; to check the simulator, run `exo-rkllm doctor --simulate`")
            return
        self._lib_file = Path(path)
        if version is None:
            self.add("WARN", "runtime", f"{path}: loaded, all 1.2.3 functions present, version string not found",
                     "make sure it is rknn-llm release 1.2.3")
        elif version in rkllm.COMPATIBLE_VERSIONS:
            self.add("PASS", "runtime", f"{path}: RKLLM runtime {version}")
        else:
            self.add("FAIL", "runtime", f"{path}: RKLLM runtime {version}, this build needs 1.2.3",
                     "install librkllmrt.so from rknn-llm release 1.2.3")

    def check_frequencies(self) -> None:
        if self.simulate:
            self.add("SKIP", "frequencies", "simulated run: frequencies do not matter")
            return
        units = board.freq_units(self.root)
        if not units:
            self.add("WARN", "frequencies", f"no NPU/CPU/DDR frequency controls under {self.root / 'sys'}",
                     "on a board: check that devfreq/cpufreq are enabled in the kernel")
            return
        for u in units:
            gov = board.read_text(u.path / u.governor_file)
            cur = board.read_int(u.path / u.cur_file)
            if cur is None:
                self.add("SKIP", f"freq {u.unit}", f"{u.path / u.cur_file} not readable (governor {gov})")
                continue
            cur_hz, want = cur * u.hz_per_unit, u.pinned_hz
            text = f"{cur_hz / 1e6:.0f} MHz, governor {gov} (pinned value {want / 1e6:.0f} MHz)"
            if cur_hz >= want * 0.97 and gov in ("userspace", "performance"):
                self.add("PASS", f"freq {u.unit}", text)
            else:
                self.add("WARN", f"freq {u.unit}", text + ": not pinned, expect about half the published speed",
                         "sudo exo-rkllm tune (the systemd unit runs it before start)")

    def check_memory(self) -> None:
        meminfo = self.root / "proc/meminfo"
        free, total = memory.available_mb(meminfo), memory.total_mb(meminfo)
        if free is None:
            self.add("WARN", "memory", f"{meminfo} not readable", "")
            return
        self.add("PASS", "memory", f"{free} MB available of {total} MB "
                 f"(a 1.5B model needs ~1.7 GB, a 7B model ~8 GB)")

    # -- models -------------------------------------------------------------------------------
    def _store(self):
        from exo_rkllm.ops.store import ModelStore

        return ModelStore(self.models_dir)

    def check_models(self) -> None:
        from exo_rkllm.catalog import CatalogError

        store = self._store()
        try:
            cards = store.catalog()
        except CatalogError as exc:
            self.add("FAIL", "catalog", str(exc), "fix or delete the named user catalog file")
            return
        installed = [c for c in cards.values() if not c.simulated and store.is_installed(c)]
        if not installed:
            self.add("SKIP" if self.simulate else "WARN", "models", f"no models installed in {store.root}",
                     "" if self.simulate else "exo-rkllm models pull qwen2.5-1.5b-instruct")
            return
        for card in installed:
            checks = store.verify(card, meminfo=self.root / "proc/meminfo")
            worst = max(checks, key=lambda c: ("PASS", "SKIP", "WARN", "FAIL").index(c.status))
            bad = [c for c in checks if c.status in ("FAIL", "WARN")]
            detail = "; ".join(f"{c.name}: {c.detail}" for c in bad) or f"{store.model_file(card)} verified"
            self.add(worst.status if worst.status != "SKIP" else "PASS", f"model {card.id}", detail,
                     "; ".join(c.fix for c in bad if c.fix))

    def _smoke_target(self):
        from exo_rkllm.catalog import get_card

        store = self._store()
        if self.smoke_model:
            card = get_card(self.smoke_model, store.root)
            if card.simulated != self.simulate:
                raise ValueError(f"{card.id} is {'a simulated' if card.simulated else 'a real'} model; "
                                 f"{'add' if card.simulated else 'drop'} --simulate or choose another model")
            return card, store.model_file(card)
        if self.simulate:
            card = get_card("sim-qwen2.5-1.5b", store.root)
            return card, store.model_file(card)
        for card in sorted(store.catalog().values(), key=lambda c: c.memory_mb):
            if not card.simulated and store.is_installed(card):
                return card, store.model_file(card)
        return None, None

    def check_smoke(self) -> None:
        if not self.smoke:
            self.add("SKIP", "smoke test", "skipped (--no-smoke)")
            return
        if self._lib_file is None:
            self.add("SKIP", "smoke test", "no usable runtime library (see the runtime line)")
            return
        try:
            card, model_path = self._smoke_target()
        except (KeyError, ValueError) as exc:
            self.add("FAIL", "smoke test", str(exc).strip("'\""), "choose a model from `exo-rkllm models list`")
            return
        if card is None:
            self.add("SKIP", "smoke test", "no installed model to run", "exo-rkllm models pull qwen2.5-1.5b-instruct")
            return
        label = " (SIMULATED)" if self.simulate else ""
        cmd = [sys.executable, "-m", "exo_rkllm.ops.smoke", "--lib", str(self._lib_file), "--model", str(model_path),
               "--tokens", str(self.smoke_tokens), "--context", str(min(card.context_length, 1024))]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(120.0, card.request_timeout_s))
        except subprocess.TimeoutExpired:
            self.add("FAIL", "smoke test", f"{card.id}{label}: no result after {max(120.0, card.request_timeout_s):.0f} s",
                     "check `dmesg` for NPU errors; reboot the board if the NPU hangs")
            return
        result = None
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith("{"):
                try:
                    result = json.loads(line)
                    break
                except ValueError:
                    continue
        if result is None:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            self.add("FAIL", "smoke test", f"{card.id}{label}: runtime process died (exit {proc.returncode}): {tail}",
                     "run `exo-rkllm doctor` again after fixing the lines above; a crash here usually means a model "
                     "converted by another toolkit version or an old NPU driver")
            return
        if not result.get("ok"):
            self.add("FAIL", "smoke test", f"{card.id}{label}: {result.get('error')}",
                     "`exo-rkllm models verify` and the driver/runtime lines above name the usual causes")
            return
        tps = result.get("tokens_per_s")
        text = (f"{card.id}{label}: {result['tokens']} tokens, "
                f"{tps:.2f} tokens/s" if tps else f"{card.id}{label}: {result['tokens']} tokens")
        if result.get("load_s") is not None:
            text += f", load {result['load_s']:.1f} s"
        if tps and card.decode_tok_s and not self.simulate and tps < 0.6 * card.decode_tok_s:
            self.add("WARN", "smoke test", f"{text}; Rockchip measured {card.decode_tok_s} tokens/s",
                     "sudo exo-rkllm tune (pin frequencies); check that nothing else uses the NPU")
        else:
            ref = f" (Rockchip: {card.decode_tok_s} tokens/s)" if card.decode_tok_s else ""
            self.add("PASS", "smoke test", text + ref)


def exit_code(lines: list[Check]) -> int:
    """Non-zero only when something FAILs."""
    return 1 if any(line.status == "FAIL" for line in lines) else 0
