"""Helpers shared by the binding tests (simulated model files, simulator variants)."""

from __future__ import annotations

from pathlib import Path



def write_model(path: Path, *, behaviour: str = "echo", decode_ms: float = 0, prefill_ms: float = 0,
                load_ms: float = 0, max_context_len: int = 4096, replies: list[str] | None = None,
                think: str | None = None, fault: str | None = None, memory_mb: float = 12.5,
                name: str = "test") -> Path:
    lines = ["RKLLM-SIM 1", f"name: {name}", "emulates: nothing (binding tests)",
             f"behaviour: {behaviour}", f"decode_ms: {decode_ms}", f"prefill_ms: {prefill_ms}",
             f"load_ms: {load_ms}", f"memory_mb: {memory_mb}", f"max_context_len: {max_context_len}"]
    for r in replies or []:
        lines.append(f"reply: {r}")
    if think is not None:
        lines.append(f"think: {think}")
    if fault is not None:
        lines.append(f"fault: {fault}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def compile_sim_variant(*defines: str) -> Path:
    """The simulator built with extra -D flags (a wrong-ABI library for refusal tests)."""
    from exo_rkllm.sim import build_simulator

    return build_simulator(extra_flags=tuple(defines))
