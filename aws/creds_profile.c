/*
 * aws/creds_profile: the shared-files credentials provider and region
 * resolution. Reads ~/.aws/credentials and ~/.aws/config (or the files that
 * AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE name) through aws/profile,
 * selects the profile (options, AWS_PROFILE, "default"), and looks each key
 * up in the credentials file first, then in the config file.
 */
#include "aws/credentials.h"

#include "aws/creds_private.h"
#include "aws/profile.h"
#include "common/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct profiles {
    const char *name;
    struct profile_file *cred;
    struct profile_file *config;
    char *cred_path;
    char *config_path;
};

static void profiles_clear(struct profiles *ps)
{
    profile_file_free(ps->cred);
    profile_file_free(ps->config);
    free(ps->cred_path);
    free(ps->config_path);
    memset(ps, 0, sizeof *ps);
}

/* Loads one file; a missing file (or no HOME to find it) is not an error. */
static enum assay_err load_one(const struct creds_options *opt, const char *env_name,
                               const char *default_path, enum profile_file_kind kind,
                               struct profile_file **out, char **path_out, char *errbuf)
{
    const char *p = creds_env(opt, env_name);
    *path_out = creds_expand_home(opt, p ? p : default_path);
    if (!*path_out)
        return ASSAY_OK;
    enum assay_err err = profile_file_load(*path_out, kind, out, errbuf);
    return err == ASSAY_ERR_NOT_FOUND ? ASSAY_OK : err;
}

static enum assay_err profiles_load(const struct creds_options *opt, struct profiles *ps,
                                    char *errbuf)
{
    memset(ps, 0, sizeof *ps);
    ps->name = opt->profile && opt->profile[0] ? opt->profile : creds_env(opt, "AWS_PROFILE");
    if (!ps->name)
        ps->name = "default";
    enum assay_err err = load_one(opt, "AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials",
                                  PROFILE_FILE_CREDENTIALS, &ps->cred, &ps->cred_path, errbuf);
    if (err == ASSAY_OK)
        err = load_one(opt, "AWS_CONFIG_FILE", "~/.aws/config", PROFILE_FILE_CONFIG, &ps->config,
                       &ps->config_path, errbuf);
    if (err != ASSAY_OK)
        profiles_clear(ps);
    return err;
}

/* The credentials file wins, key by key. */
static const char *profiles_get(const struct profiles *ps, const char *key)
{
    const char *v = profile_file_get(ps->cred, ps->name, key);
    if (!v || !v[0])
        v = profile_file_get(ps->config, ps->name, key);
    return v && v[0] ? v : NULL;
}

enum assay_err creds_profile_fetch(struct creds_provider *p, struct creds *out, char *errbuf)
{
    struct profiles ps;
    enum assay_err err = profiles_load(&p->opt, &ps, errbuf);
    if (err != ASSAY_OK)
        return err;
    const char *akid = profiles_get(&ps, "aws_access_key_id");
    const char *secret = profiles_get(&ps, "aws_secret_access_key");
    const char *token = profiles_get(&ps, "aws_session_token");
    if (!profile_file_has(ps.cred, ps.name) && !profile_file_has(ps.config, ps.name)) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS, "profile %s not found in %s or %s",
                               ps.name, ps.cred_path ? ps.cred_path : "(no HOME)",
                               ps.config_path ? ps.config_path : "(no HOME)");
        goto out;
    }
    if (!akid || !secret) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS, "profile %s has no %s", ps.name,
                               akid ? "aws_secret_access_key" : "aws_access_key_id");
        goto out;
    }
    creds_set(out, akid, strlen(akid), secret, strlen(secret), token, token ? strlen(token) : 0);
    out->expiration_ms = 0;
    snprintf(out->provider, sizeof out->provider, "profile");
out:
    profiles_clear(&ps);
    return err;
}

struct creds_provider *creds_profile_new(const struct creds_options *opt)
{
    return creds_provider_alloc("profile", opt, creds_profile_fetch, NULL, NULL);
}

enum assay_err creds_region_resolve(const struct creds_options *opt, char **region_out,
                                    char *errbuf)
{
    static const struct creds_options defaults;
    if (!opt)
        opt = &defaults;
    *region_out = NULL;
    const char *r = creds_env(opt, "AWS_REGION");
    if (!r)
        r = creds_env(opt, "AWS_DEFAULT_REGION");
    if (r) {
        *region_out = xstrdup(r);
        return ASSAY_OK;
    }
    struct profiles ps;
    char eb[ASSAY_ERRBUF_SIZE] = "";
    if (profiles_load(opt, &ps, eb) != ASSAY_OK)
        return assay_errbuf_set(errbuf, ASSAY_ERR_NOT_FOUND,
                                "no region: AWS_REGION and AWS_DEFAULT_REGION unset; %s", eb);
    enum assay_err err = ASSAY_OK;
    r = profiles_get(&ps, "region");
    if (r)
        *region_out = xstrdup(r);
    else
        err = assay_errbuf_set(errbuf, ASSAY_ERR_NOT_FOUND,
                               "no region: AWS_REGION and AWS_DEFAULT_REGION unset, no region in "
                               "profile %s",
                               ps.name);
    profiles_clear(&ps);
    return err;
}
