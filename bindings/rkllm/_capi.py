"""Raw 1:1 ctypes mirror of Rockchip's ``rkllm.h`` (RKLLM runtime 1.2.3).

Why a separate layer: every struct, enum and prototype here matches the C header byte for
byte, so a reviewer can check each line against the C declaration written above it. Nothing
here is "Pythonic"; ``runtime.py`` builds the friendly API on top. Layouts are LP64
(aarch64 and x86-64 agree); ``tests/bindings/test_layout.py`` compares every size and offset
with a compiled C probe.
"""

from __future__ import annotations

import ctypes
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    Union,
    c_bool,
    c_char_p,
    c_float,
    c_int,
    c_int8,
    c_int32,
    c_size_t,
    c_uint8,
    c_uint32,
    c_void_p,
)
from enum import IntEnum

# The C ABI this module mirrors.
RKLLM_ABI_VERSION = "1.2.3"

# typedef void* LLMHandle;
LLMHandle = c_void_p

# #define CPU0 (1 << 0) ... #define CPU7 (1 << 7)
CPU0 = 1 << 0
CPU1 = 1 << 1
CPU2 = 1 << 2
CPU3 = 1 << 3
CPU4 = 1 << 4
CPU5 = 1 << 5
CPU6 = 1 << 6
CPU7 = 1 << 7


# typedef enum {
#     RKLLM_RUN_NORMAL  = 0,
#     RKLLM_RUN_WAITING = 1,
#     RKLLM_RUN_FINISH  = 2,
#     RKLLM_RUN_ERROR   = 3,
# } LLMCallState;
class LLMCallState(IntEnum):
    RKLLM_RUN_NORMAL = 0
    RKLLM_RUN_WAITING = 1
    RKLLM_RUN_FINISH = 2
    RKLLM_RUN_ERROR = 3


# typedef enum {
#     RKLLM_INPUT_PROMPT     = 0,
#     RKLLM_INPUT_TOKEN      = 1,
#     RKLLM_INPUT_EMBED      = 2,
#     RKLLM_INPUT_MULTIMODAL = 3,
# } RKLLMInputType;
class RKLLMInputType(IntEnum):
    RKLLM_INPUT_PROMPT = 0
    RKLLM_INPUT_TOKEN = 1
    RKLLM_INPUT_EMBED = 2
    RKLLM_INPUT_MULTIMODAL = 3


# typedef enum {
#     RKLLM_INFER_GENERATE              = 0,
#     RKLLM_INFER_GET_LAST_HIDDEN_LAYER = 1,
#     RKLLM_INFER_GET_LOGITS            = 2,
# } RKLLMInferMode;
class RKLLMInferMode(IntEnum):
    RKLLM_INFER_GENERATE = 0
    RKLLM_INFER_GET_LAST_HIDDEN_LAYER = 1
    RKLLM_INFER_GET_LOGITS = 2


# C enums are 4-byte ints in these structs and prototypes.
_c_enum = c_int


# typedef struct {
#     int32_t  base_domain_id;
#     int8_t   embed_flash;
#     int8_t   enabled_cpus_num;
#     uint32_t enabled_cpus_mask;
#     uint8_t  n_batch;
#     int8_t   use_cross_attn;
#     uint8_t  reserved[104];
# } RKLLMExtendParam;                                   /* 120 bytes, align 4 */
class RKLLMExtendParam(Structure):
    _fields_ = [
        ("base_domain_id", c_int32),
        ("embed_flash", c_int8),
        ("enabled_cpus_num", c_int8),
        ("enabled_cpus_mask", c_uint32),
        ("n_batch", c_uint8),
        ("use_cross_attn", c_int8),
        ("reserved", c_uint8 * 104),
    ]


