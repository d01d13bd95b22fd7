/*
 * Unit tests for server/sample_fast: the fast parser against the jansson
 * parser (sample_private.h). Every body of the table goes through both; when
 * the fast parser accepts, the jansson parser must accept the same samples
 * (tests/support/sample_diff.h); each case also says whether the fast parser
 * must take the body (the shapes it exists for) or must give up (errors, and
 * the shapes it leaves to jansson). sample_batch_parse must answer as the
 * jansson parser does, error text included.
 */
#include "server/sample.h"
#include "server/sample_private.h"
#include "tests/support/sample_diff.h"
#include "tests/unit/test.h"

#include "common/buf.h"

enum want { FAST, SLOW, EITHER };

struct diff_case {
    enum want want;
    char fmt;         /* 'j' JSON, 'n' NDJSON */
    bool header;      /* an X-Amzn-Trace-Id header */
    const char *body; /* ' stands for " (write \u0027 for a quote in the text) */
    size_t len;       /* 0: strlen(body) */
};

static int known(void *ctx, const char *name)
{
    (void)ctx;
    return strcmp(name, "helpfulness") == 0 || strcmp(name, "faithfulness") == 0;
}

#define HEADER_TRACE "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8"

static struct sample_parse_opts opts_for(bool header)
{
    struct sample_parse_opts o = {.max_batch = 3,
                                  .now_ms = 1700000000000,
                                  .header_trace_id = header ? HEADER_TRACE : NULL,
                                  .rubric_known = known};
    return o;
}

/* ' to ", in a new string. */
static char *unquote(const char *s, size_t n)
{
    char *t = malloc(n + 1);
    REQUIRE(t != NULL);
    for (size_t i = 0; i < n; i++)
        t[i] = s[i] == '\'' ? '"' : s[i];
    t[n] = '\0';
    return t;
}

/*
 * Runs one body (already unquoted) through both parsers and
 * sample_batch_parse; false on a failure.
 */
static bool run_body(const char *body, size_t n, enum sample_format fmt,
                     const struct sample_parse_opts *op, enum want want, size_t i)
{
    struct sample_parse_opts o = *op;
    struct sample_batch slow, fast, pub;
    struct sample_error es, ep;
    bool good = true;
    enum assay_err err = sample_batch_parse_jansson(body, n, fmt, &o, &slow, &es);
    bool took = sample_batch_parse_fast(body, n, fmt, &o, &fast);
    if (took && err != ASSAY_OK) {
        fprintf(stderr, "case %zu: fast accepted what jansson refuses (%s): %.200s\n", i,
                es.message, body);
        good = false;
    }
    if (!took && (fast.n != 0 || fast.items != NULL)) {
        fprintf(stderr, "case %zu: gave up but left samples\n", i);
        good = false;
    }
    if (took && err == ASSAY_OK) {
        size_t at;
        const char *why = sample_batch_diff(&slow, &fast, &at);
        if (why) {
            fprintf(stderr, "case %zu: sample %zu differs in %s: %.200s\n", i, at, why, body);
            good = false;
        }
    }
    if ((want == FAST && !took) || (want == SLOW && took)) {
        fprintf(stderr, "case %zu: fast parser %s: %.200s\n", i, took ? "took it" : "gave up",
                body);
        good = false;
    }
    /* The public entry point answers as the jansson parser does. */
    enum assay_err perr = sample_batch_parse(body, n, fmt, &o, &pub, &ep);
    if (perr != err || ep.code != es.code || ep.index != es.index ||
        strcmp(ep.field, es.field) != 0 || strcmp(ep.message, es.message) != 0) {
        fprintf(stderr,
                "case %zu: sample_batch_parse said %d %ld '%s' '%s', jansson %d %ld '%s' '%s'\n", i,
                (int)perr, ep.index, ep.field, ep.message, (int)err, es.index, es.field,
                es.message);
        good = false;
    }
    if (perr == ASSAY_OK && err == ASSAY_OK) {
        size_t at;
        if (sample_batch_diff(&slow, &pub, &at)) {
            fprintf(stderr, "case %zu: sample_batch_parse differs at %zu\n", i, at);
            good = false;
        }
    }
    sample_batch_clear(&slow);
    sample_batch_clear(&fast);
    sample_batch_clear(&pub);
    return good;
}

