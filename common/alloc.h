/*
 * common/alloc: allocation that never returns NULL. Out of memory aborts here,
 * in one place, so callers need not check. Sizes that come from input must be
 * checked against a cap before they reach these functions.
 * Thread-safe.
 */
#ifndef ASSAY_COMMON_ALLOC_H
#define ASSAY_COMMON_ALLOC_H

#include <stddef.h>

/* Each returns a new allocation the caller frees with free(); never NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
/* Copies of a NUL-terminated string, of at most n bytes of s, or of n bytes. */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);

/*
 * Overwrites n bytes at p with zeros in a way the compiler cannot elide; for
 * secrets before they are freed. Accepts NULL.
 */
void secure_zero(void *p, size_t n);
/* secure_zero over a NUL-terminated string, then free(). Accepts NULL. */
void secure_free_str(char *s);

#endif
