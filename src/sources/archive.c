/*
 * archive.c - archives and compressed files as a source: every regular
 * member, recursively, decompressed into memory and nothing else.
 *
 * libarchive reads from a memory buffer (archive_read_open_memory, which
 * can also seek, so zips are read through their central directory), and
 * each member is read in blocks into a growing buffer.  Limits are checked
 * after every block, not from the sizes headers claim, because a hostile
 * header lies: a member that expands without end is stopped at the first
 * block past the limit, having cost at most one block more than allowed.
 *
 * The limits (total expanded bytes, expansion ratio against the top-level
 * input, member count) are shared by the whole tree of nested archives of
 * one top-level input: a bomb built of nested small bombs is the same
 * bomb.  When one trips, the rest of that top-level input is dropped and
 * the caller's scan goes on with the next file.  Depth, member size and
 * corruption only cost the member or the nested archive concerned.
 *
 * Which formats: zip (and the many formats that are zips), tar, 7z, and a
 * gzip / bzip2 / xz / zstd stream around a tar or around one plain file
 * (libarchive's "raw" format, enabled only when a compression magic is
 * present so it never claims a damaged zip as one opaque member).  The
 * format list is kept short on purpose: every parser enabled is attack
 * surface, and sources_is_archive decides by the same magic bytes.
 */
#include "sources/sources.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARCHIVE_BLOCK 65536
#define ARCHIVE_RATIO_FLOOR (1u << 20) /* ratio is not judged below 1 MiB */
#define ARCHIVE_DEFAULT_DEPTH 3
#define ARCHIVE_DEFAULT_TOTAL (1ull << 30)
#define ARCHIVE_DEFAULT_RATIO 100
#define ARCHIVE_DEFAULT_MEMBERS 100000

/* State shared by one top-level archive and everything nested in it. */
typedef struct archive_walk {
    archive_opts o; /* defaults resolved */
    source_emit_fn emit;
    source_skip_fn skip;
    void *ctx;
    size_t top_len;
    uint64_t total, members;
    int stopped;   /* emit asked to stop */
    int limit_hit; /* drop the rest of the top-level input */
    int failed;    /* out of memory */
} archive_walk;

static int archive_magic(const uint8_t *d, size_t n, const char *magic, size_t mlen)
{
    return n >= mlen && memcmp(d, magic, mlen) == 0;
}

/* A compressed stream, as opposed to a container with members. */
static int archive_is_compressed(const uint8_t *d, size_t n)
{
    return archive_magic(d, n, "\x1f\x8b", 2) || archive_magic(d, n, "BZh", 3) ||
           archive_magic(d, n, "\xfd\x37\x7a\x58\x5a\x00", 6) ||
           archive_magic(d, n, "\x28\xb5\x2f\xfd", 4);
}

int sources_is_archive(const char *path, const uint8_t *data, size_t len)
{
    (void)path;
    if (!data) return 0;
    if (archive_is_compressed(data, len)) return 1;
    if (archive_magic(data, len, "PK\x03\x04", 4)) return 1;
    if (archive_magic(data, len, "\x37\x7a\xbc\xaf\x27\x1c", 6)) return 1;
    return len >= 262 && memcmp(data + 257, "ustar", 5) == 0;
}

static void archive_limit(archive_walk *w, const char *where, const char *what)
{
    char msg[160];
    snprintf(msg, sizeof msg, "archive limit: %s; rest of the archive not scanned", what);
    if (w->skip) w->skip(where, msg, w->ctx);
    w->limit_hit = 1;
}

/* Counts n more expanded bytes.  Returns 0, or -1 when a limit tripped. */
static int archive_count(archive_walk *w, const char *where, uint64_t n)
{
    w->total += n;
    char what[96];
    if (w->total > w->o.max_total) {
        snprintf(what, sizeof what, "more than %llu bytes expanded",
                 (unsigned long long)w->o.max_total);
        archive_limit(w, where, what);
        return -1;
    }
    uint64_t allowed;
    if (__builtin_mul_overflow((uint64_t)(w->top_len ? w->top_len : 1), w->o.max_ratio, &allowed))
        allowed = UINT64_MAX;
    if (w->total > ARCHIVE_RATIO_FLOOR && w->total > allowed) {
        snprintf(what, sizeof what, "expands more than %llu:1", (unsigned long long)w->o.max_ratio);
        archive_limit(w, where, what);
        return -1;
    }
    return 0;
}

