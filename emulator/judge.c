/*
 * emulator/judge: the deterministic model behind the emulator's Converse.
 * Features are deliberately simple and explainable: a bag of lower-cased
 * word tokens (common words dropped), overlap measured SQuAD-style.
 */
#include "emulator/judge.h"

#include "common/alloc.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_TOKENS 4096 /* per field; enough to rank, bounded in time */

struct tokens {
    char *text; /* lower-cased copy, tokens NUL-separated in place */
    const char **tok;
    size_t n;
};

static const char *const stopwords[] = {
    "a",    "an",   "and",  "are", "as",  "at",   "be",    "by",  "for",  "from", "in",
    "is",   "it",   "its",  "of",  "on",  "or",   "that",  "the", "this", "to",   "was",
    "were", "with", "it's", "i",   "you", "we",   "he",    "she", "they", "them", "his",
    "her",  "our",  "your", "not", "but", "if",   "so",    "do",  "does", "did",  "has",
    "have", "had",  "will", "can", "may", "what", "which", "who", "how",  "when", "where"};

static bool stopword(const char *w)
{
    for (size_t i = 0; i < sizeof stopwords / sizeof *stopwords; i++)
        if (strcmp(w, stopwords[i]) == 0)
            return true;
    return false;
}

static bool word_byte(unsigned char c)
{
    return isalnum(c) || c >= 0x80;
}

static void tokenize(const char *s, struct tokens *t)
{
    memset(t, 0, sizeof *t);
    if (!s)
        return;
    size_t len = strlen(s);
    t->text = xmalloc(len + 1);
    t->tok = xcalloc(MAX_TOKENS, sizeof *t->tok);
    for (size_t i = 0; i <= len; i++)
        t->text[i] = (char)tolower((unsigned char)s[i]);
    char *p = t->text;
    while (*p && t->n < MAX_TOKENS) {
        while (*p && !word_byte((unsigned char)*p))
            p++;
        if (!*p)
            break;
        char *start = p;
        while (*p && word_byte((unsigned char)*p))
            p++;
        if (*p)
            *p++ = '\0';
        if (!stopword(start))
            t->tok[t->n++] = start;
    }
}

static void tokens_clear(struct tokens *t)
{
    free(t->text);
    free(t->tok);
}

/* Tokens of a present in b (as a multiset: each of b's tokens matches once). */
static size_t overlap(const struct tokens *a, const struct tokens *b)
{
    if (!a->n || !b->n)
        return 0;
    bool *used = xcalloc(b->n, sizeof *used);
    size_t common = 0;
    for (size_t i = 0; i < a->n; i++)
        for (size_t k = 0; k < b->n; k++)
            if (!used[k] && strcmp(a->tok[i], b->tok[k]) == 0) {
                used[k] = true;
                common++;
                break;
            }
    free(used);
    return common;
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++)
        if (strncasecmp(p, needle, n) == 0)
            return true;
    return false;
}

static const char *const refusals[] = {
    "i can't help",    "i cannot help",   "i can't assist",   "i cannot assist", "i'm sorry, but",
    "i am sorry, but", "i'm unable to",   "i am unable to",   "as an ai",        "i won't",
    "i will not",      "i can't provide", "i cannot provide", "i don't know"};

double judge_quality(const char *request, const char *context, const char *reference,
                     const char *answer, struct buf *why)
{
    struct tokens ans, ref, ctx, req;
    tokenize(answer, &ans);
    tokenize(reference, &ref);
    tokenize(context, &ctx);
    tokenize(request, &req);
    double q;
    bool refusal = false;
    for (size_t i = 0; answer && i < sizeof refusals / sizeof *refusals && !refusal; i++)
        refusal = contains_nocase(answer, refusals[i]);
    if (ans.n == 0) {
        q = 0;
        buf_append_str(why, "The answer is empty.");
        goto out;
    }
    if (reference && ref.n) {
        size_t common = overlap(&ans, &ref);
        double p = (double)common / (double)ans.n, r = (double)common / (double)ref.n;
        q = common ? 2 * p * r / (p + r) : 0;
        buf_appendf(why, "Token F1 with the reference answer %.2f (%zu shared of %zu and %zu).", q,
                    common, ans.n, ref.n);
    } else if (context && ctx.n) {
        size_t common = overlap(&ans, &ctx);
        q = (double)common / (double)ans.n;
        buf_appendf(why, "%.0f%% of the answer's words are supported by the context.", q * 100);
    } else if (request && req.n) {
        size_t common = overlap(&req, &ans);
        double recall = (double)common / (double)req.n;
        q = 0.5 + 0.5 * recall;
        buf_appendf(why, "The answer addresses %.0f%% of the request's words.", recall * 100);
    } else {
        q = 0.6;
        buf_append_str(why, "Nothing to compare the answer with.");
    }
    if (ans.n < 3) {
        q *= 0.6;
        buf_appendf(why, " Very short (%zu words).", ans.n);
    } else if (ans.n > 1500) {
        q *= 0.9;
        buf_appendf(why, " Very long (%zu words).", ans.n);
    }
    if (refusal) {
        q = fmin(q, 0.05);
        buf_append_str(why, " The answer refuses or does not answer.");
    }
out:
    tokens_clear(&ans);
    tokens_clear(&ref);
    tokens_clear(&ctx);
    tokens_clear(&req);
    return fmax(0, fmin(1, q));
}

