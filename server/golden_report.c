/*
 * server/golden_report: Markdown and HTML (inline SVG) reports of a
 * golden-set run (see golden_report.h).
 */
#include "server/golden_report.h"

#include "common/alloc.h"
#include "common/jsonutil.h"
#include "server/store.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHART_W 640
#define CHART_H 220
#define CHART_PAD 40

json_t *golden_report_history(struct store *store, const json_t *summary)
{
    json_t *chain = json_array();
    json_array_append(chain, (json_t *)summary);
    const char *prev = jsonutil_str(summary, "baseline_run_id");
    char *id = prev ? xstrdup(prev) : NULL;
    while (id && json_array_size(chain) < GOLDEN_REPORT_HISTORY_MAX) {
        struct store_golden_run_list l = {0};
        json_t *s = NULL;
        if (store_golden_run_get(store, id, &l, NULL) == ASSAY_OK && l.runs[0].result_json)
            s = jsonutil_parse(l.runs[0].result_json, strlen(l.runs[0].result_json), NULL);
        store_golden_run_list_clear(&l);
        free(id);
        id = NULL;
        if (!s)
            break;
        const char *next = jsonutil_str(s, "baseline_run_id");
        if (next)
            id = xstrdup(next);
        json_array_insert_new(chain, 0, s);
    }
    free(id);
    return chain;
}

/* ---------------------------------------------------------------- escaping */

static void md_text(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\n' || *s == '\r') {
            buf_append_char(b, ' ');
            continue;
        }
        if (strchr("\\`*_{}[]<>()#+!|~&", *s))
            buf_append_char(b, '\\');
        buf_append_char(b, *s);
    }
}

typedef void (*escape_fn)(struct buf *b, const char *s);

static const char *str_or(const json_t *o, const char *k, const char *dflt)
{
    const char *s = jsonutil_str(o, k);
    return s ? s : dflt;
}

/* A number field as text ("n/a" when absent). */
static void num(struct buf *b, const json_t *o, const char *k, const char *fmt_kind)
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_number(v)) {
        buf_append_str(b, "n/a");
        return;
    }
    double d = json_number_value(v);
    if (strcmp(fmt_kind, "int") == 0)
        buf_appendf(b, "%.0f", d);
    else if (strcmp(fmt_kind, "signed") == 0)
        buf_appendf(b, "%+.3f", d);
    else if (strcmp(fmt_kind, "p") == 0)
        buf_appendf(b, "%.3g", d);
    else
        buf_appendf(b, "%.3f", d);
}

/* --------------------------------------------------------------- markdown */

static void md_row(struct buf *b, const char *const *cells, size_t n)
{
    buf_append_str(b, "|");
    for (size_t i = 0; i < n; i++) {
        buf_append_char(b, ' ');
        buf_append_str(b, cells[i]);
        buf_append_str(b, " |");
    }
    buf_append_char(b, '\n');
}

/* One rubric's cells (already escaped with esc). */
static void rubric_cells(const json_t *r, escape_fn esc, struct buf c[7])
{
    esc(&c[0], str_or(r, "rubric", "?"));
    num(&c[1], r, "mean", "f");
    num(&c[2], r, "pass_rate", "f");
    const json_t *cmp = json_object_get(r, "comparison");
    if (json_is_object(cmp)) {
        num(&c[3], cmp, "delta", "signed");
        buf_append_str(&c[4], "[");
        num(&c[4], cmp, "ci_low", "signed");
        buf_append_str(&c[4], ", ");
        num(&c[4], cmp, "ci_high", "signed");
        buf_append_str(&c[4], "]");
        num(&c[5], cmp, "p_value", "p");
        buf_append_str(&c[6], json_is_true(json_object_get(cmp, "regressed")) ? "REGRESSED" : "ok");
    } else {
        buf_append_str(&c[3], "n/a");
        buf_append_str(&c[4], "n/a");
        buf_append_str(&c[5], "n/a");
        buf_append_str(&c[6], "first run");
    }
}

static void agreement_cells(const json_t *r, escape_fn esc, struct buf c[7])
{
    const json_t *g = json_object_get(r, "agreement");
    esc(&c[0], str_or(r, "rubric", "?"));
    num(&c[1], g, "weighted_kappa", "f");
    num(&c[2], g, "spearman", "f");
    num(&c[3], g, "mae", "f");
    num(&c[4], g, "f1", "f");
    const json_t *ch = json_object_get(g, "change");
    if (json_is_object(ch))
        num(&c[5], ch, "agreement", "signed");
    else
        buf_append_str(&c[5], "first run");
    num(&c[6], g, "n", "int");
}

static void cells_clear(struct buf *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf_clear(&c[i]);
}

static const char *cell(const struct buf *c)
{
    return c->data ? c->data : "";
}

