/*
 * common/jsonutil: jansson helpers used by aws/ (credential documents, error
 * bodies) and the layers above.
 */
#include "common/jsonutil.h"

#include "common/alloc.h"

#include <stdlib.h>

const char *jsonutil_str(const json_t *obj, const char *key)
{
    if (!json_is_object(obj))
        return NULL;
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

json_t *jsonutil_parse(const char *text, size_t n, char *errbuf)
{
    json_error_t e;
    json_t *v = json_loadb(text, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    if (!v)
        assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "JSON at line %d column %d: %s", e.line,
                         e.column, e.text);
    return v;
}

char *jsonutil_dump(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        return xstrdup("null");
    return s;
}