# typedef struct {
#     const char* model_path;
#     int32_t max_context_len;
#     int32_t max_new_tokens;
#     int32_t top_k;
#     int32_t n_keep;
#     float   top_p;
#     float   temperature;
#     float   repeat_penalty;
#     float   frequency_penalty;
#     float   presence_penalty;
#     int32_t mirostat;
#     float   mirostat_tau;
#     float   mirostat_eta;
#     bool    skip_special_token;
#     bool    is_async;
#     const char* img_start;
#     const char* img_end;
#     const char* img_content;
#     RKLLMExtendParam extend_param;
# } RKLLMParam;                                         /* 208 bytes, align 8 */
class RKLLMParam(Structure):
    _fields_ = [
        ("model_path", c_char_p),
        ("max_context_len", c_int32),
        ("max_new_tokens", c_int32),
        ("top_k", c_int32),
        ("n_keep", c_int32),
        ("top_p", c_float),
        ("temperature", c_float),
        ("repeat_penalty", c_float),
        ("frequency_penalty", c_float),
        ("presence_penalty", c_float),
        ("mirostat", c_int32),
        ("mirostat_tau", c_float),
        ("mirostat_eta", c_float),
        ("skip_special_token", c_bool),
        ("is_async", c_bool),
        ("img_start", c_char_p),
        ("img_end", c_char_p),
        ("img_content", c_char_p),
        ("extend_param", RKLLMExtendParam),
    ]


# typedef struct {
#     const char* lora_adapter_path;
#     const char* lora_adapter_name;
#     float scale;
# } RKLLMLoraAdapter;                                   /* 24 bytes */
class RKLLMLoraAdapter(Structure):
    _fields_ = [
        ("lora_adapter_path", c_char_p),
        ("lora_adapter_name", c_char_p),
        ("scale", c_float),
    ]


# typedef struct {
#     float* embed;
#     size_t n_tokens;
# } RKLLMEmbedInput;                                    /* 16 bytes */
class RKLLMEmbedInput(Structure):
    _fields_ = [
        ("embed", POINTER(c_float)),
        ("n_tokens", c_size_t),
    ]


# typedef struct {
#     int32_t* input_ids;
#     size_t   n_tokens;
# } RKLLMTokenInput;                                    /* 16 bytes */
class RKLLMTokenInput(Structure):
    _fields_ = [
        ("input_ids", POINTER(c_int32)),
        ("n_tokens", c_size_t),
    ]


# typedef struct {
#     char*  prompt;
#     float* image_embed;
#     size_t n_image_tokens;
#     size_t n_image;
#     size_t image_width;
#     size_t image_height;
# } RKLLMMultiModalInput;                               /* 48 bytes (1.2.2: RKLLMMultiModelInput) */
class RKLLMMultiModalInput(Structure):
    _fields_ = [
        ("prompt", c_char_p),
        ("image_embed", POINTER(c_float)),
        ("n_image_tokens", c_size_t),
        ("n_image", c_size_t),
        ("image_width", c_size_t),
        ("image_height", c_size_t),
    ]


# union {                         /* the anonymous union inside RKLLMInput */
#     const char* prompt_input;
#     RKLLMEmbedInput      embed_input;
#     RKLLMTokenInput      token_input;
#     RKLLMMultiModalInput multimodal_input;
# };                                                    /* 48 bytes */
class _RKLLMInputUnion(Union):
    _fields_ = [
        ("prompt_input", c_char_p),
        ("embed_input", RKLLMEmbedInput),
        ("token_input", RKLLMTokenInput),
        ("multimodal_input", RKLLMMultiModalInput),
    ]


# typedef struct {
#     const char* role;
#     bool enable_thinking;
#     RKLLMInputType input_type;
#     union {
#         const char* prompt_input;
#         RKLLMEmbedInput embed_input;
#         RKLLMTokenInput token_input;
#         RKLLMMultiModalInput multimodal_input;
#     };
# } RKLLMInput;                                         /* 64 bytes */
class RKLLMInput(Structure):
    _anonymous_ = ("_u",)
    _fields_ = [
        ("role", c_char_p),
        ("enable_thinking", c_bool),
        ("input_type", _c_enum),
        ("_u", _RKLLMInputUnion),
    ]


# typedef struct {
#     const char* lora_adapter_name;
# } RKLLMLoraParam;                                     /* 8 bytes */
class RKLLMLoraParam(Structure):
    _fields_ = [
        ("lora_adapter_name", c_char_p),
    ]


