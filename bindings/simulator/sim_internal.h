/*
 * sim_internal.h — shared pieces of the simulated RKLLM runtime (not part of the C ABI).
 * The simulator is a stand-in for Rockchip's librkllmrt.so: it never runs a model and
 * never measures an NPU; it only behaves like the runtime so the layers above can be tested.
 */
#ifndef EXO_RKLLM_SIM_INTERNAL_H
#define EXO_RKLLM_SIM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define SIM_HIDDEN __attribute__((visibility("hidden")))

/* The shared vocabulary (docs/architecture.md section 1). */
enum {
    SIM_TOK_ENDOFTEXT = 256,
    SIM_TOK_IM_START = 257,
    SIM_TOK_IM_END = 258,
    SIM_TOK_THINK = 259,
    SIM_TOK_THINK_END = 260,
    SIM_TOK_TOOL_CALL = 261,
    SIM_TOK_TOOL_CALL_END = 262,
    SIM_VOCAB_SIZE = 263,
    SIM_OOV_ID = 151935 /* fault oov_at: an id past the vocabulary, like DeepSeek-R1's [PAD151935] */
};

typedef enum { SIM_BEH_SCRIPT, SIM_BEH_ECHO, SIM_BEH_REASONING, SIM_BEH_LONG } sim_behaviour;

/* Injected faults; -1 (or 0 for flags) means off. Token positions count generated tokens
 * of one run from 0: "at:N" fires after N tokens were delivered. */
typedef struct {
    int init_fail;
    int hang;
    long error_at;
    long segv_at;
    long oov_at;
    long slow_load_ms;
} sim_faults;

typedef struct {
    int *v;
    size_t n, cap;
} sim_tokvec;

typedef struct {
    char *name;
    char *emulates;
    char *tokenizer;
    int eos_id, think_start_id, think_end_id;
    double decode_ms, prefill_ms, load_ms, memory_mb;
    int max_context_len;
    int hidden_size;
    sim_behaviour behaviour;
    char **replies;
    size_t n_replies;
    char **thinks;
    size_t n_thinks;
    sim_faults faults;
} sim_model;

/* Model file. Returns 0, or -1 with a message in err. *bad_magic set when the first line is wrong. */
SIM_HIDDEN int sim_model_load(const char *path, sim_model *m, int *bad_magic, char *err, size_t errlen);
SIM_HIDDEN void sim_model_free(sim_model *m);
SIM_HIDDEN int sim_faults_parse(const char *spec, sim_faults *f, char *err, size_t errlen);
SIM_HIDDEN void sim_faults_clear(sim_faults *f);

/* Token vectors. Allocation failure aborts the process (the real runtime has no better answer). */
SIM_HIDDEN void tv_push(sim_tokvec *t, int id);
SIM_HIDDEN void tv_append(sim_tokvec *t, const int *ids, size_t n);
SIM_HIDDEN void tv_free(sim_tokvec *t);
SIM_HIDDEN void tv_push_bytes(sim_tokvec *t, const char *s, size_t n);

/* Text -> ids: the special-token strings become their ids, every other byte its byte id. */
SIM_HIDDEN void sim_tokenize(const char *text, sim_tokvec *out);
/* The text of one id into buf (>= 32 bytes); returns its length. */
SIM_HIDDEN size_t sim_token_text(int id, int skip_special, char *buf);
SIM_HIDDEN const char *sim_special_text(int id);

SIM_HIDDEN char *sim_strdup(const char *s);
SIM_HIDDEN void *sim_xmalloc(size_t n);
SIM_HIDDEN void *sim_xrealloc(void *p, size_t n);


/* ---- the handle (shared by rkllm_sim.c and sim_run.c) ---- */
#include <pthread.h>
#include <stdatomic.h>
#include "rkllm.h"

extern const char rkllm_sim_version_banner[];

#define SIM_MAGIC 0x524b534du /* "RKSM": marks a live handle */
#define PCACHE_MAGIC "RKSIMPC1"
#define SLICE_MS 2.0 /* abort is checked at least this often while sleeping */

typedef struct {
    char *name;
    char *path;
    float scale;
} sim_lora;

typedef struct {
    uint32_t magic;
    sim_model model;
    LLMResultCallback cb;
    int max_ctx;
    int max_new;
    int skip_special;
    int n_batch;
    int n_keep;
    int log_level;
    pthread_mutex_t run_lock;   /* held for a whole run: a second concurrent run is refused */
    pthread_mutex_t state_lock; /* kv, templates, tools, loras, prompt cache */
    atomic_int abort_flag;
    atomic_int running;
    pthread_t run_thread;
    sim_tokvec *kv; /* n_batch rows */
    char *tpl_system, *tpl_prefix, *tpl_postfix;
    int custom_tpl;
    char *tools_system, *tools_json, *tool_response;
    int has_tools;
    sim_lora *loras;
    size_t n_loras;
    sim_tokvec pcache;
    int has_pcache;
} sim_handle;

SIM_HIDDEN void logf_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
SIM_HIDDEN double now_ms(void);
SIM_HIDDEN void sleep_plain_ms(double ms);
SIM_HIDDEN int sleep_abortable(sim_handle *h, double ms, int forever);
SIM_HIDDEN sim_handle *as_handle(LLMHandle handle, const char *fn);

#endif
