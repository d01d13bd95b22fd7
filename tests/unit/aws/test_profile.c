/* Unit tests for aws/profile: the shared config and credentials file parser. */
#include "aws/profile.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "tests/unit/test.h"

#include <stdio.h>

static struct profile_file *parse(const char *text, enum profile_file_kind kind)
{
    return profile_file_parse(text, strlen(text), kind);
}

TEST_CASE(credentials_sections)
{
    struct profile_file *f = parse("[default]\n"
                                   "aws_access_key_id = AKIDDEFAULT\n"
                                   "aws_secret_access_key = secretdefault\n"
                                   "\n"
                                   "[work]\n"
                                   "aws_access_key_id=AKIDWORK\n",
                                   PROFILE_FILE_CREDENTIALS);
    CHECK_STR_EQ(profile_file_get(f, "default", "aws_access_key_id"), "AKIDDEFAULT");
    CHECK_STR_EQ(profile_file_get(f, "default", "aws_secret_access_key"), "secretdefault");
    CHECK_STR_EQ(profile_file_get(f, "work", "aws_access_key_id"), "AKIDWORK");
    CHECK(profile_file_get(f, "work", "aws_secret_access_key") == NULL);
    CHECK(profile_file_has(f, "work"));
    CHECK(!profile_file_has(f, "other"));
    CHECK_INT_EQ(profile_file_malformed(f, NULL), 0);
    profile_file_free(f);
}

TEST_CASE(config_profile_prefix)
{
    struct profile_file *f = parse("[default]\nregion = us-east-1\n"
                                   "[profile work]\nregion = eu-west-1\n"
                                   "[profile\tspaced  ]\nregion = ap-south-1\n"
                                   "[work]\nregion = wrong\n"
                                   "[sso-session corp]\nregion = wrong-too\n"
                                   "[services dev]\nregion = wrong-three\n",
                                   PROFILE_FILE_CONFIG);
    CHECK_STR_EQ(profile_file_get(f, "default", "region"), "us-east-1");
    CHECK_STR_EQ(profile_file_get(f, "work", "region"), "eu-west-1");
    CHECK_STR_EQ(profile_file_get(f, "spaced", "region"), "ap-south-1");
    CHECK(!profile_file_has(f, "sso-session corp"));
    CHECK(!profile_file_has(f, "corp"));
    CHECK_INT_EQ(profile_file_malformed(f, NULL), 0);
    profile_file_free(f);

    /* [profile default] names the default profile too. */
    f = parse("[profile default]\nregion = us-west-2\n", PROFILE_FILE_CONFIG);
    CHECK_STR_EQ(profile_file_get(f, "default", "region"), "us-west-2");
    profile_file_free(f);
}

TEST_CASE(profile_prefix_in_credentials_file_is_not_a_profile)
{
    struct profile_file *f =
        parse("[profile work]\naws_access_key_id = X\n[ok]\nk = v\n", PROFILE_FILE_CREDENTIALS);
    CHECK(!profile_file_has(f, "work"));
    CHECK(profile_file_get(f, "work", "aws_access_key_id") == NULL);
    CHECK_STR_EQ(profile_file_get(f, "ok", "k"), "v");
    size_t first;
    CHECK_INT_EQ(profile_file_malformed(f, &first), 1);
    CHECK_INT_EQ(first, 1);
    profile_file_free(f);
}