void judge_reply_init(struct judge_reply *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->reasoning);
    buf_init(&r->text);
}

void judge_reply_clear(struct judge_reply *r)
{
    if (!r)
        return;
    buf_clear(&r->reasoning);
    buf_clear(&r->text);
}

/* The text blocks of the last user message, joined by newlines. */
static void last_user_text(const json_t *req, struct buf *out)
{
    const json_t *messages = json_object_get(req, "messages");
    for (size_t i = json_array_size(messages); i-- > 0;) {
        const json_t *m = json_array_get(messages, i);
        if (strcmp(json_string_value(json_object_get(m, "role")), "user") != 0)
            continue;
        size_t k;
        const json_t *block;
        json_array_foreach(json_object_get(m, "content"), k, block)
        {
            const json_t *t = json_object_get(block, "text");
            if (json_is_string(t)) {
                if (out->len)
                    buf_append_char(out, '\n');
                buf_append(out, json_string_value(t), json_string_length(t));
            }
        }
        return;
    }
}

static void system_text(const json_t *req, struct buf *out)
{
    size_t i;
    const json_t *block;
    json_array_foreach(json_object_get(req, "system"), i, block)
    {
        const json_t *t = json_object_get(block, "text");
        if (json_is_string(t))
            buf_append(out, json_string_value(t), json_string_length(t));
    }
}

/* The fence token of a judge prompt, or 0 when the text is no judge prompt. */
static int find_token(const char *text, char *token, size_t size)
{
    static const char stated[] = "boundary token of this request is ";
    const char *p = strstr(text, stated);
    if (p) {
        p += strlen(stated);
    } else if ((p = strstr(text, "<<<BEGIN ")) != NULL) {
        p += strlen("<<<BEGIN ");
        p += strcspn(p, " >\n"); /* the label */
        if (*p == ' ')
            p++;
    } else {
        return 0;
    }
    size_t n = 0;
    while (p[n] && (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '-') && n + 1 < size)
        n++;
    memcpy(token, p, n);
    token[n] = '\0';
    return n > 0;
}

/* A new copy of the text fenced under label, or NULL when the field is absent. */
static char *fenced(const char *text, const char *label, const char *token)
{
    struct buf open = BUF_INIT, close = BUF_INIT;
    buf_appendf(&open, "<<<BEGIN %s %s>>>\n", label, token);
    buf_appendf(&close, "<<<END %s %s>>>", label, token);
    char *result = NULL;
    const char *start = strstr(text, buf_cstr(&open));
    if (start) {
        start += open.len;
        const char *end = strstr(start, buf_cstr(&close));
        if (end) {
            size_t n = (size_t)(end - start);
            if (n && start[n - 1] == '\n')
                n--;
            result = xstrndup(start, n);
        }
    }
    buf_clear(&open);
    buf_clear(&close);
    return result;
}

/* Reads "an integer from A to B" / "a number from A to B", the last one in text. */
static bool scale_from_text(const char *text, struct judge_reply *r)
{
    bool found = false;
    static const char *const forms[] = {"an integer from ", "a number from "};
    const char *best = NULL;
    bool integer = false;
    for (size_t f = 0; f < 2; f++)
        for (const char *p = strstr(text, forms[f]); p; p = strstr(p + 1, forms[f]))
            if (p > best || !best) {
                best = p;
                integer = f == 0;
            }
    double lo, hi;
    if (best && sscanf(best + strlen(integer ? forms[0] : forms[1]), "%lf to %lf", &lo, &hi) == 2 &&
        lo < hi && isfinite(lo) && isfinite(hi) && isfinite(hi - lo)) {
        r->min = lo;
        r->max = hi;
        r->integer = integer;
        found = true;
    }
    return found;
}

