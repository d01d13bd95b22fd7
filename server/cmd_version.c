/*
 * server/cmd_version: `assay version`, the version and the linked libraries.
 */
#include "server/commands.h"

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <pcre2.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#ifndef ASSAY_VERSION
#define ASSAY_VERSION "0.0.0"
#endif

int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: assay version\n\nPrints assay's version and the versions of the "
               "libraries it runs on.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "assay version: takes no arguments\n");
        return 2;
    }
    printf("assay %s\n", ASSAY_VERSION);
    printf("libcurl %s, %s, jansson %s, libmicrohttpd %s, sqlite %s, pcre2 %d.%d\n",
           curl_version_info(CURLVERSION_NOW)->version, OpenSSL_version(OPENSSL_VERSION),
           jansson_version_str(), MHD_get_version(), sqlite3_libversion(), PCRE2_MAJOR,
           PCRE2_MINOR);
    return 0;
}
