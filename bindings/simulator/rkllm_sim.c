/*
 * rkllm_sim.c — librkllmrt-sim.so: a simulated RKLLM 1.2.3 runtime behind the real C ABI.
 *
 * Why: no RK3588 board is available to the project, so every layer above the C boundary is
 * tested against this library. It loads small text "models" (see sim_model.c), sleeps the
 * prefill/decode times they declare, and produces deterministic replies one token per
 * callback, exactly as the real runtime's interface describes. It never claims NPU results:
 * every log line it prints says "simulated".
 */
#define _POSIX_C_SOURCE 200809L /* getline, strtok_r, nanosleep, clock_gettime */
#include "rkllm.h"
#include "sim_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef RKLLM_SIM_VERSION
#define RKLLM_SIM_VERSION "1.2.3"
#endif

/* Bindings scan the library's read-only data for this string to learn the runtime version. */
__attribute__((used)) const char rkllm_sim_version_banner[] = "rkllm-runtime version: " RKLLM_SIM_VERSION;

void logf_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void sleep_plain_ms(double ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000.0), (long)(fmod(ms, 1000.0) * 1e6)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* Sleep ms in small slices; returns 1 as soon as an abort was requested. forever: until abort. */
int sleep_abortable(sim_handle *h, double ms, int forever)
{
    double end = now_ms() + ms;
    for (;;) {
        if (atomic_load(&h->abort_flag))
            return 1;
        double left = forever ? SLICE_MS : end - now_ms();
        if (left <= 0)
            return 0;
        sleep_plain_ms(left < SLICE_MS ? left : SLICE_MS);
    }
}

sim_handle *as_handle(LLMHandle handle, const char *fn)
{
    sim_handle *h = handle;
    if (!h || h->magic != SIM_MAGIC) {
        logf_err("E rkllm: %s: invalid handle %p (NULL, destroyed, or not from rkllm_init) [simulated runtime]",
                 fn, handle);
        return NULL;
    }
    return h;
}


/* ------------------------------------------------------------------------------------------ */
/* Defaults, init, destroy                                                                     */

RKLLMParam rkllm_createDefaultParam(void)
{
    RKLLMParam p;
    memset(&p, 0, sizeof p);
    p.model_path = NULL;
    p.max_context_len = 512;
    p.max_new_tokens = -1;
    p.top_k = 1;
    p.n_keep = 0;
    p.top_p = 0.9f;
    p.temperature = 0.8f;
    p.repeat_penalty = 1.1f;
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.0f;
    p.mirostat = 0;
    p.mirostat_tau = 5.0f;
    p.mirostat_eta = 0.1f;
    p.skip_special_token = true;
    p.is_async = false;
    p.img_start = "";
    p.img_end = "";
    p.img_content = "";
    p.extend_param.base_domain_id = 0;
    p.extend_param.embed_flash = 0;
    p.extend_param.enabled_cpus_num = 4;
    p.extend_param.enabled_cpus_mask = CPU4 | CPU5 | CPU6 | CPU7;
    p.extend_param.n_batch = 1;
    p.extend_param.use_cross_attn = 0;
    return p;
}

static int env_double(const char *name, double *out)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end != '\0' || !(d >= 0 && d <= 1e7)) {
        logf_err("E rkllm: (simulated) environment %s='%s' is not a number >= 0 (milliseconds); fix or unset it",
                 name, v);
        return -1;
    }
    *out = d;
    return 0;
}

