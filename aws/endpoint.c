/*
 * aws/endpoint: service base URLs (see endpoint.h).
 */
#include "aws/endpoint.h"

#include <string.h>

void endpoint_regional_append(const char *prefix, const char *region, struct buf *out)
{
    int china = strncmp(region, "cn-", 3) == 0;
    buf_appendf(out, "https://%s.%s.amazonaws.com%s", prefix, region, china ? ".cn" : "");
}

char *endpoint_base_new(const char *override, const char *prefix, const char *region,
                        int trailing_slash, char *errbuf)
{
    struct buf url = BUF_INIT;
    if (override && override[0]) {
        if (strncmp(override, "http://", 7) != 0 && strncmp(override, "https://", 8) != 0) {
            assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                             "%s: the endpoint \"%s\" is not an http(s) URL", prefix, override);
            return NULL;
        }
        buf_append_str(&url, override);
    } else {
        endpoint_regional_append(prefix, region, &url);
    }
    while (url.len > 0 && url.data[url.len - 1] == '/')
        url.data[--url.len] = '\0';
    if (trailing_slash)
        buf_append_char(&url, '/');
    return buf_detach(&url, NULL);
}