static bool run_case(const struct diff_case *c, size_t i)
{
    size_t n = c->len ? c->len : strlen(c->body);
    char *body = unquote(c->body, n);
    struct sample_parse_opts o = opts_for(c->header);
    bool good = run_body(body, n, c->fmt == 'n' ? SAMPLE_FORMAT_NDJSON : SAMPLE_FORMAT_JSON, &o,
                         c->want, i);
    free(body);
    return good;
}

static void run_table(const struct diff_case *cases, size_t n)
{
    size_t failed = 0;
    for (size_t i = 0; i < n; i++)
        failed += !run_case(&cases[i], i);
    CHECK_INT_EQ(failed, 0);
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
/* A body holding a NUL byte: its length from the literal. */
#define BIN(lit) lit, sizeof(lit) - 1

/* Every member, each of its types, null for each optional one. */
TEST_CASE(diff_fields)
{
    static const struct diff_case cases[] = {
        {FAST, 'j', 0, "{'app':'a','output':'o'}", 0},
        {FAST, 'j', 1, "{'app':'a','output':'o'}", 0},
        {FAST, 'j', 0,
         "{'app':'a.b-c_9','output':'out','input':'in','context':['p1','p2'],'reference':'ref',"
         "'model_id':'anthropic.claude-3-haiku-20240307-v1:0','id':'req:42.a_b-c',"
         "'rubrics':['helpfulness','faithfulness'],'tags':{'team':'x','env':'prod'},"
         "'trace_id':'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;"
         "Sampled=1','timestamp':'2026-11-27T01:02:03.5Z','feedback':'negative','force':true}",
         0},
        {FAST, 'j', 1,
         "{'force':false,'feedback':'positive','timestamp':1700000000001,'tags':{},"
         "'id':'x','model_id':'m','reference':'','context':'c','input':'','output':'','app':'A'}",
         0},
        {FAST, 'j', 1,
         "{'app':'a','output':'o','input':null,'context':null,'reference':null,'model_id':null,"
         "'rubrics':null,'tags':null,'feedback':null,'force':null}",
         0},
        {FAST, 'j', 0, "{'app':'a','output':'o','id':null}", 0},
        {FAST, 'j', 1, "{'app':'a','output':'o','trace_id':null}", 0},
        {FAST, 'j', 0, "{'app':'a','output':'o','trace_id':null}", 0},
        {FAST, 'j', 0, "{'app':'a','output':'o','timestamp':null}", 0},
        {FAST, 'j', 1, "{'app':'a','output':'o','trace_id':'1-5759e988-bd862e3fe1be46a994272793'}",
         0},
        {FAST, 'j', 0, "{'app':'a','output':'o','timestamp':0}", 0},
        {FAST, 'j', 0, "{'app':'a','output':'o','timestamp':253402300799999}", 0},
        {FAST, 'j', 0, "{'app':'a','output':'o','timestamp':'2026-11-27T01:02:03+02:00'}", 0},
        {FAST, 'j', 0, "{'app':'a','output':'o','context':[]}", 0},
        {FAST, 'j', 0, "{'app':'a','output':'o','context':['','x','']}", 0},
        {FAST, 'j', 0, "{'app':'a','output':'o','context':''}", 0},
        {FAST, 'j', 0, "{'app':'a','output':'o','rubrics':['faithfulness']}", 0},
        {FAST, 'j', 0,
         "{'app':'a','output':'o','tags':{'k1':'','k2':'v','\xc3\xa9t\xc3\xa9':'\xe2\x82\xac'}}",
         0},
        {FAST, 'j', 0,
         "{'app':'a','output':'o','tags':{'a':'1','b':'2','c':'3','d':'4','e':'5',"
         "'f':'6','g':'7','h':'8','i':'9','j':'10','k':'11','l':'12','m':'13',"
         "'n':'14','o':'15','p':'16'}}",
         0},
        {FAST, 'j', 0,
         "{'app':'a','output':'o','id':'" /* 128 characters */
         "0123456789012345678901234567890123456789012345678901234567890123"
         "0123456789012345678901234567890123456789012345678901234567890123'}",
         0},
        /* refusals: every one leaves the body to jansson */
        {SLOW, 'j', 0, "{'output':'o'}", 0},
        {SLOW, 'j', 0, "{'app':'a'}", 0},
        {SLOW, 'j', 0, "{}", 0},
        {SLOW, 'j', 0, "{'app':null,'output':'o'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':null}", 0},
        {SLOW, 'j', 0, "{'app':7,'output':'o'}", 0},
        {SLOW, 'j', 0, "{'app':'','output':'o'}", 0},
        {SLOW, 'j', 0, "{'app':'a b','output':'o'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':5}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','refrence':'x'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','_pii':{}}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','input':5}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','input':true}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','context':[1]}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','context':[null]}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','context':{}}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','reference':1}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','model_id':''}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','model_id':'a b'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','id':''}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','id':'a/b'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','id':7}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','rubrics':[]}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','rubrics':['nope']}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','rubrics':['helpfulness','helpfulness']}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','rubrics':'helpfulness'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','rubrics':[null]}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','tags':[]}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','tags':{'':'v'}}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','tags':{'k':1}}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','tags':{'k':null}}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','tags':{'k':'v','k':'w'}}", 0},
        {SLOW, 'j', 0,
         "{'app':'a','output':'o','tags':{'a':'1','b':'2','c':'3','d':'4','e':'5',"
         "'f':'6','g':'7','h':'8','i':'9','j':'10','k':'11','l':'12','m':'13',"
         "'n':'14','o':'15','p':'16','q':'17'}}",
         0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','trace_id':'nope'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','trace_id':''}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','timestamp':-1}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','timestamp':253402300800000}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','timestamp':9223372036854775808}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','timestamp':1700000000000.0}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','timestamp':17e11}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','timestamp':01}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','timestamp':'yesterday'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','timestamp':true}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','feedback':'meh'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','feedback':1}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','force':'yes'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','force':1}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','app':'b'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','force':true,'force':false}", 0},
        /* accepted by jansson, left to it: -0, an escaped key, an escaped role */
        {SLOW, 'j', 0, "{'app':'a','output':'o','timestamp':-0}", 0},
        {SLOW, 'j', 0, "{'\\u0061pp':'a','output':'o'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','feedback':'positiv\\u0065'}", 0},
    };
    run_table(cases, N_OF(cases));
}

