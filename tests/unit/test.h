/*
 * tests/unit/test.h: the project's minimal test harness. A test file declares
 * cases with TEST_CASE(name); CMake reads those lines and registers one ctest
 * entry per case ("<module>.<case>"), so `ctest -R sigv4` selects a module.
 * The binary runs the case named in argv[1], or every case without argument.
 *
 * CHECK* record a failure and go on; REQUIRE* stop the case. TEST_SKIP exits
 * with 77, which ctest reports as skipped. Each case runs in its own process,
 * so LeakSanitizer checks that a case leaves no allocation behind.
 */
#ifndef ASSAY_TESTS_TEST_H
#define ASSAY_TESTS_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn);
void test_fail_at(const char *file, int line, const char *what);
void test_fail_str(const char *file, int line, const char *expr, const char *got, const char *want);
void test_fail_int(const char *file, int line, const char *expr, long long got, long long want);
_Noreturn void test_stop(void);
_Noreturn void test_skip(const char *reason);
/* Directory of the source tree (ASSAY_SOURCE_DIR), for fixtures. */
const char *test_source_dir(void);
/* A fresh temporary directory for this case, removed at exit when the case passed. */
const char *test_tmpdir(void);
/*
 * The whole file at path, NUL-terminated (the caller frees it), its length in
 * *len when len is not NULL; NULL when it cannot be opened.
 */
char *test_read_file(const char *path, size_t *len);
/* Writes text to path (created or truncated); failing to open it fails the case. */
void test_write_file(const char *path, const char *text);

#define TEST_CASE(name)                                                                            \
    static void test_case_##name(void);                                                            \
    __attribute__((constructor)) static void test_register_##name(void)                            \
    {                                                                                              \
        test_register(#name, test_case_##name);                                                    \
    }                                                                                              \
    static void test_case_##name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            test_fail_at(__FILE__, __LINE__, #cond);                                               \
    } while (0)

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            test_fail_at(__FILE__, __LINE__, #cond);                                               \
            test_stop();                                                                           \
        }                                                                                          \
    } while (0)

#define CHECK_INT_EQ(got, want)                                                                    \
    do {                                                                                           \
        long long got_ = (long long)(got), want_ = (long long)(want);                              \
        if (got_ != want_)                                                                         \
            test_fail_int(__FILE__, __LINE__, #got, got_, want_);                                  \
    } while (0)

#define CHECK_STR_EQ(got, want)                                                                    \
    do {                                                                                           \
        const char *got_ = (got), *want_ = (want);                                                 \
        if (!got_ || !want_ || strcmp(got_, want_) != 0)                                           \
            test_fail_str(__FILE__, __LINE__, #got, got_, want_);                                  \
    } while (0)

#define REQUIRE_INT_EQ(got, want)                                                                  \
    do {                                                                                           \
        long long got_ = (long long)(got), want_ = (long long)(want);                              \
        if (got_ != want_) {                                                                       \
            test_fail_int(__FILE__, __LINE__, #got, got_, want_);                                  \
            test_stop();                                                                           \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(got, want, tol)                                                                 \
    do {                                                                                           \
        double got_ = (double)(got), want_ = (double)(want), tol_ = (double)(tol);                 \
        if (!(got_ - want_ <= tol_ && want_ - got_ <= tol_)) {                                     \
            char what_[256];                                                                       \
            snprintf(what_, sizeof what_, "%s = %.17g, want %.17g within %g", #got, got_, want_,   \
                     tol_);                                                                        \
            test_fail_at(__FILE__, __LINE__, what_);                                               \
        }                                                                                          \
    } while (0)

#define TEST_SKIP(reason) test_skip(reason)

#endif
