/*
 * rkllm.h — the RKLLM runtime 1.2.3 C interface, written for the exo-rkllm simulator
 * from the project's reference notes (shared/reference/rkllm-1.2.3.md), not copied from
 * Rockchip's header. The layouts below MUST equal the real 1.2.3 ABI on LP64 targets
 * (aarch64, x86-64): the _Static_asserts at the end make any drift a compile error.
 */
#ifndef EXO_RKLLM_SIM_RKLLM_H
#define EXO_RKLLM_SIM_RKLLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CPU0 (1 << 0)
#define CPU1 (1 << 1)
#define CPU2 (1 << 2)
#define CPU3 (1 << 3)
#define CPU4 (1 << 4)
#define CPU5 (1 << 5)
#define CPU6 (1 << 6)
#define CPU7 (1 << 7)

typedef void *LLMHandle;

typedef enum {
    RKLLM_RUN_NORMAL = 0,  /* a complete piece of text */
    RKLLM_RUN_WAITING = 1, /* bytes so far end inside a UTF-8 character; they join the next piece */
    RKLLM_RUN_FINISH = 2,  /* the run ended; perf is filled */
    RKLLM_RUN_ERROR = 3    /* the run failed */
} LLMCallState;

typedef enum {
    RKLLM_INPUT_PROMPT = 0,
    RKLLM_INPUT_TOKEN = 1,
    RKLLM_INPUT_EMBED = 2,
    RKLLM_INPUT_MULTIMODAL = 3
} RKLLMInputType;

typedef enum {
    RKLLM_INFER_GENERATE = 0,
    RKLLM_INFER_GET_LAST_HIDDEN_LAYER = 1,
    RKLLM_INFER_GET_LOGITS = 2
} RKLLMInferMode;

typedef struct {
    int32_t base_domain_id;
    int8_t embed_flash;
    int8_t enabled_cpus_num;
    uint32_t enabled_cpus_mask;
    uint8_t n_batch;
    int8_t use_cross_attn;
    uint8_t reserved[104];
} RKLLMExtendParam;

typedef struct {
    const char *model_path;
    int32_t max_context_len;
    int32_t max_new_tokens;
    int32_t top_k;
    int32_t n_keep;
    float top_p;
    float temperature;
    float repeat_penalty;
    float frequency_penalty;
    float presence_penalty;
    int32_t mirostat;
    float mirostat_tau;
    float mirostat_eta;
    bool skip_special_token;
    bool is_async;
    const char *img_start;
    const char *img_end;
    const char *img_content;
    RKLLMExtendParam extend_param;
} RKLLMParam;

typedef struct {
    const char *lora_adapter_path;
    const char *lora_adapter_name;
    float scale;
} RKLLMLoraAdapter;

typedef struct {
    float *embed;
    size_t n_tokens;
} RKLLMEmbedInput;

typedef struct {
    int32_t *input_ids;
    size_t n_tokens;
} RKLLMTokenInput;

typedef struct {
    char *prompt;
    float *image_embed;
    size_t n_image_tokens;
    size_t n_image;
    size_t image_width;
    size_t image_height;
} RKLLMMultiModalInput;

typedef struct {
    const char *role;
    bool enable_thinking;
    RKLLMInputType input_type;
    union {
        const char *prompt_input;
        RKLLMEmbedInput embed_input;
        RKLLMTokenInput token_input;
        RKLLMMultiModalInput multimodal_input;
    };
} RKLLMInput;

typedef struct {
    const char *lora_adapter_name;
} RKLLMLoraParam;

typedef struct {
    int save_prompt_cache;
    const char *prompt_cache_path;
} RKLLMPromptCacheParam;

typedef struct {
    float *encoder_k_cache;
    float *encoder_v_cache;
    float *encoder_mask;
    int32_t *encoder_pos;
    int num_tokens;
} RKLLMCrossAttnParam;

typedef struct {
    RKLLMInferMode mode;
    RKLLMLoraParam *lora_params;
    RKLLMPromptCacheParam *prompt_cache_params;
    int keep_history;
} RKLLMInferParam;

typedef struct {
    const float *hidden_states;
    int embd_size;
    int num_tokens;
} RKLLMResultLastHiddenLayer;

typedef struct {
    const float *logits;
    int vocab_size;
    int num_tokens;
} RKLLMResultLogits;

typedef struct {
    float prefill_time_ms;
    int prefill_tokens;
    float generate_time_ms;
    int generate_tokens;
    float memory_usage_mb;
} RKLLMPerfStat;

typedef struct {
    const char *text;
    int32_t token_id;
    RKLLMResultLastHiddenLayer last_hidden_layer;
    RKLLMResultLogits logits;
    RKLLMPerfStat perf;
} RKLLMResult;