/* input as messages: content strings, blocks, order of members. */
TEST_CASE(diff_messages)
{
    static const struct diff_case cases[] = {
        {FAST, 'j', 0,
         "{'app':'a','output':'o','input':[{'role':'user','content':'hi'},"
         "{'role':'assistant','content':'hello'},{'role':'user','content':'bye'}]}",
         0},
        {FAST, 'j', 0,
         "{'app':'a','output':'o','input':[{'content':[{'text':'t1'},{},{'text':''}],"
         "'role':'assistant'}]}",
         0},
        {FAST, 'j', 0, "{'app':'a','output':'o','input':[{'role':'user','content':[]}]}", 0},
        {FAST, 'j', 0, "{'app':'a','output':'o','input':[{'role':'user','content':''}]}", 0},
        {FAST, 'j', 0,
         "{'app':'a','output':'o','input':[ { 'role' : 'user' , 'content' : [ { 'text' : "
         "'a\\nb' } , { 'text' : '\\u00e9' } ] } ] }",
         0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','input':[]}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','input':['hi']}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','input':[{'role':'system','content':'x'}]}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','input':[{'content':'x'}]}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','input':[{'role':'user'}]}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','input':[{'role':'user','content':null}]}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','input':[{'role':'user','content':5}]}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','input':[{'role':'user','content':['x']}]}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','input':[{'role':'user','content':[{'text':5}]}]}",
         0},
        {SLOW, 'j', 0,
         "{'app':'a','output':'o','input':[{'role':'user','content':[{'text':null}]}]}", 0},
        {SLOW, 'j', 0,
         "{'app':'a','output':'o','input':[{'role':'user','role':'user','content':'x'}]}", 0},
        {SLOW, 'j', 0,
         "{'app':'a','output':'o','input':[{'role':'user','content':[{'text':'a','text':'b'}]}]}",
         0},
        /* valid, left to jansson: other members of a message or block */
        {SLOW, 'j', 0,
         "{'app':'a','output':'o','input':[{'role':'user','content':'x','name':'n'}]}", 0},
        {SLOW, 'j', 0,
         "{'app':'a','output':'o','input':[{'role':'user','content':[{'image':{'format':'png'}},"
         "{'text':'x'}]}]}",
         0},
        {SLOW, 'j', 0,
         "{'app':'a','output':'o','input':[{'role':'user','content':[{'text':'x','cache':1}]}]}",
         0},
    };
    run_table(cases, N_OF(cases));
}

