/*
 * emulator/bedrock: Converse. Shapes, error codes and status codes follow the
 * official client's model (@aws-sdk/client-bedrock-runtime 3.1164.0, pinned
 * in tests/sdk-check): ValidationException 400, AccessDeniedException 403,
 * ResourceNotFoundException 404, ModelTimeoutException 408,
 * ThrottlingException 429, ModelNotReadyException 429,
 * InternalServerException 500, ServiceUnavailableException 503.
 */
#include "emulator/bedrock.h"

#include "common/alloc.h"
#include "common/rng.h"
#include "emulator/judge.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_ID_MAX 2048
#define CACHE_SLOTS 4096

struct bedrock {
    struct scenario *scenario;
    pthread_mutex_t lock;
    uint64_t cached[CACHE_SLOTS]; /* hashes of cached system prefixes; 0 = free */
};

struct bedrock *bedrock_new(struct scenario *sc)
{
    struct bedrock *b = xcalloc(1, sizeof *b);
    b->scenario = sc;
    pthread_mutex_init(&b->lock, NULL);
    return b;
}

void bedrock_free(struct bedrock *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* ---- routing ---- */

static bool match(void *ctx, const struct router_request *req)
{
    (void)ctx;
    return strncmp(req->uri, "/model/", 7) == 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * Splits "/model/{id}/{operation}" (raw, query ignored): the model id
 * percent-decoded into id, the operation into op. Returns 0, or -1 when the
 * path has another form or the id is too long or badly escaped.
 */
static int parse_path(const char *uri, char *id, size_t id_size, char *op, size_t op_size)
{
    const char *seg = uri + 7;
    size_t seg_len = strcspn(seg, "/?");
    if (seg_len == 0 || seg[seg_len] != '/')
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < seg_len; i++) {
        char c = seg[i];
        if (c == '%') {
            int hi = i + 2 < seg_len ? hexval(seg[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(seg[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n + 1 >= id_size || c == '\0')
            return -1;
        id[n++] = c;
    }
    id[n] = '\0';
    const char *rest = seg + seg_len + 1;
    size_t op_len = strcspn(rest, "?");
    if (op_len == 0 || op_len >= op_size || memchr(rest, '/', op_len))
        return -1;
    memcpy(op, rest, op_len);
    op[op_len] = '\0';
    return 0;
}

/* ---- validation ---- */

struct check {
    char message[512];
};

__attribute__((format(printf, 2, 3))) static bool bad(struct check *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->message, sizeof c->message, fmt, ap);
    va_end(ap);
    return false;
}

/* One member set, and it is one of allowed; its name in *member. */
static bool union_member(struct check *c, const json_t *v, const char *where,
                         const char *const *allowed, size_t n_allowed, const char **member)
{
    if (!json_is_object(v))
        return bad(c, "Value at '%s' failed to satisfy constraint: Member must be a structure",
                   where);
    if (json_object_size(v) != 1)
        return bad(c,
                   "Value at '%s' failed to satisfy constraint: exactly one member of the "
                   "union must be set",
                   where);
    const char *key = json_object_iter_key(json_object_iter((json_t *)v));
    for (size_t i = 0; i < n_allowed; i++)
        if (strcmp(key, allowed[i]) == 0) {
            *member = allowed[i];
            return true;
        }
    return bad(c, "Value at '%s' has an unknown member '%s'", where, key);
}

static bool valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

static bool check_cache_point(struct check *c, const json_t *v, const char *where)
{
    const char *type = json_string_value(json_object_get(v, "type"));
    if (!type || strcmp(type, "default") != 0)
        return bad(c,
                   "Value at '%s.type' failed to satisfy constraint: Member must satisfy enum "
                   "value set: [default]",
                   where);
    const json_t *ttl = json_object_get(v, "ttl");
    if (ttl && (!json_is_string(ttl) || (strcmp(json_string_value(ttl), "5m") != 0 &&
                                         strcmp(json_string_value(ttl), "1h") != 0)))
        return bad(c,
                   "Value at '%s.ttl' failed to satisfy constraint: Member must satisfy enum "
                   "value set: [5m, 1h]",
                   where);
    return true;
}

static bool check_text(struct check *c, const json_t *v, const char *where)
{
    if (!json_is_string(v))
        return bad(c, "Value at '%s' failed to satisfy constraint: Member must be a string", where);
    const char *s = json_string_value(v);
    while (*s && isspace((unsigned char)*s))
        s++;
    if (!*s)
        return bad(c,
                   "The text field in the ContentBlock object at %s is blank. Add text to the "
                   "text field, and try again.",
                   where);
    return true;
}

static bool check_block(struct check *c, const json_t *block, const char *where, bool *tool_blocks)
{
    static const char *const members[] = {"text",
                                          "image",
                                          "document",
                                          "video",
                                          "audio",
                                          "toolUse",
                                          "toolResult",
                                          "guardContent",
                                          "cachePoint",
                                          "reasoningContent",
                                          "citationsContent",
                                          "searchResult"};
    const char *m;
    char sub[128];
    if (!union_member(c, block, where, members, sizeof members / sizeof *members, &m))
        return false;
    const json_t *v = json_object_get(block, m);
    snprintf(sub, sizeof sub, "%s.%s", where, m);
    if (strcmp(m, "text") == 0)
        return check_text(c, v, sub);
    if (strcmp(m, "cachePoint") == 0)
        return check_cache_point(c, v, sub);
    if (!json_is_object(v))
        return bad(c, "Value at '%s' failed to satisfy constraint: Member must be a structure",
                   sub);
    if (strcmp(m, "toolUse") == 0) {
        *tool_blocks = true;
        if (!valid_name(json_string_value(json_object_get(v, "toolUseId"))) ||
            !valid_name(json_string_value(json_object_get(v, "name"))) ||
            !json_object_get(v, "input"))
            return bad(c,
                       "Value at '%s' failed to satisfy constraint: toolUseId, name (1-64 of "
                       "[a-zA-Z0-9_-]) and input are required",
                       sub);
    } else if (strcmp(m, "toolResult") == 0) {
        *tool_blocks = true;
        const json_t *content = json_object_get(v, "content");
        if (!valid_name(json_string_value(json_object_get(v, "toolUseId"))) ||
            !json_is_array(content))
            return bad(c,
                       "Value at '%s' failed to satisfy constraint: toolUseId and content are "
                       "required",
                       sub);
    }
    return true;
}

static bool check_messages(struct check *c, const json_t *messages, bool *tool_blocks)
{
    if (!messages)
        return bad(c, "Value null at 'messages' failed to satisfy constraint: Member must not be "
                      "null");
    if (!json_is_array(messages))
        return bad(c, "Value at 'messages' failed to satisfy constraint: Member must be a list");
    if (json_array_size(messages) == 0)
        return bad(c, "A conversation must start with a user message. Try again with a "
                      "conversation that starts with a user message.");
    size_t i;
    const json_t *m;
    const char *prev = NULL;
    json_array_foreach(messages, i, m)
    {
        char where[64];
        snprintf(where, sizeof where, "messages.%zu", i + 1);
        if (!json_is_object(m))
            return bad(c, "Value at '%s' failed to satisfy constraint: Member must be a structure",
                       where);
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)m, key, v)
        {
            if (strcmp(key, "role") != 0 && strcmp(key, "content") != 0)
                return bad(c, "Value at '%s' has an unknown member '%s'", where, key);
        }
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role)
            return bad(c,
                       "Value null at '%s.role' failed to satisfy constraint: Member must not "
                       "be null",
                       where);
        if (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)
            return bad(c,
                       "Value '%.64s' at '%s.role' failed to satisfy constraint: Member must "
                       "satisfy enum value set: [user, assistant]",
                       role, where);
        if (i == 0 && strcmp(role, "user") != 0)
            return bad(c, "A conversation must start with a user message. Try again with a "
                          "conversation that starts with a user message.");
        if (prev && strcmp(prev, role) == 0)
            return bad(c, "A conversation must alternate between user and assistant roles. Make "
                          "sure the conversation alternates between user and assistant roles and "
                          "try again.");
        prev = role;
        const json_t *content = json_object_get(m, "content");
        if (!json_is_array(content))
            return bad(c,
                       "Value null at '%s.content' failed to satisfy constraint: Member must "
                       "not be null",
                       where);
        if (json_array_size(content) == 0)
            return bad(c,
                       "The content field in the Message object at %s is empty. Add a "
                       "ContentBlock object to the content field and try again.",
                       where);
        size_t k;
        const json_t *block;
        json_array_foreach(content, k, block)
        {
            char bw[96];
            snprintf(bw, sizeof bw, "%s.content.%zu", where, k + 1);
            if (!check_block(c, block, bw, tool_blocks))
                return false;
        }
    }
    return true;
}

static bool check_system(struct check *c, const json_t *system)
{
    if (!json_is_array(system))
        return bad(c, "Value at 'system' failed to satisfy constraint: Member must be a list");
    static const char *const members[] = {"text", "guardContent", "cachePoint"};
    size_t i;
    const json_t *block;
    json_array_foreach(system, i, block)
    {
        char where[64];
        const char *m;
        snprintf(where, sizeof where, "system.%zu", i + 1);
        if (!union_member(c, block, where, members, 3, &m))
            return false;
        strcat(where, strcmp(m, "text") == 0 ? ".text" : ".cachePoint");
        if (strcmp(m, "text") == 0 && !check_text(c, json_object_get(block, m), where))
            return false;
        if (strcmp(m, "cachePoint") == 0 && !check_cache_point(c, json_object_get(block, m), where))
            return false;
    }
    return true;
}

static bool check_range(struct check *c, const json_t *cfg, const char *key, double lo, double hi,
                        bool integer)
{
    const json_t *v = json_object_get(cfg, key);
    if (!v)
        return true;
    if (integer ? !json_is_integer(v) : !json_is_number(v))
        return bad(c,
                   "Value at 'inferenceConfig.%s' failed to satisfy constraint: Member must be "
                   "%s",
                   key, integer ? "an integer" : "a number");
    double x = json_number_value(v);
    if (x < lo)
        return bad(c,
                   "Value '%g' at 'inferenceConfig.%s' failed to satisfy constraint: Member "
                   "must have value greater than or equal to %g",
                   x, key, lo);
    if (x > hi)
        return bad(c,
                   "Value '%g' at 'inferenceConfig.%s' failed to satisfy constraint: Member "
                   "must have value less than or equal to %g",
                   x, key, hi);
    return true;
}

static bool check_inference(struct check *c, const json_t *cfg)
{
    if (!json_is_object(cfg))
        return bad(c, "Value at 'inferenceConfig' failed to satisfy constraint: Member must be a "
                      "structure");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)cfg, key, v)
    {
        if (strcmp(key, "maxTokens") && strcmp(key, "temperature") && strcmp(key, "topP") &&
            strcmp(key, "stopSequences"))
            return bad(c, "Value at 'inferenceConfig' has an unknown member '%s'", key);
    }
    if (!check_range(c, cfg, "maxTokens", 1, 1000000, true) ||
        !check_range(c, cfg, "temperature", 0, 1, false) ||
        !check_range(c, cfg, "topP", 0, 1, false))
        return false;
    const json_t *stops = json_object_get(cfg, "stopSequences");
    if (stops) {
        bool ok = json_is_array(stops) && json_array_size(stops) <= 2500;
        size_t i;
        json_array_foreach(stops, i, v) ok = ok && json_is_string(v) && json_string_length(v) > 0;
        if (!ok)
            return bad(c, "Value at 'inferenceConfig.stopSequences' failed to satisfy constraint: "
                          "Member must be a list of at most 2500 non-empty strings");
    }
    return true;
}