static const char *validate_param(const RKLLMParam *p)
{
    static __thread char msg[256];
    if (p->max_context_len <= 0)
        snprintf(msg, sizeof msg, "max_context_len must be > 0, got %d", p->max_context_len);
    else if (p->max_new_tokens < -1)
        snprintf(msg, sizeof msg, "max_new_tokens must be -1 (no limit) or >= 0, got %d", p->max_new_tokens);
    else if (p->top_k < 0)
        snprintf(msg, sizeof msg, "top_k must be >= 0, got %d", p->top_k);
    else if (!(p->top_p >= 0.0f && p->top_p <= 1.0f))
        snprintf(msg, sizeof msg, "top_p must be within [0, 1], got %g", (double)p->top_p);
    else if (!(p->temperature >= 0.0f && p->temperature <= 100.0f))
        snprintf(msg, sizeof msg, "temperature must be within [0, 100], got %g", (double)p->temperature);
    else if (!(p->repeat_penalty > 0.0f && p->repeat_penalty <= 100.0f))
        snprintf(msg, sizeof msg, "repeat_penalty must be within (0, 100], got %g", (double)p->repeat_penalty);
    else if (!(fabsf(p->frequency_penalty) <= 100.0f) || !(fabsf(p->presence_penalty) <= 100.0f))
        snprintf(msg, sizeof msg, "frequency_penalty/presence_penalty must be within [-100, 100]");
    else if (p->n_keep < -1)
        snprintf(msg, sizeof msg, "n_keep must be >= -1, got %d", p->n_keep);
    else if (p->n_keep > p->max_context_len)
        snprintf(msg, sizeof msg, "n_keep %d exceeds max_context_len %d", p->n_keep, p->max_context_len);
    else if (p->mirostat < 0 || p->mirostat > 2)
        snprintf(msg, sizeof msg, "mirostat must be 0, 1 or 2, got %d", p->mirostat);
    else if (p->extend_param.n_batch < 1)
        snprintf(msg, sizeof msg, "extend_param.n_batch must be >= 1, got %d", p->extend_param.n_batch);
    else if (p->extend_param.enabled_cpus_num < 0 || p->extend_param.enabled_cpus_num > 8)
        snprintf(msg, sizeof msg, "extend_param.enabled_cpus_num must be 0..8, got %d",
                 p->extend_param.enabled_cpus_num);
    else if (p->extend_param.enabled_cpus_mask > 0xFFu)
        snprintf(msg, sizeof msg, "extend_param.enabled_cpus_mask 0x%x names CPUs beyond CPU7",
                 p->extend_param.enabled_cpus_mask);
    else if (p->extend_param.base_domain_id < 0)
        snprintf(msg, sizeof msg, "extend_param.base_domain_id must be >= 0, got %d", p->extend_param.base_domain_id);
    else
        return NULL;
    return msg;
}

int rkllm_init(LLMHandle *handle, RKLLMParam *param, LLMResultCallback callback)
{
    if (!handle) {
        logf_err("E rkllm: rkllm_init: handle pointer is NULL [simulated runtime]");
        return -1;
    }
    *handle = NULL;
    if (!param) {
        logf_err("E rkllm: rkllm_init: param is NULL; start from rkllm_createDefaultParam() [simulated runtime]");
        return -1;
    }
    if (!param->model_path || !*param->model_path) {
        logf_err("E rkllm: rkllm_init: param->model_path is NULL or empty [simulated runtime]");
        return -1;
    }
    const char *bad = validate_param(param);
    if (bad) {
        logf_err("E rkllm: rkllm_init: invalid parameter: %s [simulated runtime]", bad);
        return -1;
    }
    sim_model m;
    int bad_magic = 0;
    char err[768];
    if (sim_model_load(param->model_path, &m, &bad_magic, err, sizeof err)) {
        if (bad_magic)
            logf_err("E RKNN: invalid rknn llm model magic (rkllm-sim: expected first line \"RKLLM-SIM 1\")");
        else
            logf_err("E rkllm: (simulated) %s", err);
        return -1;
    }
    /* Environment overrides apply to every model this process loads. */
    if (env_double("RKLLM_SIM_DECODE_MS", &m.decode_ms) || env_double("RKLLM_SIM_PREFILL_MS", &m.prefill_ms) ||
        env_double("RKLLM_SIM_LOAD_MS", &m.load_ms)) {
        sim_model_free(&m);
        return -1;
    }
    const char *fenv = getenv("RKLLM_SIM_FAULT");
    if (fenv && *fenv) {
        sim_faults_clear(&m.faults);
        if (sim_faults_parse(fenv, &m.faults, err, sizeof err)) {
            logf_err("E rkllm: (simulated) environment RKLLM_SIM_FAULT: %s", err);
            sim_model_free(&m);
            return -1;
        }
    }
    if (m.faults.init_fail) {
        logf_err("E rkllm: (simulated) model init failed: injected fault init_fail (model file or RKLLM_SIM_FAULT)");
        sim_model_free(&m);
        return -1;
    }
    sleep_plain_ms(m.load_ms + (m.faults.slow_load_ms > 0 ? (double)m.faults.slow_load_ms : 0));

    sim_handle *h = calloc(1, sizeof *h);
    if (!h) {
        sim_model_free(&m);
        logf_err("E rkllm: (simulated) out of memory");
        return -1;
    }
    h->model = m;
    h->cb = callback;
    h->max_ctx = param->max_context_len;
    if (h->max_ctx > m.max_context_len) {
        logf_err("W rkllm: (simulated) max_context_len %d exceeds the model's limit %d; using %d", h->max_ctx,
                 m.max_context_len, m.max_context_len);
        h->max_ctx = m.max_context_len;
    }
    h->max_new = param->max_new_tokens > 0 ? param->max_new_tokens : -1;
    h->skip_special = param->skip_special_token ? 1 : 0;
    h->n_batch = param->extend_param.n_batch;
    h->n_keep = param->n_keep;
    const char *lv = getenv("RKLLM_LOG_LEVEL");
    h->log_level = lv ? atoi(lv) : 0;
    pthread_mutex_init(&h->run_lock, NULL);
    pthread_mutex_init(&h->state_lock, NULL);
    atomic_init(&h->abort_flag, 0);
    atomic_init(&h->running, 0);
    h->kv = calloc((size_t)h->n_batch, sizeof(sim_tokvec));
    if (!h->kv) {
        sim_model_free(&h->model);
        free(h);
        return -1;
    }
    h->magic = SIM_MAGIC;
    logf_err("I rkllm: %s (simulated), rknpu driver version: none (simulator), platform: simulated, no NPU",
             rkllm_sim_version_banner);
    if (h->log_level > 0)
        logf_err("I rkllm: (simulated) model '%s' emulates %s; max_context_len %d, n_batch %d", m.name,
                 m.emulates ? m.emulates : "nothing in particular", h->max_ctx, h->n_batch);
    *handle = h;
    return 0;
}