# typedef struct {
#     int save_prompt_cache;
#     const char* prompt_cache_path;
# } RKLLMPromptCacheParam;                              /* 16 bytes */
class RKLLMPromptCacheParam(Structure):
    _fields_ = [
        ("save_prompt_cache", c_int),
        ("prompt_cache_path", c_char_p),
    ]


# typedef struct {
#     float*   encoder_k_cache;
#     float*   encoder_v_cache;
#     float*   encoder_mask;
#     int32_t* encoder_pos;
#     int      num_tokens;
# } RKLLMCrossAttnParam;                                /* 40 bytes */
class RKLLMCrossAttnParam(Structure):
    _fields_ = [
        ("encoder_k_cache", POINTER(c_float)),
        ("encoder_v_cache", POINTER(c_float)),
        ("encoder_mask", POINTER(c_float)),
        ("encoder_pos", POINTER(c_int32)),
        ("num_tokens", c_int),
    ]


# typedef struct {
#     RKLLMInferMode mode;
#     RKLLMLoraParam* lora_params;
#     RKLLMPromptCacheParam* prompt_cache_params;
#     int keep_history;
# } RKLLMInferParam;                                    /* 32 bytes */
class RKLLMInferParam(Structure):
    _fields_ = [
        ("mode", _c_enum),
        ("lora_params", POINTER(RKLLMLoraParam)),
        ("prompt_cache_params", POINTER(RKLLMPromptCacheParam)),
        ("keep_history", c_int),
    ]


# typedef struct {
#     const float* hidden_states;
#     int embd_size;
#     int num_tokens;
# } RKLLMResultLastHiddenLayer;                         /* 16 bytes */
class RKLLMResultLastHiddenLayer(Structure):
    _fields_ = [
        ("hidden_states", POINTER(c_float)),
        ("embd_size", c_int),
        ("num_tokens", c_int),
    ]


# typedef struct {
#     const float* logits;
#     int vocab_size;
#     int num_tokens;
# } RKLLMResultLogits;                                  /* 16 bytes */
class RKLLMResultLogits(Structure):
    _fields_ = [
        ("logits", POINTER(c_float)),
        ("vocab_size", c_int),
        ("num_tokens", c_int),
    ]


# typedef struct {
#     float prefill_time_ms;
#     int   prefill_tokens;
#     float generate_time_ms;
#     int   generate_tokens;
#     float memory_usage_mb;
# } RKLLMPerfStat;                                      /* 20 bytes, align 4 */
class RKLLMPerfStat(Structure):
    _fields_ = [
        ("prefill_time_ms", c_float),
        ("prefill_tokens", c_int),
        ("generate_time_ms", c_float),
        ("generate_tokens", c_int),
        ("memory_usage_mb", c_float),
    ]


# typedef struct {
#     const char* text;
#     int32_t token_id;
#     RKLLMResultLastHiddenLayer last_hidden_layer;
#     RKLLMResultLogits logits;
#     RKLLMPerfStat perf;
# } RKLLMResult;                                        /* 72 bytes (4 bytes tail padding) */
class RKLLMResult(Structure):
    _fields_ = [
        ("text", c_char_p),  # NULL (batch mode, FINISH) reads as None
        ("token_id", c_int32),
        ("last_hidden_layer", RKLLMResultLastHiddenLayer),
        ("logits", RKLLMResultLogits),
        ("perf", RKLLMPerfStat),
    ]


# typedef int (*LLMResultCallback)(RKLLMResult* result, void* userdata, LLMCallState state);
# (returns int since 1.2.1: 0 = continue, 1 = pause; 1.1.4 returned void)
LLMResultCallback = CFUNCTYPE(c_int, POINTER(RKLLMResult), c_void_p, c_int)


# Every struct of the 1.2.3 header, with the size the reference gives (checked by the tests).
STRUCT_SIZES: dict[str, int] = {
    "RKLLMExtendParam": 120,
    "RKLLMParam": 208,
    "RKLLMLoraAdapter": 24,
    "RKLLMEmbedInput": 16,
    "RKLLMTokenInput": 16,
    "RKLLMMultiModalInput": 48,
    "RKLLMInput": 64,
    "RKLLMLoraParam": 8,
    "RKLLMPromptCacheParam": 16,
    "RKLLMCrossAttnParam": 40,
    "RKLLMInferParam": 32,
    "RKLLMResultLastHiddenLayer": 16,
    "RKLLMResultLogits": 16,
    "RKLLMPerfStat": 20,
    "RKLLMResult": 72,
}

