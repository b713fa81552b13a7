/*
 * sim_model.c — simulated model files, fault specs, and the byte-level vocabulary.
 * A model file is text: first line exactly "RKLLM-SIM 1", then "key: value" lines.
 */
#define _POSIX_C_SOURCE 200809L /* getline, strtok_r, nanosleep, clock_gettime */
#include "sim_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const SPECIALS[] = {
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "</tool_call>",
};
#define N_SPECIALS (sizeof(SPECIALS) / sizeof(SPECIALS[0]))

void *sim_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "E rkllm: (simulated) out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

void *sim_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "E rkllm: (simulated) out of memory allocating %zu bytes\n", n);
        abort();
    }
    return q;
}

char *sim_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *d = sim_xmalloc(n + 1);
    memcpy(d, s, n + 1);
    return d;
}

void tv_push(sim_tokvec *t, int id)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->v = sim_xrealloc(t->v, t->cap * sizeof(int));
    }
    t->v[t->n++] = id;
}

void tv_append(sim_tokvec *t, const int *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tv_push(t, ids[i]);
}

void tv_push_bytes(sim_tokvec *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tv_push(t, (unsigned char)s[i]);
}

void tv_free(sim_tokvec *t)
{
    free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}

const char *sim_special_text(int id)
{
    if (id >= SIM_TOK_ENDOFTEXT && id < SIM_VOCAB_SIZE)
        return SPECIALS[id - SIM_TOK_ENDOFTEXT];
    return NULL;
}

void sim_tokenize(const char *text, sim_tokvec *out)
{
    const char *p = text;
    while (*p) {
        int matched = 0;
        if (*p == '<') {
            for (size_t i = 0; i < N_SPECIALS; i++) {
                size_t len = strlen(SPECIALS[i]);
                if (strncmp(p, SPECIALS[i], len) == 0) {
                    tv_push(out, SIM_TOK_ENDOFTEXT + (int)i);
                    p += len;
                    matched = 1;
                    break;
                }
            }
        }
        if (!matched)
            tv_push(out, (unsigned char)*p++);
    }
}

size_t sim_token_text(int id, int skip_special, char *buf)
{
    if (id >= 0 && id < 256) {
        buf[0] = (char)id;
        buf[1] = '\0';
        return 1;
    }
    if (id >= SIM_TOK_ENDOFTEXT && id <= SIM_TOK_IM_END && skip_special) {
        buf[0] = '\0';
        return 0;
    }
    const char *s = sim_special_text(id);
    if (s) {
        size_t n = strlen(s);
        memcpy(buf, s, n + 1);
        return n;
    }
    return (size_t)snprintf(buf, 32, "[PAD%d]", id);
}

void sim_faults_clear(sim_faults *f)
{
    f->init_fail = 0;
    f->hang = 0;
    f->error_at = -1;
    f->segv_at = -1;
    f->oov_at = -1;
    f->slow_load_ms = -1;
}

static int parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < 0)
        return -1;
    *out = v;
    return 0;
}

int sim_faults_parse(const char *spec, sim_faults *f, char *err, size_t errlen)
{
    char *copy = sim_strdup(spec);
    char *save = NULL;
    int rc = 0;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*item))
            item++;
        char *e = item + strlen(item);
        while (e > item && isspace((unsigned char)e[-1]))
            *--e = '\0';
        long n = 0;
        char *colon = strchr(item, ':');
        const char *arg = colon ? colon + 1 : NULL;
        if (colon)
            *colon = '\0';
        if (strcmp(item, "none") == 0 && !arg) {
            sim_faults_clear(f);
        } else if (strcmp(item, "init_fail") == 0 && !arg) {
            f->init_fail = 1;
        } else if (strcmp(item, "hang") == 0 && !arg) {
            f->hang = 1;
        } else if (arg && parse_long(arg, &n) == 0 && strcmp(item, "error_at") == 0) {
            f->error_at = n;
        } else if (arg && parse_long(arg, &n) == 0 && strcmp(item, "segv_at") == 0) {
            f->segv_at = n;
        } else if (arg && parse_long(arg, &n) == 0 && strcmp(item, "oov_at") == 0) {
            f->oov_at = n;
        } else if (arg && parse_long(arg, &n) == 0 && strcmp(item, "slow_load") == 0) {
            f->slow_load_ms = n;
        } else {
            snprintf(err, errlen,
                     "bad fault '%s%s%s': expected none, init_fail, hang, error_at:N, segv_at:N, "
                     "oov_at:N or slow_load:MS (N >= 0), comma-separated",
                     item, arg ? ":" : "", arg ? arg : "");
            rc = -1;
            break;
        }
    }
    free(copy);
    return rc;
}