/* Escapes, raw UTF-8 and what jansson refuses of them. */
TEST_CASE(diff_strings)
{
    static const struct diff_case cases[] = {
        {FAST, 'j', 0, "{'app':'a','output':'\\u0027\\\\\\/\\b\\f\\n\\r\\t'}", 0},
        {FAST, 'j', 0, "{'app':'a','output':'\\u00e9\\u00E9\\u20ac\\uFFFF\\u0001\\u007f'}", 0},
        {FAST, 'j', 0, "{'app':'a','output':'\\ud83d\\ude00 \\uD83D\\uDE00 \\udbff\\udfff'}", 0},
        {FAST, 'j', 0,
         "{'app':'a','output':'\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf "
         "\xef\xbf\xbf \xc2\x80 \xe0\xa0\x80 \xf0\x90\x80\x80 \xed\x9f\xbf \xee\x80\x80'}",
         0},
        {FAST, 'j', 0, "{'app':'a','output':'\x7f~ '}", 0},
        {FAST, 'j', 0, "{'app':'a','output':'0123456789abcdef\\n0123456789abcdef\xc3\xa9x'}", 0},
        {FAST, 'j', 0,
         "{'app':'a','output':'o','input':'\\ud83d\\ude00\xe2\x82\xac','context':['\\t','\xc3\xa9']"
         ","
         "'reference':'\\u0022q\\u0022','model_id':'m\\u0021'}",
         0},
        {SLOW, 'j', 0, "{'app':'a','output':'\\u0000'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'\\ud800'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'\\ud800x'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'\\ud800\\u0041'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'\\ud800\\ud800'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'\\udc00'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'\\u12'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'\\u12g4'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'\\x'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'\\U00e9'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'\\'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'a\tb'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'a\nb'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'a\x01'}", 0},
        {SLOW, 'j', 0, BIN("{'app':'a','output':'a\x00'}")},
        {SLOW, 'j', 0, "{'app':'a','output':'\xc0\xa9'}", 0},         /* overlong */
        {SLOW, 'j', 0, "{'app':'a','output':'\xc1\xbf'}", 0},         /* overlong */
        {SLOW, 'j', 0, "{'app':'a','output':'\xe0\x80\xaf'}", 0},     /* overlong */
        {SLOW, 'j', 0, "{'app':'a','output':'\xf0\x80\x80\xaf'}", 0}, /* overlong */
        {SLOW, 'j', 0, "{'app':'a','output':'\xed\xa0\x80'}", 0},     /* surrogate D800 */
        {SLOW, 'j', 0, "{'app':'a','output':'\xed\xbf\xbf'}", 0},     /* surrogate DFFF */
        {SLOW, 'j', 0, "{'app':'a','output':'\xf4\x90\x80\x80'}", 0}, /* > U+10FFFF */
        {SLOW, 'j', 0, "{'app':'a','output':'\xf5\x80\x80\x80'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'\xff'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'\x80'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'\xc3'}", 0},     /* truncated */
        {SLOW, 'j', 0, "{'app':'a','output':'\xe2\x82'}", 0}, /* truncated */
        {SLOW, 'j', 0, "{'app':'a','output':'\xe2\x82\x41'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o'}\xc3", 0},
        {SLOW, 'j', 0, "\xef\xbb\xbf{'app':'a','output':'o'}", 0}, /* a byte order mark */
        {SLOW, 'j', 0, "{'app':'a','output':'o','tags':{'k\\u0000':'v'}}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','tags':{'\\ud800':'v'}}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','input':'\\u0000'}", 0},
        /* a tag key escaped two ways is one key: a duplicate */
        {SLOW, 'j', 0, "{'app':'a','output':'o','tags':{'k':'v','\\u006b':'w'}}", 0},
        {FAST, 'j', 0, "{'app':'a','output':'o','tags':{'k':'v','\\u006bk':'w'}}", 0},
    };
    run_table(cases, N_OF(cases));
}

