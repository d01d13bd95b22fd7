/*
 * bench/sample_parse/bench_sample_parse.c: CPU per sample of the two parsers
 * behind sample_batch_parse (server/sample_private.h), in the same run, on:
 *   bench     the ~1 KB sample bench/ingest/post.lua posts (ASCII, tags)
 *   unicode   a sample with raw UTF-8, escapes, \u and surrogate pairs,
 *             Converse messages with content blocks, context passages,
 *             rubrics and an RFC 3339 timestamp
 *   array10   a JSON array of ten bench samples
 * Each parser runs for S seconds (1) per body, in alternating rounds of
 * S/4 s; the best round is reported, as ns per sample (parse and clear; the
 * fast parser's document is not built, as on the ingest path), with the
 * stored text (sample_doc_text) timed apart.
 *
 * Usage: bench_sample_parse [--seconds S]; run through bench/sample_parse/run.
 */
#include "common/buf.h"
#include "server/sample.h"
#include "server/sample_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void bench_sample(struct buf *b, int n)
{
    buf_appendf(b,
                "{\"app\":\"bench\",\"id\":\"bench-1-%d-1700000000\","
                "\"input\":\"How do I get a refund for order 1234?\",\"output\":\"",
                n);
    for (int i = 0; i < 14; i++)
        buf_append_str(b, "The refund was issued to the original card within five days. ");
    buf_append_str(b, "\",\"model_id\":\"anthropic.claude-3-haiku-20240307-v1:0\","
                      "\"tags\":{\"team\":\"support\",\"env\":\"bench\"}}");
}

static const char unicode_body[] =
    "{\"app\":\"bench\",\"id\":\"u-1\",\"model_id\":\"anthropic.claude-3-haiku-20240307-v1:0\","
    "\"input\":[{\"role\":\"user\",\"content\":[{\"text\":\"Bonjour, o\\u00f9 est ma "
    "commande n\\u00b01234 ? \\ud83d\\ude00\"},{\"text\":\"Merci d'avance.\"}]},"
    "{\"role\":\"assistant\",\"content\":\"Votre remboursement a \xc3\xa9t\xc3\xa9 "
    "\xc3\xa9mis \xe2\x80\x94 d\xc3\xa9lai : 5 jours.\\nAutre chose ?\"},"
    "{\"role\":\"user\",\"content\":\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xa7\xe3\x82"
    "\x82\xe8\xaa\xac\xe6\x98\x8e\xe3\x81\x97\xe3\x81\xa6\xe3\x81\x8f\xe3\x81\xa0\xe3\x81\x95"
    "\xe3\x81\x84\xe3\x80\x82 \xf0\x9f\x99\x8f\"}],"
    "\"output\":\"Le remboursement de la commande \\\"1234\\\" a \xc3\xa9t\xc3\xa9 "
    "\xc3\xa9mis sur la carte d'origine.\\n\\n\xe8\xbf\x94\xe9\x87\x91\xe3\x81\xaf"
    "5\xe6\x97\xa5"
    "\xe4\xbb\xa5\xe5\x86\x85\xe3\x81\xab\xe5\x85\x83\xe3\x81\xae\xe3\x82\xab\xe3\x83\xbc\xe3"
    "\x83\x89\xe3\x81\xab\xe8\xbf\x94\xe9\x87\x91\xe3\x81\x95\xe3\x82\x8c\xe3\x81\xbe\xe3\x81"
    "\x99\xe3\x80\x82\\t\\u2014 \\ud83d\\udcb3 C:\\\\Users\\/x\","
    "\"context\":[\"Politique : remboursement sous 5 jours ouvr\xc3\xa9s.\","
    "\"\xe8\xbf\x94\xe9\x87\x91\xe3\x83\x9d\xe3\x83\xaa\xe3\x82\xb7\xe3\x83\xbc\"],"
    "\"rubrics\":[\"helpfulness\",\"faithfulness\"],\"tags\":{\"team\":\"support\","
    "\"langue\":\"fran\xc3\xa7"
    "ais\"},\"timestamp\":\"2026-11-27T01:02:03.5Z\","
    "\"feedback\":\"positive\"}";

