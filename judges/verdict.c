/*
 * judges/verdict: the verdict struct's helpers, the Converse response parser
 * (used by the LLM judge after aws/bedrock returns a body) and the
 * self-consistency combination of repeated verdicts.
 */
#include "judges/verdict.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/jsonutil.h"
#include "judges/regex.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void verdict_init(struct verdict *v)
{
    memset(v, 0, sizeof *v);
    v->outcome = VERDICT_UNSCORABLE;
    v->reason = "none";
    v->latency_ms = -1;
    v->n_samples = 1;
}

void verdict_clear(struct verdict *v)
{
    if (!v)
        return;
    free(v->reasoning);
    free(v->judge);
    verdict_init(v);
}

void verdict_set_unscorable(struct verdict *v, const char *reason, enum verdict_retry retry,
                            const char *detail)
{
    v->outcome = VERDICT_UNSCORABLE;
    v->score = 0;
    v->raw_score = 0;
    v->pass = false;
    v->reason = reason;
    v->retry = retry;
    snprintf(v->detail, sizeof v->detail, "%s", detail ? detail : "");
}

enum assay_err verdict_set_score(struct verdict *v, const struct rubric *r, double raw)
{
    char d[VERDICT_DETAIL_MAX];
    if (!isfinite(raw)) {
        verdict_set_unscorable(v, "score_not_finite", VERDICT_RETRY_ONCE,
                               "the score is not a finite number");
        return ASSAY_ERR_INVALID_ARGUMENT;
    }
    if (raw < r->scale.min || raw > r->scale.max) {
        snprintf(d, sizeof d, "score %.6g is outside %g..%g", raw, r->scale.min, r->scale.max);
        verdict_set_unscorable(v, "score_out_of_range", VERDICT_RETRY_ONCE, d);
        return ASSAY_ERR_INVALID_ARGUMENT;
    }
    if (r->scale.integer && raw != floor(raw)) {
        snprintf(d, sizeof d, "score %.6g is not an integer on an integer scale", raw);
        verdict_set_unscorable(v, "score_not_integer", VERDICT_RETRY_ONCE, d);
        return ASSAY_ERR_INVALID_ARGUMENT;
    }
    v->outcome = VERDICT_SCORED;
    v->raw_score = raw;
    v->score = (raw - r->scale.min) / (r->scale.max - r->scale.min);
    v->pass = raw >= r->pass_threshold;
    v->reason = "none";
    v->retry = VERDICT_RETRY_NONE;
    v->detail[0] = '\0';
    return ASSAY_OK;
}

void verdict_set_reasoning(struct verdict *v, const char *text, size_t n)
{
    free(v->reasoning);
    if (n > VERDICT_REASONING_MAX) {
        n = VERDICT_REASONING_MAX;
        /* do not cut a UTF-8 sequence: back up over continuation bytes */
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
    }
    v->reasoning = xstrndup(text, n);
}

void verdict_set_rubric(struct verdict *v, const struct rubric *r)
{
    snprintf(v->rubric, sizeof v->rubric, "%s", r && r->name ? r->name : "");
    snprintf(v->rubric_version, sizeof v->rubric_version, "%s", r ? r->version : "");
}

void verdict_set_judge(struct verdict *v, const char *name)
{
    free(v->judge);
    v->judge = name ? xstrdup(name) : NULL;
}

static const char *const stop_names[] = {
    [VERDICT_STOP_END_TURN] = "end_turn",
    [VERDICT_STOP_TOOL_USE] = "tool_use",
    [VERDICT_STOP_MAX_TOKENS] = "max_tokens",
    [VERDICT_STOP_STOP_SEQUENCE] = "stop_sequence",
    [VERDICT_STOP_GUARDRAIL_INTERVENED] = "guardrail_intervened",
    [VERDICT_STOP_CONTENT_FILTERED] = "content_filtered",
    [VERDICT_STOP_MALFORMED_MODEL_OUTPUT] = "malformed_model_output",
    [VERDICT_STOP_MALFORMED_TOOL_USE] = "malformed_tool_use",
    [VERDICT_STOP_MODEL_CONTEXT_WINDOW_EXCEEDED] = "model_context_window_exceeded",
};