static bool check_tools(struct check *c, const json_t *tc, const char **forced)
{
    if (!json_is_object(tc))
        return bad(c, "Value at 'toolConfig' failed to satisfy constraint: Member must be a "
                      "structure");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)tc, key, v)
    {
        if (strcmp(key, "tools") && strcmp(key, "toolChoice"))
            return bad(c, "Value at 'toolConfig' has an unknown member '%s'", key);
    }
    const json_t *tools = json_object_get(tc, "tools");
    if (!json_is_array(tools) || json_array_size(tools) == 0)
        return bad(c, "Value at 'toolConfig.tools' failed to satisfy constraint: Member must "
                      "have length greater than or equal to 1");
    static const char *const members[] = {"toolSpec", "systemTool", "cachePoint"};
    size_t i;
    json_array_foreach(tools, i, v)
    {
        char where[64];
        const char *m;
        snprintf(where, sizeof where, "toolConfig.tools.%zu", i + 1);
        if (!union_member(c, v, where, members, 3, &m))
            return false;
        const json_t *spec = json_object_get(v, m);
        if (strcmp(m, "cachePoint") == 0) {
            if (!check_cache_point(c, spec, where))
                return false;
            continue;
        }
        const char *name = json_string_value(json_object_get(spec, "name"));
        if (!valid_name(name))
            return bad(c,
                       "Value at '%s.%s.name' failed to satisfy constraint: Member must "
                       "satisfy regular expression pattern: [a-zA-Z0-9_-]{1,64}",
                       where, m);
        for (size_t k = 0; k < i; k++) {
            const json_t *o = json_array_get(tools, k);
            const char *other =
                json_string_value(json_object_get(json_object_get(o, "toolSpec"), "name"));
            if (other && strcmp(other, name) == 0)
                return bad(c, "The toolConfig field contains duplicate tool names: %s", name);
        }
        if (strcmp(m, "toolSpec") != 0)
            continue;
        const json_t *desc = json_object_get(spec, "description");
        if (desc && (!json_is_string(desc) || json_string_length(desc) == 0))
            return bad(c,
                       "Value at '%s.toolSpec.description' failed to satisfy constraint: "
                       "Member must have length greater than or equal to 1",
                       where);
        const json_t *schema = json_object_get(json_object_get(spec, "inputSchema"), "json");
        if (!json_is_object(schema))
            return bad(c,
                       "Value at '%s.toolSpec.inputSchema' failed to satisfy constraint: the "
                       "json member must be a JSON schema object",
                       where);
        const char *type = json_string_value(json_object_get(schema, "type"));
        if (type && strcmp(type, "object") != 0)
            return bad(c, "The value at %s.toolSpec.inputSchema.json.type must be object", where);
    }
    const json_t *choice = json_object_get(tc, "toolChoice");
    if (choice) {
        static const char *const kinds[] = {"auto", "any", "tool"};
        const char *m;
        if (!union_member(c, choice, "toolConfig.toolChoice", kinds, 3, &m))
            return false;
        if (strcmp(m, "tool") == 0) {
            const char *name =
                json_string_value(json_object_get(json_object_get(choice, m), "name"));
            bool found = false;
            json_array_foreach(tools, i, v)
            {
                const char *n =
                    json_string_value(json_object_get(json_object_get(v, "toolSpec"), "name"));
                found = found || (n && name && strcmp(n, name) == 0);
            }
            if (!found)
                return bad(c,
                           "The tool %.64s named in toolConfig.toolChoice.tool.name is not "
                           "defined in toolConfig.tools. Add the tool and try again.",
                           name ? name : "(null)");
            *forced = "tool";
        } else if (strcmp(m, "any") == 0) {
            *forced = "any";
        }
    }
    return true;
}

static const char *const top_keys[] = {"messages",        "system",
                                       "inferenceConfig", "toolConfig",
                                       "guardrailConfig", "additionalModelRequestFields",
                                       "promptVariables", "additionalModelResponseFieldPaths",
                                       "requestMetadata", "performanceConfig",
                                       "serviceTier",     "outputConfig"};

/* Checks the body; returns true, or false with the ValidationException message. */
static bool check_request(struct check *c, const json_t *req, const char **forced)
{
    if (!json_is_object(req))
        return bad(c, "The request body must be a JSON object.");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)req, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof top_keys / sizeof *top_keys && !known; i++)
            known = strcmp(key, top_keys[i]) == 0;
        if (!known)
            return bad(c, "Unknown member '%.64s' in the Converse request.", key);
    }
    bool tool_blocks = false;
    if (!check_messages(c, json_object_get(req, "messages"), &tool_blocks))
        return false;
    if (json_object_get(req, "system") && !check_system(c, json_object_get(req, "system")))
        return false;
    if (json_object_get(req, "inferenceConfig") &&
        !check_inference(c, json_object_get(req, "inferenceConfig")))
        return false;
    const json_t *tc = json_object_get(req, "toolConfig");
    if (tc && !check_tools(c, tc, forced))
        return false;
    if (tool_blocks && !tc)
        return bad(c, "The toolConfig field must be defined when using toolUse and toolResult "
                      "content blocks.");
    return true;
}

