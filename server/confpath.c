/*
 * server/confpath: relative config paths resolved against the working
 * directory, else the config file's directory (see confpath.h).
 */
#include "server/confpath.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "server/config.h"

#include <errno.h>
#include <libgen.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>

char *confpath_resolve(const struct config *cfg, const char *path)
{
    struct stat st;
    if (path[0] == '/' || stat(path, &st) == 0 || !cfg->path)
        return xstrdup(path);
    char *copy = xstrdup(cfg->path);
    struct buf b = BUF_INIT;
    buf_appendf(&b, "%s/%s", dirname(copy), path);
    free(copy);
    return buf_detach(&b, NULL);
}

int confpath_mkdirs(const char *path)
{
    if (!path || !*path) {
        errno = EINVAL;
        return -1;
    }
    char *tmp = xstrdup(path);
    int rc = 0;
    for (char *p = tmp + 1; *p && rc == 0; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
            rc = -1;
        *p = '/';
    }
    if (rc == 0 && mkdir(tmp, 0750) != 0 && errno != EEXIST)
        rc = -1;
    free(tmp);
    return rc;
}