/* Returns 0 to continue, 1 to pause (int since 1.2.1; 1.1.4 declared it void). */
typedef int (*LLMResultCallback)(RKLLMResult *result, void *userdata, LLMCallState state);

RKLLMParam rkllm_createDefaultParam(void);
int rkllm_init(LLMHandle *handle, RKLLMParam *param, LLMResultCallback callback);
int rkllm_load_lora(LLMHandle handle, RKLLMLoraAdapter *lora_adapter);
int rkllm_load_prompt_cache(LLMHandle handle, const char *prompt_cache_path);
int rkllm_release_prompt_cache(LLMHandle handle);
int rkllm_destroy(LLMHandle handle);
int rkllm_run(LLMHandle handle, RKLLMInput *rkllm_input, RKLLMInferParam *rkllm_infer_params, void *userdata);
int rkllm_run_async(LLMHandle handle, RKLLMInput *rkllm_input, RKLLMInferParam *rkllm_infer_params, void *userdata);
int rkllm_abort(LLMHandle handle);
int rkllm_is_running(LLMHandle handle);
int rkllm_clear_kv_cache(LLMHandle handle, int keep_system_prompt, int *start_pos, int *end_pos);
int rkllm_get_kv_cache_size(LLMHandle handle, int *cache_sizes);
int rkllm_set_chat_template(LLMHandle handle, const char *system_prompt, const char *prompt_prefix, const char *prompt_postfix);
int rkllm_set_function_tools(LLMHandle handle, const char *system_prompt, const char *tools, const char *tool_response_str);
int rkllm_set_cross_attn_params(LLMHandle handle, RKLLMCrossAttnParam *cross_attn_params);

/* ---- Layout checks: the 1.2.3 ABI on LP64. A failure here means this header drifted. ---- */
#define RKLLM_SIM_CHECK(expr) _Static_assert(expr, "rkllm.h layout drifted from the 1.2.3 ABI: " #expr)
RKLLM_SIM_CHECK(sizeof(LLMCallState) == 4 && sizeof(RKLLMInputType) == 4 && sizeof(RKLLMInferMode) == 4);

RKLLM_SIM_CHECK(sizeof(RKLLMExtendParam) == 120 && _Alignof(RKLLMExtendParam) == 4);
RKLLM_SIM_CHECK(offsetof(RKLLMExtendParam, base_domain_id) == 0);
RKLLM_SIM_CHECK(offsetof(RKLLMExtendParam, embed_flash) == 4);
RKLLM_SIM_CHECK(offsetof(RKLLMExtendParam, enabled_cpus_num) == 5);
RKLLM_SIM_CHECK(offsetof(RKLLMExtendParam, enabled_cpus_mask) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMExtendParam, n_batch) == 12);
RKLLM_SIM_CHECK(offsetof(RKLLMExtendParam, use_cross_attn) == 13);
RKLLM_SIM_CHECK(offsetof(RKLLMExtendParam, reserved) == 14);

RKLLM_SIM_CHECK(sizeof(RKLLMParam) == 208 && _Alignof(RKLLMParam) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, model_path) == 0);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, max_context_len) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, max_new_tokens) == 12);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, top_k) == 16);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, n_keep) == 20);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, top_p) == 24);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, temperature) == 28);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, repeat_penalty) == 32);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, frequency_penalty) == 36);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, presence_penalty) == 40);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, mirostat) == 44);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, mirostat_tau) == 48);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, mirostat_eta) == 52);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, skip_special_token) == 56);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, is_async) == 57);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, img_start) == 64);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, img_end) == 72);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, img_content) == 80);
RKLLM_SIM_CHECK(offsetof(RKLLMParam, extend_param) == 88);

RKLLM_SIM_CHECK(sizeof(RKLLMLoraAdapter) == 24 && _Alignof(RKLLMLoraAdapter) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMLoraAdapter, lora_adapter_path) == 0);
RKLLM_SIM_CHECK(offsetof(RKLLMLoraAdapter, lora_adapter_name) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMLoraAdapter, scale) == 16);

RKLLM_SIM_CHECK(sizeof(RKLLMEmbedInput) == 16 && _Alignof(RKLLMEmbedInput) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMEmbedInput, embed) == 0);
RKLLM_SIM_CHECK(offsetof(RKLLMEmbedInput, n_tokens) == 8);

RKLLM_SIM_CHECK(sizeof(RKLLMTokenInput) == 16 && _Alignof(RKLLMTokenInput) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMTokenInput, input_ids) == 0);
RKLLM_SIM_CHECK(offsetof(RKLLMTokenInput, n_tokens) == 8);