typedef bool (*parse_fn)(const char *body, size_t len, struct sample_batch *out);

static const struct sample_parse_opts opts = {.max_batch = 1000, .now_ms = 1700000000000LL};

static bool via_jansson(const char *body, size_t len, struct sample_batch *out)
{
    struct sample_error e;
    return sample_batch_parse_jansson(body, len, SAMPLE_FORMAT_JSON, &opts, out, &e) == ASSAY_OK;
}

static bool via_fast(const char *body, size_t len, struct sample_batch *out)
{
    return sample_batch_parse_fast(body, len, SAMPLE_FORMAT_JSON, &opts, out);
}

/* ns per sample of fn on body over one round of secs; -1 when fn refuses it. */
static double round_ns(parse_fn fn, const char *body, size_t len, double secs)
{
    struct sample_batch b;
    long iters = 0;
    size_t samples = 0;
    double t0 = mono_s(), t;
    do {
        for (int i = 0; i < 64; i++) {
            if (!fn(body, len, &b))
                return -1;
            samples += b.n;
            sample_batch_clear(&b);
        }
        iters += 64;
        t = mono_s();
    } while (t - t0 < secs);
    return (t - t0) * 1e9 / (double)samples;
}

/* ns per sample of sample_doc_text over the batch fn makes of body. */
static double doc_text_ns(parse_fn fn, const char *body, size_t len, double secs)
{
    struct sample_batch b;
    if (!fn(body, len, &b))
        return -1;
    size_t n = 0;
    double t0 = mono_s(), t;
    do {
        for (int i = 0; i < 64; i++)
            for (size_t k = 0; k < b.n; k++) {
                size_t l;
                free(sample_doc_text(&b.items[k], &l));
                n++;
            }
        t = mono_s();
    } while (t - t0 < secs);
    sample_batch_clear(&b);
    return (t - t0) * 1e9 / (double)n;
}

int main(int argc, char **argv)
{
    double secs = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            secs = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_sample_parse [--seconds S]\n");
            return 2;
        }
    }
    struct buf one = BUF_INIT, arr = BUF_INIT;
    bench_sample(&one, 123);
    buf_append_char(&arr, '[');
    for (int i = 0; i < 10; i++) {
        if (i)
            buf_append_char(&arr, ',');
        bench_sample(&arr, i);
    }
    buf_append_char(&arr, ']');
    struct {
        const char *name;
        const char *body;
        size_t len;
    } bodies[] = {{"bench", one.data, one.len},
                  {"unicode", unicode_body, sizeof unicode_body - 1},
                  {"array10", arr.data, arr.len}};

    printf("%-8s %6s %12s %12s %7s %14s %14s\n", "body", "bytes", "jansson ns", "fast ns", "ratio",
           "text ns (j)", "text ns (f)");
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        double best_j = 1e18, best_f = 1e18;
        for (int r = 0; r < 4; r++) {
            double j = round_ns(via_jansson, bodies[i].body, bodies[i].len, secs / 4);
            double f = round_ns(via_fast, bodies[i].body, bodies[i].len, secs / 4);
            if (j < 0 || f < 0) {
                fprintf(stderr, "%s: a parser refused the body\n", bodies[i].name);
                return 1;
            }
            best_j = j < best_j ? j : best_j;
            best_f = f < best_f ? f : best_f;
        }
        double tj = doc_text_ns(via_jansson, bodies[i].body, bodies[i].len, secs / 4);
        double tf = doc_text_ns(via_fast, bodies[i].body, bodies[i].len, secs / 4);
        printf("%-8s %6zu %12.0f %12.0f %6.1fx %14.0f %14.0f\n", bodies[i].name, bodies[i].len,
               best_j, best_f, best_j / best_f, tj, tf);
    }
    buf_clear(&one);
    buf_clear(&arr);
    return 0;
}
