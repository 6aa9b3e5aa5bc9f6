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
#include <time.h>

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

/* --shard K/N: which part of an input this run owns.  Every file belongs
 * to exactly one of N shards, picked from a hash of a stable key (a file's
 * path relative to the scan root, a git blob's id), never from walk order
 * or addresses, so N runs with the same options split the input without
 * overlap or gap.  count 0 = no sharding. */
typedef struct sources_shard {
    uint32_t index; /* 0-based: --shard K/N gives K - 1 */
    uint32_t count;
} sources_shard;

/* True when `key` belongs to this run: FNV-1a 64 of the bytes, then the
 * MurmurHash3 finaliser (FNV's low bits alone split poorly), modulo count. */
static inline int sources_shard_owns(const sources_shard *s, const void *key, size_t len)
{
    if (!s || s->count < 2) return 1;
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h % s->count == s->index;
}

typedef struct walk_opts {
    int follow_symlinks;     /* --follow */
    int no_ignore;           /* --no-ignore: do not read .gitignore files */
    uint64_t max_file_size;  /* bytes; 0 = no limit */
    int reader_checks;       /* the consumer opens, fstats and size-checks each
                              * file itself: a regular file that readdir typed
                              * is emitted without lstat, size or access test */
    sources_shard shard;     /* by the path relative to root; a root that is
                              * a file by its path as given */
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

/* The same into dst, which holds `room` bytes and does not grow: ENOSPC
 * when the file (up to max) may not fit, dst's contents then undefined.
 * The GPU path reads files straight into its page-locked batch buffer. */
int sources_read_into(const char *path, uint64_t max, uint8_t *dst, size_t room, size_t *len);

/* True when the first 8 KiB hold a NUL byte and the data is not UTF-16
 * text (sources_utf16 below). */
int sources_is_binary(const uint8_t *data, size_t len);

/* Both answers at once, the NUL search done once: returns 1 when binary
 * (as sources_is_binary), else 0 with *mark what sources_utf16 returns. */
int sources_classify(const uint8_t *data, size_t len, size_t *mark);

/* UTF-16 text (Windows editors and PowerShell write it): a byte-order mark,
 * or, without one, a first 8 KiB whose code units are nearly all ASCII.
 * Returns 0 if `data` is not UTF-16, otherwise a nonzero mark (byte order
 * and BOM) for sources_utf16_narrow and sources_utf16_start. */
size_t sources_utf16(const uint8_t *data, size_t len);

/* Narrows UTF-16 text to one byte per code unit: ASCII stays, anything else
 * becomes 0x1A, so every token (ASCII by nature) survives and byte i of the
 * result is code unit i, at offset sources_utf16_start(mark) + 2*i of the
 * original.  `mark` is what sources_utf16 returned.  *out is reused (grown
 * with realloc, *cap its size).  Returns 0 or ENOMEM. */
int sources_utf16_narrow(const uint8_t *data, size_t len, size_t mark, uint8_t **out,
                         size_t *cap, size_t *out_len);

/* Where the code units start: 2 after a byte-order mark, else 0. */
size_t sources_utf16_start(size_t mark);

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

/* git history (git.c, libgit2) */
typedef struct git_scan_opts {
    const char *branch;     /* one revision (branch, tag, commit); NULL = all
                             * branches, tags, remote-tracking refs and HEAD */
    time_t since;           /* skip commits committed before this; 0 = none */
    const char *range;      /* "A..B": reachable from B, not from A; wins over
                             * branch */
    int staged;             /* scan only the index entries that differ from
                             * HEAD (what `git commit` would record) */
    uint64_t max_blob_size; /* bytes; 0 = no limit */
    sources_shard shard;    /* by blob id: a blob is read only by its shard */
    int libgit2_only;       /* read blobs with libgit2 even where a `git`
                             * binary could (git.c says why it is preferred) */
} git_scan_opts;

/* Walks history oldest first and emits every distinct blob once, from the
 * first commit that introduced it (diffed against its first parent), with
 * path, full commit hex, author name and email and date (ISO 8601 UTC);
 * data is the whole blob, valid only during the callback.  Binary blobs
 * (NUL in the first 8 KiB) and blobs over max_blob_size go to skip; so does
 * any unreadable object, and the walk goes on.  In staged mode commit is
 * "staged" and author/email/date are NULL.  Returns 0 (also when emit
 * stopped the walk), or -1 when the repository or the revisions named in
 * opts could not be opened (reported through skip as well). */
int sources_git(const char *repo_path, const git_scan_opts *opts, source_emit_fn emit,
                source_skip_fn skip, void *ctx);

/* archives (archive.c, libarchive; everything in memory, nothing on disk) */
typedef struct archive_opts {
    int max_depth;            /* nested archives below the top one; 0 = 3 */
    uint64_t max_total;       /* expanded bytes per top-level archive, all
                               * depths counted; 0 = 1 GiB */
    uint64_t max_ratio;       /* expanded / compressed, checked once past
                               * 1 MiB expanded; 0 = 100 */
    uint64_t max_members;     /* per top-level archive; 0 = 100000 */
    uint64_t max_member_size; /* bytes; 0 = max_total */
} archive_opts;

/* Emits every regular member of the archive in data[0..len) as bytes with
 * path "origin!member/path" (leading "/" and "./" stripped), recursing into
 * members that are archives themselves ("origin!a.zip!inner.txt").  Zip
 * (jar, war, apk, whl, nupkg, ...), tar, 7z, and gzip / bzip2 / xz / zstd,
 * either around a tar or around a single file ("x.txt.gz!x.txt").  Hitting
 * a total, ratio or member-count limit reports skip(path, "archive limit:
 * ...") and drops the rest of that top-level archive; a corrupt archive
 * reports skip and its siblings go on.  Returns 0, or -1 when data is not
 * an archive at all or memory ran out. */
int sources_archive(const uint8_t *data, size_t len, const char *origin,
                    const archive_opts *opts, source_emit_fn emit, source_skip_fn skip,
                    void *ctx);

/* True when data starts like an archive or compressed stream (magic bytes:
 * zip, gzip, bzip2, xz, zstd, 7z, or a ustar header); path is not used to
 * decide, only carried for callers that have it. */
int sources_is_archive(const char *path, const uint8_t *data, size_t len);

/* container images (image.c) */
typedef struct image_opts {
    uint64_t max_file_size;       /* per emitted file; 0 = no limit */
    uint64_t max_total;           /* expanded layer bytes per image; 0 = 64 GiB */
    const archive_opts *archives; /* recurse into archives found in layers
                                   * with these limits; NULL = emit them as is */
} image_opts;

/* Scans a `docker save` tarball (manifest.json) or an OCI image layout
 * (index.json + oci-layout), given as a directory or a tar (optionally
 * compressed).  Every regular file of every layer is emitted, also files a
 * later layer deletes (they are still in the image), as
 * "path!layer <12 hex of digest>!etc/app.env"; whiteout markers are not.
 * Each image config's Env entries and history created_by commands become
 * one text item "path!config", one line per entry.  Returns 0, or -1 when
 * path is not a readable image (reported through skip). */
int sources_image(const char *path, const image_opts *opts, source_emit_fn emit,
                  source_skip_fn skip, void *ctx);

/* True when path is a directory or tar holding an image as above. */
int sources_is_image(const char *path);

/* stdin (stdin.c) */

/* Reads all of standard input into *buf (grown with realloc; *cap is its
 * size), at most max bytes (0 = no limit).  Returns 0, or an errno value
 * (EFBIG when more than max bytes were offered). */
int sources_read_stdin(uint8_t **buf, size_t *cap, size_t *len, uint64_t max);

#endif
