/*
 * tests/unit/test_main.c: the runner behind test.h. Linked into every unit
 * test binary through the assay_test_support library.
 */
#define _GNU_SOURCE
#include "tests/unit/test.h"

#include "common/buf.h"

#include <ftw.h>
#include <unistd.h>

#define MAX_CASES 512

static struct {
    const char *name;
    test_fn fn;
} cases[MAX_CASES];
static int n_cases;
static int failures;
static char tmpdir[256];

void test_register(const char *name, test_fn fn)
{
    if (n_cases == MAX_CASES) {
        fprintf(stderr, "too many test cases\n");
        exit(2);
    }
    cases[n_cases].name = name;
    cases[n_cases].fn = fn;
    n_cases++;
}

void test_fail_at(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    failures++;
}

void test_fail_str(const char *file, int line, const char *expr, const char *got, const char *want)
{
    fprintf(stderr, "%s:%d: %s\n   got: %s%s%s\n  want: %s%s%s\n", file, line, expr,
            got ? "\"" : "", got ? got : "(null)", got ? "\"" : "", want ? "\"" : "",
            want ? want : "(null)", want ? "\"" : "");
    failures++;
}

void test_fail_int(const char *file, int line, const char *expr, long long got, long long want)
{
    fprintf(stderr, "%s:%d: %s = %lld, want %lld\n", file, line, expr, got, want);
    failures++;
}

_Noreturn void test_stop(void)
{
    exit(1);
}

_Noreturn void test_skip(const char *reason)
{
    printf("SKIP: %s\n", reason);
    fflush(stdout);
    exit(77);
}

const char *test_source_dir(void)
{
    const char *d = getenv("ASSAY_SOURCE_DIR");
    return d ? d : ".";
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tmpdir(void)
{
    if (tmpdir[0] && failures == 0)
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    return buf_detach(&b, len);
}

void test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL);
    fputs(text, f);
    fclose(f);
}

const char *test_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/assay-test-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(2);
        }
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

static int run(int i)
{
    failures = 0;
    cases[i].fn();
    return failures;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < n_cases; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    if (argc > 1) {
        for (int i = 0; i < n_cases; i++)
            if (strcmp(cases[i].name, argv[1]) == 0)
                return run(i) ? 1 : 0;
        fprintf(stderr, "no test case named %s\n", argv[1]);
        return 2;
    }
    int failed = 0;
    for (int i = 0; i < n_cases; i++) {
        int f = run(i);
        printf("%-50s %s\n", cases[i].name, f ? "FAIL" : "ok");
        failed += f != 0;
    }
    return failed ? 1 : 0;
}
