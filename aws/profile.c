/*
 * aws/profile: parser for the AWS shared config and credentials files. One
 * pass over the lines, keeping (profile, key, value) triples in file order;
 * look-ups scan from the end so that the last definition wins. Called by the
 * profile credentials provider and region resolution in aws/credentials.
 */
#include "aws/profile.h"

#include "common/alloc.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct profile_entry {
    char *profile;
    char *key;
    char *value;
};

struct profile_file {
    struct profile_entry *entries;
    size_t n, cap;
    /* Profiles that have a section, even an empty one. */
    char **sections;
    size_t n_sections, cap_sections;
    size_t malformed, first_malformed;
};

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims spaces and tabs from both ends of [*s, *s + *n). */
static void trim(const char **s, size_t *n)
{
    while (*n && is_ws(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && (is_ws((*s)[*n - 1]) || (*s)[*n - 1] == '\r'))
        (*n)--;
}

static void note_malformed(struct profile_file *f, size_t line_no)
{
    if (f->malformed++ == 0)
        f->first_malformed = line_no;
}

static void add_section(struct profile_file *f, const char *name)
{
    for (size_t i = 0; i < f->n_sections; i++)
        if (strcmp(f->sections[i], name) == 0)
            return;
    if (f->n_sections == f->cap_sections) {
        f->cap_sections = f->cap_sections ? f->cap_sections * 2 : 4;
        f->sections = xrealloc(f->sections, f->cap_sections * sizeof *f->sections);
    }
    f->sections[f->n_sections++] = xstrdup(name);
}

static struct profile_entry *add_entry(struct profile_file *f, const char *profile, const char *key,
                                       size_t key_len, const char *value, size_t value_len)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->entries = xrealloc(f->entries, f->cap * sizeof *f->entries);
    }
    struct profile_entry *e = &f->entries[f->n++];
    e->profile = xstrdup(profile);
    e->key = xstrndup(key, key_len);
    e->value = xstrndup(value, value_len);
    return e;
}

/*
 * The profile a section header names, as a new string, or NULL when the
 * section is not a profile (read past) or is malformed (*bad set).
 */
static char *section_profile(const char *s, size_t n, enum profile_file_kind kind, int *bad)
{
    *bad = 0;
    trim(&s, &n);
    if (n == 0) {
        *bad = 1;
        return NULL;
    }
    if (kind == PROFILE_FILE_CONFIG) {
        if (n == 7 && memcmp(s, "default", 7) == 0)
            return xstrdup("default");
        if (n > 7 && memcmp(s, "profile", 7) == 0 && is_ws(s[7])) {
            s += 7;
            n -= 7;
            trim(&s, &n);
        } else {
            return NULL; /* sso-session, services, ...: not a profile */
        }
    }
    if (n == 0) {
        *bad = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (is_ws(s[i]) || s[i] == '\0') {
            *bad = 1;
            return NULL;
        }
    }
    return xstrndup(s, n);
}

/* Drops a trailing comment that follows whitespace: "v # note" -> "v". */
static void strip_value_comment(const char *s, size_t *n)
{
    for (size_t i = 1; i < *n; i++) {
        if ((s[i] == '#' || s[i] == ';') && is_ws(s[i - 1])) {
            *n = i;
            break;
        }
    }
}

struct profile_file *profile_file_parse(const char *text, size_t len, enum profile_file_kind kind)
{
    struct profile_file *f = xcalloc(1, sizeof *f);
    char *profile = NULL;  /* current profile section, NULL outside one */
    int in_section = 0;    /* inside some section (profile or not) */
    ptrdiff_t last = -1;   /* index of the last top-level property */
    int last_has_subs = 0; /* the last property opened sub-properties */
    size_t line_no = 0;
    size_t pos = 0;

    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        line_no++;

        int indented = n > 0 && is_ws(line[0]);
        const char *s = line;
        size_t sn = n;
        trim(&s, &sn);
        if (sn == 0 || s[0] == '#' || s[0] == ';')
            continue;

        if (s[0] == '[') {
            free(profile);
            profile = NULL;
            last = -1;
            in_section = 0;
            const char *close = memchr(s, ']', sn);
            if (!close) {
                in_section = 1;
                note_malformed(f, line_no);
                continue;
            }
            const char *rest = close + 1;
            size_t rn = sn - (size_t)(rest - s);
            trim(&rest, &rn);
            if (rn && rest[0] != '#' && rest[0] != ';') {
                in_section = 1;
                note_malformed(f, line_no);
                continue;
            }
            int bad;
            profile = section_profile(s + 1, (size_t)(close - s - 1), kind, &bad);
            /* The properties of a bad section are read past, not counted. */
            in_section = 1;
            if (bad) {
                note_malformed(f, line_no);
                continue;
            }
            if (profile)
                add_section(f, profile);
            continue;
        }