/* The three body shapes, whitespace, limits, trailing bytes. */
TEST_CASE(diff_shapes)
{
    static const struct diff_case cases[] = {
        {FAST, 'j', 0, " \t\r\n{ 'app' : 'a' ,\n'output'\t:\r'o' }\n\t ", 0},
        {FAST, 'j', 1, "[{'app':'a','output':'o'}]", 0},
        {FAST, 'j', 1, " [ {'app':'a','output':'o','id':'1'} ,\n{'app':'b','output':'p'} ] ", 0},
        {FAST, 'j', 0,
         "[{'app':'a','output':'o'},{'app':'a','output':'o','timestamp':'2026-11-27T01:02:03Z'},"
         "{'app':'a','output':'o','id':null}]",
         0},
        {SLOW, 'j', 0,
         "[{'app':'a','output':'o'},{'app':'a','output':'o'},{'app':'a','output':'o'},"
         "{'app':'a','output':'o'}]",
         0},
        {SLOW, 'j', 0, "[]", 0},
        {SLOW, 'j', 0, "[{'app':'a','output':'o'},]", 0},
        {SLOW, 'j', 0, "[{'app':'a','output':'o'},7]", 0},
        {SLOW, 'j', 0, "[{'app':'a','output':'o'} {'app':'a','output':'o'}]", 0},
        {SLOW, 'j', 0, "[[{'app':'a','output':'o'}]]", 0},
        {SLOW, 'j', 0, "[{'app':'a','output':'o'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o'} {}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o'}x", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o'},", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o'}\x0b", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o'}\xa0", 0},
        {SLOW, 'j', 0, BIN("{'app':'a','output':'o'}\x00")},
        {SLOW, 'j', 0, "{'app':'a','output':'o',}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o'", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o", 0},
        {SLOW, 'j', 0, "{'app':'a' 'output':'o'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output' 'o'}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','force':tru}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','force':truex}", 0},
        {SLOW, 'j', 0, "{'app':'a','output':'o','force':nul}", 0},
        {SLOW, 'j', 0, "{app:'a','output':'o'}", 0},
        {SLOW, 'j', 0, "'x'", 0},
        {SLOW, 'j', 0, "7", 0},
        {SLOW, 'j', 0, "null", 0},
        {SLOW, 'j', 0, "", 0},
        {SLOW, 'j', 0, "  ", 0},
        /* NDJSON */
        {FAST, 'n', 1, "{'app':'a','output':'1'}\r\n\n  \n{'app':'a','output':'2'}", 0},
        {FAST, 'n', 0, "\n\t{'app':'a','output':'1'} \t\r\n{'app':'b','output':'2','id':'x'}\n\n",
         0},
        {FAST, 'n', 0,
         "{'app':'a','output':'1'}\n{'app':'a','output':'2'}\n{'app':'a','output':'3'}\n", 0},
        {FAST, 'n', 0, "{'app':'a','output':'1','id':null}\n{'app':'a','output':'2','timestamp':5}",
         0},
        {SLOW, 'n', 0,
         "{'app':'a','output':'1'}\n{'app':'a','output':'2'}\n{'app':'a','output':'3'}\n"
         "{'app':'a','output':'4'}",
         0},
        {SLOW, 'n', 0, "{'app':'a','output':'1'}\n{'app':'a'}\n", 0},
        {SLOW, 'n', 0, "{'app':'a','output':'1'}\n{oops\n", 0},
        {SLOW, 'n', 0, "\n\n", 0},
        {SLOW, 'n', 0, "", 0},
        {SLOW, 'n', 0, "[{'app':'a','output':'1'}]", 0},
        {SLOW, 'n', 0, "{'app':'a','output':'1'} {'app':'a','output':'2'}", 0},
        {SLOW, 'n', 0, "{'app':'a','output':'1'}\r{'app':'a','output':'2'}", 0},
        {SLOW, 'n', 0, "{'app':'a',\n'output':'1'}", 0},
        {SLOW, 'n', 0, "{'app':'a','output':'1'}x\n", 0},
        {SLOW, 'n', 0, "'x'\n", 0},
    };
    run_table(cases, N_OF(cases));
}

