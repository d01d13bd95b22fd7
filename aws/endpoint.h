/*
 * aws/endpoint: the base URL of an AWS service, as the SDKs build it: an
 * endpoint override (from config or AWS_ENDPOINT_URL_*), else the regional
 * endpoint https://{prefix}.{region}.amazonaws.com, with the .amazonaws.com.cn
 * suffix in the China regions (cn-*). Used by every service client (Bedrock,
 * CloudWatch, SNS, STS). Pure; thread-safe.
 */
#ifndef ASSAY_AWS_ENDPOINT_H
#define ASSAY_AWS_ENDPOINT_H

#include "common/buf.h"
#include "common/err.h"

/* Appends the regional endpoint of prefix ("bedrock-runtime") in region, no trailing '/'. */
void endpoint_regional_append(const char *prefix, const char *region, struct buf *out);

/*
 * Returns a new string (free()) with the override (NULL or "" for none) or the
 * regional endpoint, trailing slashes removed and then one '/' added when
 * trailing_slash. NULL, with ASSAY_ERR_INVALID_ARGUMENT in errbuf, when the
 * override is not an http:// or https:// URL.
 */
char *endpoint_base_new(const char *override, const char *prefix, const char *region,
                        int trailing_slash, char *errbuf);

#endif
