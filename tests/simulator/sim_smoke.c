/*
 * sim_smoke.c — C-level checks of librkllmrt-sim.so, independent of the Python binding.
 * Built and run by test_sim_c.py: sim_smoke <models_dir> <tmp_dir> <expected first chat reply>
 * Prints "ok <check>" per passed check; exits 1 at the first failure with the reason.
 */
#include "rkllm.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stdout, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                  \
            fprintf(stdout, __VA_ARGS__);                                                                    \
            fputc('\n', stdout);                                                                             \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)
#define OK(name) printf("ok %s\n", name)

static const char *models, *tmp;

typedef struct {
    char text[16384];
    size_t len;
    int ids[8192];
    int n_tokens;
    int n_waiting, n_finish, n_error;
    int pause_after;     /* return 1 after this many tokens (0 = never) */
    int abort_after;     /* rkllm_abort from the callback's own thread? no: flag for the abort thread */
    int running_seen;    /* rkllm_is_running value seen inside the callback */
    LLMHandle handle;
    RKLLMPerfStat perf;
    int hidden_embd, hidden_tokens, logits_vocab, logits_argmax;
    float hidden_first;
    int batch_ids[2][512];
    int batch_n[2];
    int batch_neg_seen;
} collector;

static int g_batch;

static int cb(RKLLMResult *r, void *ud, LLMCallState st)
{
    collector *c = ud;
    if (st == RKLLM_RUN_FINISH) {
        c->n_finish++;
        c->perf = r->perf;
        return 0;
    }
    if (st == RKLLM_RUN_ERROR) {
        c->n_error++;
        return 0;
    }
    if (c->handle)
        c->running_seen = rkllm_is_running(c->handle);
    if (r->last_hidden_layer.hidden_states) {
        c->hidden_embd = r->last_hidden_layer.embd_size;
        c->hidden_tokens = r->last_hidden_layer.num_tokens;
        c->hidden_first = r->last_hidden_layer.hidden_states[0];
        return 0;
    }
    if (r->logits.logits) {
        c->logits_vocab = r->logits.vocab_size;
        int best = 0;
        for (int v = 1; v < r->logits.vocab_size; v++)
            if (r->logits.logits[v] > r->logits.logits[best])
                best = v;
        c->logits_argmax = best;
        return 0;
    }
    if (g_batch > 1) {
        for (int b = 0; b < g_batch; b++) {
            if (r[b].token_id < 0)
                c->batch_neg_seen = 1;
            else
                c->batch_ids[b][c->batch_n[b]++] = r[b].token_id;
        }
        return 0;
    }
    if (st == RKLLM_RUN_WAITING)
        c->n_waiting++;
    size_t k = strlen(r->text);
    memcpy(c->text + c->len, r->text, k);
    c->len += k;
    c->text[c->len] = '\0';
    c->ids[c->n_tokens++] = r->token_id;
    if (c->pause_after && c->n_tokens >= c->pause_after)
        return 1;
    return 0;
}

static void reset(collector *c, LLMHandle h)
{
    memset(c, 0, sizeof *c);
    c->handle = h;
}

