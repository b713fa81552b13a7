"""The ctypes structs must match the C header byte for byte (a drift corrupts memory silently).

A C probe, compiled with gcc against bindings/simulator/rkllm.h, prints sizeof/alignof/offsetof
of every struct and field; the ctypes classes and the reference numbers (Rockchip's 1.2.3
layout on LP64) must both agree with it.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

import rkllm
from rkllm import _capi

SIM_DIR = Path(__file__).resolve().parents[2] / "bindings" / "simulator"

# Transcribed from the 1.2.3 reference (shared/reference/rkllm-1.2.3.md): size, align, offsets.
REFERENCE: dict[str, tuple[int, int, dict[str, int]]] = {
    "RKLLMExtendParam": (120, 4, dict(base_domain_id=0, embed_flash=4, enabled_cpus_num=5,
                                      enabled_cpus_mask=8, n_batch=12, use_cross_attn=13,
                                      reserved=14)),
    "RKLLMParam": (208, 8, dict(model_path=0, max_context_len=8, max_new_tokens=12, top_k=16,
                                n_keep=20, top_p=24, temperature=28, repeat_penalty=32,
                                frequency_penalty=36, presence_penalty=40, mirostat=44,
                                mirostat_tau=48, mirostat_eta=52, skip_special_token=56,
                                is_async=57, img_start=64, img_end=72, img_content=80,
                                extend_param=88)),
    "RKLLMLoraAdapter": (24, 8, dict(lora_adapter_path=0, lora_adapter_name=8, scale=16)),
    "RKLLMEmbedInput": (16, 8, dict(embed=0, n_tokens=8)),
    "RKLLMTokenInput": (16, 8, dict(input_ids=0, n_tokens=8)),
    "RKLLMMultiModalInput": (48, 8, dict(prompt=0, image_embed=8, n_image_tokens=16, n_image=24,
                                         image_width=32, image_height=40)),
    "RKLLMInput": (64, 8, dict(role=0, enable_thinking=8, input_type=12, prompt_input=16,
                               embed_input=16, token_input=16, multimodal_input=16)),
    "RKLLMLoraParam": (8, 8, dict(lora_adapter_name=0)),
    "RKLLMPromptCacheParam": (16, 8, dict(save_prompt_cache=0, prompt_cache_path=8)),
    "RKLLMCrossAttnParam": (40, 8, dict(encoder_k_cache=0, encoder_v_cache=8, encoder_mask=16,
                                        encoder_pos=24, num_tokens=32)),
    "RKLLMInferParam": (32, 8, dict(mode=0, lora_params=8, prompt_cache_params=16,
                                    keep_history=24)),
    "RKLLMResultLastHiddenLayer": (16, 8, dict(hidden_states=0, embd_size=8, num_tokens=12)),
    "RKLLMResultLogits": (16, 8, dict(logits=0, vocab_size=8, num_tokens=12)),
    "RKLLMPerfStat": (20, 4, dict(prefill_time_ms=0, prefill_tokens=4, generate_time_ms=8,
                                  generate_tokens=12, memory_usage_mb=16)),
    "RKLLMResult": (72, 8, dict(text=0, token_id=8, last_hidden_layer=16, logits=32, perf=48)),
}


def _ctypes_fields(cls: type[ctypes.Structure]) -> list[str]:
    """Field names as C sees them: anonymous union members are lifted into the struct."""
    anon = set(getattr(cls, "_anonymous_", ()))
    names: list[str] = []
    for name, ftype in cls._fields_:
        if name in anon:
            names.extend(n for n, _ in ftype._fields_)
        else:
            names.append(name)
    return names


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, int]]:
    """Compile and run the C probe; returns {"Struct": (size, align), "Struct.field": (offset, size)}."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.fail("gcc is needed to compile the layout probe (apt-get install gcc)")
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "rkllm.h"', "int main(void) {"]
    for sname, cls in _capi.STRUCTS.items():
        lines.append(f'printf("{sname} %zu %zu\\n", sizeof({sname}), _Alignof({sname}));')
        for f in _ctypes_fields(cls):
            lines.append(f'printf("{sname}.{f} %zu %zu\\n", offsetof({sname}, {f}), '
                         f"sizeof((({sname}*)0)->{f}));")
    for enum in ("LLMCallState", "RKLLMInputType", "RKLLMInferMode"):
        lines.append(f'printf("{enum} %zu 0\\n", sizeof({enum}));')
    for enum_cls in (rkllm.LLMCallState, rkllm.RKLLMInputType, rkllm.RKLLMInferMode):
        for m in enum_cls:
            lines.append(f'printf("{m.name} %d 0\\n", (int){m.name});')
    for i in range(8):
        lines.append(f'printf("CPU{i} %d 0\\n", CPU{i});')
    lines += ["return 0;", "}"]
    d = tmp_path_factory.mktemp("probe")
    src, exe = d / "probe.c", d / "probe"
    src.write_text("\n".join(lines) + "\n")
    subprocess.run([gcc, "-std=c11", "-Wall", "-Werror", "-I", str(SIM_DIR), "-o", str(exe), str(src)],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    result = {}
    for line in out.splitlines():
        key, a, b = line.split()
        result[key] = (int(a), int(b))
    return result


@pytest.mark.parametrize("sname", list(_capi.STRUCTS))
def test_struct_layout_matches_c_and_reference(probe: dict[str, tuple[int, int]], sname: str) -> None:
    cls = _capi.STRUCTS[sname]
    ref_size, ref_align, ref_offsets = REFERENCE[sname]
    assert probe[sname] == (ctypes.sizeof(cls), ctypes.alignment(cls)), sname
    assert probe[sname] == (ref_size, ref_align), f"{sname}: C header differs from the 1.2.3 reference"
    fields = _ctypes_fields(cls)
    assert set(fields) == set(ref_offsets), f"{sname}: field names differ from the reference"
    for f in fields:
        desc = getattr(cls, f)
        c_off, c_size = probe[f"{sname}.{f}"]
        assert (desc.offset, desc.size) == (c_off, c_size), f"{sname}.{f}: ctypes vs C"
        assert c_off == ref_offsets[f], f"{sname}.{f}: C vs reference"


def test_enums_and_cpu_masks_match_c(probe: dict[str, tuple[int, int]]) -> None:
    for enum in ("LLMCallState", "RKLLMInputType", "RKLLMInferMode"):
        assert probe[enum][0] == 4
    for enum_cls in (rkllm.LLMCallState, rkllm.RKLLMInputType, rkllm.RKLLMInferMode):
        for m in enum_cls:
            assert probe[m.name][0] == int(m), m.name
    for i in range(8):
        assert probe[f"CPU{i}"][0] == getattr(rkllm, f"CPU{i}")


def test_every_struct_and_prototype_is_declared() -> None:
    assert len(_capi.STRUCTS) == 15 and set(_capi.STRUCTS) == set(REFERENCE)
    for sname in REFERENCE:
        assert getattr(rkllm, sname) is _capi.STRUCTS[sname]
    assert len(_capi.FUNCTION_NAMES) == 15
    # The callback returns int (a void callback makes the runtime read garbage).
    assert rkllm.LLMResultCallback._restype_ is ctypes.c_int
    assert rkllm.LLMResultCallback._argtypes_[0]._type_ is rkllm.RKLLMResult
    # top_k is an int32, not a float (a known bug of other bindings).
    assert dict(rkllm.RKLLMParam._fields_)["top_k"] is ctypes.c_int32