bool bedrock_request_check(const json_t *body, char *message, size_t size, const char **forced)
{
    struct check c;
    const char *f = NULL;
    c.message[0] = '\0';
    bool ok = check_request(&c, body, &f);
    snprintf(message, size, "%s", ok ? "" : c.message);
    if (forced)
        *forced = f;
    return ok;
}

/* ---- usage ---- */

static int64_t tokens_of(size_t chars)
{
    return (int64_t)((chars + 3) / 4);
}

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

/* Returns true when key was cached already; else remembers it. */
static bool cache_seen(struct bedrock *b, uint64_t key)
{
    if (key == 0)
        key = 1;
    bool seen = false;
    pthread_mutex_lock(&b->lock);
    size_t slot = key % CACHE_SLOTS;
    for (size_t probe = 0; probe < CACHE_SLOTS; probe++) {
        size_t i = (slot + probe) % CACHE_SLOTS;
        if (b->cached[i] == key) {
            seen = true;
            break;
        }
        if (b->cached[i] == 0) {
            b->cached[i] = key;
            break;
        }
    }
    pthread_mutex_unlock(&b->lock);
    return seen;
}

static size_t text_chars(const json_t *blocks)
{
    size_t n = 0, i;
    const json_t *b;
    json_array_foreach(blocks, i, b)
    {
        const json_t *t = json_object_get(b, "text");
        if (json_is_string(t))
            n += json_string_length(t);
        else if (!json_object_get(b, "cachePoint")) {
            char *dump = json_dumps(b, JSON_COMPACT);
            n += dump ? strlen(dump) : 0;
            free(dump);
        }
    }
    return n;
}

static void usage(struct bedrock *b, const char *model, const json_t *req,
                  struct router_response *resp)
{
    size_t prefix = 0, rest = 0, i;
    uint64_t h = fnv(0xcbf29ce484222325ull, model, strlen(model));
    bool cache_point = false;
    const json_t *blk;
    json_array_foreach(json_object_get(req, "system"), i, blk)
    {
        const json_t *t = json_object_get(blk, "text");
        if (json_object_get(blk, "cachePoint")) {
            cache_point = true;
            prefix += rest;
            rest = 0;
        } else if (json_is_string(t)) {
            rest += json_string_length(t);
            h = fnv(h, json_string_value(t), json_string_length(t));
        }
    }
    if (!cache_point) {
        rest += prefix;
        prefix = 0;
    }
    json_array_foreach(json_object_get(req, "messages"), i, blk) rest +=
        text_chars(json_object_get(blk, "content"));
    const json_t *tools = json_object_get(json_object_get(req, "toolConfig"), "tools");
    if (tools) {
        char *dump = json_dumps(tools, JSON_COMPACT);
        rest += dump ? strlen(dump) : 0;
        free(dump);
    }
    resp->input_tokens = tokens_of(rest);
    if (prefix) {
        if (cache_seen(b, h))
            resp->cache_read_tokens = tokens_of(prefix);
        else
            resp->cache_write_tokens = tokens_of(prefix);
    } else if (resp->input_tokens == 0) {
        resp->input_tokens = 1;
    }
}

/* ---- answering ---- */

static void tool_use_id(uint64_t nonce, char out[31])
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    struct rng g;
    rng_seed(&g, nonce);
    memcpy(out, "tooluse_", 8);
    for (int i = 0; i < 22; i++)
        out[8 + i] = alphabet[rng_below(&g, 62)];
    out[30] = '\0';
}