RKLLM_SIM_CHECK(sizeof(RKLLMMultiModalInput) == 48 && _Alignof(RKLLMMultiModalInput) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMMultiModalInput, prompt) == 0);
RKLLM_SIM_CHECK(offsetof(RKLLMMultiModalInput, image_embed) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMMultiModalInput, n_image_tokens) == 16);
RKLLM_SIM_CHECK(offsetof(RKLLMMultiModalInput, n_image) == 24);
RKLLM_SIM_CHECK(offsetof(RKLLMMultiModalInput, image_width) == 32);
RKLLM_SIM_CHECK(offsetof(RKLLMMultiModalInput, image_height) == 40);

RKLLM_SIM_CHECK(sizeof(RKLLMInput) == 64 && _Alignof(RKLLMInput) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMInput, role) == 0);
RKLLM_SIM_CHECK(offsetof(RKLLMInput, enable_thinking) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMInput, input_type) == 12);
RKLLM_SIM_CHECK(offsetof(RKLLMInput, prompt_input) == 16);
RKLLM_SIM_CHECK(offsetof(RKLLMInput, embed_input) == 16);
RKLLM_SIM_CHECK(offsetof(RKLLMInput, token_input) == 16);
RKLLM_SIM_CHECK(offsetof(RKLLMInput, multimodal_input) == 16);

RKLLM_SIM_CHECK(sizeof(RKLLMLoraParam) == 8 && offsetof(RKLLMLoraParam, lora_adapter_name) == 0);

RKLLM_SIM_CHECK(sizeof(RKLLMPromptCacheParam) == 16 && _Alignof(RKLLMPromptCacheParam) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMPromptCacheParam, save_prompt_cache) == 0);
RKLLM_SIM_CHECK(offsetof(RKLLMPromptCacheParam, prompt_cache_path) == 8);

RKLLM_SIM_CHECK(sizeof(RKLLMCrossAttnParam) == 40 && _Alignof(RKLLMCrossAttnParam) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMCrossAttnParam, encoder_k_cache) == 0);
RKLLM_SIM_CHECK(offsetof(RKLLMCrossAttnParam, encoder_v_cache) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMCrossAttnParam, encoder_mask) == 16);
RKLLM_SIM_CHECK(offsetof(RKLLMCrossAttnParam, encoder_pos) == 24);
RKLLM_SIM_CHECK(offsetof(RKLLMCrossAttnParam, num_tokens) == 32);

RKLLM_SIM_CHECK(sizeof(RKLLMInferParam) == 32 && _Alignof(RKLLMInferParam) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMInferParam, mode) == 0);
RKLLM_SIM_CHECK(offsetof(RKLLMInferParam, lora_params) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMInferParam, prompt_cache_params) == 16);
RKLLM_SIM_CHECK(offsetof(RKLLMInferParam, keep_history) == 24);

RKLLM_SIM_CHECK(sizeof(RKLLMResultLastHiddenLayer) == 16 && _Alignof(RKLLMResultLastHiddenLayer) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMResultLastHiddenLayer, hidden_states) == 0);
RKLLM_SIM_CHECK(offsetof(RKLLMResultLastHiddenLayer, embd_size) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMResultLastHiddenLayer, num_tokens) == 12);

RKLLM_SIM_CHECK(sizeof(RKLLMResultLogits) == 16 && _Alignof(RKLLMResultLogits) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMResultLogits, logits) == 0);
RKLLM_SIM_CHECK(offsetof(RKLLMResultLogits, vocab_size) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMResultLogits, num_tokens) == 12);

RKLLM_SIM_CHECK(sizeof(RKLLMPerfStat) == 20 && _Alignof(RKLLMPerfStat) == 4);
RKLLM_SIM_CHECK(offsetof(RKLLMPerfStat, prefill_time_ms) == 0);
RKLLM_SIM_CHECK(offsetof(RKLLMPerfStat, prefill_tokens) == 4);
RKLLM_SIM_CHECK(offsetof(RKLLMPerfStat, generate_time_ms) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMPerfStat, generate_tokens) == 12);
RKLLM_SIM_CHECK(offsetof(RKLLMPerfStat, memory_usage_mb) == 16);

RKLLM_SIM_CHECK(sizeof(RKLLMResult) == 72 && _Alignof(RKLLMResult) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMResult, text) == 0);
RKLLM_SIM_CHECK(offsetof(RKLLMResult, token_id) == 8);
RKLLM_SIM_CHECK(offsetof(RKLLMResult, last_hidden_layer) == 16);
RKLLM_SIM_CHECK(offsetof(RKLLMResult, logits) == 32);
RKLLM_SIM_CHECK(offsetof(RKLLMResult, perf) == 48);
#undef RKLLM_SIM_CHECK

#ifdef __cplusplus
}
#endif
#endif /* EXO_RKLLM_SIM_RKLLM_H */