TEST_CASE(comments_and_whitespace)
{
    struct profile_file *f = parse("# leading comment\n"
                                   "; another\n"
                                   "  [default]   # section comment\n"
                                   "\t key_one \t=\t  value one  \n"
                                   "key_two = v # trailing comment\n"
                                   "key_three = v;still-value\n"
                                   "key_four = v\t; tab comment\n"
                                   "key_five =\n"
                                   "   # indented comment\n"
                                   "KEY_SIX = Mixed\n",
                                   PROFILE_FILE_CREDENTIALS);
    CHECK_STR_EQ(profile_file_get(f, "default", "key_one"), "value one");
    CHECK_STR_EQ(profile_file_get(f, "default", "key_two"), "v");
    CHECK_STR_EQ(profile_file_get(f, "default", "key_three"), "v;still-value");
    CHECK_STR_EQ(profile_file_get(f, "default", "key_four"), "v");
    CHECK_STR_EQ(profile_file_get(f, "default", "key_five"), "");
    CHECK_STR_EQ(profile_file_get(f, "default", "key_six"), "Mixed");
    CHECK_INT_EQ(profile_file_malformed(f, NULL), 0);
    profile_file_free(f);
}

TEST_CASE(crlf_line_endings)
{
    struct profile_file *f =
        parse("[default]\r\nregion = us-east-2\r\nk=v\r\n", PROFILE_FILE_CONFIG);
    CHECK_STR_EQ(profile_file_get(f, "default", "region"), "us-east-2");
    CHECK_STR_EQ(profile_file_get(f, "default", "k"), "v");
    profile_file_free(f);
}

TEST_CASE(sub_properties_do_not_shadow)
{
    struct profile_file *f = parse("[default]\n"
                                   "s3 =\n"
                                   "  region = sub-region\n"
                                   "  max_concurrent_requests = 20\n"
                                   "region = top-region\n",
                                   PROFILE_FILE_CONFIG);
    CHECK_STR_EQ(profile_file_get(f, "default", "region"), "top-region");
    CHECK_STR_EQ(profile_file_get(f, "default", "s3.region"), "sub-region");
    CHECK_STR_EQ(profile_file_get(f, "default", "s3.max_concurrent_requests"), "20");
    CHECK_INT_EQ(profile_file_malformed(f, NULL), 0);
    profile_file_free(f);

    /* Sub-properties only: the top-level key never appears. */
    f = parse("[default]\nother =\n  region = nested\n", PROFILE_FILE_CONFIG);
    CHECK(profile_file_get(f, "default", "region") == NULL);
    profile_file_free(f);
}

TEST_CASE(continuation_lines)
{
    struct profile_file *f =
        parse("[default]\nk = first\n  second\n\tthird\nz = 1\n", PROFILE_FILE_CONFIG);
    CHECK_STR_EQ(profile_file_get(f, "default", "k"), "first\nsecond\nthird");
    CHECK_STR_EQ(profile_file_get(f, "default", "z"), "1");
    profile_file_free(f);
}

TEST_CASE(malformed_lines_are_skipped)
{
    struct profile_file *f = parse("orphan = before any section\n" /* 1 */
                                   "[default\n"                    /* 2: no ] */
                                   "lost = in broken section\n"    /* 3: read past */
                                   "[default]\n"                   /* 4 */
                                   "no equals sign here\n"         /* 5 */
                                   " = no key\n"                   /* 6 */
                                   "good = yes\n"                  /* 7 */
                                   "[]\n"                          /* 8 */
                                   "[default] junk\n"              /* 9 */
                                   "[default]\n"                   /* 10 */
                                   "after = ok\n",                 /* 11 */
                                   PROFILE_FILE_CREDENTIALS);
    CHECK_STR_EQ(profile_file_get(f, "default", "good"), "yes");
    CHECK_STR_EQ(profile_file_get(f, "default", "after"), "ok");
    CHECK(profile_file_get(f, "default", "lost") == NULL);
    CHECK(profile_file_get(f, "default", "orphan") == NULL);
    size_t first = 0;
    CHECK_INT_EQ(profile_file_malformed(f, &first), 6);
    CHECK_INT_EQ(first, 1);
    profile_file_free(f);

    /* An indented line right after a section header is a property of its own. */
    f = parse("[default]\n   first = x\nk = v\n", PROFILE_FILE_CONFIG);
    CHECK_STR_EQ(profile_file_get(f, "default", "first"), "x");
    CHECK_STR_EQ(profile_file_get(f, "default", "k"), "v");
    CHECK_INT_EQ(profile_file_malformed(f, &first), 0);
    profile_file_free(f);
    f = parse("[default]\n  not a property\nk = v\n", PROFILE_FILE_CONFIG);
    CHECK_INT_EQ(profile_file_malformed(f, &first), 1);
    CHECK_INT_EQ(first, 2);
    CHECK_STR_EQ(profile_file_get(f, "default", "k"), "v");
    profile_file_free(f);
}