        /* An indented line continues the property before it; with none
         * before it in this section, it is a property of its own. */
        if (indented && in_section && (!profile || last >= 0)) {
            if (!profile)
                continue; /* inside a non-profile section */
            struct profile_entry *e = &f->entries[last];
            if (last_has_subs || e->value[0] == '\0') {
                last_has_subs = 1;
                const char *eq = memchr(s, '=', sn);
                if (!eq) {
                    note_malformed(f, line_no);
                    continue;
                }
                const char *k = s, *v = eq + 1;
                size_t kn = (size_t)(eq - s), vn = sn - kn - 1;
                trim(&k, &kn);
                trim(&v, &vn);
                strip_value_comment(v, &vn);
                trim(&v, &vn);
                if (kn == 0) {
                    note_malformed(f, line_no);
                    continue;
                }
                char *full = xmalloc(strlen(e->key) + 1 + kn + 1);
                size_t pk = strlen(e->key);
                memcpy(full, e->key, pk);
                full[pk] = '.';
                memcpy(full + pk + 1, k, kn);
                full[pk + 1 + kn] = '\0';
                add_entry(f, profile, full, pk + 1 + kn, v, vn);
                free(full);
            } else {
                /* A continuation line: value gains "\n" + the trimmed line. */
                size_t old = strlen(e->value);
                char *nv = xmalloc(old + 1 + sn + 1);
                memcpy(nv, e->value, old);
                nv[old] = '\n';
                memcpy(nv + old + 1, s, sn);
                nv[old + 1 + sn] = '\0';
                secure_free_str(e->value);
                e->value = nv;
            }
            continue;
        }

        /* A top-level property. */
        const char *eq = memchr(s, '=', sn);
        if (!eq || !in_section) {
            note_malformed(f, line_no);
            continue;
        }
        const char *k = s, *v = eq + 1;
        size_t kn = (size_t)(eq - s), vn = sn - kn - 1;
        trim(&k, &kn);
        trim(&v, &vn);
        strip_value_comment(v, &vn);
        trim(&v, &vn);
        if (kn == 0 || memchr(k, '\0', kn) || memchr(v, '\0', vn)) {
            note_malformed(f, line_no);
            continue;
        }
        if (!profile)
            continue;
        add_entry(f, profile, k, kn, v, vn);
        last = (ptrdiff_t)(f->n - 1);
        last_has_subs = 0;
    }
    free(profile);
    return f;
}

enum assay_err profile_file_load(const char *path, enum profile_file_kind kind,
                                 struct profile_file **out, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    char *text = NULL;
    size_t len = 0;
    *out = NULL;

    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == ENOENT || errno == ENOTDIR)
            return assay_errbuf_set(errbuf, ASSAY_ERR_NOT_FOUND, "%s: no such file", path);
        return assay_errbuf_set(errbuf, ASSAY_ERR_IO, "%s: %s", path, strerror(errno));
    }
    text = xmalloc(PROFILE_FILE_MAX_BYTES + 1);
    len = fread(text, 1, PROFILE_FILE_MAX_BYTES + 1, fp);
    if (ferror(fp)) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "%s: read error", path);
        goto out;
    }
    if (len > PROFILE_FILE_MAX_BYTES) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE, "%s: larger than %d bytes", path,
                               PROFILE_FILE_MAX_BYTES);
        goto out;
    }
    *out = profile_file_parse(text, len, kind);
    size_t first;
    size_t bad = profile_file_malformed(*out, &first);
    if (bad)
        LOG_WARN("profile.malformed_lines", LOG_S("path", path), LOG_I("count", bad),
                 LOG_I("first_line", first));
out:
    if (text) {
        secure_zero(text, len);
        free(text);
    }
    fclose(fp);
    return err;
}

void profile_file_free(struct profile_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->entries[i].profile);
        free(f->entries[i].key);
        secure_free_str(f->entries[i].value);
    }
    free(f->entries);
    for (size_t i = 0; i < f->n_sections; i++)
        free(f->sections[i]);
    free(f->sections);
    free(f);
}

const char *profile_file_get(const struct profile_file *f, const char *profile, const char *key)
{
    if (!f)
        return NULL;
    for (size_t i = f->n; i-- > 0;) {
        const struct profile_entry *e = &f->entries[i];
        if (strcmp(e->profile, profile) == 0 && strcasecmp(e->key, key) == 0)
            return e->value;
    }
    return NULL;
}

int profile_file_has(const struct profile_file *f, const char *profile)
{
    if (!f)
        return 0;
    for (size_t i = 0; i < f->n_sections; i++)
        if (strcmp(f->sections[i], profile) == 0)
            return 1;
    return 0;
}

size_t profile_file_malformed(const struct profile_file *f, size_t *first_line)
{
    if (first_line)
        *first_line = f ? f->first_malformed : 0;
    return f ? f->malformed : 0;
}
