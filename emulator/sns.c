/*
 * emulator/sns: SNS Publish (query protocol) for the emulator. Called by the
 * router (emulator/router) for POST / form bodies of SNS's API version, after
 * the signature was verified: parses the form, draws the scenario's faults,
 * checks Publish's parameters, keeps the message and answers in XML.
 */
#include "emulator/sns.h"

#include "common/alloc.h"
#include "common/buf.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SNS_VERSION "2010-03-31"
#define SNS_XMLNS "http://sns.amazonaws.com/doc/2010-03-31/"
#define MAX_PARAMS 256

struct message {
    char *topic, *subject, *message, *id;
};

struct sns_emu {
    struct scenario *sc;
    char *region;
    pthread_mutex_t lock;
    struct message kept[SNS_EMU_KEEP]; /* a ring */
    size_t published;
};

struct sns_emu *sns_emu_new(struct scenario *sc, const char *region)
{
    struct sns_emu *s = xcalloc(1, sizeof *s);
    s->sc = sc;
    s->region = xstrdup(region);
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

static void message_clear(struct message *m)
{
    free(m->topic);
    free(m->subject);
    free(m->message);
    free(m->id);
    memset(m, 0, sizeof *m);
}

void sns_emu_free(struct sns_emu *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < SNS_EMU_KEEP; i++)
        message_clear(&s->kept[i]);
    pthread_mutex_destroy(&s->lock);
    free(s->region);
    free(s);
}

size_t sns_emu_published(struct sns_emu *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->published;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---- the form ---- */

struct form {
    char *names[MAX_PARAMS];
    char *values[MAX_PARAMS];
    size_t n;
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) ('+' is a space); NULL when an escape is malformed or yields NUL. */
static char *form_decode(const char *s, size_t n)
{
    char *out = xcalloc(n + 1, 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            out[k++] = (char)(hi * 16 + lo);
            i += 2;
            continue;
        }
        out[k++] = s[i] == '+' ? ' ' : s[i];
    }
    out[k] = '\0';
    return out;
}

static void form_clear(struct form *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->names[i]);
        free(f->values[i]);
    }
    f->n = 0;
}

/* Parses body into f; -1 when malformed (a bad escape, a duplicate, too many). */
static int form_parse(const char *body, size_t len, struct form *f)
{
    memset(f, 0, sizeof *f);
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && body[end] != '&')
            end++;
        if (end > i) {
            const char *eq = memchr(body + i, '=', end - i);
            size_t name_len = eq ? (size_t)(eq - (body + i)) : end - i;
            if (f->n == MAX_PARAMS)
                goto bad;
            char *name = form_decode(body + i, name_len);
            char *value = eq ? form_decode(eq + 1, (size_t)(body + end - (eq + 1))) : xstrdup("");
            if (!name || !value || !*name) {
                free(name);
                free(value);
                goto bad;
            }
            for (size_t k = 0; k < f->n; k++) {
                if (strcmp(f->names[k], name) == 0) {
                    free(name);
                    free(value);
                    goto bad;
                }
            }
            f->names[f->n] = name;
            f->values[f->n] = value;
            f->n++;
        }
        i = end + 1;
    }
    return 0;
bad:
    form_clear(f);
    return -1;
}

static const char *form_get(const struct form *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->names[i], name) == 0)
            return f->values[i];
    return NULL;
}

/* ---- answers ---- */

static void sns_error(const struct router_request *req, struct router_response *resp, int status,
                      const char *code, const char *message)
{
    resp->status = status;
    snprintf(resp->error_code, sizeof resp->error_code, "%s", code);
    router_response_header(resp, "Content-Type", "text/xml");
    buf_reset(&resp->body);
    buf_append_str(&resp->body, "<ErrorResponse xmlns=\"" SNS_XMLNS "\">\n  <Error>\n    <Type>");
    buf_append_str(&resp->body, status >= 500 ? "Receiver" : "Sender");
    buf_append_str(&resp->body, "</Type>\n    <Code>");
    buf_append_xml_escaped(&resp->body, code);
    buf_append_str(&resp->body, "</Code>\n    <Message>");
    buf_append_xml_escaped(&resp->body, message);
    buf_append_str(&resp->body, "</Message>\n  </Error>\n  <RequestId>");
    buf_append_xml_escaped(&resp->body, req->request_id);
    buf_append_str(&resp->body, "</RequestId>\n</ErrorResponse>\n");
}

static void router_error(void *ctx, const struct router_request *req, struct router_response *resp,
                         int status, const char *code, const char *message)
{
    (void)ctx;
    snprintf(resp->operation, sizeof resp->operation, "Publish");
    sns_error(req, resp, status, code, message);
}

__attribute__((format(printf, 3, 4))) static void
invalid(const struct router_request *req, struct router_response *resp, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sns_error(req, resp, 400, "InvalidParameter", msg);
}

/* ---- checks ---- */

/* arn:aws:sns:REGION:ACCOUNT(12 digits):NAME, NAME 1-256 of [A-Za-z0-9_-], ".fifo" allowed. */
static bool topic_arn_ok(const char *arn, const char *region, bool *fifo)
{
    size_t rl = strlen(region);
    if (strncmp(arn, "arn:aws:sns:", 12) != 0 || strncmp(arn + 12, region, rl) != 0 ||
        arn[12 + rl] != ':')
        return false;
    const char *p = arn + 12 + rl + 1;
    for (int i = 0; i < 12; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    if (p[12] != ':')
        return false;
    const char *name = p + 13;
    size_t n = strlen(name);
    *fifo = n > 5 && strcmp(name + n - 5, ".fifo") == 0;
    size_t body = *fifo ? n - 5 : n;
    if (body == 0 || n > 256)
        return false;
    for (size_t i = 0; i < body; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* Subject: 1-100 printable ASCII characters, no line breaks, starting with a letter, digit or
 * punctuation mark. */
static bool subject_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SNS_EMU_MAX_SUBJECT_CHARS || s[0] == ' ')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int extra = *p < 0x80         ? 0
                    : (*p >> 5) == 6  ? 1
                    : (*p >> 4) == 14 ? 2
                    : (*p >> 3) == 30 ? 3
                                      : -1;
        if (extra < 0)
            return false;
        p++;
        for (int i = 0; i < extra; i++, p++)
            if ((*p & 0xc0) != 0x80)
                return false;
    }
    return true;
}

/* Parameters Publish takes (MessageAttributes.entry.N.* checked apart). */
static const char *const known[] = {"Action",        "Version",          "TopicArn",
                                    "TargetArn",     "PhoneNumber",      "Message",
                                    "Subject",       "MessageStructure", "MessageDeduplicationId",
                                    "MessageGroupId"};

static bool attribute_param_ok(const char *name)
{
    static const char prefix[] = "MessageAttributes.entry.";
    if (strncmp(name, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *p = name + sizeof prefix - 1;
    char *end;
    long idx = strtol(p, &end, 10);
    if (end == p || idx < 1 || idx > 10 || *end != '.')
        return false;
    static const char *const tails[] = {"Name", "Value.DataType", "Value.StringValue",
                                        "Value.BinaryValue"};
    for (size_t i = 0; i < sizeof tails / sizeof *tails; i++)
        if (strcmp(end + 1, tails[i]) == 0)
            return true;
    return false;
}

static void message_id(uint64_t nonce, uint64_t seq, char out[37])
{
    uint64_t a = nonce ^ (seq * 0x9e3779b97f4a7c15ull), b = (a ^ (a >> 31)) * 0xbf58476d1ce4e5b9ull;
    snprintf(out, 37, "%08x-%04x-5%03x-9%03x-%012llx", (unsigned)(a >> 32),
             (unsigned)((a >> 16) & 0xffff), (unsigned)(a & 0xfff), (unsigned)(b >> 52),
             (unsigned long long)(b & 0xffffffffffffull));
}

static void publish(struct sns_emu *s, const struct router_request *req, const struct form *f,
                    const struct scenario_decision *d, struct router_response *resp)
{
    for (size_t i = 0; i < f->n; i++) {
        if (!utf8_ok(f->values[i]) || !utf8_ok(f->names[i])) {
            invalid(req, resp, "Invalid parameter: parameter %zu is not valid UTF-8", i + 1);
            return;
        }
        bool ok = attribute_param_ok(f->names[i]);
        for (size_t k = 0; k < sizeof known / sizeof *known && !ok; k++)
            ok = strcmp(f->names[i], known[k]) == 0;
        if (!ok) {
            char name[112];
            size_t n = strlen(f->names[i]);
            if (n > 100) /* clipped at a UTF-8 boundary */
                for (n = 100; n > 0 && ((unsigned char)f->names[i][n] & 0xc0) == 0x80; n--)
                    ;
            memcpy(name, f->names[i], n);
            name[n] = '\0';
            invalid(req, resp, "Invalid parameter: %s is not a parameter of Publish", name);
            return;
        }
    }
    const char *topic = form_get(f, "TopicArn"), *target = form_get(f, "TargetArn");
    const char *phone = form_get(f, "PhoneNumber"), *message = form_get(f, "Message");
    const char *subject = form_get(f, "Subject"), *structure = form_get(f, "MessageStructure");
    const char *group = form_get(f, "MessageGroupId");
    if (phone) {
        invalid(req, resp,
                "Invalid parameter: PhoneNumber (the emulator publishes to topics "
                "only)");
        return;
    }
    if (topic && target) {
        invalid(req, resp,
                "Invalid parameter: TopicArn or TargetArn Reason: Only one of them "
                "may be given");
        return;
    }
    const char *arn = topic ? topic : target;
    if (!arn) {
        invalid(req, resp,
                "Invalid parameter: TopicArn or TargetArn Reason: no value for "
                "required parameter");
        return;
    }
    json_object_set_new(resp->log_extra, "topic", json_string(arn));
    bool fifo = false;
    if (!topic_arn_ok(arn, s->region, &fifo)) {
        invalid(req, resp, "Invalid parameter: %s", topic ? "TopicArn" : "TargetArn");
        return;
    }
    if (!message || !*message) {
        invalid(req, resp, "Invalid parameter: Empty message");
        return;
    }
    size_t bytes = strlen(message);
    for (size_t i = 0; i < f->n; i++)
        if (strncmp(f->names[i], "MessageAttributes.", 18) == 0)
            bytes += strlen(f->values[i]);
    if (bytes > SNS_EMU_MAX_MESSAGE_BYTES) {
        invalid(req, resp, "Invalid parameter: Message too long");
        return;
    }
    if (subject && !subject_ok(subject)) {
        invalid(req, resp, "Invalid parameter: Subject");
        return;
    }
    if (structure) {
        json_t *doc = json_loads(message, 0, NULL);
        bool ok = strcmp(structure, "json") == 0 && json_is_object(doc) &&
                  json_is_string(json_object_get(doc, "default"));
        json_decref(doc);
        if (!ok) {
            invalid(req, resp,
                    "Invalid parameter: Message Structure - JSON message body failed to parse "
                    "or has no \"default\" entry");
            return;
        }
    }
    if (fifo && !group) {
        invalid(req, resp,
                "Invalid parameter: The MessageGroupId parameter is required for FIFO "
                "topics");
        return;
    }
    char id[37];
    message_id(d->nonce, req->seq, id);
    pthread_mutex_lock(&s->lock);
    struct message *m = &s->kept[s->published % SNS_EMU_KEEP];
    message_clear(m);
    m->topic = xstrdup(arn);
    m->subject = subject ? xstrdup(subject) : NULL;
    m->message = xstrdup(message);
    m->id = xstrdup(id);
    s->published++;
    pthread_mutex_unlock(&s->lock);
    json_object_set_new(resp->log_extra, "subject", json_string(subject ? subject : ""));
    json_object_set_new(resp->log_extra, "message_length", json_integer((json_int_t)bytes));
    json_object_set_new(resp->log_extra, "message_id", json_string(id));

    router_response_header(resp, "Content-Type", "text/xml");
    buf_append_str(&resp->body, "<PublishResponse xmlns=\"" SNS_XMLNS "\">\n  <PublishResult>\n"
                                "    <MessageId>");
    buf_append_str(&resp->body, id);
    buf_append_str(&resp->body, "</MessageId>\n");
    if (fifo)
        buf_appendf(&resp->body, "    <SequenceNumber>%020llu</SequenceNumber>\n",
                    (unsigned long long)(10000000000000000000ull / 2 + req->seq));
    buf_append_str(&resp->body, "  </PublishResult>\n  <ResponseMetadata>\n    <RequestId>");
    buf_append_str(&resp->body, req->request_id);
    buf_append_str(&resp->body, "</RequestId>\n  </ResponseMetadata>\n</PublishResponse>\n");
}

static bool match(void *ctx, const struct router_request *req)
{
    (void)ctx;
    const char *type = router_request_header(req, "Content-Type");
    if (strcmp(req->method, "POST") != 0 || strcmp(req->uri, "/") != 0 ||
        router_request_header(req, "X-Amz-Target") || !type ||
        strncasecmp(type, "application/x-www-form-urlencoded", 33) != 0)
        return false;
    /* Version=2010-03-31 among the parameters: SNS's API, not CloudWatch's query API. */
    static const char needle[] = "Version=" SNS_VERSION;
    const char *b = req->body;
    size_t n = req->body_len, k = sizeof needle - 1;
    for (size_t i = 0; i + k <= n; i++)
        if ((i == 0 || b[i - 1] == '&') && memcmp(b + i, needle, k) == 0 &&
            (i + k == n || b[i + k] == '&'))
            return true;
    return false;
}

static void handle(void *ctx, const struct router_request *req, struct router_response *resp)
{
    struct sns_emu *s = ctx;
    struct form f;
    resp->log_extra = json_object();
    if (form_parse(req->body, req->body_len, &f) != 0) {
        snprintf(resp->operation, sizeof resp->operation, "Unknown");
        sns_error(req, resp, 400, "MalformedQueryString", "The request's form body is malformed.");
        return;
    }
    const char *action = form_get(&f, "Action");
    snprintf(resp->operation, sizeof resp->operation, "%s",
             action && strcmp(action, "Publish") == 0 ? "Publish" : "Unknown");
    if (!action || strcmp(action, "Publish") != 0) {
        sns_error(req, resp, 400, "InvalidAction",
                  "The action is not valid for this endpoint (the emulator serves Publish).");
        goto out;
    }
    struct scenario_decision d;
    scenario_service_decide(s->sc, "sns", &d);
    resp->delay_ms = d.delay_ms;
    switch (d.fault) {
    case SCENARIO_FAULT_THROTTLE:
        snprintf(resp->fault, sizeof resp->fault, "throttle");
        sns_error(req, resp, 429, "Throttled", "Rate exceeded");
        goto out;
    case SCENARIO_FAULT_INTERNAL:
        snprintf(resp->fault, sizeof resp->fault, "internal");
        sns_error(req, resp, 500, "InternalError", "Internal error.");
        goto out;
    case SCENARIO_FAULT_UNAVAILABLE:
    case SCENARIO_FAULT_OUTAGE:
        snprintf(resp->fault, sizeof resp->fault, "%s",
                 d.fault == SCENARIO_FAULT_OUTAGE ? "outage" : "unavailable");
        sns_error(req, resp, 503, "ServiceUnavailable", "Service unavailable.");
        goto out;
    default:
        break;
    }
    publish(s, req, &f, &d, resp);
out:
    form_clear(&f);
}

struct router_service sns_emu_service(struct sns_emu *s)
{
    struct router_service r = {.name = "sns",
                               .signing_name = "sns",
                               .match = match,
                               .handle = handle,
                               .error = router_error,
                               .ctx = s};
    return r;
}