/* The member name as shown: no leading "/" or "./" (names are never used
 * to open anything, so "../" is only cosmetic and kept visible). */
static const char *archive_clean_name(const char *name)
{
    for (;;) {
        if (name[0] == '/') {
            name++;
        } else if (name[0] == '.' && name[1] == '/') {
            name += 2;
        } else {
            return name;
        }
    }
}

/* For a single compressed file: "dir/x.txt.gz" -> "x.txt". */
static void archive_raw_name(const char *prefix, char *out, size_t n)
{
    const char *base = strrchr(prefix, '!');
    base = base ? base + 1 : prefix;
    const char *slash = strrchr(base, '/');
    if (slash) base = slash + 1;
    snprintf(out, n, "%s", base);
    char *dot = strrchr(out, '.');
    static const char *const exts[] = {".gz", ".bz2", ".xz", ".zst", ".zstd", ".lzma", ".z", ".Z"};
    for (size_t i = 0; dot && i < sizeof exts / sizeof *exts; i++) {
        if (strcmp(dot, exts[i]) == 0) {
            *dot = '\0';
            break;
        }
    }
    if (!out[0]) snprintf(out, n, "data");
}

static int archive_grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : ARCHIVE_BLOCK;
    while (c < need) c *= 2;
    uint8_t *p = realloc(*buf, c);
    if (!p) return -1;
    *buf = p;
    *cap = c;
    return 0;
}

static void archive_walk_buffer(archive_walk *w, const uint8_t *data, size_t len,
                                const char *prefix, int depth);

/* Reads the current member into *buf.  Returns 0 when read whole, 1 when
 * it was skipped (reported) and the archive goes on, -1 when the archive
 * must stop (limit, corruption, memory). */
static int archive_read_member(archive_walk *w, struct archive *a, const char *path,
                               uint8_t **buf, size_t *cap, size_t *len)
{
    *len = 0;
    for (;;) {
        if (archive_grow(buf, cap, *len + ARCHIVE_BLOCK) != 0) {
            w->failed = 1;
            return -1;
        }
        la_ssize_t n = archive_read_data(a, *buf + *len, ARCHIVE_BLOCK);
        if (n == 0) return 0;
        if (n < 0) {
            char msg[256];
            snprintf(msg, sizeof msg, "unreadable archive member: %s",
                     archive_error_string(a) ? archive_error_string(a) : "error");
            if (w->skip) w->skip(path, msg, w->ctx);
            return n == ARCHIVE_FATAL ? -1 : 1;
        }
        *len += (size_t)n;
        if (archive_count(w, path, (uint64_t)n) != 0) return -1;
        if (*len > w->o.max_member_size) {
            char msg[96];
            snprintf(msg, sizeof msg, "larger than the member size limit (%llu bytes)",
                     (unsigned long long)w->o.max_member_size);
            if (w->skip) w->skip(path, msg, w->ctx);
            return 1;
        }
    }
}

