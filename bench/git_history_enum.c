/*
 * git_history_enum.c - keyhog's git history reader alone, for make bench-git:
 * walks every ref with sources_git (the same code and the same libgit2
 * cache setting as `keyhog scan --git`) and only counts the blobs it is
 * handed, so the difference to a full scan is what matching costs.
 *
 * Usage: git_history_enum [--libgit2] REPO
 * prints {"blobs": N, "bytes": N, "seconds": S}; --libgit2 reads the blobs
 * with libgit2 too instead of `git cat-file` (git_scan_opts.libgit2_only).
 */
#include <git2.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sources/sources.h"

typedef struct enum_count {
    unsigned long long blobs, bytes, skipped;
    unsigned sum; /* touches every byte, as a scanner would */
} enum_count;

static int enum_emit(const source_item *it, void *ctx)
{
    enum_count *c = ctx;
    c->blobs++;
    c->bytes += it->len;
    for (size_t i = 0; i < it->len; i += 64) c->sum += it->data[i];
    return 0;
}

static void enum_skip(const char *path, const char *reason, void *ctx)
{
    (void)path;
    (void)reason;
    ((enum_count *)ctx)->skipped++;
}

int main(int argc, char **argv)
{
    git_scan_opts opts = {0};
    if (argc == 3 && strcmp(argv[1], "--libgit2") == 0) {
        opts.libgit2_only = 1;
        argv++;
        argc--;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: git_history_enum [--libgit2] REPO\n");
        return 2;
    }
    git_libgit2_init();
    git_libgit2_opts(GIT_OPT_SET_CACHE_MAX_SIZE, (ssize_t)0);
    enum_count c = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = sources_git(argv[1], &opts, enum_emit, enum_skip, &c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("{\"blobs\": %llu, \"bytes\": %llu, \"skipped\": %llu, \"seconds\": %.3f, "
           "\"checksum\": %u}\n",
           c.blobs, c.bytes, c.skipped, s, c.sum);
    git_libgit2_shutdown();
    return rc == 0 ? 0 : 1;
}
