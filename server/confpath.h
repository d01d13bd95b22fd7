/*
 * server/confpath: where a relative path of the config file (rubrics_dir,
 * data_dir, a golden entry's dataset) points. Commands resolve them the same
 * way: as given when it exists from the working directory, else beside the
 * config file. Used by `assay judge` and `assay eval`; data_dir is
 * taken from the working directory as `assay serve` does (confpath_mkdirs).
 */
#ifndef ASSAY_SERVER_CONFPATH_H
#define ASSAY_SERVER_CONFPATH_H

struct config;

/*
 * Returns a new string: path itself when it is absolute, exists from the
 * working directory, or cfg has no file; else the config file's directory
 * joined with path.
 */
char *confpath_resolve(const struct config *cfg, const char *path);

/* mkdir -p path (mode 0750 for what it creates). 0, or -1 with errno set. */
int confpath_mkdirs(const char *path);

#endif