/* The sample bench/ingest posts, as its post.lua builds it. */
static char *bench_body(void)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, "{\"app\":\"bench\",\"id\":\"bench-1-123-1700000000\","
                       "\"input\":\"How do I get a refund for order 1234?\",\"output\":\"");
    for (int i = 0; i < 14; i++)
        buf_append_str(&b, "The refund was issued to the original card within five days. ");
    buf_append_str(&b, "\",\"model_id\":\"anthropic.claude-3-haiku-20240307-v1:0\","
                       "\"tags\":{\"team\":\"support\",\"env\":\"bench\"}}");
    return buf_detach(&b, NULL);
}

/* The speed-up cannot disappear in silence: the bench sample takes the fast parser. */
TEST_CASE(bench_sample_takes_fast_path)
{
    char *body = bench_body();
    struct sample_parse_opts o = opts_for(false);
    struct sample_batch b, slow;
    struct sample_error e;
    REQUIRE_INT_EQ(sample_batch_parse(body, strlen(body), SAMPLE_FORMAT_JSON, &o, &b, &e),
                   ASSAY_OK);
    REQUIRE_INT_EQ(b.n, 1);
    CHECK(sample_is_fast(&b.items[0]));
    CHECK(b.items[0].doc == NULL); /* not built until asked for */
    REQUIRE_INT_EQ(
        sample_batch_parse_jansson(body, strlen(body), SAMPLE_FORMAT_JSON, &o, &slow, &e),
        ASSAY_OK);
    CHECK(!sample_is_fast(&slow.items[0]));
    size_t at;
    const char *why = sample_batch_diff(&slow, &b, &at);
    if (why)
        test_fail_str(__FILE__, __LINE__, "differs in", why, "nothing");
    sample_batch_clear(&b);
    sample_batch_clear(&slow);
    free(body);
}

/*
 * A sample of the fast parser owns its text: its document can be built after
 * the body is gone, and is the normalised one.
 */
TEST_CASE(lazy_doc_outlives_body)
{
    const char *q = "[{'app':'a','output':'\\u00e9','timestamp':null,'trace_id':null}]";
    char *body = unquote(q, strlen(q));
    struct sample_parse_opts o = opts_for(true);
    struct sample_batch b;
    REQUIRE(sample_batch_parse_fast(body, strlen(body), SAMPLE_FORMAT_JSON, &o, &b));
    memset(body, 'x', strlen(body));
    free(body);
    struct sample *s = &b.items[0];
    CHECK(s->raw == NULL);
    size_t len;
    char *text = sample_doc_text(s, &len);
    char want[256];
    snprintf(want, sizeof want,
             "{\"app\":\"a\",\"output\":\"\xc3\xa9\",\"timestamp\":1700000000000,"
             "\"trace_id\":\"%s\",\"id\":\"%s\"}",
             HEADER_TRACE, s->id);
    CHECK_STR_EQ(text, want);
    free(text);
    json_t *doc = sample_doc(s);
    REQUIRE(doc != NULL);
    CHECK(sample_doc(s) == doc); /* built once */
    CHECK_STR_EQ(json_string_value(json_object_get(doc, "trace_id")), HEADER_TRACE);
    CHECK_INT_EQ(json_integer_value(json_object_get(doc, "timestamp")), 1700000000000);
    sample_batch_clear(&b);
}