enum verdict_stop verdict_stop_from_name(const char *name)
{
    for (int i = 0; name && i < VERDICT_STOP_UNKNOWN; i++)
        if (strcmp(name, stop_names[i]) == 0)
            return (enum verdict_stop)i;
    return VERDICT_STOP_UNKNOWN;
}

/* A score given as a JSON number, or as a string holding exactly one number. */
static bool score_value(const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 64)
        return false;
    const char *s = json_string_value(v);
    char *end = NULL;
    double d = strtod(s, &end);
    while (end && (*end == ' ' || *end == '\t'))
        end++;
    if (!end || end == s || *end != '\0')
        return false;
    *out = d;
    return true;
}

static void parse_tool_input(const struct rubric *r, const json_t *input, struct verdict *out)
{
    if (!json_is_object(input)) {
        verdict_set_unscorable(out, "invalid_tool_input", VERDICT_RETRY_ONCE,
                               "the submit_verdict input is not an object");
        return;
    }
    const json_t *score = json_object_get(input, "score");
    const json_t *reasoning = json_object_get(input, "reasoning");
    if (!score) {
        verdict_set_unscorable(out, "missing_score", VERDICT_RETRY_ONCE,
                               "the submit_verdict input has no score");
        return;
    }
    if (!json_is_string(reasoning)) {
        verdict_set_unscorable(out, "missing_reasoning", VERDICT_RETRY_ONCE,
                               "the submit_verdict input has no reasoning string");
        return;
    }
    double raw = 0;
    if (!score_value(score, &raw)) {
        verdict_set_unscorable(out, "score_not_a_number", VERDICT_RETRY_ONCE,
                               "the score is not a number");
        return;
    }
    if (verdict_set_score(out, r, raw) != ASSAY_OK)
        return;
    verdict_set_reasoning(out, json_string_value(reasoning), json_string_length(reasoning));
}

enum assay_err verdict_parse_text(const struct rubric *r, const char *text, size_t n,
                                  struct verdict *out)
{
    if (!r || !text || !out)
        return ASSAY_ERR_INVALID_ARGUMENT;
    if (!r->fallback_re) {
        verdict_set_unscorable(out, "no_fallback_pattern", VERDICT_RETRY_NONE,
                               "the rubric has no text fallback pattern");
        return ASSAY_ERR_INVALID_ARGUMENT;
    }
    int g = regex_group_number(r->fallback_re, "score");
    size_t pos = 0, last_ms = SIZE_MAX, last_gs = SIZE_MAX, last_ge = SIZE_MAX;
    enum regex_result res;
    for (;;) {
        size_t ms, me, gs, ge;
        res = regex_find(r->fallback_re, text, n, pos, g, &ms, &me, &gs, &ge);
        if (res != REGEX_MATCH)
            break;
        if (gs != SIZE_MAX) {
            last_ms = ms;
            last_gs = gs;
            last_ge = ge;
        }
        pos = me > pos ? me : pos + 1;
    }
    if (res == REGEX_LIMIT || res == REGEX_ERROR) {
        verdict_set_unscorable(out, "regex_limit", VERDICT_RETRY_NONE,
                               "the fallback pattern hit its match or depth limit");
        return ASSAY_ERR_TOO_LARGE;
    }
    if (last_gs == SIZE_MAX) {
        verdict_set_unscorable(out, "no_score_in_text", VERDICT_RETRY_ONCE,
                               "the answer holds no line the fallback pattern matches");
        return ASSAY_ERR_PARSE;
    }
    char num[65];
    size_t len = last_ge - last_gs;
    if (len == 0 || len >= sizeof num) {
        verdict_set_unscorable(out, "score_not_a_number", VERDICT_RETRY_ONCE,
                               "the score in the text is not a number");
        return ASSAY_ERR_PARSE;
    }
    memcpy(num, text + last_gs, len);
    num[len] = '\0';
    char *end = NULL;
    double raw = strtod(num, &end);
    if (end != num + len) {
        verdict_set_unscorable(out, "score_not_a_number", VERDICT_RETRY_ONCE,
                               "the score in the text is not a number");
        return ASSAY_ERR_PARSE;
    }
    enum assay_err err = verdict_set_score(out, r, raw);
    if (err)
        return err;
    /* the reasoning is what the judge wrote before its score line */
    size_t rl = last_ms;
    while (rl > 0 && (text[rl - 1] == '\n' || text[rl - 1] == ' ' || text[rl - 1] == '\r'))
        rl--;
    verdict_set_reasoning(out, text, rl);
    return ASSAY_OK;
}

