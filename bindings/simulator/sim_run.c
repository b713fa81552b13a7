/*
 * sim_run.c — rkllm_run for the simulated runtime: templating, the KV token list, simulated
 * prefill/decode time, deterministic replies, UTF-8 WAITING pieces, faults, and perf stats.
 *
 * A reply is a "plan" derived from the whole context (KV + new input), so a paused run resumes
 * naturally: the tokens already generated after the last "<|im_start|>assistant\n" are matched
 * against the plan and generation continues after them.
 */
#define _POSIX_C_SOURCE 200809L /* getline, strtok_r, nanosleep, clock_gettime */
#include "sim_internal.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_SYSTEM "You are a helpful assistant."
#define PLACEHOLDER_TOKEN ' ' /* stands for an embedding or image token the simulator cannot read */

typedef struct {
    char *s;
    size_t n, cap;
} strbuf;

static void sb_add(strbuf *b, const char *s)
{
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->s = sim_xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
}

typedef struct {
    sim_tokvec input; /* this run's new tokens */
    size_t cached;    /* leading input tokens already in the cache (prompt cache hit) */
    sim_tokvec plan;  /* the reply */
    size_t pos;       /* next plan index */
    int is_long;
    long long_line;
    int done;
    int utf8_pending; /* continuation bytes still expected */
    long produced;
    char text[32];
} row_state;

/* ---------------------------------------------------------------------------------------------- */
/* Input -> tokens                                                                                 */

