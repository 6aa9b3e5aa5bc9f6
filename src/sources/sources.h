/*
 * sources.h - where bytes come from: the filesystem walker (ignore rules,
 * symlink policy), file reading with the binary and size policy, and (in
 * later modules) git history, archives, container images and stdin.  A
 * source emits items; it never matches anything.
 */
#ifndef KH_SOURCES_H
#define KH_SOURCES_H

#include <stddef.h>
#include <stdint.h>

/* One thing to scan.  Either a file on disk (fs_path set, data NULL: the
 * consumer reads it, so reading happens on worker threads) or bytes already
 * in memory (data set), e.g. a git blob or an archive member. */
typedef struct source_item {
    const char *path;    /* origin shown to people */
    const char *fs_path; /* file to read, or NULL */
    const uint8_t *data;
    size_t len;
    /* git history attribution; NULL elsewhere */
    const char *commit, *author, *email, *date;
} source_item;

/* Return 0 to go on, non-zero to stop the walk. */
typedef int (*source_emit_fn)(const source_item *item, void *ctx);
/* Something was not scanned: path and a short reason ("permission denied",
 * "symlink loop", "larger than --max-file-size (32 MiB)"). */
typedef void (*source_skip_fn)(const char *path, const char *reason, void *ctx);

typedef struct walk_opts {
    int follow_symlinks;     /* --follow */
    int no_ignore;           /* --no-ignore: do not read .gitignore files */
    uint64_t max_file_size;  /* bytes; 0 = no limit */
} walk_opts;

/* Walks `root` (a file or a directory) depth-first in sorted order, skipping
 * .git/ directories and what .gitignore files (root's and every
 * subdirectory's, plus .git/info/exclude) exclude, and emitting every regular
 * file.  Returns 0, or -1 if root itself could not be opened (reported
 * through skip as well). */
int sources_walk(const char *root, const walk_opts *opts, source_emit_fn emit,
                 source_skip_fn skip, void *ctx);

/* Reads a whole file into *buf (grown with realloc as needed; *cap is its
 * size), at most max bytes (0 = no limit).  Returns 0, or an errno value
 * (EFBIG when larger than max). */
int sources_read_file(const char *path, uint64_t max, uint8_t **buf, size_t *cap,
                      size_t *len);

/* True when the first 8 KiB hold a NUL byte. */
int sources_is_binary(const uint8_t *data, size_t len);

/* Ignore rules (ignore.c): one parsed file in .gitignore syntax.  The walker
 * keeps one per directory; exposed here so tests and other sources can
 * reuse the matcher. */
typedef struct sources_ignore sources_ignore;

/* Parses `len` bytes of ignore-file text (any bytes are accepted; lines that
 * are not valid patterns are dropped).  Returns 0 or ENOMEM. */
int sources_ignore_parse(const char *text, size_t len, sources_ignore **out);
void sources_ignore_free(sources_ignore *ig);

/* Matches `relpath` (relative to the ignore file's directory, '/'-separated,
 * no leading '/') against the rules; the last matching rule decides.
 * Returns 1 when excluded, -1 when re-included by a '!' rule, 0 when no rule
 * matched (so a shallower file may decide). */
int sources_ignore_match(const sources_ignore *ig, const char *relpath,
                         size_t len, int is_dir);

#endif