static char *path_in(const char *dir, const char *name)
{
    static char buf[8][1024];
    static int i;
    char *p = buf[i++ % 8];
    snprintf(p, 1024, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");
    CHECK(f, "cannot write %s", path);
    fputs(content, f);
    fclose(f);
}

static LLMHandle init_model(const char *path, int max_ctx, int max_new, int n_batch)
{
    RKLLMParam p = rkllm_createDefaultParam();
    p.model_path = path;
    p.max_context_len = max_ctx;
    p.max_new_tokens = max_new;
    p.extend_param.n_batch = (uint8_t)n_batch;
    LLMHandle h = NULL;
    int rc = rkllm_init(&h, &p, cb);
    CHECK(rc == 0 && h, "rkllm_init(%s) = %d", path, rc);
    return h;
}

static int run_prompt(LLMHandle h, collector *c, const char *prompt, int keep)
{
    RKLLMInput in;
    memset(&in, 0, sizeof in);
    in.role = "user";
    in.input_type = RKLLM_INPUT_PROMPT;
    in.prompt_input = prompt;
    RKLLMInferParam ip;
    memset(&ip, 0, sizeof ip);
    ip.mode = RKLLM_INFER_GENERATE;
    ip.keep_history = keep;
    return rkllm_run(h, &in, &ip, c);
}

static int run_tokens(LLMHandle h, collector *c, int *ids, size_t n, int keep, RKLLMInferMode mode)
{
    RKLLMInput in;
    memset(&in, 0, sizeof in);
    in.role = "user";
    in.input_type = RKLLM_INPUT_TOKEN;
    in.token_input.input_ids = ids;
    in.token_input.n_tokens = n;
    RKLLMInferParam ip;
    memset(&ip, 0, sizeof ip);
    ip.mode = mode;
    ip.keep_history = keep;
    return rkllm_run(h, &in, &ip, c);
}

static size_t to_ids(const char *s, int *ids)
{
    size_t n = 0;
    for (; *s; s++)
        ids[n++] = (unsigned char)*s;
    return n;
}

static int kv_size(LLMHandle h)
{
    int sizes[4] = {-1, -1, -1, -1};
    CHECK(rkllm_get_kv_cache_size(h, sizes) == 0, "get_kv_cache_size failed");
    return sizes[0];
}

/* Expected WAITING callbacks: every byte of a multi-byte character except its last. */
static int expected_waiting(const char *s)
{
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p >= 0x80 && (p[1] & 0xC0) == 0x80)
            n++;
    return n;
}

typedef struct {
    LLMHandle h;
    int delay_ms;
    int rc;
    collector *c;
    int mode; /* 0: abort after delay; 1: run a second rkllm_run concurrently */
} side_arg;

static void *side_thread(void *arg)
{
    side_arg *a = arg;
    usleep((useconds_t)a->delay_ms * 1000);
    if (a->mode == 0) {
        a->rc = rkllm_abort(a->h);
    } else {
        int ids[3] = {'h', 'i', '\n'};
        a->rc = run_tokens(a->h, a->c, ids, 3, 0, RKLLM_INFER_GENERATE);
    }
    return NULL;
}

/* sim_smoke --reply MODEL PROMPT: one keep_history prompt run; prints "tokens=N think_end=K rc=R prefill=P kv=K"
 * then the text. With $SIM_SMOKE_PCACHE set, the prompt is also saved there as a prompt cache. */