/* n copies of unit. */
static void repeat(struct buf *b, const char *unit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf_append_str(b, unit);
}

/* One generated body: pre, n units, post. */
static bool gen_case(enum want want, const char *pre, const char *unit, size_t n, const char *post,
                     const struct sample_parse_opts *o, size_t i)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, pre);
    repeat(&b, unit, n);
    buf_append_str(&b, post);
    bool good = run_body(b.data, b.len, SAMPLE_FORMAT_JSON, o, want, i);
    buf_clear(&b);
    return good;
}

/* Each limit at its value and one past it; characters, not bytes, where sample.h says so. */
TEST_CASE(diff_limits)
{
    struct sample_parse_opts o = opts_for(false), any = o;
    any.rubric_known = NULL;
    any.max_batch = 0; /* the default, 1000 */
    const char *e = "\xc3\xa9", *u = "\\u00e9";
    size_t failed = 0, i = 1000;
    for (size_t over = 0; over < 2; over++) {
        enum want w = over ? SLOW : FAST;
        failed += !gen_case(w, "{\"app\":\"", "a", 64 + over, "\",\"output\":\"o\"}", &o, i++);
        failed += !gen_case(w, "{\"app\":\"a\",\"output\":\"o\",\"id\":\"", "i", 128 + over, "\"}",
                            &o, i++);
        failed += !gen_case(w, "{\"app\":\"a\",\"output\":\"o\",\"model_id\":\"", "m", 256 + over,
                            "\"}", &o, i++);
        failed += !gen_case(w, "{\"app\":\"a\",\"output\":\"o\",\"tags\":{\"", e, 64 + over,
                            "\":\"v\"}}", &o, i++);
        failed += !gen_case(w, "{\"app\":\"a\",\"output\":\"o\",\"tags\":{\"", u, 64 + over,
                            "\":\"v\"}}", &o, i++);
        failed += !gen_case(w, "{\"app\":\"a\",\"output\":\"o\",\"tags\":{\"k\":\"", e, 256 + over,
                            "\"}}", &o, i++);
        failed += !gen_case(w, "{\"app\":\"a\",\"output\":\"o\",\"rubrics\":[\"", "r", 64 + over,
                            "\"]}", &any, i++);
        failed += !gen_case(w, "{\"app\":\"a\",\"output\":\"o\",\"input\":[",
                            "{\"role\":\"user\",\"content\":\"x\"},", 999 + over,
                            "{\"role\":\"user\",\"content\":\"x\"}]}", &o, i++);
        failed += !gen_case(w,
                            "{\"app\":\"a\",\"output\":\"o\",\"trace_id\":\"Root=1-"
                            "5759e988-bd862e3fe1be46a994272793;P=",
                            "x", 256 - 43 + over, "\"}", &o, i++);
        failed += !gen_case(w, "[", "{\"app\":\"a\",\"output\":\"o\"},", 999 + over,
                            "{\"app\":\"a\",\"output\":\"o\"}]", &any, i++);
    }
    /* 32 distinct rubrics, then 33 */
    struct buf b = BUF_INIT;
    for (int n = 32; n <= 33; n++) {
        buf_reset(&b);
        buf_append_str(&b, "{\"app\":\"a\",\"output\":\"o\",\"rubrics\":[\"r0\"");
        for (int r = 1; r < n; r++)
            buf_appendf(&b, ",\"r%d\"", r);
        buf_append_str(&b, "]}");
        failed += !run_body(b.data, b.len, SAMPLE_FORMAT_JSON, &any, n == 32 ? FAST : SLOW, i++);
    }
    buf_clear(&b);
    CHECK_INT_EQ(failed, 0);
}
