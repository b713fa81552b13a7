"""The serving core: which runtime library, which models, one ModelService per model."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from exo_rkllm.core.errors import RuntimeUnavailableError
from exo_rkllm.core.service import ModelService

log = logging.getLogger("exo_rkllm.core")

SIM_SYMBOL = "rkllm_sim_version_banner"  # exported only by exo-rkllm's simulator, never by Rockchip's library
RK3588_BIG_CORES = 0xF0  # CPU4-7, the A76 cluster Rockchip's benchmark uses


@dataclass(frozen=True)
class RuntimeSpec:
    """Which librkllmrt the workers load, and whether it is the simulator (said loudly everywhere)."""

    library: str
    is_simulated: bool

    @classmethod
    def simulated(cls) -> "RuntimeSpec":
        """The C simulator, built on demand. Never an NPU."""
        from exo_rkllm.sim import build_simulator

        return cls(str(build_simulator()), True)

    @classmethod
    def board(cls, lib_path: str | None = None) -> "RuntimeSpec":
        """Rockchip's librkllmrt.so 1.2.3; refuses the simulator and wrong versions with the fix."""
        import rkllm

        fix = ("On an RK3588 board install librkllmrt.so 1.2.3 (docs/deployment.md; `exo-rkllm doctor` checks it) "
               "or pass --lib / set RKLLM_LIB_PATH to it. To try exo-rkllm without a board, add --simulate "
               "(simulated runtime, no NPU).")
        try:
            lib = rkllm.load_library(lib_path)
        except rkllm.LibraryNotFoundError as exc:
            where = "".join(f"\n  {p}" for p in exc.tried)
            raise RuntimeUnavailableError(f"No RKLLM runtime (librkllmrt.so 1.2.3) found. Looked at:{where}",
                                          fix) from None
        except rkllm.RKLLMError as exc:
            raise RuntimeUnavailableError(f"No usable RKLLM runtime: {exc}", fix) from None
        path = str(getattr(lib, "_name", lib_path or ""))
        if hasattr(lib, SIM_SYMBOL):
            raise RuntimeUnavailableError(
                f"{path} is exo-rkllm's simulated runtime, not Rockchip's librkllmrt.so.",
                "Use --simulate to run the simulator on purpose, or point RKLLM_LIB_PATH at the real library.")
        return cls(path, False)


def model_file(card, spec: RuntimeSpec) -> Path:
    """The file a worker loads for this card, checked to match the runtime kind."""
    if spec.is_simulated and not card.simulated:
        raise RuntimeUnavailableError(
            f"'{card.id}' is a real RKLLM model; the simulated runtime serves only the simulated models.",
            "Pick a sim-* model (`exo-rkllm models list`), or drop --simulate on a board.")
    if card.simulated and not spec.is_simulated:
        raise RuntimeUnavailableError(
            f"'{card.id}' is a simulated model and needs the simulated runtime.",
            "Add --simulate, or pick a real model (`exo-rkllm models list`).")
    from exo_rkllm.ops.store import ModelStore

    path = ModelStore().model_file(card)
    if not path.is_file():
        raise RuntimeUnavailableError(
            f"The model file for '{card.id}' is missing: {path}.",
            f"Download it with `exo-rkllm models pull {card.id}` (or set EXO_RKLLM_MODELS_DIR).")
    return path


def worker_config(card, spec: RuntimeSpec, *, domain_id: int = 0) -> dict:
    """What a worker needs to load one card: the library and rkllm.RuntimeConfig's fields."""
    runtime = {
        "model_path": str(model_file(card, spec)),
        "max_context_len": card.context_length,
        # Per-request caps are enforced by the worker (pausing the run), so the runtime's own cap is the
        # context: a request may ask for more than the card's default.
        "max_new_tokens": card.context_length,
        "skip_special_token": True,
        "base_domain_id": domain_id,
    }
    if not spec.is_simulated:
        runtime["enabled_cpus_mask"] = RK3588_BIG_CORES
        runtime["enabled_cpus_num"] = 4
    return {"library": spec.library, "runtime": runtime}


class ServingCore:
    """Every model this node serves, each behind its own worker and queue."""

    def __init__(self, spec: RuntimeSpec, cards: Iterable, *, queue_depth: int = 8, sampling_policy: str = "strict",
                 sampling_overrides: dict | None = None, load_timeout_s: float = 900.0,
                 on_load_progress: Callable[[str, str], None] | None = None, check_memory: bool = True) -> None:
        self.spec = spec
        self.cards = list(cards)
        if not self.cards:
            raise ValueError("ServingCore needs at least one model card")
        self.queue_depth = queue_depth
        self.sampling_policy = sampling_policy
        self.sampling_overrides = {k: v for k, v in (sampling_overrides or {}).items() if v is not None}
        self.load_timeout_s = load_timeout_s
        self.on_load_progress = on_load_progress
        self.check_memory = check_memory
        self.services: dict[str, ModelService] = {}

    async def start(self) -> None:
        """Load every model, one after another (loading two at once can exhaust a 4 GB board)."""
        from exo_rkllm import metrics

        metrics.SIMULATED.set(1 if self.spec.is_simulated else 0)
        domains = self._domain_ids()
        for card in self.cards:
            if not self.spec.is_simulated and self.check_memory:
                self._check_fits(card)
            config = worker_config(card, self.spec, domain_id=domains.get(card.id, 0))
            sampling = dict(card.sampling or {})
            sampling.update(self.sampling_overrides)
            svc = ModelService(card, config, queue_depth=self.queue_depth, sampling_policy=self.sampling_policy,
                               sampling=sampling, load_timeout_s=self.load_timeout_s)
            self._progress(card.id, "loading")
            try:
                await svc.start()
            except BaseException:
                await self.close()
                raise
            self.services[card.id] = svc
            self._progress(card.id, f"loaded in {svc.load_seconds:.1f} s")

    def _progress(self, model_id: str, what: str) -> None:
        if self.on_load_progress is not None:
            self.on_load_progress(model_id, what)

    def _domain_ids(self) -> dict[str, int]:
        """Several resident models each need their own NPU memory domain."""
        from exo_rkllm.ops.memory import assign_domain_ids

        return assign_domain_ids(self.cards) if len(self.cards) > 1 else {}

    def _check_fits(self, card) -> None:
        """Refuse before loading a model the board cannot hold (models load one after another)."""
        from exo_rkllm.ops.memory import InsufficientMemoryError, check_fits

        try:
            check_fits(card)
        except InsufficientMemoryError as exc:
            message, _, fix = str(exc).partition(" Fix: ")
            raise RuntimeUnavailableError(message + ".", fix or "Use a smaller model.") from None

    def service(self, model_id: str) -> ModelService:
        try:
            return self.services[model_id]
        except KeyError:
            from exo_rkllm.catalog import UnknownModelError

            raise UnknownModelError(model_id) from None

    async def close(self) -> None:
        await asyncio.gather(*(svc.close() for svc in self.services.values()), return_exceptions=True)
        self.services.clear()