static void fault_error(struct router_response *resp, enum scenario_fault f)
{
    switch (f) {
    case SCENARIO_FAULT_THROTTLE:
        snprintf(resp->fault, sizeof resp->fault, "throttle");
        router_response_error(resp, 429, "ThrottlingException",
                              "Too many requests, please wait before trying again.");
        break;
    case SCENARIO_FAULT_NOT_READY:
        snprintf(resp->fault, sizeof resp->fault, "not_ready");
        router_response_error(resp, 429, "ModelNotReadyException",
                              "The model is not ready to serve inference requests. Try again "
                              "later.");
        break;
    case SCENARIO_FAULT_INTERNAL:
        snprintf(resp->fault, sizeof resp->fault, "internal");
        router_response_error(resp, 500, "InternalServerException",
                              "The system encountered an unexpected error during processing. "
                              "Try your request again.");
        break;
    case SCENARIO_FAULT_UNAVAILABLE:
        snprintf(resp->fault, sizeof resp->fault, "unavailable");
        router_response_error(resp, 503, "ServiceUnavailableException",
                              "The service is unavailable. Try again later.");
        break;
    case SCENARIO_FAULT_TIMEOUT:
        snprintf(resp->fault, sizeof resp->fault, "timeout");
        router_response_error(resp, 408, "ModelTimeoutException",
                              "Model has timed out in processing the request. Try your request "
                              "again.");
        break;
    case SCENARIO_FAULT_NONE:
        break;
    }
}

/* Cuts text to about max_tokens tokens, at a UTF-8 boundary. */
static void cut_text(struct buf *text, int64_t max_tokens)
{
    size_t n = (size_t)max_tokens * 4;
    if (n >= text->len)
        n = text->len / 2;
    while (n > 0 && ((unsigned char)text->data[n] & 0xc0) == 0x80)
        n--;
    text->len = n;
    if (text->data)
        text->data[n] = '\0';
}

static void converse(struct bedrock *b, const char *model, const json_t *req,
                     struct router_response *resp)
{
    const struct scenario_rule *rule = scenario_rule_for(b->scenario, model);
    struct scenario_decision d;
    scenario_decide(b->scenario, model, &d);
    resp->delay_ms = d.delay_ms;
    if (d.fault != SCENARIO_FAULT_NONE) {
        fault_error(resp, d.fault);
        return;
    }
    struct judge_reply r;
    judge_reply_init(&r);
    judge_answer(req, rule->answers, &r);
    usage(b, model, req, resp);

    const json_t *max_v = json_object_get(json_object_get(req, "inferenceConfig"), "maxTokens");
    int64_t max_tokens = json_is_integer(max_v) ? (int64_t)json_integer_value(max_v) : 4096;
    const char *stop = r.tool_use ? "tool_use" : "end_turn";
    json_t *content = json_array();
    json_t *input = NULL;
    if (r.tool_use) {
        input = json_object();
        json_object_set_new(input, "reasoning", json_stringn(r.reasoning.data, r.reasoning.len));
        double score = r.score;
        if (d.malformed == SCENARIO_MALFORMED_SCORE_OUT_OF_RANGE)
            score = r.max + (r.max - r.min) + 7;
        json_object_set_new(input, "score",
                            r.integer ? json_integer((json_int_t)score) : json_real(score));
    }
    char *input_text = input ? json_dumps(input, JSON_COMPACT) : NULL;
    size_t out_chars = input_text ? strlen(input_text) : r.text.len;
    free(input_text);
    resp->output_tokens = tokens_of(out_chars) + (r.tool_use ? 12 : 0);
    if (d.max_tokens || resp->output_tokens > max_tokens) {
        /* The budget runs out: part of the text, no tool call. */
        struct buf *t = r.tool_use ? &r.reasoning : &r.text;
        cut_text(t, d.max_tokens ? max_tokens / 2 : max_tokens);
        if (t->len)
            json_array_append_new(content,
                                  json_pack("{s:s%}", "text", t->data ? t->data : "", t->len));
        stop = "max_tokens";
        resp->output_tokens = max_tokens;
        snprintf(resp->fault, sizeof resp->fault, "%s", d.max_tokens ? "max_tokens" : "");
    } else if (r.tool_use && d.malformed == SCENARIO_MALFORMED_NO_TOOL_USE) {
        json_array_append_new(content,
                              json_pack("{s:s%}", "text", buf_cstr(&r.reasoning), r.reasoning.len));
        stop = "end_turn";
    } else if (r.tool_use) {
        char id[31];
        tool_use_id(d.nonce, id);
        const char *name =
            d.malformed == SCENARIO_MALFORMED_WRONG_TOOL_NAME ? "record_score" : r.tool_name;
        json_array_append_new(content, json_pack("{s:{s:s, s:s, s:O}}", "toolUse", "toolUseId", id,
                                                 "name", name, "input", input));
    } else {
        json_array_append_new(content, json_pack("{s:s%}", "text", buf_cstr(&r.text), r.text.len));
    }
    if (d.malformed != SCENARIO_MALFORMED_NONE && r.tool_use && strcmp(stop, "max_tokens") != 0) {
        static const char *const names[] = {
            "", "no_tool_use",    "score_out_of_range", "", "truncated_json", "", "",
            "", "wrong_tool_name"};
        snprintf(resp->fault, sizeof resp->fault, "%s", names[d.malformed]);
    }
    int64_t latency = d.delay_ms > 0 ? d.delay_ms : 1;
    json_t *body = json_pack(
        "{s:{s:{s:s, s:o}}, s:s, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I}}", "output", "message",
        "role", "assistant", "content", content, "stopReason", stop, "usage", "inputTokens",
        (json_int_t)resp->input_tokens, "outputTokens", (json_int_t)resp->output_tokens,
        "totalTokens",
        (json_int_t)(resp->input_tokens + resp->output_tokens + resp->cache_read_tokens +
                     resp->cache_write_tokens),
        "cacheReadInputTokens", (json_int_t)resp->cache_read_tokens, "cacheWriteInputTokens",
        (json_int_t)resp->cache_write_tokens, "metrics", "latencyMs", (json_int_t)latency);
    char *text = json_dumps(body, JSON_COMPACT);
    size_t len = strlen(text);
    if (d.malformed == SCENARIO_MALFORMED_TRUNCATED_JSON) {
        len /= 2;
        snprintf(resp->fault, sizeof resp->fault, "truncated_json");
    }
    resp->status = 200;
    buf_append(&resp->body, text, len);
    router_response_header(resp, "Content-Type", "application/json");
    free(text);
    json_decref(body);
    json_decref(input);
    judge_reply_clear(&r);
}