static int64_t usage_int(const json_t *usage, const char *key)
{
    const json_t *v = json_object_get(usage, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (int64_t)json_integer_value(v) : 0;
}

enum assay_err verdict_parse_json(const struct rubric *r, const json_t *resp, struct verdict *out)
{
    if (!r || !resp || !out)
        return ASSAY_ERR_INVALID_ARGUMENT;
    verdict_clear(out);
    verdict_set_rubric(out, r);
    if (!json_is_object(resp)) {
        verdict_set_unscorable(out, "unparseable_response", VERDICT_RETRY_ONCE,
                               "the response is not a JSON object");
        return ASSAY_OK;
    }
    const json_t *usage = json_object_get(resp, "usage");
    out->usage.input_tokens = usage_int(usage, "inputTokens");
    out->usage.output_tokens = usage_int(usage, "outputTokens");
    out->usage.cache_read_input_tokens = usage_int(usage, "cacheReadInputTokens");
    out->usage.cache_write_input_tokens = usage_int(usage, "cacheWriteInputTokens");
    const json_t *lat = json_object_get(json_object_get(resp, "metrics"), "latencyMs");
    if (json_is_integer(lat) && json_integer_value(lat) >= 0)
        out->latency_ms = (int64_t)json_integer_value(lat);

    const char *stop_name = jsonutil_str(resp, "stopReason");
    enum verdict_stop stop = verdict_stop_from_name(stop_name);
    snprintf(out->stop_reason, sizeof out->stop_reason, "%s",
             stop == VERDICT_STOP_UNKNOWN ? "" : stop_names[stop]);
    switch (stop) {
    case VERDICT_STOP_MAX_TOKENS:
        verdict_set_unscorable(out, "max_tokens", VERDICT_RETRY_LARGER_BUDGET,
                               "the judge ran out of output tokens");
        return ASSAY_OK;
    case VERDICT_STOP_GUARDRAIL_INTERVENED:
        verdict_set_unscorable(out, "guardrail_intervened", VERDICT_RETRY_NONE,
                               "a guardrail intervened");
        return ASSAY_OK;
    case VERDICT_STOP_CONTENT_FILTERED:
        verdict_set_unscorable(out, "content_filtered", VERDICT_RETRY_NONE,
                               "the content was filtered");
        return ASSAY_OK;
    case VERDICT_STOP_MALFORMED_MODEL_OUTPUT:
        verdict_set_unscorable(out, "malformed_model_output", VERDICT_RETRY_ONCE,
                               "the model's output was malformed");
        return ASSAY_OK;
    case VERDICT_STOP_MALFORMED_TOOL_USE:
        verdict_set_unscorable(out, "malformed_tool_use", VERDICT_RETRY_ONCE,
                               "the model's tool use was malformed");
        return ASSAY_OK;
    case VERDICT_STOP_MODEL_CONTEXT_WINDOW_EXCEEDED:
        verdict_set_unscorable(out, "model_context_window_exceeded", VERDICT_RETRY_NONE,
                               "the request exceeds the model's context window");
        return ASSAY_OK;
    case VERDICT_STOP_UNKNOWN:
        verdict_set_unscorable(out, "unknown_stop_reason", VERDICT_RETRY_NONE,
                               stop_name ? "the stopReason is not one this version knows"
                                         : "the response has no stopReason");
        return ASSAY_OK;
    case VERDICT_STOP_END_TURN:
    case VERDICT_STOP_TOOL_USE:
    case VERDICT_STOP_STOP_SEQUENCE:
        break;
    }

    const json_t *content =
        json_object_get(json_object_get(json_object_get(resp, "output"), "message"), "content");
    if (!json_is_array(content)) {
        verdict_set_unscorable(out, "unparseable_response", VERDICT_RETRY_ONCE,
                               "the response has no output.message.content array");
        return ASSAY_OK;
    }
    const json_t *ours = NULL;
    const char *other = NULL;
    size_t i;
    const json_t *block;
    json_array_foreach(content, i, block)
    {
        const json_t *tu = json_object_get(block, "toolUse");
        if (!json_is_object(tu))
            continue;
        const char *name = jsonutil_str(tu, "name");
        if (name && strcmp(name, "submit_verdict") == 0) {
            ours = tu;
            break;
        }
        other = name ? name : "(unnamed)";
    }
    if (ours) {
        parse_tool_input(r, json_object_get(ours, "input"), out);
        return ASSAY_OK;
    }
    if (stop == VERDICT_STOP_TOOL_USE) {
        verdict_set_unscorable(out, other ? "wrong_tool" : "no_tool_use", VERDICT_RETRY_ONCE,
                               other ? "the judge called a tool other than submit_verdict"
                                     : "stopReason tool_use without a toolUse block");
        return ASSAY_OK;
    }
    /* end_turn or stop_sequence without our tool: the text fallback */
    struct buf text = BUF_INIT;
    json_array_foreach(content, i, block)
    {
        const json_t *t = json_object_get(block, "text");
        if (json_is_string(t)) {
            if (text.len)
                buf_append_char(&text, '\n');
            buf_append(&text, json_string_value(t), json_string_length(t));
        }
    }
    if (text.len == 0)
        verdict_set_unscorable(out, "no_verdict", VERDICT_RETRY_ONCE,
                               other ? "the judge called a tool other than submit_verdict"
                                     : "the answer holds neither a tool call nor text");
    else
        verdict_parse_text(r, text.data, text.len, out);
    buf_clear(&text);
    return ASSAY_OK;
}

enum assay_err verdict_parse(const struct rubric *r, const char *body, size_t n,
                             struct verdict *out)
{
    if (!r || !body || !out)
        return ASSAY_ERR_INVALID_ARGUMENT;
    verdict_clear(out);
    verdict_set_rubric(out, r);
    if (n > VERDICT_BODY_MAX) {
        verdict_set_unscorable(out, "response_too_large", VERDICT_RETRY_NONE,
                               "the response body is larger than 4 MiB");
        return ASSAY_OK;
    }
    char jerr[ASSAY_ERRBUF_SIZE] = "";
    json_t *resp = jsonutil_parse(body, n, jerr);
    if (!resp) {
        verdict_set_unscorable(out, "unparseable_response", VERDICT_RETRY_ONCE, jerr);
        return ASSAY_OK;
    }
    enum assay_err err = verdict_parse_json(r, resp, out);
    json_decref(resp);
    return err;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum assay_err verdict_combine(const struct rubric *r, const struct verdict *vs, size_t n,
                               struct verdict *out)
{
    if (!r || !out || (n && !vs))
        return ASSAY_ERR_INVALID_ARGUMENT;
    verdict_clear(out);
    verdict_set_rubric(out, r);
    double *raw = xcalloc(n ? n : 1, sizeof *raw);
    size_t scored = 0;
    int64_t latency = -1;
    for (size_t i = 0; i < n; i++) {
        out->usage.input_tokens += vs[i].usage.input_tokens;
        out->usage.output_tokens += vs[i].usage.output_tokens;
        out->usage.cache_read_input_tokens += vs[i].usage.cache_read_input_tokens;
        out->usage.cache_write_input_tokens += vs[i].usage.cache_write_input_tokens;
        if (vs[i].latency_ms >= 0)
            latency = (latency < 0 ? 0 : latency) + vs[i].latency_ms;
        if (vs[i].outcome == VERDICT_SCORED)
            raw[scored++] = vs[i].raw_score;
        if (!out->judge && vs[i].judge)
            verdict_set_judge(out, vs[i].judge);
    }
    out->latency_ms = latency;
    if (scored * 2 <= n || scored == 0) {
        char d[VERDICT_DETAIL_MAX];
        snprintf(d, sizeof d, "%zu of %zu verdicts scored; a majority is needed", scored, n);
        verdict_set_unscorable(out, "no_majority", VERDICT_RETRY_NONE, d);
        free(raw);
        return ASSAY_ERR_PARSE;
    }
    qsort(raw, scored, sizeof *raw, dbl_cmp);
    double median = scored % 2 ? raw[scored / 2] : (raw[scored / 2 - 1] + raw[scored / 2]) / 2;
    double range = r->scale.max - r->scale.min;
    out->outcome = VERDICT_SCORED;
    out->raw_score = median;
    out->score = (median - r->scale.min) / range;
    out->pass = median >= r->pass_threshold;
    out->reason = "none";
    out->n_samples = (int)scored;
    out->spread = (raw[scored - 1] - raw[0]) / range;
    /* the reasoning of the scored verdict nearest the median */
    const struct verdict *best = NULL;
    for (size_t i = 0; i < n; i++) {
        if (vs[i].outcome != VERDICT_SCORED)
            continue;
        if (!best || fabs(vs[i].raw_score - median) < fabs(best->raw_score - median))
            best = &vs[i];
    }
    if (best->reasoning)
        verdict_set_reasoning(out, best->reasoning, strlen(best->reasoning));
    snprintf(out->stop_reason, sizeof out->stop_reason, "%s", best->stop_reason);
    free(raw);
    return ASSAY_OK;
}

json_t *verdict_to_json(const struct verdict *v)
{
    json_t *o = json_object();
    json_object_set_new(o, "rubric", json_string(v->rubric));
    if (v->rubric_version[0])
        json_object_set_new(o, "rubric_version", json_string(v->rubric_version));
    if (v->judge)
        json_object_set_new(o, "judge", json_string(v->judge));
    if (v->outcome == VERDICT_SCORED) {
        json_object_set_new(o, "unscorable", json_false());
        json_object_set_new(o, "score", json_real(v->score));
        json_object_set_new(o, "raw_score", json_real(v->raw_score));
        json_object_set_new(o, "pass", json_boolean(v->pass));
        if (v->reasoning)
            json_object_set_new(o, "reasoning", json_string(v->reasoning));
        if (v->n_samples > 1) {
            json_object_set_new(o, "n_samples", json_integer(v->n_samples));
            json_object_set_new(o, "spread", json_real(v->spread));
        }
    } else {
        json_object_set_new(o, "unscorable", json_true());
        json_object_set_new(o, "reason", json_string(v->reason ? v->reason : "unknown"));
        if (v->detail[0]) {
            json_t *d = json_string(v->detail);
            json_object_set_new(o, "detail", d ? d : json_string("(detail not valid UTF-8)"));
        }
    }
    json_object_set_new(o, "latency_ms", json_integer(v->elapsed_ms));
    if (v->latency_ms >= 0)
        json_object_set_new(o, "model_latency_ms", json_integer(v->latency_ms));
    json_object_set_new(o, "attempts", json_integer(v->attempts));
    json_object_set_new(o, "input_tokens", json_integer(v->usage.input_tokens));
    json_object_set_new(o, "output_tokens", json_integer(v->usage.output_tokens));
    json_object_set_new(o, "cache_read_input_tokens",
                        json_integer(v->usage.cache_read_input_tokens));
    json_object_set_new(o, "cache_write_input_tokens",
                        json_integer(v->usage.cache_write_input_tokens));
    if (v->stop_reason[0])
        json_object_set_new(o, "stop_reason", json_string(v->stop_reason));
    return o;
}