/* "\n", "\t", "\\" escapes in reply/think values. */
static char *unescape(const char *s)
{
    char *out = sim_xmalloc(strlen(s) + 1), *o = out;
    for (; *s; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            *o++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

static void push_str(char ***arr, size_t *n, char *s)
{
    *arr = sim_xrealloc(*arr, (*n + 1) * sizeof(char *));
    (*arr)[(*n)++] = s;
}

static int parse_num(const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end != '\0' || !(d >= lo && d <= hi))
        return -1;
    *out = d;
    return 0;
}

void sim_model_free(sim_model *m)
{
    free(m->name);
    free(m->emulates);
    free(m->tokenizer);
    for (size_t i = 0; i < m->n_replies; i++)
        free(m->replies[i]);
    free(m->replies);
    for (size_t i = 0; i < m->n_thinks; i++)
        free(m->thinks[i]);
    free(m->thinks);
    memset(m, 0, sizeof(*m));
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int model_key(sim_model *m, const char *key, const char *val, char *err, size_t errlen)
{
    double d;
    if (strcmp(key, "name") == 0) {
        free(m->name);
        m->name = sim_strdup(val);
    } else if (strcmp(key, "emulates") == 0) {
        free(m->emulates);
        m->emulates = sim_strdup(val);
    } else if (strcmp(key, "tokenizer") == 0) {
        free(m->tokenizer);
        m->tokenizer = sim_strdup(val);
    } else if (strcmp(key, "eos_id") == 0 || strcmp(key, "think_start_id") == 0 ||
               strcmp(key, "think_end_id") == 0) {
        if (parse_num(val, 0, SIM_VOCAB_SIZE - 1, &d) || d != (int)d)
            return fail(err, errlen, "%s must be a token id 0..%d, got '%s'", key, SIM_VOCAB_SIZE - 1, val);
        int *slot = key[0] == 'e' ? &m->eos_id : key[6] == 's' ? &m->think_start_id : &m->think_end_id;
        *slot = (int)d;
    } else if (strcmp(key, "decode_ms") == 0 || strcmp(key, "prefill_ms") == 0 || strcmp(key, "load_ms") == 0 ||
               strcmp(key, "memory_mb") == 0) {
        if (parse_num(val, 0, 1e7, &d))
            return fail(err, errlen, "%s must be a number >= 0, got '%s'", key, val);
        double *slot = key[0] == 'd' ? &m->decode_ms : key[0] == 'p' ? &m->prefill_ms
                       : key[0] == 'l' ? &m->load_ms : &m->memory_mb;
        *slot = d;
    } else if (strcmp(key, "max_context_len") == 0 || strcmp(key, "hidden_size") == 0) {
        if (parse_num(val, 1, 1 << 20, &d) || d != (int)d)
            return fail(err, errlen, "%s must be an integer 1..1048576, got '%s'", key, val);
        *(key[0] == 'm' ? &m->max_context_len : &m->hidden_size) = (int)d;
    } else if (strcmp(key, "behaviour") == 0 || strcmp(key, "behavior") == 0) {
        if (strcmp(val, "script") == 0)
            m->behaviour = SIM_BEH_SCRIPT;
        else if (strcmp(val, "echo") == 0)
            m->behaviour = SIM_BEH_ECHO;
        else if (strcmp(val, "reasoning") == 0)
            m->behaviour = SIM_BEH_REASONING;
        else if (strcmp(val, "long") == 0)
            m->behaviour = SIM_BEH_LONG;
        else
            return fail(err, errlen, "behaviour must be script, echo, reasoning or long, got '%s'", val);
    } else if (strcmp(key, "reply") == 0) {
        push_str(&m->replies, &m->n_replies, unescape(val));
    } else if (strcmp(key, "think") == 0) {
        push_str(&m->thinks, &m->n_thinks, unescape(val));
    } else if (strcmp(key, "fault") == 0) {
        char ferr[256];
        if (sim_faults_parse(val, &m->faults, ferr, sizeof ferr))
            return fail(err, errlen, "%s", ferr);
    } else {
        return fail(err, errlen,
                    "unknown key '%s' (known: name, emulates, tokenizer, eos_id, think_start_id, think_end_id, "
                    "decode_ms, prefill_ms, load_ms, memory_mb, max_context_len, hidden_size, behaviour, reply, "
                    "think, fault)",
                    key);
    }
    return 0;
}

int sim_model_load(const char *path, sim_model *m, int *bad_magic, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    *bad_magic = 0;
    m->eos_id = SIM_TOK_IM_END;
    m->think_start_id = SIM_TOK_THINK;
    m->think_end_id = SIM_TOK_THINK_END;
    m->memory_mb = 0;
    m->max_context_len = 4096;
    m->hidden_size = 1536;
    m->behaviour = SIM_BEH_SCRIPT;
    sim_faults_clear(&m->faults);

    struct stat st;
    if (stat(path, &st) != 0)
        return fail(err, errlen, "failed to open model file %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fail(err, errlen, "model path %s is not a regular file", path);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return fail(err, errlen, "failed to open model file %s: %s", path, strerror(errno));
    /* Check the magic on the first bytes only: a real (binary, gigabyte) model must not be read. */
    static const char magic[] = "RKLLM-SIM 1";
    char head[sizeof magic + 1] = {0};
    size_t got = fread(head, 1, sizeof magic + 1, fp);
    size_t ml = sizeof magic - 1;
    if (got < ml || memcmp(head, magic, ml) != 0 ||
        (got > ml && head[ml] != '\n' && !(head[ml] == '\r' && (got == ml + 1 || head[ml + 1] == '\n')))) {
        fclose(fp);
        *bad_magic = 1;
        return fail(err, errlen, "invalid rknn llm model magic");
    }
    rewind(fp);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    while ((len = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (lineno == 1) {
            if (strcmp(line, "RKLLM-SIM 1") != 0 || (size_t)len != strlen(line)) {
                *bad_magic = 1;
                rc = fail(err, errlen, "invalid rknn llm model magic");
                break;
            }
            continue;
        }
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (*s == '\0' || *s == '#')
            continue;
        char *colon = strchr(s, ':');
        if (!colon) {
            rc = fail(err, errlen, "%s line %d: expected 'key: value', got '%.60s'", path, lineno, s);
            break;
        }
        *colon = '\0';
        char *key = s, *val = colon + 1;
        char *ke = colon;
        while (ke > key && isspace((unsigned char)ke[-1]))
            *--ke = '\0';
        while (*val == ' ' || *val == '\t')
            val++;
        char *ve = val + strlen(val);
        while (ve > val && isspace((unsigned char)ve[-1]))
            *--ve = '\0';
        char kerr[512];
        if (model_key(m, key, val, kerr, sizeof kerr)) {
            rc = fail(err, errlen, "%s line %d: %s", path, lineno, kerr);
            break;
        }
    }
    if (rc == 0 && lineno == 0) {
        *bad_magic = 1;
        rc = fail(err, errlen, "invalid rknn llm model magic");
    }
    free(line);
    fclose(fp);
    if (rc == 0 && (m->behaviour == SIM_BEH_SCRIPT || m->behaviour == SIM_BEH_REASONING) && m->n_replies == 0)
        rc = fail(err, errlen, "%s: behaviour script/reasoning needs at least one 'reply:' line", path);
    if (rc == 0 && !m->name)
        m->name = sim_strdup("unnamed");
    if (rc)
        sim_model_free(m);
    return rc;
}