TEST_CASE(later_definitions_win_and_sections_merge)
{
    struct profile_file *f =
        parse("[a]\nk = 1\nx = keep\n[b]\nk = b\n[a]\nk = 2\n", PROFILE_FILE_CREDENTIALS);
    CHECK_STR_EQ(profile_file_get(f, "a", "k"), "2");
    CHECK_STR_EQ(profile_file_get(f, "a", "x"), "keep");
    CHECK_STR_EQ(profile_file_get(f, "b", "k"), "b");
    profile_file_free(f);
}

TEST_CASE(empty_and_binary_input)
{
    struct profile_file *f = profile_file_parse("", 0, PROFILE_FILE_CONFIG);
    CHECK(!profile_file_has(f, "default"));
    profile_file_free(f);
    static const char bin[] = "[default]\nk = a\0b\n[x\0y]\nz = 1\n";
    f = profile_file_parse(bin, sizeof bin - 1, PROFILE_FILE_CREDENTIALS);
    CHECK(profile_file_get(f, "default", "k") == NULL);
    CHECK_INT_EQ(profile_file_malformed(f, NULL), 2);
    profile_file_free(f);
    CHECK(profile_file_get(NULL, "default", "k") == NULL);
    CHECK(!profile_file_has(NULL, "default"));
    profile_file_free(NULL);
}

TEST_CASE(load_from_disk)
{
    char path[512];
    snprintf(path, sizeof path, "%s/credentials", test_tmpdir());
    FILE *fp = fopen(path, "w");
    REQUIRE(fp != NULL);
    fputs("[default]\naws_access_key_id = AKIDFILE\n", fp);
    fclose(fp);

    struct profile_file *f = NULL;
    char eb[ASSAY_ERRBUF_SIZE] = "";
    CHECK_INT_EQ(profile_file_load(path, PROFILE_FILE_CREDENTIALS, &f, eb), ASSAY_OK);
    CHECK_STR_EQ(profile_file_get(f, "default", "aws_access_key_id"), "AKIDFILE");
    profile_file_free(f);

    char missing[512];
    snprintf(missing, sizeof missing, "%s/nope", test_tmpdir());
    CHECK_INT_EQ(profile_file_load(missing, PROFILE_FILE_CONFIG, &f, eb), ASSAY_ERR_NOT_FOUND);
    CHECK(f == NULL);
    CHECK(strstr(eb, "nope") != NULL);

    /* A directory is not a readable file. */
    CHECK_INT_EQ(profile_file_load(test_tmpdir(), PROFILE_FILE_CONFIG, &f, eb), ASSAY_ERR_IO);
    CHECK(f == NULL);
}

TEST_CASE(load_too_large)
{
    char path[512];
    snprintf(path, sizeof path, "%s/config", test_tmpdir());
    FILE *fp = fopen(path, "w");
    REQUIRE(fp != NULL);
    fputs("[default]\n", fp);
    for (int i = 0; i < PROFILE_FILE_MAX_BYTES / 16 + 1; i++)
        fputs("# padding lines\n", fp);
    fclose(fp);
    struct profile_file *f = NULL;
    char eb[ASSAY_ERRBUF_SIZE] = "";
    CHECK_INT_EQ(profile_file_load(path, PROFILE_FILE_CONFIG, &f, eb), ASSAY_ERR_TOO_LARGE);
    CHECK(f == NULL);
}