STRUCTS: dict[str, type[Structure]] = {
    name: globals()[name] for name in STRUCT_SIZES
}

# name -> (restype, argtypes). One line per C prototype.
PROTOTYPES: dict[str, tuple[object, list[object]]] = {
    # RKLLMParam rkllm_createDefaultParam();
    "rkllm_createDefaultParam": (RKLLMParam, []),
    # int rkllm_init(LLMHandle* handle, RKLLMParam* param, LLMResultCallback callback);
    "rkllm_init": (c_int, [POINTER(LLMHandle), POINTER(RKLLMParam), LLMResultCallback]),
    # int rkllm_load_lora(LLMHandle handle, RKLLMLoraAdapter* lora_adapter);
    "rkllm_load_lora": (c_int, [LLMHandle, POINTER(RKLLMLoraAdapter)]),
    # int rkllm_load_prompt_cache(LLMHandle handle, const char* prompt_cache_path);
    "rkllm_load_prompt_cache": (c_int, [LLMHandle, c_char_p]),
    # int rkllm_release_prompt_cache(LLMHandle handle);
    "rkllm_release_prompt_cache": (c_int, [LLMHandle]),
    # int rkllm_destroy(LLMHandle handle);
    "rkllm_destroy": (c_int, [LLMHandle]),
    # int rkllm_run(LLMHandle handle, RKLLMInput* rkllm_input, RKLLMInferParam* rkllm_infer_params, void* userdata);
    "rkllm_run": (c_int, [LLMHandle, POINTER(RKLLMInput), POINTER(RKLLMInferParam), c_void_p]),
    # int rkllm_run_async(LLMHandle handle, RKLLMInput* rkllm_input, RKLLMInferParam* rkllm_infer_params, void* userdata);
    "rkllm_run_async": (c_int, [LLMHandle, POINTER(RKLLMInput), POINTER(RKLLMInferParam), c_void_p]),
    # int rkllm_abort(LLMHandle handle);
    "rkllm_abort": (c_int, [LLMHandle]),
    # int rkllm_is_running(LLMHandle handle);
    "rkllm_is_running": (c_int, [LLMHandle]),
    # int rkllm_clear_kv_cache(LLMHandle handle, int keep_system_prompt, int* start_pos, int* end_pos);
    "rkllm_clear_kv_cache": (c_int, [LLMHandle, c_int, POINTER(c_int), POINTER(c_int)]),
    # int rkllm_get_kv_cache_size(LLMHandle handle, int* cache_sizes);
    "rkllm_get_kv_cache_size": (c_int, [LLMHandle, POINTER(c_int)]),
    # int rkllm_set_chat_template(LLMHandle handle, const char* system_prompt, const char* prompt_prefix, const char* prompt_postfix);
    "rkllm_set_chat_template": (c_int, [LLMHandle, c_char_p, c_char_p, c_char_p]),
    # int rkllm_set_function_tools(LLMHandle handle, const char* system_prompt, const char* tools, const char* tool_response_str);
    "rkllm_set_function_tools": (c_int, [LLMHandle, c_char_p, c_char_p, c_char_p]),
    # int rkllm_set_cross_attn_params(LLMHandle handle, RKLLMCrossAttnParam* cross_attn_params);
    "rkllm_set_cross_attn_params": (c_int, [LLMHandle, POINTER(RKLLMCrossAttnParam)]),
}

FUNCTION_NAMES: tuple[str, ...] = tuple(PROTOTYPES)

def missing_symbols(lib: ctypes.CDLL) -> list[str]:
    """Names of the 15 functions that ``lib`` does not export (checked before any call)."""
    missing = []
    for name in FUNCTION_NAMES:
        try:
            getattr(lib, name)
        except AttributeError:
            missing.append(name)
    return missing


def set_prototypes(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Set argtypes/restype of all 15 functions on ``lib`` (raises AttributeError if one is missing)."""
    for name, (restype, argtypes) in PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib
