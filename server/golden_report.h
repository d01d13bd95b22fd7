/*
 * server/golden_report: the report file of a golden-set run (`assay eval
 * --report FILE`): Markdown for a ".md" file, a self-contained HTML page for
 * ".html" with an inline SVG chart of each rubric's mean across the stored
 * runs of the same dataset and target (the chain of baseline runs, oldest
 * first). Both hold the per-rubric table (mean, change, interval, p-value,
 * verdict), agreement for calibration sets, and the worse items.
 *
 * Every text from outside (dataset, model ids, item ids) is escaped for the
 * format it lands in; nothing from outside reaches a format string or a path
 * other than the one given. Threading: none of its own; the store is read.
 */
#ifndef ASSAY_SERVER_GOLDEN_REPORT_H
#define ASSAY_SERVER_GOLDEN_REPORT_H

#include <jansson.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

struct store;

/* Runs shown in the chart at most (the newest). */
#define GOLDEN_REPORT_HISTORY_MAX 50

/*
 * The summaries of the run behind summary (borrowed) and of its baselines,
 * oldest first, at most GOLDEN_REPORT_HISTORY_MAX: a new array. Runs missing
 * from the store end the chain.
 */
json_t *golden_report_history(struct store *store, const json_t *summary);

/* Appends the Markdown / HTML report of summary with history to out. */
void golden_report_markdown(const json_t *summary, const json_t *history, struct buf *out);
void golden_report_html(const json_t *summary, const json_t *history, struct buf *out);

/*
 * Writes the report of summary to path (".md": Markdown, ".html": HTML;
 * anything else ASSAY_ERR_INVALID_ARGUMENT), through a temporary file renamed
 * into place. ASSAY_ERR_IO when it cannot be written.
 */
enum assay_err golden_report_write(struct store *store, const json_t *summary, const char *path,
                                   char *errbuf);

#endif