static int reply_mode(const char *model, const char *prompt)
{
    LLMHandle h = init_model(model, 4096, -1, 1);
    collector c;
    reset(&c, h);
    RKLLMInput in;
    memset(&in, 0, sizeof in);
    in.role = "user";
    in.input_type = RKLLM_INPUT_PROMPT;
    in.prompt_input = prompt;
    RKLLMPromptCacheParam pcp = {getenv("SIM_SMOKE_PCACHE") != NULL, getenv("SIM_SMOKE_PCACHE")};
    RKLLMInferParam ip = {RKLLM_INFER_GENERATE, NULL, &pcp, 1};
    int rc = rkllm_run(h, &in, &ip, &c);
    int think_end = -1;
    for (int i = 0; i < c.n_tokens; i++)
        if (c.ids[i] == 260)
            think_end = i;
    printf("tokens=%d think_end=%d rc=%d prefill=%d kv=%d\n%s", c.n_tokens, think_end, rc, c.perf.prefill_tokens,
           kv_size(h), c.text);
    rkllm_destroy(h);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--reply") == 0)
        return reply_mode(argv[2], argv[3]);
    CHECK(argc == 4, "usage: sim_smoke MODELS_DIR TMP_DIR EXPECTED_REPLY");
    models = argv[1];
    tmp = argv[2];
    const char *expected = argv[3];
    setvbuf(stdout, NULL, _IONBF, 0);
    collector c;

    /* defaults */
    RKLLMParam d = rkllm_createDefaultParam();
    CHECK(d.max_context_len == 512 && d.max_new_tokens == -1 && d.top_k == 1 && d.top_p > 0.89f && d.top_p < 0.91f &&
              d.temperature > 0.79f && d.temperature < 0.81f && d.repeat_penalty > 1.09f && d.skip_special_token &&
              d.extend_param.n_batch == 1,
          "defaults wrong");
    OK("default_params");

    /* bad inputs to init */
    LLMHandle h = NULL;
    CHECK(rkllm_init(&h, NULL, cb) == -1, "NULL param accepted");
    d.model_path = path_in(tmp, "not_a_model.bin");
    write_file(d.model_path, "GGUF this is not a simulated model\n");
    CHECK(rkllm_init(&h, &d, cb) == -1 && h == NULL, "bad magic accepted");
    d.model_path = path_in(tmp, "missing.rkllm");
    CHECK(rkllm_init(&h, &d, cb) == -1, "missing file accepted");
    d.model_path = path_in(models, "chat-instant.rkllm");
    d.max_context_len = -5;
    CHECK(rkllm_init(&h, &d, cb) == -1, "negative max_context_len accepted");
    OK("init_rejects_bad_input");

    /* segv fault, in a child before any thread exists */
    pid_t pid = fork();
    if (pid == 0) {
        setenv("RKLLM_SIM_FAULT", "segv_at:2", 1);
        LLMHandle hs = init_model(path_in(models, "chat-instant.rkllm"), 512, -1, 1);
        collector cs;
        reset(&cs, hs);
        run_prompt(hs, &cs, "hi", 0);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "segv_at did not raise SIGSEGV (status %d)", status);
    OK("fault_segv_at");

    /* a scripted prompt run: text, UTF-8 WAITING, perf */
    h = init_model(path_in(models, "chat-instant.rkllm"), 1024, -1, 1);
    reset(&c, h);
    CHECK(run_prompt(h, &c, "hi", 0) == 0, "run failed");
    CHECK(strcmp(c.text, expected) == 0, "reply '%s' != expected '%s'", c.text, expected);
    CHECK(c.n_tokens == (int)strlen(expected), "%d tokens for %zu bytes", c.n_tokens, strlen(expected));
    CHECK(c.n_waiting == expected_waiting(expected) && c.n_waiting > 0, "waiting %d expected %d", c.n_waiting,
          expected_waiting(expected));
    CHECK(c.n_finish == 1 && c.perf.generate_tokens == c.n_tokens && c.perf.prefill_tokens > 0 &&
              c.perf.memory_usage_mb > 0,
          "perf wrong: finish %d gen %d prefill %d", c.n_finish, c.perf.generate_tokens, c.perf.prefill_tokens);
    CHECK(c.running_seen == 0 && rkllm_is_running(h) != 0, "is_running semantics (1.2.3: 0 while running)");
    CHECK(kv_size(h) == 0, "keep_history=0 left %d tokens in KV", kv_size(h));
    OK("prompt_run_text_utf8_perf");

    /* keep_history: prefill only pays for new tokens */
    int ids[4096];
    size_t n = 0;
    ids[n++] = 257;
    n += to_ids("user\nhello there", ids + n);
    ids[n++] = 258;
    ids[n++] = '\n';
    ids[n++] = 257;
    n += to_ids("assistant\n", ids + n);
    reset(&c, h);
    CHECK(run_tokens(h, &c, ids, n, 1, RKLLM_INFER_GENERATE) == 0, "token run failed");
    CHECK(c.perf.prefill_tokens == (int)n, "prefill %d != %zu", c.perf.prefill_tokens, n);
    int first_reply_tokens = c.n_tokens;
    CHECK(kv_size(h) == (int)n + first_reply_tokens + 1, "kv %d != input+reply+eos %zu", kv_size(h),
          n + (size_t)first_reply_tokens + 1);
    int ids2[64];
    size_t n2 = 0;
    ids2[n2++] = '\n';
    ids2[n2++] = 257;
    n2 += to_ids("user\nand again", ids2 + n2);
    ids2[n2++] = 258;
    ids2[n2++] = '\n';
    ids2[n2++] = 257;
    n2 += to_ids("assistant\n", ids2 + n2);
    static char first_text[16384];
    snprintf(first_text, sizeof first_text, "%s", c.text);
    reset(&c, h);
    CHECK(run_tokens(h, &c, ids2, n2, 1, RKLLM_INFER_GENERATE) == 0, "second turn failed");
    CHECK(c.perf.prefill_tokens == (int)n2, "second turn prefilled %d, expected only the %zu new", c.perf.prefill_tokens,
          n2);
    CHECK(strcmp(c.text, first_text) != 0, "second user turn got the same scripted reply");
    OK("keep_history_prefills_only_new_tokens");

    /* clear_kv_cache */
    CHECK(rkllm_clear_kv_cache(h, 0, NULL, NULL) == 0 && kv_size(h) == 0, "clear all");
    reset(&c, h);
    CHECK(run_prompt(h, &c, "hi", 1) == 0, "prompt run with history");
    int before = kv_size(h);
    const char *sys_block = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
    int sys_len = (int)strlen(sys_block) - 12 - 10 + 2; /* two special strings become one id each */
    CHECK(rkllm_clear_kv_cache(h, 1, NULL, NULL) == 0 && kv_size(h) == sys_len, "keep_system_prompt: %d of %d left",
          kv_size(h), before);
    int s0 = 2, e0 = 5;
    CHECK(rkllm_clear_kv_cache(h, 0, &s0, &e0) == 0 && kv_size(h) == sys_len - 3, "range clear");
    e0 = 10000;
    CHECK(rkllm_clear_kv_cache(h, 0, &s0, &e0) == -1, "out-of-range clear accepted");
    rkllm_clear_kv_cache(h, 0, NULL, NULL);
    OK("clear_kv_cache");

    /* pause after 5 tokens, resume with an empty keep_history run */
    reset(&c, h);
    c.pause_after = 5;
    CHECK(run_tokens(h, &c, ids, n, 1, RKLLM_INFER_GENERATE) == 0, "paused run should return 0");
    CHECK(c.n_tokens == 5 && kv_size(h) == (int)n + 5, "pause: %d tokens, kv %d", c.n_tokens, kv_size(h));
    static char part[16384];
    snprintf(part, sizeof part, "%s", c.text);
    reset(&c, h);
    CHECK(run_tokens(h, &c, ids, 0, 1, RKLLM_INFER_GENERATE) == 0, "resume failed");
    static char whole[40000];
    snprintf(whole, sizeof whole, "%s%s", part, c.text);
    CHECK(strcmp(whole, first_text) == 0, "paused+resumed '%s' != '%s'", whole, first_text);
    OK("pause_and_resume");

    /* logits and hidden-layer modes */
    rkllm_clear_kv_cache(h, 0, NULL, NULL);
    reset(&c, h);
    CHECK(run_tokens(h, &c, ids, n, 0, RKLLM_INFER_GET_LOGITS) == 0, "logits run");
    CHECK(c.logits_vocab == 263 && c.logits_argmax == (unsigned char)first_text[0], "logits vocab %d argmax %d",
          c.logits_vocab, c.logits_argmax);
    reset(&c, h);
    CHECK(run_tokens(h, &c, ids, n, 0, RKLLM_INFER_GET_LAST_HIDDEN_LAYER) == 0, "hidden run");
    CHECK(c.hidden_embd > 0 && c.hidden_tokens == (int)n && c.n_finish == 1, "hidden %d x %d", c.hidden_tokens,
          c.hidden_embd);
    float h1 = c.hidden_first;
    reset(&c, h);
    run_tokens(h, &c, ids, n, 0, RKLLM_INFER_GET_LAST_HIDDEN_LAYER);
    CHECK(c.hidden_first == h1, "hidden states not deterministic");
    OK("logits_and_hidden_modes");

    /* prompt cache: saved, then loaded so the shared prefix is not prefilled again */
    {
        char *pc = path_in(tmp, "prompt.cache");
        RKLLMInput in;
        memset(&in, 0, sizeof in);
        in.input_type = RKLLM_INPUT_TOKEN;
        in.token_input.input_ids = ids;
        in.token_input.n_tokens = n;
        RKLLMPromptCacheParam pcp = {1, pc};
        RKLLMInferParam ip = {RKLLM_INFER_GENERATE, NULL, &pcp, 0};
        reset(&c, h);
        CHECK(rkllm_run(h, &in, &ip, &c) == 0, "save run");
        FILE *f = fopen(pc, "rb");
        char magic[9] = {0};
        CHECK(f && fread(magic, 1, 8, f) == 8, "cache file not written");
        fclose(f);
        CHECK(strcmp(magic, "RKSIMPC1") == 0, "cache magic %s", magic);
        CHECK(rkllm_load_prompt_cache(h, path_in(tmp, "not_a_model.bin")) == -1, "bad cache accepted");
        CHECK(rkllm_load_prompt_cache(h, pc) == 0, "load cache");
        reset(&c, h);
        CHECK(run_tokens(h, &c, ids, n, 0, RKLLM_INFER_GENERATE) == 0, "run with cache");
        CHECK(c.perf.prefill_tokens == 0, "cached prefix prefilled again: %d", c.perf.prefill_tokens);
        CHECK(rkllm_release_prompt_cache(h) == 0, "release");
        reset(&c, h);
        run_tokens(h, &c, ids, n, 0, RKLLM_INFER_GENERATE);
        CHECK(c.perf.prefill_tokens == (int)n, "after release prefilled %d", c.perf.prefill_tokens);
    }
    OK("prompt_cache_save_load_release");

    /* LoRA */
    {
        RKLLMLoraAdapter la = {path_in(tmp, "missing.lora"), "style", 1.0f};
        CHECK(rkllm_load_lora(h, &la) == -1, "missing LoRA file accepted");
        la.lora_adapter_path = path_in(tmp, "style.lora");
        write_file(la.lora_adapter_path, "simulated lora\n");
        CHECK(rkllm_load_lora(h, &la) == 0, "load lora");
        RKLLMInput in;
        memset(&in, 0, sizeof in);
        in.input_type = RKLLM_INPUT_TOKEN;
        in.token_input.input_ids = ids;
        in.token_input.n_tokens = n;
        RKLLMLoraParam lp = {"style"};
        RKLLMInferParam ip = {RKLLM_INFER_GENERATE, &lp, NULL, 0};
        reset(&c, h);
        CHECK(rkllm_run(h, &in, &ip, &c) == 0, "lora run");
        CHECK(strncmp(c.text, "[LoRA style] ", 13) == 0 && strcmp(c.text + 13, first_text) == 0, "lora text '%s'",
              c.text);
        lp.lora_adapter_name = "nope";
        reset(&c, h);
        CHECK(rkllm_run(h, &in, &ip, &c) == -1 && c.n_error == 1, "unknown lora accepted");
    }
    OK("lora");

    /* token ids outside the vocabulary are refused */
    {
        int bad[2] = {'a', 999};
        reset(&c, h);
        CHECK(run_tokens(h, &c, bad, 2, 0, RKLLM_INFER_GENERATE) == -1, "oov input accepted");
    }
    OK("rejects_out_of_vocab_input");
    rkllm_destroy(h);

    /* max_new_tokens, context overflow */
    char *longm = path_in(tmp, "long.rkllm");
    write_file(longm, "RKLLM-SIM 1\nname: long-test\nbehaviour: long\ndecode_ms: 0\nprefill_ms: 0\nmemory_mb: 10\n");
    h = init_model(longm, 512, 7, 1);
    reset(&c, h);
    CHECK(run_prompt(h, &c, "go", 0) == 0 && c.n_tokens == 7 && c.perf.generate_tokens == 7, "max_new: %d", c.n_tokens);
    rkllm_destroy(h);
    h = init_model(longm, 60, -1, 1);
    reset(&c, h);
    CHECK(run_prompt(h, &c, "go", 0) == -1 && c.n_error == 1 && c.n_tokens > 0, "decode past context: rc, %d errors",
          c.n_error);
    char big[200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    reset(&c, h);
    CHECK(run_prompt(h, &c, big, 0) == -1 && c.n_error == 1 && c.n_tokens == 0, "prompt past context accepted");
    rkllm_destroy(h);
    OK("max_new_tokens_and_context_overflow");

    /* abort mid-decode from another thread; the handle stays usable; concurrent run refused */
    setenv("RKLLM_SIM_DECODE_MS", "5", 1);
    h = init_model(longm, 4096, -1, 1);
    unsetenv("RKLLM_SIM_DECODE_MS");
    {
        pthread_t t;
        side_arg a = {h, 60, 0, NULL, 0};
        collector c2;
        reset(&c2, NULL);
        side_arg b = {h, 20, 0, &c2, 1};
        pthread_t t2;
        pthread_create(&t, NULL, side_thread, &a);
        pthread_create(&t2, NULL, side_thread, &b);
        reset(&c, h);
        int rc = run_prompt(h, &c, "go", 0);
        pthread_join(t, NULL);
        pthread_join(t2, NULL);
        CHECK(rc == 0 && a.rc == 0 && c.n_finish == 1 && c.n_tokens > 0 && c.n_tokens < 400,
              "abort: rc %d, %d tokens", rc, c.n_tokens);
        CHECK(b.rc == -1, "a concurrent rkllm_run on the same handle was accepted");
        reset(&c, h);
        c.pause_after = 3;
        CHECK(run_prompt(h, &c, "again", 0) == 0 && c.n_tokens == 3, "handle unusable after abort");
    }
    rkllm_destroy(h);
    OK("abort_and_concurrent_run");

    /* hang fault: prefill never ends until aborted */
    setenv("RKLLM_SIM_FAULT", "hang", 1);
    h = init_model(path_in(models, "chat-instant.rkllm"), 512, -1, 1);
    unsetenv("RKLLM_SIM_FAULT");
    {
        pthread_t t;
        side_arg a = {h, 50, 0, NULL, 0};
        pthread_create(&t, NULL, side_thread, &a);
        reset(&c, h);
        int rc = run_prompt(h, &c, "hi", 0);
        pthread_join(t, NULL);
        CHECK(rc == 0 && c.n_tokens == 0 && c.n_finish == 1, "hang+abort: rc %d tokens %d", rc, c.n_tokens);
    }
    rkllm_destroy(h);
    OK("fault_hang_abortable");

    /* error_at and oov_at */
    setenv("RKLLM_SIM_FAULT", "error_at:3,oov_at:1", 1);
    h = init_model(path_in(models, "chat-instant.rkllm"), 512, -1, 1);
    unsetenv("RKLLM_SIM_FAULT");
    reset(&c, h);
    CHECK(run_prompt(h, &c, "hi", 0) == -1 && c.n_tokens == 3 && c.n_error == 1, "error_at: %d tokens", c.n_tokens);
    CHECK(c.ids[1] == 151935 && strncmp(c.text + 1, "[PAD151935]", 11) == 0, "oov token %d text %s", c.ids[1], c.text);
    rkllm_destroy(h);
    setenv("RKLLM_SIM_FAULT", "init_fail", 1);
    d = rkllm_createDefaultParam();
    d.model_path = path_in(models, "chat-instant.rkllm");
    h = NULL;
    CHECK(rkllm_init(&h, &d, cb) == -1, "init_fail ignored");
    unsetenv("RKLLM_SIM_FAULT");
    OK("faults_error_oov_init");

    /* reasoning: think block closed by </think> (260), then the answer */
    h = init_model(path_in(models, "reasoning-instant.rkllm"), 1024, -1, 1);
    reset(&c, h);
    CHECK(run_prompt(h, &c, "hi", 0) == 0, "reasoning run");
    int think_end = -1;
    for (int i = 0; i < c.n_tokens; i++)
        if (c.ids[i] == 260)
            think_end = i;
    CHECK(think_end >= 30 && think_end <= 90 && strstr(c.text, "</think>") && c.ids[0] != 259,
          "think block: </think> at %d", think_end);
    rkllm_destroy(h);
    OK("reasoning_think_block");

    /* function tools: the model calls the first tool; a tool response is acknowledged */
    h = init_model(path_in(models, "chat-instant.rkllm"), 2048, -1, 1);
    CHECK(rkllm_set_function_tools(h, "You are a helpful assistant.",
                                   "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
                                   "\"parameters\": {}}}]",
                                   "tool_response") == 0,
          "set tools");
    reset(&c, h);
    CHECK(run_prompt(h, &c, "weather in Paris?", 1) == 0, "tool run");
    CHECK(c.ids[0] == 261 && c.ids[c.n_tokens - 1] == 262 && strstr(c.text, "\"get_weather\""), "tool call '%s'",
          c.text);
    RKLLMInput in;
    memset(&in, 0, sizeof in);
    in.role = "tool";
    in.input_type = RKLLM_INPUT_PROMPT;
    in.prompt_input = "{\"temp\": 21}";
    RKLLMInferParam ip = {RKLLM_INFER_GENERATE, NULL, NULL, 1};
    reset(&c, h);
    CHECK(rkllm_run(h, &in, &ip, &c) == 0 && strstr(c.text, "{\"temp\": 21}"), "tool response '%s'", c.text);
    /* a custom template replaces the built-in one */
    rkllm_destroy(h);
    h = init_model(path_in(models, "chat-instant.rkllm"), 2048, -1, 1);
    CHECK(rkllm_set_chat_template(h, "", "Q: ", "\nA:") == 0, "set template");
    reset(&c, h);
    CHECK(run_prompt(h, &c, "hi", 1) == 0 && c.perf.prefill_tokens == 3 + 2 + 3, "custom template prefill %d",
          c.perf.prefill_tokens);
    rkllm_destroy(h);
    OK("function_tools_and_chat_template");

    /* n_batch = 2: arrays of results, negative ids for finished rows */
    h = init_model(path_in(models, "chat-instant.rkllm"), 1024, -1, 2);
    {
        RKLLMInput ins[2];
        memset(ins, 0, sizeof ins);
        int a_ids[64], b_ids[64];
        size_t na = 0, nbb = 0;
        a_ids[na++] = 257;
        na += to_ids("user\nhi", a_ids + na);
        a_ids[na++] = 258;
        a_ids[na++] = 257;
        na += to_ids("assistant\n", a_ids + na);
        int *b_all = malloc((n + n2) * sizeof(int)); /* two user turns: the second scripted reply */
        memcpy(b_all, ids, n * sizeof(int));
        memcpy(b_all + n, ids2, n2 * sizeof(int));
        nbb = n + n2;
        (void)b_ids;
        ins[0].input_type = ins[1].input_type = RKLLM_INPUT_TOKEN;
        ins[0].token_input.input_ids = a_ids;
        ins[0].token_input.n_tokens = na;
        ins[1].token_input.input_ids = b_all;
        ins[1].token_input.n_tokens = nbb;
        RKLLMInferParam ip2 = {RKLLM_INFER_GENERATE, NULL, NULL, 1};
        g_batch = 2;
        reset(&c, h);
        CHECK(rkllm_run(h, ins, &ip2, &c) == 0, "batch run");
        g_batch = 1;
        int sizes[2];
        rkllm_get_kv_cache_size(h, sizes);
        CHECK(c.batch_n[0] > 0 && c.batch_n[1] > 0 && c.batch_n[0] != c.batch_n[1] && c.batch_neg_seen,
              "batch rows %d %d", c.batch_n[0], c.batch_n[1]);
        CHECK(sizes[0] == (int)na + c.batch_n[0] + 1 && sizes[1] == (int)nbb + c.batch_n[1] + 1, "batch kv %d %d",
              sizes[0], sizes[1]);
        free(b_all);
    }
    rkllm_destroy(h);
    OK("n_batch_2");

    printf("all passed\n");
    return 0;
}
