/*
 * common/buf: a growable byte buffer, always NUL-terminated after its last
 * byte so that text can be used as a C string. The caller holds the struct:
 * buf_init / buf_clear. Growth goes through common/alloc and never fails.
 * Not thread-safe; a buffer belongs to one thread at a time.
 */
#ifndef ASSAY_COMMON_BUF_H
#define ASSAY_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    char *data; /* NULL until the first append; else data[len] == '\0' */
    size_t len;
    size_t cap;
};

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void buf_init(struct buf *b);
/* Frees the storage and leaves an empty buffer. Accepts NULL. */
void buf_clear(struct buf *b);
/* Empties the buffer but keeps its storage for reuse. */
void buf_reset(struct buf *b);
/* Makes room for at least n more bytes (plus the terminator). */
void buf_reserve(struct buf *b, size_t n);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_append_str(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
/* printf-style append; fmt must be a literal, untrusted text only as %s. */
void buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends v in decimal (as "%lld", without printf: for hot paths). */
void buf_append_int(struct buf *b, int64_t v);
/* Appends the UTF-8 encoding of code point cp (at most U+10FFFF; the caller
 * checks surrogates and range). */
void buf_append_utf8(struct buf *b, unsigned long cp);
/* Appends s as the inside of a JSON string (quotes not included). */
void buf_append_json_escaped(struct buf *b, const char *s, size_t n);
/*
 * Appends the NUL-terminated s (NULL: nothing) escaped for XML and HTML text
 * and attribute values: & < > " ' as &amp; &lt; &gt; &quot; &#39;.
 */
void buf_append_xml_escaped(struct buf *b, const char *s);
/* The text, "" for an empty buffer; borrowed, valid until the next change. */
const char *buf_cstr(const struct buf *b);
/* Hands the storage to the caller (free() it) and leaves the buffer empty. */
char *buf_detach(struct buf *b, size_t *len_out);

#endif