static void system_block(sim_handle *h, strbuf *sb)
{
    if (h->has_tools) {
        sb_add(sb, "<|im_start|>system\n");
        sb_add(sb, h->tools_system);
        sb_add(sb, "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                   "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n");
        sb_add(sb, h->tools_json);
        sb_add(sb, "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
                   "within <tool_call></tool_call> XML tags.<|im_end|>\n");
    } else if (h->custom_tpl) {
        sb_add(sb, h->tpl_system);
    } else {
        sb_add(sb, "<|im_start|>system\n" DEFAULT_SYSTEM "<|im_end|>\n");
    }
}

/* The sim's built-in ChatML template (or the one from rkllm_set_chat_template). */
static int template_prompt(sim_handle *h, const RKLLMInput *in, const char *prompt, size_t n_placeholders,
                           int kv_empty, sim_tokvec *out, char *err, size_t errlen)
{
    const char *role = in->role && *in->role ? in->role : "user";
    int tool = strcmp(role, "tool") == 0;
    if (!tool && strcmp(role, "user") != 0) {
        snprintf(err, errlen, "role must be \"user\" or \"tool\", got \"%.40s\"", role);
        return -1;
    }
    strbuf sb = {0};
    sb_add(&sb, "");
    if (kv_empty)
        system_block(h, &sb);
    sb_add(&sb, h->custom_tpl ? h->tpl_prefix : "<|im_start|>user\n");
    sim_tokenize(sb.s, out);
    sb.n = 0;
    sb.s[0] = '\0';
    for (size_t i = 0; i < n_placeholders; i++)
        tv_push(out, PLACEHOLDER_TOKEN);
    const char *tag = h->tool_response ? h->tool_response : "tool_response";
    if (tool) {
        sb_add(&sb, "<");
        sb_add(&sb, tag);
        sb_add(&sb, ">\n");
    }
    sb_add(&sb, prompt);
    if (tool) {
        sb_add(&sb, "\n</");
        sb_add(&sb, tag);
        sb_add(&sb, ">");
    }
    sb_add(&sb, h->custom_tpl ? h->tpl_postfix : "<|im_end|>\n<|im_start|>assistant\n");
    /* R1-style: the reasoning model's own template always opens the think block (the custom
     * template from rkllm_set_chat_template disables this, as in the real runtime). */
    if (!h->custom_tpl && h->model.behaviour == SIM_BEH_REASONING)
        sb_add(&sb, "<think>\n");
    sim_tokenize(sb.s, out);
    free(sb.s);
    return 0;
}

static int build_input(sim_handle *h, const RKLLMInput *in, int kv_empty, sim_tokvec *out, char *err, size_t errlen)
{
    switch (in->input_type) {
    case RKLLM_INPUT_PROMPT:
        if (!in->prompt_input) {
            snprintf(err, errlen, "prompt_input is NULL");
            return -1;
        }
        return template_prompt(h, in, in->prompt_input, 0, kv_empty, out, err, errlen);
    case RKLLM_INPUT_TOKEN:
        if (in->token_input.n_tokens > 0 && !in->token_input.input_ids) {
            snprintf(err, errlen, "token_input.input_ids is NULL with n_tokens %zu", in->token_input.n_tokens);
            return -1;
        }
        if (in->token_input.n_tokens > (1u << 24)) {
            snprintf(err, errlen, "token_input.n_tokens %zu is absurd", in->token_input.n_tokens);
            return -1;
        }
        for (size_t i = 0; i < in->token_input.n_tokens; i++) {
            int id = in->token_input.input_ids[i];
            if (id < 0 || id >= SIM_VOCAB_SIZE) {
                snprintf(err, errlen, "token id %d at position %zu is outside the vocabulary 0..%d", id, i,
                         SIM_VOCAB_SIZE - 1);
                return -1;
            }
            tv_push(out, id);
        }
        return 0;
    case RKLLM_INPUT_EMBED:
        if (in->embed_input.n_tokens > 0 && !in->embed_input.embed) {
            snprintf(err, errlen, "embed_input.embed is NULL with n_tokens %zu", in->embed_input.n_tokens);
            return -1;
        }
        if (in->embed_input.n_tokens > (1u << 24)) {
            snprintf(err, errlen, "embed_input.n_tokens %zu is absurd", in->embed_input.n_tokens);
            return -1;
        }
        for (size_t i = 0; i < in->embed_input.n_tokens; i++)
            tv_push(out, PLACEHOLDER_TOKEN);
        return 0;
    case RKLLM_INPUT_MULTIMODAL: {
        const RKLLMMultiModalInput *mm = &in->multimodal_input;
        if (!mm->prompt) {
            snprintf(err, errlen, "multimodal_input.prompt is NULL");
            return -1;
        }
        size_t n_img = mm->n_image * mm->n_image_tokens;
        if ((n_img > 0 && !mm->image_embed) || n_img > (1u << 24)) {
            snprintf(err, errlen, "multimodal_input: image_embed NULL or absurd n_image*n_image_tokens %zu", n_img);
            return -1;
        }
        return template_prompt(h, in, mm->prompt, n_img, kv_empty, out, err, errlen);
    }
    default:
        snprintf(err, errlen, "input_type %d is not an RKLLMInputType (0..3)", (int)in->input_type);
        return -1;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* The reply plan                                                                                  */

static int match_at(const sim_tokvec *t, size_t at, const int *seq, size_t n)
{
    if (at + n > t->n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (t->v[at + i] != seq[i])
            return 0;
    return 1;
}

static size_t role_marker(const char *role, int *seq)
{
    size_t n = 0;
    seq[n++] = SIM_TOK_IM_START;
    for (const char *p = role; *p; p++)
        seq[n++] = (unsigned char)*p;
    seq[n++] = '\n';
    return n;
}

static int bytes_start_with(const sim_tokvec *t, size_t from, size_t to, const char *s)
{
    size_t k = strlen(s);
    if (from + k > to)
        return 0;
    for (size_t i = 0; i < k; i++)
        if (t->v[from + i] != (unsigned char)s[i])
            return 0;
    return 1;
}

static void long_extend(row_state *r)
{
    char line[160];
    r->long_line++;
    snprintf(line, sizeof line, "Simulated long output, line %ld: the quick brown fox jumps over the lazy dog.\n",
             r->long_line);
    tv_push_bytes(&r->plan, line, strlen(line));
}

/* The first "name" value inside <tools>...</tools> of the context, or "tool". */
static void first_tool_name(const sim_tokvec *ctx, char *name, size_t cap)
{
    snprintf(name, cap, "tool");
    for (size_t i = 0; i < ctx->n; i++) {
        if (!bytes_start_with(ctx, i, ctx->n, "<tools>"))
            continue;
        for (size_t j = i; j < ctx->n; j++) {
            if (!bytes_start_with(ctx, j, ctx->n, "\"name\""))
                continue;
            size_t k = j + 6;
            while (k < ctx->n && (ctx->v[k] == ' ' || ctx->v[k] == ':'))
                k++;
            if (k >= ctx->n || ctx->v[k] != '"')
                return;
            size_t o = 0;
            for (k++; k < ctx->n && ctx->v[k] != '"' && ctx->v[k] < 256 && o + 1 < cap; k++)
                name[o++] = (char)ctx->v[k];
            name[o] = '\0';
            return;
        }
        return;
    }
}

static int context_has_tools(const sim_tokvec *ctx)
{
    for (size_t i = 0; i < ctx->n; i++)
        if (bytes_start_with(ctx, i, ctx->n, "<tools>"))
            return 1;
    return 0;
}

/*
 * A caller that closed the thought early (a reasoning budget feeds "\n</think>\n\n" into a paused run)
 * gets the answer next, as a real model would give it, not a second thought. Returns the plan position
 * to resume at, or 0 when the context's tail does not fit that case.
 */
static size_t resume_after_closed_thought(const sim_model *m, const sim_tokvec *ctx, size_t gen,
                                          const row_state *r)
{
    size_t c = ctx->n, p = r->plan.n;
    while (c > gen && ctx->v[c - 1] != m->think_end_id)
        c--;
    while (p > 0 && r->plan.v[p - 1] != m->think_end_id)
        p--;
    if (c == gen || p == 0)
        return 0;
    for (; c < ctx->n; c++) { /* what followed the closing tag must be what the plan says next */
        if (ctx->v[c] >= SIM_VOCAB_SIZE)
            continue;
        if (p >= r->plan.n || r->plan.v[p] != ctx->v[c])
            return 0;
        p++;
    }
    return p;
}

static void make_plan(sim_handle *h, const sim_tokvec *ctx, const char *lora, row_state *r)
{
    const sim_model *m = &h->model;
    int amark[16], umark[16];
    size_t an = role_marker("assistant", amark), un = role_marker("user", umark);

    /* Where this turn's generation starts. */
    size_t gen = ctx->n;
    int raw = 1;
    for (size_t i = ctx->n; i-- > 0;)
        if (match_at(ctx, i, amark, an)) {
            gen = i + an;
            raw = 0;
            break;
        }
    int think_opened = 0, think_disabled = 0;
    if (!raw && ctx->n >= gen + 2 && ctx->v[gen] == m->think_start_id && ctx->v[gen + 1] == '\n') {
        gen += 2;
        think_opened = 1;
        int off[4] = {'\n', m->think_end_id, '\n', '\n'};
        if (match_at(ctx, gen, off, 4)) {
            gen += 4;
            think_disabled = 1;
        }
    }

    /* User turns before it. */
    const char *tag = h->tool_response ? h->tool_response : "tool_response";
    char open_tag[80];
    snprintf(open_tag, sizeof open_tag, "<%.70s>", tag);
    long user_turns = 0;
    size_t last_s = 0, last_e = 0;
    int have_user = 0, last_is_tool = 0;
    for (size_t i = 0; i + un <= gen; i++) {
        if (!match_at(ctx, i, umark, un))
            continue;
        size_t s = i + un, e = s;
        while (e < gen && ctx->v[e] != SIM_TOK_IM_END)
            e++;
        have_user = 1;
        last_s = s;
        last_e = e;
        last_is_tool = bytes_start_with(ctx, s, e, open_tag);
        if (!last_is_tool)
            user_turns++;
        i = e;
    }
    if (raw) { /* no template: the bytes after the last special token are "the message" */
        size_t s = ctx->n;
        while (s > 0 && ctx->v[s - 1] < 256)
            s--;
        last_s = s;
        last_e = ctx->n;
        have_user = 1;
    }
    long turn = user_turns > 0 ? user_turns - 1 : 0;

    r->plan.n = 0;
    if (m->behaviour == SIM_BEH_REASONING && !think_disabled) {
        if (!think_opened) {
            tv_push(&r->plan, m->think_start_id);
            tv_push(&r->plan, '\n');
        }
        const char *t = m->n_thinks ? m->thinks[(size_t)turn % m->n_thinks]
                                    : "The user wants an answer. I will keep it short and clear.";
        tv_push_bytes(&r->plan, t, strlen(t));
        tv_push(&r->plan, '\n');
        tv_push(&r->plan, m->think_end_id);
        tv_push_bytes(&r->plan, "\n\n", 2);
    }
    if (lora) {
        char pre[160];
        snprintf(pre, sizeof pre, "[LoRA %.120s] ", lora);
        tv_push_bytes(&r->plan, pre, strlen(pre));
    }
    if (m->behaviour == SIM_BEH_LONG) {
        r->is_long = 1;
    } else if (!raw && context_has_tools(ctx) && have_user && !last_is_tool) {
        char name[128];
        first_tool_name(ctx, name, sizeof name);
        char call[256];
        snprintf(call, sizeof call, "\n{\"name\": \"%s\", \"arguments\": {}}\n", name);
        tv_push(&r->plan, SIM_TOK_TOOL_CALL);
        tv_push_bytes(&r->plan, call, strlen(call));
        tv_push(&r->plan, SIM_TOK_TOOL_CALL_END);
    } else if (!raw && have_user && last_is_tool) {
        size_t s = last_s + strlen(open_tag), e = last_e;
        if (s < e && ctx->v[s] == '\n')
            s++;
        while (e > s && ctx->v[e - 1] != '<')
            e--; /* drop the closing tag */
        if (e > s)
            e--;
        if (e > s && ctx->v[e - 1] == '\n')
            e--;
        const char *pre = "The tool returned: ";
        tv_push_bytes(&r->plan, pre, strlen(pre));
        tv_append(&r->plan, ctx->v + s, e - s);
    } else if (m->behaviour == SIM_BEH_ECHO) {
        if (have_user && last_e > last_s)
            tv_append(&r->plan, ctx->v + last_s, last_e - last_s);
        else
            tv_push_bytes(&r->plan, "(empty message)", 15);
    } else {
        const char *rep = m->replies[(size_t)turn % m->n_replies];
        sim_tokenize(rep, &r->plan);
    }

    /* Resume: tokens already generated in this turn (a paused run) are skipped. */
    r->pos = 0;
    if (raw)
        return;
    size_t matched = 0;
    for (size_t i = gen; i < ctx->n; i++) {
        int id = ctx->v[i];
        if (id >= SIM_VOCAB_SIZE)
            continue; /* OOV noise is not part of the plan */
        if (id == m->eos_id) { /* this turn already ended: nothing more to say */
            r->plan.n = 0;
            r->is_long = 0;
            return;
        }
        while (r->is_long && matched >= r->plan.n)
            long_extend(r);
        if (matched >= r->plan.n || r->plan.v[matched] != id) {
            /* The tail is not ours: an early-closed thought resumes at the answer, else start over. */
            r->pos = resume_after_closed_thought(m, ctx, gen, r);
            return;
        }
        matched++;
    }
    r->pos = matched;
}

/* Next planned token, or -1 at the natural end. */
static int plan_peek(row_state *r)
{
    while (r->is_long && r->pos >= r->plan.n)
        long_extend(r);
    return r->pos < r->plan.n ? r->plan.v[r->pos] : -1;
}

/* ---------------------------------------------------------------------------------------------- */
/* Deterministic hidden states and logits                                                          */

static float hidden_value(int token, size_t pos, int d)
{
    return sinf(0.013f * (float)(token + 1) * (float)(d + 1) + 0.07f * (float)pos);
}

static float logit_noise(int context_token, int v)
{
    return 2.0f * sinf(0.37f * (float)(v + 1) + 0.11f * (float)context_token);
}

/* ---------------------------------------------------------------------------------------------- */

static void utf8_feed(row_state *r, int id)
{
    if (id >= 256) {
        r->utf8_pending = 0;
        return;
    }
    unsigned b = (unsigned)id;
    if (r->utf8_pending > 0 && (b & 0xC0u) == 0x80u) {
        r->utf8_pending--;
        return;
    }
    r->utf8_pending = (b & 0xE0u) == 0xC0u ? 1 : (b & 0xF0u) == 0xE0u ? 2 : (b & 0xF8u) == 0xF0u ? 3 : 0;
}

typedef struct {
    sim_handle *h;
    RKLLMResult *res;
    row_state *rows;
    void *userdata;
    double t0, t_prefill_end;
    int prefill_tokens;
    long gen_tokens;
} run_ctx;

static void fill_perf(run_ctx *c)
{
    double t = now_ms();
    for (int b = 0; b < c->h->n_batch; b++) {
        RKLLMPerfStat *p = &c->res[b].perf;
        p->prefill_time_ms = (float)((c->t_prefill_end > 0 ? c->t_prefill_end : t) - c->t0);
        p->prefill_tokens = c->prefill_tokens;
        p->generate_time_ms = (float)(c->t_prefill_end > 0 ? t - c->t_prefill_end : 0.0);
        p->generate_tokens = (int)c->gen_tokens;
        p->memory_usage_mb = (float)c->h->model.memory_mb;
    }
}

static int call(run_ctx *c, LLMCallState state)
{
    if (!c->h->cb)
        return 0;
    return c->h->cb(c->res, c->userdata, state);
}

static void reset_results(run_ctx *c)
{
    memset(c->res, 0, (size_t)c->h->n_batch * sizeof(RKLLMResult));
    for (int b = 0; b < c->h->n_batch; b++) {
        c->res[b].text = "";
        c->res[b].token_id = -1;
    }
}

static void end_callback(run_ctx *c, LLMCallState state)
{
    reset_results(c);
    fill_perf(c);
    call(c, state);
}

static int fail_run(run_ctx *c, const char *msg)
{
    logf_err("E rkllm: (simulated) %s", msg);
    end_callback(c, RKLLM_RUN_ERROR);
    return -1;
}

static int save_prompt_cache(const char *path, const sim_tokvec *t)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp)
        return -1;
    uint32_t n = (uint32_t)t->n;
    int ok = fwrite(PCACHE_MAGIC, 1, 8, fp) == 8 && fwrite(&n, 4, 1, fp) == 1;
    for (size_t i = 0; ok && i < t->n; i++) {
        int32_t id = t->v[i];
        ok = fwrite(&id, 4, 1, fp) == 1;
    }
    ok = (fclose(fp) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        errno = e ? e : EIO;
        return -1;
    }
    return 0;
}

static int run_locked(sim_handle *h, RKLLMInput *inputs, RKLLMInferParam *ip, void *userdata)
{
    const int nb = h->n_batch;
    RKLLMInferParam defaults = {RKLLM_INFER_GENERATE, NULL, NULL, 0};
    if (!ip)
        ip = &defaults;
    RKLLMResult *res = sim_xmalloc((size_t)nb * sizeof(RKLLMResult));
    row_state *rows = calloc((size_t)nb, sizeof(row_state));
    if (!rows)
        abort();
    run_ctx c = {h, res, rows, userdata, now_ms(), 0, 0, 0};
    reset_results(&c);
    char msg[768];
    int rc = 0, keep = ip->keep_history ? 1 : 0, paused = 0;
    const sim_faults *f = &h->model.faults;
    char *lora = NULL;

    if (ip->mode != RKLLM_INFER_GENERATE && ip->mode != RKLLM_INFER_GET_LAST_HIDDEN_LAYER &&
        ip->mode != RKLLM_INFER_GET_LOGITS) {
        snprintf(msg, sizeof msg, "rkllm_run: infer mode %d is not an RKLLMInferMode (0..2)", (int)ip->mode);
        rc = fail_run(&c, msg);
        goto out;
    }

    /* ---- setup under the state lock: KV policy, input tokens, LoRA, prompt cache ---- */
    pthread_mutex_lock(&h->state_lock);
    if (ip->lora_params && ip->lora_params->lora_adapter_name && *ip->lora_params->lora_adapter_name) {
        const char *want = ip->lora_params->lora_adapter_name;
        for (size_t i = 0; i < h->n_loras; i++)
            if (strcmp(h->loras[i].name, want) == 0)
                lora = sim_strdup(want);
        if (!lora) {
            pthread_mutex_unlock(&h->state_lock);
            snprintf(msg, sizeof msg, "rkllm_run: LoRA adapter '%.100s' is not loaded; call rkllm_load_lora first",
                     want);
            rc = fail_run(&c, msg);
            goto out;
        }
    }
    if (!keep)
        for (int b = 0; b < nb; b++)
            h->kv[b].n = 0;
    for (int b = 0; b < nb && rc == 0; b++) {
        char err[512];
        if (build_input(h, &inputs[b], h->kv[b].n == 0, &rows[b].input, err, sizeof err)) {
            snprintf(msg, sizeof msg, "rkllm_run: bad input (batch row %d): %s", b, err);
            rc = -1;
        } else if (rows[b].input.n == 0 && h->kv[b].n == 0) {
            snprintf(msg, sizeof msg, "rkllm_run: empty input and empty KV cache (batch row %d): nothing to run", b);
            rc = -1;
        } else if (h->kv[b].n + rows[b].input.n > (size_t)h->max_ctx) {
            snprintf(msg, sizeof msg,
                     "rkllm_run: context overflow: %zu cached + %zu new tokens exceed max_context_len %d "
                     "(batch row %d); shorten the input, clear the KV cache or raise max_context_len",
                     h->kv[b].n, rows[b].input.n, h->max_ctx, b);
            rc = -1;
        } else if (h->has_pcache && h->kv[b].n == 0) {
            size_t k = 0;
            while (k < h->pcache.n && k < rows[b].input.n && h->pcache.v[k] == rows[b].input.v[k])
                k++;
            rows[b].cached = k;
        }
    }
    pthread_mutex_unlock(&h->state_lock);
    if (rc) {
        rc = fail_run(&c, msg);
        goto out;
    }

    /* ---- prefill: pay only for tokens not already cached ---- */
    size_t most_new = 0;
    for (int b = 0; b < nb; b++) {
        size_t fresh = rows[b].input.n - rows[b].cached;
        c.prefill_tokens += (int)fresh;
        if (fresh > most_new)
            most_new = fresh; /* batch rows prefill side by side */
    }
    int aborted = sleep_abortable(h, h->model.prefill_ms * (double)most_new, 0);
    if (!aborted && f->hang)
        aborted = sleep_abortable(h, 0, 1);
    c.t_prefill_end = now_ms();
    if (aborted) {
        end_callback(&c, RKLLM_RUN_FINISH);
        goto out;
    }

    pthread_mutex_lock(&h->state_lock);
    for (int b = 0; b < nb; b++) {
        tv_append(&h->kv[b], rows[b].input.v, rows[b].input.n);
        make_plan(h, &h->kv[b], lora, &rows[b]);
    }
    pthread_mutex_unlock(&h->state_lock);

    if (ip->prompt_cache_params && ip->prompt_cache_params->save_prompt_cache) {
        const char *path = ip->prompt_cache_params->prompt_cache_path;
        if (!path || !*path || save_prompt_cache(path, &h->kv[0])) {
            snprintf(msg, sizeof msg, "rkllm_run: cannot write prompt cache '%.300s': %s", path ? path : "(NULL)",
                     path && *path ? strerror(errno) : "prompt_cache_path is NULL");
            rc = fail_run(&c, msg);
            goto out;
        }
    }

    /* ---- hidden-layer and logits modes: one callback with arrays valid only during it ---- */
    if (ip->mode != RKLLM_INFER_GENERATE) {
        float **arrays = calloc((size_t)nb, sizeof(float *));
        reset_results(&c);
        for (int b = 0; b < nb; b++) {
            const sim_tokvec *kv = &h->kv[b];
            size_t n = rows[b].input.n ? rows[b].input.n : 1, first = kv->n - n;
            if (ip->mode == RKLLM_INFER_GET_LAST_HIDDEN_LAYER) {
                int hs = h->model.hidden_size;
                arrays[b] = sim_xmalloc(n * (size_t)hs * sizeof(float));
                for (size_t t = 0; t < n; t++)
                    for (int d = 0; d < hs; d++)
                        arrays[b][t * (size_t)hs + (size_t)d] = hidden_value(kv->v[first + t], first + t, d);
                res[b].last_hidden_layer.hidden_states = arrays[b];
                res[b].last_hidden_layer.embd_size = hs;
                res[b].last_hidden_layer.num_tokens = (int)n;
            } else {
                int next = plan_peek(&rows[b]);
                if (next < 0)
                    next = h->model.eos_id;
                int last = kv->n ? kv->v[kv->n - 1] : 0;
                arrays[b] = sim_xmalloc(SIM_VOCAB_SIZE * sizeof(float));
                for (int v = 0; v < SIM_VOCAB_SIZE; v++)
                    arrays[b][v] = logit_noise(last, v) + (v == next ? 12.0f : 0.0f);
                res[b].logits.logits = arrays[b];
                res[b].logits.vocab_size = SIM_VOCAB_SIZE;
                res[b].logits.num_tokens = 1;
            }
        }
        call(&c, RKLLM_RUN_NORMAL);
        for (int b = 0; b < nb; b++)
            free(arrays[b]);
        free(arrays);
        end_callback(&c, RKLLM_RUN_FINISH);
        goto out;
    }

    /* ---- decode: one token per callback ---- */
    int oov_done = 0;
    for (long step = 0;; step++) {
        if (atomic_load(&h->abort_flag)) {
            aborted = 1;
            break;
        }
        int tok[256], active = 0;
        for (int b = 0; b < nb; b++) {
            row_state *r = &rows[b];
            tok[b] = -1;
            if (r->done)
                continue;
            if (h->max_new > 0 && r->produced >= h->max_new) {
                r->done = 1;
                continue;
            }
            int next = plan_peek(r);
            if (next < 0) { /* natural stop: the end token goes into the KV, never to the callback */
                pthread_mutex_lock(&h->state_lock);
                if (h->kv[b].n < (size_t)h->max_ctx)
                    tv_push(&h->kv[b], h->model.eos_id);
                pthread_mutex_unlock(&h->state_lock);
                r->done = 1;
                continue;
            }
            if (f->oov_at == step && !oov_done)
                tok[b] = SIM_OOV_ID;
            else {
                tok[b] = next;
                r->pos++;
            }
            active++;
        }
        if (f->oov_at == step)
            oov_done = 1;
        if (!active)
            break;
        if (f->error_at == step) {
            snprintf(msg, sizeof msg, "injected fault error_at:%ld: the run failed after %ld tokens", f->error_at,
                     step);
            rc = fail_run(&c, msg);
            goto out;
        }
        if (f->segv_at == step) {
            logf_err("E rkllm: (simulated) injected fault segv_at:%ld: raising SIGSEGV", f->segv_at);
            raise(SIGSEGV);
        }
        for (int b = 0; b < nb; b++)
            if (tok[b] >= 0 && h->kv[b].n + 1 > (size_t)h->max_ctx) {
                snprintf(msg, sizeof msg,
                         "rkllm_run: context full: max_context_len %d reached after %ld generated tokens; raise "
                         "max_context_len or lower max_new_tokens",
                         h->max_ctx, step);
                rc = fail_run(&c, msg);
                goto out;
            }
        if (sleep_abortable(h, h->model.decode_ms, 0)) {
            aborted = 1;
            break;
        }
        reset_results(&c);
        int waiting = 0;
        pthread_mutex_lock(&h->state_lock);
        for (int b = 0; b < nb; b++) {
            row_state *r = &rows[b];
            if (tok[b] < 0) {
                res[b].text = nb > 1 ? NULL : "";
                continue;
            }
            tv_push(&h->kv[b], tok[b]);
            sim_token_text(tok[b], h->skip_special, r->text);
            utf8_feed(r, tok[b]);
            res[b].text = r->text;
            res[b].token_id = tok[b];
            r->produced++;
            c.gen_tokens++;
            if (nb == 1 && r->utf8_pending)
                waiting = 1;
        }
        pthread_mutex_unlock(&h->state_lock);
        if (call(&c, waiting ? RKLLM_RUN_WAITING : RKLLM_RUN_NORMAL) == 1) {
            paused = 1;
            break;
        }
    }
    (void)aborted;
    end_callback(&c, RKLLM_RUN_FINISH);
    if (h->log_level > 0) {
        RKLLMPerfStat *p = &res[0].perf;
        logf_err("I rkllm: (simulated timing, not an NPU measurement) prefill %.2f ms for %d tokens; generate %.2f "
                 "ms for %d tokens (%.2f tokens/s); memory figure %.0f MB from the model file",
                 (double)p->prefill_time_ms, p->prefill_tokens, (double)p->generate_time_ms, p->generate_tokens,
                 p->generate_time_ms > 0 ? 1000.0 * p->generate_tokens / (double)p->generate_time_ms : 0.0,
                 (double)p->memory_usage_mb);
    }

out:
    if (!keep && !paused) {
        pthread_mutex_lock(&h->state_lock);
        for (int b = 0; b < nb; b++)
            h->kv[b].n = 0;
        pthread_mutex_unlock(&h->state_lock);
    }
    for (int b = 0; b < nb; b++) {
        tv_free(&rows[b].input);
        tv_free(&rows[b].plan);
    }
    free(rows);
    free(res);
    free(lora);
    return rc;
}

int rkllm_run(LLMHandle handle, RKLLMInput *rkllm_input, RKLLMInferParam *rkllm_infer_params, void *userdata)
{
    sim_handle *h = as_handle(handle, "rkllm_run");
    if (!h)
        return -1;
    if (!rkllm_input) {
        logf_err("E rkllm: rkllm_run: rkllm_input is NULL [simulated runtime]");
        return -1;
    }
    if (h->n_batch > 256) {
        logf_err("E rkllm: rkllm_run: n_batch %d is beyond the simulator's limit of 256", h->n_batch);
        return -1;
    }
    if (pthread_mutex_trylock(&h->run_lock) != 0) {
        logf_err("E rkllm: rkllm_run: another rkllm_run is already in progress on this handle; the simulated "
                 "runtime refuses (the real one would produce garbage): serialize runs per handle");
        return -1;
    }
    atomic_store(&h->abort_flag, 0);
    h->run_thread = pthread_self();
    atomic_store(&h->running, 1);
    int rc = run_locked(h, rkllm_input, rkllm_infer_params, userdata);
    atomic_store(&h->running, 0);
    pthread_mutex_unlock(&h->run_lock);
    return rc;
}

/* The simulator runs "async" requests synchronously in the caller's thread: the real call is
 * reported to hang on some versions and Rockchip's demos never use it. */
int rkllm_run_async(LLMHandle handle, RKLLMInput *rkllm_input, RKLLMInferParam *rkllm_infer_params, void *userdata)
{
    return rkllm_run(handle, rkllm_input, rkllm_infer_params, userdata);
}