static bool is_calibration(const json_t *s)
{
    const char *k = jsonutil_str(s, "kind");
    return k && strcmp(k, "calibration") == 0;
}

static void worse_cells(const json_t *w, escape_fn esc, struct buf c[4])
{
    esc(&c[0], str_or(w, "id", "?"));
    esc(&c[1], str_or(w, "rubric", "?"));
    num(&c[2], w, "before", "f");
    num(&c[3], w, "after", "f");
}

/*
 * The run's facts before its result, one list item each (open, the item,
 * close), in both reports: dataset, target and judge models, start, baseline.
 */
static void run_items(struct buf *b, const json_t *s, escape_fn esc, const char *open,
                      const char *close)
{
    buf_append_str(b, open);
    buf_append_str(b, "Dataset: ");
    esc(b, str_or(s, "dataset", "?"));
    buf_append_str(b, " (");
    esc(b, str_or(s, "kind", "?"));
    buf_append_str(b, ", ");
    num(b, s, "items", "int");
    buf_append_str(b, " items)");
    buf_append_str(b, close);
    static const struct {
        const char *label, *key, *absent;
    } items[] = {
        {"Target model: ", "target_model", "none"},
        {"Judge model: ", "judge_model", "none"},
        {"Started: ", "started_at", "?"},
        {"Compared with: ", "baseline_run_id", "nothing (first run)"},
    };
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        buf_append_str(b, open);
        buf_append_str(b, items[i].label);
        esc(b, str_or(s, items[i].key, items[i].absent));
        buf_append_str(b, close);
    }
}

void golden_report_markdown(const json_t *s, const json_t *history, struct buf *b)
{
    buf_append_str(b, "# Golden-set run ");
    md_text(b, str_or(s, "run_id", "?"));
    buf_append_str(b, "\n\n");
    run_items(b, s, md_text, "- ", "\n");
    buf_append_str(b, "- Result: **");
    bool cal = is_calibration(s);
    if (cal)
        buf_append_str(b, json_is_true(json_object_get(s, "judge_drift")) ? "judge drifted"
                                                                          : "judge stable");
    else
        buf_append_str(b, json_is_true(json_object_get(s, "regressed")) ? "regressed"
                                                                        : "no regression");
    buf_append_str(b, "**\n\n");

    buf_append_str(b, "## Rubrics\n\n");
    static const char *const head[] = {"rubric", "mean",    "pass rate", "change",
                                       "95% CI", "p-value", "verdict"};
    md_row(b, head, 7);
    static const char *const sep[] = {"---", "---:", "---:", "---:", "---", "---:", "---"};
    md_row(b, sep, 7);
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(s, "rubrics"), i, r)
    {
        struct buf c[7] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
        rubric_cells(r, md_text, c);
        const char *cs[7];
        for (size_t k = 0; k < 7; k++)
            cs[k] = cell(&c[k]);
        md_row(b, cs, 7);
        cells_clear(c, 7);
    }
    if (cal) {
        buf_append_str(b, "\n## Agreement with the human scores\n\n"
                          "The answers of a calibration set never change, so a drop in agreement "
                          "means the judge changed (a new model version, an edited rubric), not "
                          "the product.\n\n");
        static const char *const ah[] = {"rubric",       "weighted kappa", "Spearman", "MAE",
                                         "pass/fail F1", "change",         "n"};
        md_row(b, ah, 7);
        static const char *const as[] = {"---", "---:", "---:", "---:", "---:", "---:", "---:"};
        md_row(b, as, 7);
        json_array_foreach(json_object_get(s, "rubrics"), i, r)
        {
            if (!json_is_object(json_object_get(r, "agreement")))
                continue;
            struct buf c[7] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT,
                               BUF_INIT, BUF_INIT, BUF_INIT};
            agreement_cells(r, md_text, c);
            const char *cs[7];
            for (size_t k = 0; k < 7; k++)
                cs[k] = cell(&c[k]);
            md_row(b, cs, 7);
            cells_clear(c, 7);
        }
    }

    buf_append_str(b, "\n## Items that got worse\n\n");
    const json_t *worse = json_object_get(s, "worse_items");
    if (json_array_size(worse) == 0) {
        buf_append_str(b, "None.\n");
    } else {
        static const char *const wh[] = {"item", "rubric", "before", "after"};
        md_row(b, wh, 4);
        static const char *const ws[] = {"---", "---", "---:", "---:"};
        md_row(b, ws, 4);
        const json_t *w;
        json_array_foreach(worse, i, w)
        {
            struct buf c[4] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
            worse_cells(w, md_text, c);
            const char *cs[4] = {cell(&c[0]), cell(&c[1]), cell(&c[2]), cell(&c[3])};
            md_row(b, cs, 4);
            cells_clear(c, 4);
        }
    }

    buf_append_str(b, "\n## Score across runs\n\n");
    static const char *const hh[] = {"run", "started", "rubric", "mean"};
    md_row(b, hh, 4);
    static const char *const hs[] = {"---", "---", "---", "---:"};
    md_row(b, hs, 4);
    const json_t *run;
    json_array_foreach(history, i, run)
    {
        size_t k;
        json_array_foreach(json_object_get(run, "rubrics"), k, r)
        {
            struct buf c[4] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
            md_text(&c[0], str_or(run, "run_id", "?"));
            md_text(&c[1], str_or(run, "started_at", "?"));
            md_text(&c[2], str_or(r, "rubric", "?"));
            num(&c[3], r, "mean", "f");
            const char *cs[4] = {cell(&c[0]), cell(&c[1]), cell(&c[2]), cell(&c[3])};
            md_row(b, cs, 4);
            cells_clear(c, 4);
        }
    }
}

/* ------------------------------------------------------------------- html */

static void html_row(struct buf *b, const char *tag, const char *const *cells, size_t n)
{
    buf_append_str(b, "<tr>");
    for (size_t i = 0; i < n; i++)
        buf_appendf(b, "<%s>%s</%s>", tag, cells[i], tag);
    buf_append_str(b, "</tr>\n");
}

/* The mean of rubric in one run's summary; false when absent. */
static bool run_mean(const json_t *run, const char *rubric, double *out)
{
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(run, "rubrics"), i, r)
    {
        const char *name = jsonutil_str(r, "rubric");
        const json_t *m = json_object_get(r, "mean");
        if (name && strcmp(name, rubric) == 0 && json_is_number(m)) {
            *out = json_number_value(m);
            return true;
        }
    }
    return false;
}

static void svg_chart(struct buf *b, const char *rubric, const json_t *history)
{
    size_t n = json_array_size(history);
    double pw = CHART_W - 2 * CHART_PAD, ph = CHART_H - 2 * CHART_PAD;
    buf_appendf(b,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                "viewBox=\"0 0 %d %d\" role=\"img\">\n<title>",
                CHART_W, CHART_H, CHART_W, CHART_H);
    buf_append_xml_escaped(b, rubric);
    buf_append_str(b, ": mean score per run</title>\n");
    buf_appendf(b,
                "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
                "stroke=\"#999\"/>\n",
                CHART_PAD, CHART_PAD, pw, ph);
    for (int t = 0; t <= 4; t++) {
        double y = CHART_PAD + ph - ph * t / 4.0;
        buf_appendf(b,
                    "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                    "<text x=\"%d\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.2f</text>\n",
                    CHART_PAD, y, CHART_PAD + pw, y, CHART_PAD - 4, y + 3, t / 4.0);
    }
    struct buf pts = BUF_INIT, dots = BUF_INIT;
    size_t i;
    const json_t *run;
    json_array_foreach(history, i, run)
    {
        double m;
        if (!run_mean(run, rubric, &m))
            continue;
        if (m < 0)
            m = 0;
        if (m > 1)
            m = 1;
        double x = CHART_PAD + (n > 1 ? pw * (double)i / (double)(n - 1) : pw / 2);
        double y = CHART_PAD + ph - ph * m;
        buf_appendf(&pts, "%s%.1f,%.1f", pts.len ? " " : "", x, y);
        buf_appendf(&dots, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#1f77b4\"><title>", x,
                    y);
        buf_append_xml_escaped(&dots, str_or(run, "run_id", "?"));
        buf_appendf(&dots, ": %.3f</title></circle>\n", m);
    }
    if (pts.len)
        buf_appendf(b,
                    "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" "
                    "points=\"%s\"/>\n",
                    pts.data);
    if (dots.len)
        buf_append_str(b, dots.data);
    buf_appendf(b, "<text x=\"%d\" y=\"%d\" font-size=\"12\">", CHART_PAD, CHART_PAD - 10);
    buf_append_xml_escaped(b, rubric);
    buf_appendf(b, " (%zu runs, oldest left)</text>\n</svg>\n", n);
    buf_clear(&pts);
    buf_clear(&dots);
}

void golden_report_html(const json_t *s, const json_t *history, struct buf *b)
{
    bool cal = is_calibration(s);
    buf_append_str(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
                      "<title>assay golden-set run ");
    buf_append_xml_escaped(b, str_or(s, "run_id", "?"));
    buf_append_str(b, "</title>\n<style>body{font-family:sans-serif;margin:2em}"
                      "table{border-collapse:collapse}td,th{border:1px solid #ccc;"
                      "padding:4px 8px}.bad{color:#b00;font-weight:bold}</style>\n</head>\n"
                      "<body>\n<h1>Golden-set run ");
    buf_append_xml_escaped(b, str_or(s, "run_id", "?"));
    buf_append_str(b, "</h1>\n<ul>\n");
    run_items(b, s, buf_append_xml_escaped, "<li>", "</li>\n");
    buf_append_str(b, "<li>Result: <strong>");
    if (cal)
        buf_append_str(b, json_is_true(json_object_get(s, "judge_drift")) ? "judge drifted"
                                                                          : "judge stable");
    else
        buf_append_str(b, json_is_true(json_object_get(s, "regressed")) ? "regressed"
                                                                        : "no regression");
    buf_append_str(b, "</strong></li>\n</ul>\n<h2>Rubrics</h2>\n<table>\n");
    static const char *const head[] = {"rubric", "mean",    "pass rate", "change",
                                       "95% CI", "p-value", "verdict"};
    html_row(b, "th", head, 7);
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(s, "rubrics"), i, r)
    {
        struct buf c[7] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
        rubric_cells(r, buf_append_xml_escaped, c);
        const char *cs[7];
        for (size_t k = 0; k < 7; k++)
            cs[k] = cell(&c[k]);
        html_row(b, "td", cs, 7);
        cells_clear(c, 7);
    }
    buf_append_str(b, "</table>\n");
    if (cal) {
        buf_append_str(b, "<h2>Agreement with the human scores</h2>\n<p>The answers of a "
                          "calibration set never change, so a drop in agreement means the "
                          "judge changed (a new model version, an edited rubric), not the "
                          "product.</p>\n<table>\n");
        static const char *const ah[] = {"rubric",       "weighted kappa", "Spearman", "MAE",
                                         "pass/fail F1", "change",         "n"};
        html_row(b, "th", ah, 7);
        json_array_foreach(json_object_get(s, "rubrics"), i, r)
        {
            if (!json_is_object(json_object_get(r, "agreement")))
                continue;
            struct buf c[7] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT,
                               BUF_INIT, BUF_INIT, BUF_INIT};
            agreement_cells(r, buf_append_xml_escaped, c);
            const char *cs[7];
            for (size_t k = 0; k < 7; k++)
                cs[k] = cell(&c[k]);
            html_row(b, "td", cs, 7);
            cells_clear(c, 7);
        }
        buf_append_str(b, "</table>\n");
    }
    buf_append_str(b, "<h2>Items that got worse</h2>\n");
    const json_t *worse = json_object_get(s, "worse_items");
    if (json_array_size(worse) == 0) {
        buf_append_str(b, "<p>None.</p>\n");
    } else {
        buf_append_str(b, "<table>\n");
        static const char *const wh[] = {"item", "rubric", "before", "after"};
        html_row(b, "th", wh, 4);
        const json_t *w;
        json_array_foreach(worse, i, w)
        {
            struct buf c[4] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
            worse_cells(w, buf_append_xml_escaped, c);
            const char *cs[4] = {cell(&c[0]), cell(&c[1]), cell(&c[2]), cell(&c[3])};
            html_row(b, "td", cs, 4);
            cells_clear(c, 4);
        }
        buf_append_str(b, "</table>\n");
    }
    buf_append_str(b, "<h2>Score across runs</h2>\n");
    json_array_foreach(json_object_get(s, "rubrics"), i, r)
    {
        const char *name = jsonutil_str(r, "rubric");
        if (name)
            svg_chart(b, name, history);
    }
    buf_append_str(b, "</body>\n</html>\n");
}

enum assay_err golden_report_write(struct store *store, const json_t *summary, const char *path,
                                   char *errbuf)
{
    const char *dot = strrchr(path, '.');
    bool md = dot && strcmp(dot, ".md") == 0, html = dot && strcmp(dot, ".html") == 0;
    if (!md && !html)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "report: %s: the name must end in .md or .html", path);
    json_t *history = golden_report_history(store, summary);
    struct buf b = BUF_INIT;
    if (md)
        golden_report_markdown(summary, history, &b);
    else
        golden_report_html(summary, history, &b);
    json_decref(history);
    struct buf tmp = BUF_INIT;
    buf_appendf(&tmp, "%s.tmp.%ld", path, (long)getpid());
    enum assay_err err = ASSAY_OK;
    FILE *f = fopen(tmp.data, "wb");
    if (!f || fwrite(b.data ? b.data : "", 1, b.len, f) != b.len) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "report: cannot write %s: %s", tmp.data,
                               strerror(errno));
        if (f)
            fclose(f);
        unlink(tmp.data);
    } else if (fclose(f) != 0 || rename(tmp.data, path) != 0) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "report: cannot write %s: %s", path,
                               strerror(errno));
        unlink(tmp.data);
    }
    buf_clear(&tmp);
    buf_clear(&b);
    return err;
}