int rkllm_destroy(LLMHandle handle)
{
    sim_handle *h = as_handle(handle, "rkllm_destroy");
    if (!h)
        return -1;
    if (atomic_load(&h->running) && pthread_equal(h->run_thread, pthread_self())) {
        logf_err("E rkllm: rkllm_destroy called from inside the result callback; return from the callback "
                 "first [simulated runtime]");
        return -1;
    }
    atomic_store(&h->abort_flag, 1);
    pthread_mutex_lock(&h->run_lock); /* wait for a run in another thread to end */
    h->magic = 0;
    pthread_mutex_unlock(&h->run_lock);
    pthread_mutex_destroy(&h->run_lock);
    pthread_mutex_destroy(&h->state_lock);
    for (int b = 0; b < h->n_batch; b++)
        tv_free(&h->kv[b]);
    free(h->kv);
    free(h->tpl_system);
    free(h->tpl_prefix);
    free(h->tpl_postfix);
    free(h->tools_system);
    free(h->tools_json);
    free(h->tool_response);
    for (size_t i = 0; i < h->n_loras; i++) {
        free(h->loras[i].name);
        free(h->loras[i].path);
    }
    free(h->loras);
    tv_free(&h->pcache);
    sim_model_free(&h->model);
    free(h);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Small setters                                                                               */

int rkllm_abort(LLMHandle handle)
{
    sim_handle *h = as_handle(handle, "rkllm_abort");
    if (!h)
        return -1;
    atomic_store(&h->abort_flag, 1);
    return 0;
}

int rkllm_is_running(LLMHandle handle)
{
    sim_handle *h = as_handle(handle, "rkllm_is_running");
    if (!h)
        return -1;
    /* 1.2.3 semantics: 0 while a task runs, non-zero otherwise (1.3.0 flips this). */
    return atomic_load(&h->running) ? 0 : 1;
}

static int busy(sim_handle *h, const char *fn)
{
    if (atomic_load(&h->running)) {
        logf_err("E rkllm: %s: a run is in progress on this handle; call it after rkllm_run returns "
                 "[simulated runtime]",
                 fn);
        return 1;
    }
    return 0;
}

int rkllm_set_chat_template(LLMHandle handle, const char *system_prompt, const char *prompt_prefix,
                            const char *prompt_postfix)
{
    sim_handle *h = as_handle(handle, "rkllm_set_chat_template");
    if (!h || busy(h, "rkllm_set_chat_template"))
        return -1;
    pthread_mutex_lock(&h->state_lock);
    free(h->tpl_system);
    free(h->tpl_prefix);
    free(h->tpl_postfix);
    h->tpl_system = sim_strdup(system_prompt ? system_prompt : "");
    h->tpl_prefix = sim_strdup(prompt_prefix ? prompt_prefix : "");
    h->tpl_postfix = sim_strdup(prompt_postfix ? prompt_postfix : "");
    h->custom_tpl = 1;
    pthread_mutex_unlock(&h->state_lock);
    return 0;
}

int rkllm_load_lora(LLMHandle handle, RKLLMLoraAdapter *lora_adapter)
{
    sim_handle *h = as_handle(handle, "rkllm_load_lora");
    if (!h || busy(h, "rkllm_load_lora"))
        return -1;
    if (!lora_adapter || !lora_adapter->lora_adapter_path || !lora_adapter->lora_adapter_name ||
        !*lora_adapter->lora_adapter_name) {
        logf_err("E rkllm: rkllm_load_lora: adapter, its path and its name must be non-NULL [simulated runtime]");
        return -1;
    }
    if (access(lora_adapter->lora_adapter_path, R_OK) != 0) {
        logf_err("E rkllm: rkllm_load_lora: cannot read LoRA file %s: %s [simulated runtime]",
                 lora_adapter->lora_adapter_path, strerror(errno));
        return -1;
    }
    pthread_mutex_lock(&h->state_lock);
    sim_lora *slot = NULL;
    for (size_t i = 0; i < h->n_loras; i++)
        if (strcmp(h->loras[i].name, lora_adapter->lora_adapter_name) == 0)
            slot = &h->loras[i];
    if (!slot) {
        h->loras = sim_xrealloc(h->loras, (h->n_loras + 1) * sizeof(sim_lora));
        slot = &h->loras[h->n_loras++];
        slot->name = sim_strdup(lora_adapter->lora_adapter_name);
    } else {
        free(slot->path);
    }
    slot->path = sim_strdup(lora_adapter->lora_adapter_path);
    slot->scale = lora_adapter->scale;
    pthread_mutex_unlock(&h->state_lock);
    return 0;
}

int rkllm_load_prompt_cache(LLMHandle handle, const char *prompt_cache_path)
{
    sim_handle *h = as_handle(handle, "rkllm_load_prompt_cache");
    if (!h || busy(h, "rkllm_load_prompt_cache"))
        return -1;
    if (!prompt_cache_path) {
        logf_err("E rkllm: rkllm_load_prompt_cache: path is NULL [simulated runtime]");
        return -1;
    }
    FILE *fp = fopen(prompt_cache_path, "rb");
    if (!fp) {
        logf_err("E rkllm: rkllm_load_prompt_cache: cannot open %s: %s [simulated runtime]", prompt_cache_path,
                 strerror(errno));
        return -1;
    }
    char magic[8];
    uint32_t n = 0;
    sim_tokvec t = {0};
    int ok = fread(magic, 1, 8, fp) == 8 && memcmp(magic, PCACHE_MAGIC, 8) == 0 && fread(&n, 4, 1, fp) == 1 &&
             n <= (1u << 22);
    for (uint32_t i = 0; ok && i < n; i++) {
        int32_t id;
        ok = fread(&id, 4, 1, fp) == 1 && id >= 0 && id < SIM_VOCAB_SIZE;
        if (ok)
            tv_push(&t, id);
    }
    fclose(fp);
    if (!ok) {
        tv_free(&t);
        logf_err("E rkllm: rkllm_load_prompt_cache: %s is not a simulator prompt cache (bad magic or truncated; "
                 "write it with save_prompt_cache) [simulated runtime]",
                 prompt_cache_path);
        return -1;
    }
    pthread_mutex_lock(&h->state_lock);
    tv_free(&h->pcache);
    h->pcache = t;
    h->has_pcache = 1;
    pthread_mutex_unlock(&h->state_lock);
    return 0;
}

int rkllm_release_prompt_cache(LLMHandle handle)
{
    sim_handle *h = as_handle(handle, "rkllm_release_prompt_cache");
    if (!h || busy(h, "rkllm_release_prompt_cache"))
        return -1;
    pthread_mutex_lock(&h->state_lock);
    tv_free(&h->pcache);
    h->has_pcache = 0;
    pthread_mutex_unlock(&h->state_lock);
    return 0;
}

/* Length of a leading "<|im_start|>system ... <|im_end|>\n" block in the cache (0 if none). */
static size_t system_prefix_len(const sim_tokvec *kv)
{
    if (kv->n == 0 || kv->v[0] != SIM_TOK_IM_START)
        return 0;
    static const char sys[] = "system\n";
    for (size_t i = 0; i < sizeof sys - 1; i++)
        if (1 + i >= kv->n || kv->v[1 + i] != (unsigned char)sys[i])
            return 0;
    for (size_t i = 1; i < kv->n; i++)
        if (kv->v[i] == SIM_TOK_IM_END)
            return (i + 1 < kv->n && kv->v[i + 1] == '\n') ? i + 2 : i + 1;
    return 0;
}

int rkllm_clear_kv_cache(LLMHandle handle, int keep_system_prompt, int *start_pos, int *end_pos)
{
    sim_handle *h = as_handle(handle, "rkllm_clear_kv_cache");
    if (!h || busy(h, "rkllm_clear_kv_cache"))
        return -1;
    if ((start_pos == NULL) != (end_pos == NULL)) {
        logf_err("E rkllm: rkllm_clear_kv_cache: start_pos and end_pos must both be NULL or both set "
                 "[simulated runtime]");
        return -1;
    }
    pthread_mutex_lock(&h->state_lock);
    int rc = 0;
    if (start_pos) {
        for (int b = 0; b < h->n_batch && rc == 0; b++)
            if (start_pos[b] < 0 || end_pos[b] < start_pos[b] || (size_t)end_pos[b] > h->kv[b].n) {
                logf_err("E rkllm: rkllm_clear_kv_cache: range [%d, %d) of batch row %d is outside the cache "
                         "(0..%zu) [simulated runtime]",
                         start_pos[b], end_pos[b], b, h->kv[b].n);
                rc = -1;
            }
        for (int b = 0; b < h->n_batch && rc == 0; b++) {
            sim_tokvec *kv = &h->kv[b];
            size_t s = (size_t)start_pos[b], e = (size_t)end_pos[b];
            if (keep_system_prompt) {
                size_t sp = system_prefix_len(kv);
                if (s < sp)
                    s = sp < e ? sp : e;
            }
            memmove(kv->v + s, kv->v + e, (kv->n - e) * sizeof(int));
            kv->n -= e - s;
        }
    } else {
        for (int b = 0; b < h->n_batch; b++)
            h->kv[b].n = keep_system_prompt ? system_prefix_len(&h->kv[b]) : 0;
    }
    pthread_mutex_unlock(&h->state_lock);
    return rc;
}

#ifndef RKLLM_SIM_OMIT_NEW_API
int rkllm_get_kv_cache_size(LLMHandle handle, int *cache_sizes)
{
    sim_handle *h = as_handle(handle, "rkllm_get_kv_cache_size");
    if (!h)
        return -1;
    if (!cache_sizes) {
        logf_err("E rkllm: rkllm_get_kv_cache_size: cache_sizes is NULL (needs n_batch ints) [simulated runtime]");
        return -1;
    }
    pthread_mutex_lock(&h->state_lock);
    for (int b = 0; b < h->n_batch; b++)
        cache_sizes[b] = (int)h->kv[b].n;
    pthread_mutex_unlock(&h->state_lock);
    return 0;
}

int rkllm_set_function_tools(LLMHandle handle, const char *system_prompt, const char *tools,
                             const char *tool_response_str)
{
    sim_handle *h = as_handle(handle, "rkllm_set_function_tools");
    if (!h || busy(h, "rkllm_set_function_tools"))
        return -1;
    if (!tools) {
        logf_err("E rkllm: rkllm_set_function_tools: tools (a JSON array of function schemas) is NULL "
                 "[simulated runtime]");
        return -1;
    }
    pthread_mutex_lock(&h->state_lock);
    free(h->tools_system);
    free(h->tools_json);
    free(h->tool_response);
    h->tools_system = sim_strdup(system_prompt ? system_prompt : "You are a helpful assistant.");
    h->tools_json = sim_strdup(tools);
    h->tool_response = sim_strdup(tool_response_str && *tool_response_str ? tool_response_str : "tool_response");
    h->has_tools = 1;
    pthread_mutex_unlock(&h->state_lock);
    return 0;
}

int rkllm_set_cross_attn_params(LLMHandle handle, RKLLMCrossAttnParam *cross_attn_params)
{
    sim_handle *h = as_handle(handle, "rkllm_set_cross_attn_params");
    if (!h)
        return -1;
    if (!cross_attn_params || cross_attn_params->num_tokens < 0) {
        logf_err("E rkllm: rkllm_set_cross_attn_params: params NULL or num_tokens < 0 [simulated runtime]");
        return -1;
    }
    /* The simulated models have no cross-attention: accepted and ignored (custom models only). */
    return 0;
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* rkllm_run                                                                                   */

/* rkllm_run and rkllm_run_async live in sim_run.c. */
