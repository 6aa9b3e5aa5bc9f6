/*
 * engine_cache.c - compiles the engine, reusing the serialized databases of
 * an earlier run from the user's cache directory, so a small scan starts in
 * milliseconds instead of recompiling hundreds of patterns.  The library
 * decides whether cached bytes still fit the detector set; this file only
 * reads and writes them, atomically, and treats every cache problem as a
 * miss (a scan never fails because of the cache).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

static int cache_dir(char *out, size_t n)
{
    const char *d = getenv("KEYHOG_CACHE_DIR");
    if (d && *d)
        return snprintf(out, n, "%s", d) < (int)n ? 0 : -1;
    const char *x = getenv("XDG_CACHE_HOME");
    if (x && *x)
        return snprintf(out, n, "%s/keyhog", x) < (int)n ? 0 : -1;
    const char *h = getenv("HOME");
    if (h && *h)
        return snprintf(out, n, "%s/.cache/keyhog", h) < (int)n ? 0 : -1;
    return -1;
}

static int mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc && errno != EEXIST)
            return -1;
    }
    return mkdir(path, 0700) && errno != EEXIST ? -1 : 0;
}

static void *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat st;
    void *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && st.st_size > 0 && st.st_size < (1LL << 31)) {
        buf = malloc((size_t)st.st_size);
        if (buf && fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)st.st_size;
    }
    fclose(f);
    return buf;
}

int cli_engine_compile(const kh_detectors *set, kh_engine_opts *opts, int use_cache,
                       kh_engine **out, kh_error *err)
{
    char dir[3072], path[4096];
    void *cached = NULL;
    size_t cached_len = 0;
    int have_dir = use_cache && cache_dir(dir, sizeof dir) == 0;
    if (have_dir) {
        char key[65];
        kh_engine_cache_key(set, key);
        snprintf(path, sizeof path, "%s/engine-%.16s.db", dir, key);
        cached = read_all(path, &cached_len);
    }
    opts->cache = cached;
    opts->cache_len = cached_len;
    int rc = kh_engine_compile(set, opts, out, err);
    free(cached);
    opts->cache = NULL;
    opts->cache_len = 0;
    if (rc != KH_OK || !have_dir || kh_engine_from_cache(*out))
        return rc;
    void *bytes;
    size_t len;
    if (kh_engine_serialize(*out, &bytes, &len) != KH_OK)
        return rc;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    if (mkdirs(dir) == 0) {
        FILE *f = fopen(tmp, "wb");
        if (f) {
            int ok = fwrite(bytes, 1, len, f) == len;
            ok &= fclose(f) == 0;
            if (!ok || rename(tmp, path) != 0)
                unlink(tmp);
        }
    }
    free(bytes);
    return rc;
}