static const json_t *pick_tool(const json_t *req)
{
    const json_t *tc = json_object_get(req, "toolConfig");
    const json_t *tools = json_object_get(tc, "tools");
    const char *forced = json_string_value(
        json_object_get(json_object_get(json_object_get(tc, "toolChoice"), "tool"), "name"));
    const json_t *first = NULL, *verdict = NULL;
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t)
    {
        const json_t *spec = json_object_get(t, "toolSpec");
        const char *name = json_string_value(json_object_get(spec, "name"));
        if (!name)
            continue;
        if (forced && strcmp(name, forced) == 0)
            return spec;
        if (!first)
            first = spec;
        if (strcmp(name, "submit_verdict") == 0)
            verdict = spec;
    }
    return verdict ? verdict : first;
}

static void scale_from_schema(const json_t *spec, struct judge_reply *r)
{
    const json_t *score = json_object_get(
        json_object_get(json_object_get(json_object_get(spec, "inputSchema"), "json"),
                        "properties"),
        "score");
    const json_t *lo = json_object_get(score, "minimum"), *hi = json_object_get(score, "maximum");
    const char *type = json_string_value(json_object_get(score, "type"));
    r->integer = type && strcmp(type, "integer") == 0;
    r->min = json_is_number(lo) ? json_number_value(lo) : (r->integer ? 1 : 0);
    r->max = json_is_number(hi) ? json_number_value(hi) : (r->integer ? 5 : 1);
    /* A schema without a usable range: answer on 0..1 (a model would guess too). */
    if (!isfinite(r->min) || !isfinite(r->max) || !isfinite(r->max - r->min) ||
        !(r->max > r->min)) {
        r->min = 0;
        r->max = 1;
    }
    if (r->integer && ceil(r->min) > floor(r->max))
        r->integer = false; /* no integer inside the range */
}

static void plain_answer(const char *prompt, const json_t *answers, struct buf *out)
{
    size_t i;
    const json_t *a;
    json_array_foreach(answers, i, a)
    {
        if (contains_nocase(prompt, json_string_value(json_object_get(a, "match")))) {
            buf_append_str(out, json_string_value(json_object_get(a, "text")));
            return;
        }
    }
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = prompt; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    size_t n = strlen(prompt);
    if (n > 200) {
        n = 200;
        while (n > 0 && ((unsigned char)prompt[n] & 0xc0) == 0x80)
            n--; /* never cut a UTF-8 sequence */
    }
    buf_appendf(out, "Emulated answer %08x to: ", (unsigned)(h & 0xffffffffu));
    buf_append(out, prompt, n);
}

void judge_answer(const json_t *req, const json_t *answers, struct judge_reply *r)
{
    struct buf user = BUF_INIT, sys = BUF_INIT;
    last_user_text(req, &user);
    char token[128];
    bool judged = find_token(buf_cstr(&user), token, sizeof token);
    const json_t *tc = json_object_get(req, "toolConfig");
    const json_t *choice = json_object_get(tc, "toolChoice");
    bool forced = json_object_get(choice, "tool") || json_object_get(choice, "any");
    const json_t *spec = tc ? pick_tool(req) : NULL;
    if (!judged && !(forced && spec)) {
        plain_answer(buf_cstr(&user), answers, &r->text);
        goto out;
    }
    char *fields[4] = {NULL, NULL, NULL, NULL};
    static const char *const labels[] = {"USER_REQUEST", "CONTEXT", "REFERENCE_ANSWER", "ANSWER"};
    for (size_t i = 0; judged && i < 4; i++)
        fields[i] = fenced(buf_cstr(&user), labels[i], token);
    /* A prompt without fences is graded whole, as the answer. */
    const char *answer = judged ? fields[3] : buf_cstr(&user);
    r->quality = judge_quality(fields[0], fields[1], fields[2], answer, &r->reasoning);
    for (size_t i = 0; i < 4; i++)
        free(fields[i]);
    if (spec) {
        r->tool_use = true;
        snprintf(r->tool_name, sizeof r->tool_name, "%s",
                 json_string_value(json_object_get(spec, "name")));
        scale_from_schema(spec, r);
    } else {
        system_text(req, &sys);
        if (!scale_from_text(buf_cstr(&user), r) && !scale_from_text(buf_cstr(&sys), r)) {
            r->min = 1;
            r->max = 5;
            r->integer = true;
        }
    }
    r->score = r->min + r->quality * (r->max - r->min);
    if (r->integer)
        r->score = fmax(ceil(r->min), fmin(floor(r->max), floor(r->score + 0.5)));
    else
        r->score = fmax(r->min, fmin(r->max, floor(r->score * 100 + 0.5) / 100));
    if (!isfinite(r->score))
        r->score = r->min;
    if (!r->tool_use) {
        buf_append(&r->text, r->reasoning.data, r->reasoning.len);
        if (r->integer)
            buf_appendf(&r->text, "\nSCORE: %.0f", r->score);
        else
            buf_appendf(&r->text, "\nSCORE: %.2f", r->score);
    }
out:
    buf_clear(&user);
    buf_clear(&sys);
}