/* Walks the members of the archive in data[0..len), shown as `prefix`. */
static void archive_walk_buffer(archive_walk *w, const uint8_t *data, size_t len,
                                const char *prefix, int depth)
{
    struct archive *a = archive_read_new();
    if (!a) {
        w->failed = 1;
        return;
    }
    int raw = archive_is_compressed(data, len);
    archive_read_support_format_zip(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    archive_read_support_format_7zip(a);
    if (raw) archive_read_support_format_raw(a);
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_xz(a);
    archive_read_support_filter_lzma(a);
    archive_read_support_filter_zstd(a);

    uint8_t *buf = NULL;
    size_t cap = 0, plen = strlen(prefix);
    char *path = NULL;
    if (archive_read_open_memory(a, data, len) != ARCHIVE_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "corrupt archive: %s",
                 archive_error_string(a) ? archive_error_string(a) : "unknown format");
        if (w->skip) w->skip(prefix, msg, w->ctx);
        goto out;
    }
    for (;;) {
        if (w->stopped || w->limit_hit || w->failed) break;
        struct archive_entry *e = NULL;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) {
            char msg[256];
            snprintf(msg, sizeof msg, "corrupt archive: %s",
                     archive_error_string(a) ? archive_error_string(a) : "bad header");
            if (w->skip) w->skip(prefix, msg, w->ctx);
            break; /* a bad header leaves no reliable place to resume */
        }
        if (++w->members > w->o.max_members) {
            char what[64];
            snprintf(what, sizeof what, "more than %llu members",
                     (unsigned long long)w->o.max_members);
            archive_limit(w, prefix, what);
            break;
        }
        if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e)) continue;

        char rawname[256];
        const char *name = archive_entry_pathname(e);
        if (raw && archive_format(a) == ARCHIVE_FORMAT_RAW) {
            archive_raw_name(prefix, rawname, sizeof rawname);
            name = rawname;
        }
        name = archive_clean_name(name ? name : "");
        size_t nlen = strlen(name);
        char *p = realloc(path, plen + nlen + 2);
        if (!p) {
            w->failed = 1;
            break;
        }
        path = p;
        memcpy(path, prefix, plen);
        path[plen] = '!';
        memcpy(path + plen + 1, name, nlen + 1);

        /* A member whose header already says it is too big is skipped
         * without inflating it (the count still charges what a streaming
         * reader will have to decompress to get past it). */
        if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0 &&
            (uint64_t)archive_entry_size(e) > w->o.max_member_size) {
            char msg[96];
            snprintf(msg, sizeof msg, "larger than the member size limit (%llu bytes)",
                     (unsigned long long)w->o.max_member_size);
            if (w->skip) w->skip(path, msg, w->ctx);
            if (archive_filter_count(a) > 1 &&
                archive_count(w, path, (uint64_t)archive_entry_size(e)) != 0)
                break;
            continue;
        }

        size_t mlen = 0;
        int m = archive_read_member(w, a, path, &buf, &cap, &mlen);
        if (m < 0) break;
        if (m > 0) continue;

        if (sources_is_archive(path, buf, mlen)) {
            if (depth >= w->o.max_depth) {
                char msg[96];
                snprintf(msg, sizeof msg, "archive limit: nested deeper than %d", w->o.max_depth);
                if (w->skip) w->skip(path, msg, w->ctx);
            } else {
                archive_walk_buffer(w, buf, mlen, path, depth + 1);
            }
            continue;
        }
        source_item it = {.path = path, .data = buf, .len = mlen};
        if (w->emit && w->emit(&it, w->ctx) != 0) w->stopped = 1;
    }
out:
    free(path);
    free(buf);
    archive_read_free(a);
}

int sources_archive(const uint8_t *data, size_t len, const char *origin, const archive_opts *opts,
                    source_emit_fn emit, source_skip_fn skip, void *ctx)
{
    if (!sources_is_archive(origin, data, len)) {
        if (skip) skip(origin, "not an archive", ctx);
        return -1;
    }
    archive_walk w = {.emit = emit, .skip = skip, .ctx = ctx, .top_len = len};
    if (opts) w.o = *opts;
    if (w.o.max_depth <= 0) w.o.max_depth = ARCHIVE_DEFAULT_DEPTH;
    if (!w.o.max_total) w.o.max_total = ARCHIVE_DEFAULT_TOTAL;
    if (!w.o.max_ratio) w.o.max_ratio = ARCHIVE_DEFAULT_RATIO;
    if (!w.o.max_members) w.o.max_members = ARCHIVE_DEFAULT_MEMBERS;
    if (!w.o.max_member_size || w.o.max_member_size > w.o.max_total)
        w.o.max_member_size = w.o.max_total;
    archive_walk_buffer(&w, data, len, origin, 0);
    if (w.failed) {
        if (skip) skip(origin, strerror(ENOMEM), ctx);
        return -1;
    }
    return 0;
}
