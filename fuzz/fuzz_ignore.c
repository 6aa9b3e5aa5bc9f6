/*
 * fuzz_ignore.c - libFuzzer target for ignore rules (src/sources/ignore.c):
 * the .gitignore and .keyhogignore files of a scanned tree are hostile
 * text, and every path of the tree is matched against them.
 *
 * Input layout: ignore-file text, then a NUL byte, then paths to match,
 * one a line (an input without a NUL is all rules, matched against a few
 * fixed paths).  Checks: parsing accepts any bytes, matching answers -1, 0
 * or 1 for files and directories alike, and the answer does not depend on
 * bytes beyond the length given (the matcher must honour len, the walker
 * passes paths that continue past it).  libFuzzer's -timeout catches a
 * matcher that goes exponential.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sources/sources.h"

static void match_one(const sources_ignore *ig, const char *path, size_t len)
{
    /* A copy followed by junk: the matcher must stop at len. */
    char *copy = malloc(len + 8);
    if (!copy)
        return;
    memcpy(copy, path, len);
    memcpy(copy + len, "/x*?[a]\0", 8);
    for (int is_dir = 0; is_dir < 2; is_dir++) {
        int a = sources_ignore_match(ig, path, len, is_dir);
        int b = sources_ignore_match(ig, copy, len, is_dir);
        if (a < -1 || a > 1 || a != b)
            abort();
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t rules_len = nul ? (size_t)(nul - data) : size;
    sources_ignore *ig = NULL;
    if (sources_ignore_parse(text, rules_len, &ig) != 0)
        return 0; /* out of memory */
    if (nul) {
        /* Exact-size heap copies so ASan sees any read past a path. */
        const char *p = (const char *)nul + 1, *end = text + size;
        int paths = 0;
        while (p < end && paths++ < 64) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            char *path = malloc(n ? n : 1);
            if (path) {
                memcpy(path, p, n);
                match_one(ig, path, n);
                free(path);
            }
            p += n + 1;
        }
    } else {
        static const char *const fixed[] = {"a", "a/b", "src/main.c", ".env", "deep/a/b/c/d.txt",
                                            "node_modules/x/y.js", "build/", "x.log"};
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
            match_one(ig, fixed[i], strlen(fixed[i]));
    }
    sources_ignore_free(ig);
    return 0;
}
