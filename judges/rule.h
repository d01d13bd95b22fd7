/*
 * judges/rule: the rule judges (pii-leak, json-valid, max-length,
 * refusal-phrases, regex), local and deterministic. A rule judge is built once
 * per rubric (patterns compiled once, with JIT) and then run on any number of
 * samples, from any number of threads.
 *
 * Every pattern runs under a match limit and a depth limit: a hostile text
 * that exhausts them gives an unscorable verdict (reason regex_limit), never a
 * hang and never a pass or a fail. Verdict reasoning names what was found
 * (kinds and counts), never the matched text itself.
 *
 * Ownership: rule_judge_new borrows the rubric, which must outlive the judge.
 */
#ifndef ASSAY_JUDGES_RULE_H
#define ASSAY_JUDGES_RULE_H

#include "common/err.h"
#include "judges/regex.h"
#include "judges/rubric.h"
#include "judges/verdict.h"

struct rule_judge;

/*
 * Builds the judge of a rule rubric. limits (borrowed, may be NULL) set the
 * PCRE2 limits; a rubric's params.match_limit / params.depth_limit override
 * them. Returns ASSAY_OK and a new judge in *out, or ASSAY_ERR_INVALID_ARGUMENT
 * (not a rule rubric, a pattern that does not compile) with *out NULL.
 */
enum assay_err rule_judge_new(const struct rubric *r, const struct regex_limits *limits,
                              struct rule_judge **out, char *errbuf);
void rule_judge_free(struct rule_judge *j);

/*
 * Grades s->output into *out (pii-leak also counts s->pii, the findings
 * recorded before the output was redacted at ingest) (initialised by the caller; previous contents
 * are cleared): scored 1 (pass) or 0, or unscorable with a reason. Returns ASSAY_OK when *out was
 * filled; ASSAY_ERR_INVALID_ARGUMENT when the sample lacks a field the rubric needs (then *out is
 * unscorable, reason missing_field).
 */
enum assay_err rule_judge_run(const struct rule_judge *j, const struct rubric_sample *s,
                              struct verdict *out, char *errbuf);

#endif