static void handle(void *ctx, const struct router_request *req, struct router_response *resp)
{
    struct bedrock *b = ctx;
    char model[MODEL_ID_MAX + 1], op[64];
    json_t *body = NULL;
    snprintf(resp->operation, sizeof resp->operation, "Unknown");
    if (strcmp(req->method, "POST") != 0 ||
        parse_path(req->uri, model, sizeof model, op, sizeof op) != 0 ||
        strcmp(op, "converse") != 0) {
        router_response_error(resp, 404, "UnknownOperationException",
                              "The requested operation is not recognized by the service.");
        goto out;
    }
    snprintf(resp->operation, sizeof resp->operation, "Converse");
    snprintf(resp->model, sizeof resp->model, "%s", model);
    json_error_t jerr;
    body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) {
        router_response_error(resp, 400, "ValidationException",
                              "Malformed input request, please reformat your input and try "
                              "again.");
        goto out;
    }
    char message[512];
    const char *forced = NULL;
    if (!bedrock_request_check(body, message, sizeof message, &forced)) {
        router_response_error(resp, 400, "ValidationException", message);
        goto out;
    }
    const struct scenario_rule *rule = scenario_rule_for(b->scenario, model);
    if (rule->not_found) {
        router_response_error(resp, 404, "ResourceNotFoundException",
                              "The specified model was not found.");
        goto out;
    }
    if (rule->access_denied) {
        router_response_error(resp, 403, "AccessDeniedException",
                              "You don't have access to the model with the specified model ID.");
        goto out;
    }
    if (rule->refuse_forced_tools && forced) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "This model doesn't support the toolConfig.toolChoice.%s field. Remove "
                 "toolConfig.toolChoice.%s and try again.",
                 forced, forced);
        router_response_error(resp, 400, "ValidationException", msg);
        snprintf(resp->fault, sizeof resp->fault, "refuse_forced_tools");
        goto out;
    }
    converse(b, model, body, resp);
out:
    json_decref(body);
}

struct router_service bedrock_service(struct bedrock *b)
{
    struct router_service s = {
        .name = "bedrock", .signing_name = "bedrock", .match = match, .handle = handle, .ctx = b};
    return s;
}
