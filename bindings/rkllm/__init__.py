"""rkllm: Python bindings for Rockchip's RKLLM runtime 1.2.3 (librkllmrt.so).

``_capi`` mirrors the C header 1:1; ``load_library`` refuses a wrong runtime before it can
crash the process; ``RKLLMRuntime`` owns one handle with a thread-safe, Pythonic API.
Depends on numpy only (never on exo).
"""

from ._capi import (
    CPU0,
    CPU1,
    CPU2,
    CPU3,
    CPU4,
    CPU5,
    CPU6,
    CPU7,
    FUNCTION_NAMES,
    RKLLM_ABI_VERSION,
    STRUCT_SIZES,
    LLMCallState,
    LLMHandle,
    LLMResultCallback,
    RKLLMCrossAttnParam,
    RKLLMEmbedInput,
    RKLLMExtendParam,
    RKLLMInferMode,
    RKLLMInferParam,
    RKLLMInput,
    RKLLMInputType,
    RKLLMLoraAdapter,
    RKLLMLoraParam,
    RKLLMMultiModalInput,
    RKLLMParam,
    RKLLMPerfStat,
    RKLLMPromptCacheParam,
    RKLLMResult,
    RKLLMResultLastHiddenLayer,
    RKLLMResultLogits,
    RKLLMTokenInput,
    set_prototypes,
)
from .config import RuntimeConfig
from .errors import (
    ABIMismatchError,
    ContextOverflowError,
    InvalidConfigError,
    LibraryLoadError,
    LibraryNotFoundError,
    ModelLoadError,
    RKLLMCallError,
    RKLLMError,
    RKLLMRunError,
    RuntimeClosedError,
)
from .generation import Generation
from .library import COMPATIBLE_VERSIONS, find_library, load_library, runtime_version_of
from .runtime import Event, PerfStat, RKLLMRuntime, RunResult

__all__ = [
    "CPU0", "CPU1", "CPU2", "CPU3", "CPU4", "CPU5", "CPU6", "CPU7",
    "FUNCTION_NAMES", "RKLLM_ABI_VERSION", "STRUCT_SIZES", "COMPATIBLE_VERSIONS",
    "LLMCallState", "LLMHandle", "LLMResultCallback", "RKLLMInferMode", "RKLLMInputType",
    "RKLLMCrossAttnParam", "RKLLMEmbedInput", "RKLLMExtendParam", "RKLLMInferParam",
    "RKLLMInput", "RKLLMLoraAdapter", "RKLLMLoraParam", "RKLLMMultiModalInput", "RKLLMParam",
    "RKLLMPerfStat", "RKLLMPromptCacheParam", "RKLLMResult", "RKLLMResultLastHiddenLayer",
    "RKLLMResultLogits", "RKLLMTokenInput", "set_prototypes",
    "RuntimeConfig", "RKLLMRuntime", "RunResult", "Event", "PerfStat", "Generation",
    "load_library", "find_library", "runtime_version_of",
    "RKLLMError", "LibraryNotFoundError", "ABIMismatchError", "LibraryLoadError",
    "ModelLoadError", "ContextOverflowError", "InvalidConfigError", "RKLLMCallError",
    "RKLLMRunError", "RuntimeClosedError",
]
