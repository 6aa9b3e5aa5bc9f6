/*
 * walk.c - the filesystem source: walks a file or directory tree and emits
 * every regular file that ignore rules, size and type policy let through.
 *
 * Why it is shaped so:
 *  - Deterministic output.  Each directory is read whole, its names sorted
 *    bytewise, and the directory closed before descending, so results do not
 *    depend on readdir order and at most one directory handle is open however
 *    deep the tree (worker threads need the descriptors more).
 *  - Paths people can use.  A file is emitted as root joined with its path
 *    relative to root ("src/a.c" for root "src" or "src/", "a.c" for root
 *    "."), which is also a path the consumer can open, so fs_path == path.
 *    The walker never opens regular files; readers do, on worker threads.
 *  - Never blocks.  Only directories are opened here, with O_DIRECTORY and
 *    O_NONBLOCK, so a FIFO, even one swapped in after lstat, cannot stall
 *    the walk.  FIFOs, sockets and devices found inside a tree are ignored
 *    silently (like ripgrep); given as the root they are reported.
 *  - Symlinks.  Not followed inside the tree by default (the root itself is).
 *    With follow_symlinks, a directory already on the current path is a
 *    loop (reported once per link), and a directory already walked is not
 *    walked again through another link: without that, a tree of links where
 *    each directory points twice at the next grows as 2^depth.
 *  - Ignore rules.  One frame per directory on the current path holds that
 *    directory's .gitignore and .keyhogignore; a path is checked deepest
 *    frame first, .keyhogignore before .gitignore, then .git/info/exclude,
 *    so deeper and tool-specific rules override.  An excluded directory is
 *    never entered, which is also why a '!' rule cannot re-include a file
 *    inside one (git behaves the same).
 *  - Bounded.  Depth is capped (WALK_MAX_DEPTH), an ignore file is read up
 *    to 1 MiB (cut at its last whole line), and the ignore rules held at once
 *    are capped in total, so a hostile tree costs bounded memory.
 */
#include "sources/sources.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WALK_MAX_DEPTH 256
#define WALK_IGNORE_FILE_MAX (1u << 20)
#define WALK_IGNORE_TOTAL_MAX (8u << 20)

typedef struct walk_frame {
    dev_t dev;
    ino_t ino;
    sources_ignore *gitignore, *keyhogignore;
    size_t base_len;     /* this directory's path relative to root */
    size_t ignore_bytes; /* charged against WALK_IGNORE_TOTAL_MAX */
} walk_frame;

typedef struct walk_seen {
    dev_t dev;
    ino_t ino;
    int used;
} walk_seen;

typedef struct walker {
    const walk_opts *opts;
    source_emit_fn emit;
    source_skip_fn skip;
    void *ctx;
    char *path; /* root prefix + relative path of the current entry */
    size_t len, cap;
    size_t rel; /* where the relative part starts in path */
    walk_frame frames[WALK_MAX_DEPTH + 1];
    size_t depth;
    sources_ignore *exclude; /* .git/info/exclude of the root */
    walk_seen *seen;         /* directories entered, when following links */
    size_t nseen, seen_cap;
    size_t ignore_bytes;
    uid_t euid; /* for walk_mode_readable */
    int stop;   /* emit asked to stop */
    int failed; /* out of memory: stop, return -1 */
} walker;

typedef struct walk_entry {
    const char *name;
    unsigned char type; /* DT_* from readdir, DT_UNKNOWN when not given */
} walk_entry;

static const char *walk_strerror(int e, char *buf, size_t n)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(e, buf, n);
#else
    if (strerror_r(e, buf, n) != 0) snprintf(buf, n, "error %d", e);
    return buf;
#endif
}

static void walk_report(walker *w, const char *path, const char *reason)
{
    if (w->skip) w->skip(path, reason, w->ctx);
}

static void walk_report_errno(walker *w, const char *path, int e)
{
    char buf[128];
    walk_report(w, path, walk_strerror(e, buf, sizeof buf));
}

static void walk_fail(walker *w, const char *path)
{
    walk_report_errno(w, path, ENOMEM);
    w->failed = 1;
}

/* Appends name to the current path; the separator is implied when the
 * relative part is empty (the prefix is "" or ends in '/'). */
static int walk_push_name(walker *w, const char *name)
{
    size_t n = strlen(name);
    int sep = w->len > w->rel;
    size_t need = w->len + (size_t)sep + n + 1;
    if (need > w->cap) {
        size_t ncap = w->cap ? w->cap : 256;
        while (ncap < need) ncap *= 2;
        char *p = realloc(w->path, ncap);
        if (!p) return ENOMEM;
        w->path = p;
        w->cap = ncap;
    }
    if (sep) w->path[w->len++] = '/';
    memcpy(w->path + w->len, name, n + 1);
    w->len += n;
    return 0;
}

static void walk_pop_name(walker *w, size_t len)
{
    w->len = len;
    w->path[len] = '\0';
}

/* ---- directories already entered (only with follow_symlinks) ---- */

static size_t walk_seen_slot(const walk_seen *s, size_t cap, dev_t dev, ino_t ino)
{
    uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev * 0xC2B2AE3D27D4EB4Full;
    size_t i = (size_t)(h ^ (h >> 29)) & (cap - 1);
    while (s[i].used && !(s[i].dev == dev && s[i].ino == ino)) i = (i + 1) & (cap - 1);
    return i;
}

static int walk_seen_has(const walker *w, dev_t dev, ino_t ino)
{
    return w->seen_cap && w->seen[walk_seen_slot(w->seen, w->seen_cap, dev, ino)].used;
}

static int walk_seen_add(walker *w, dev_t dev, ino_t ino)
{
    if ((w->nseen + 1) * 2 > w->seen_cap) {
        size_t ncap = w->seen_cap ? w->seen_cap * 2 : 64;
        walk_seen *ns = calloc(ncap, sizeof *ns);
        if (!ns) return ENOMEM;
        for (size_t i = 0; i < w->seen_cap; i++) {
            if (!w->seen[i].used) continue;
            ns[walk_seen_slot(ns, ncap, w->seen[i].dev, w->seen[i].ino)] = w->seen[i];
        }
        free(w->seen);
        w->seen = ns;
        w->seen_cap = ncap;
    }
    size_t i = walk_seen_slot(w->seen, w->seen_cap, dev, ino);
    if (!w->seen[i].used) {
        w->seen[i] = (walk_seen){dev, ino, 1};
        w->nseen++;
    }
    return 0;
}

/* ---- ignore files ---- */

/* Reads and parses dirfd/name if it is a regular file.  A missing or
 * unreadable file means no rules: the files it would hide get scanned,
 * which is the safe side for a secret scanner. */
static int walk_load_ignore(walker *w, int dirfd, const char *name, sources_ignore **out,
                            size_t *charged)
{
    *out = NULL;
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0) return 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        return 0;
    }
    size_t want = WALK_IGNORE_FILE_MAX;
    if ((uint64_t)st.st_size < want) want = (size_t)st.st_size;
    if (w->ignore_bytes + want > WALK_IGNORE_TOTAL_MAX) {
        close(fd);
        if (walk_push_name(w, name)) return ENOMEM;
        walk_report(w, w->path,
                    "ignore rules over the 8 MiB limit, this ignore file is not applied");
        return 0;
    }
    char *text = malloc(want + 1);
    if (!text) {
        close(fd);
        return ENOMEM;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t n = read(fd, text + got, want - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    /* A cut file must not end in half a pattern. */
    if ((uint64_t)st.st_size > want) {
        const char *nl = memrchr(text, '\n', got);
        got = nl ? (size_t)(nl - text) : 0;
    }
    int rc = sources_ignore_parse(text, got, out);
    free(text);
    if (rc == 0) {
        w->ignore_bytes += got;
        *charged += got;
    }
    return rc;
}

static int walk_name_cmp(const void *a, const void *b)
{
    return strcmp(((const walk_entry *)a)->name, ((const walk_entry *)b)->name);
}

/* The listing is sorted: looking names up there saves two failing openat
 * calls in every directory that has no ignore file, i.e. most of them. */
static int walk_has(const walk_entry *ents, size_t n, const char *name)
{
    walk_entry key = {.name = name};
    return n && bsearch(&key, ents, n, sizeof *ents, walk_name_cmp) != NULL;
}

static int walk_load_frame_ignores(walker *w, int dirfd, walk_frame *f, const walk_entry *ents,
                                   size_t n, int is_root)
{
    size_t len = w->len;
    int rc = 0;
    if (walk_has(ents, n, ".gitignore"))
        rc = walk_load_ignore(w, dirfd, ".gitignore", &f->gitignore, &f->ignore_bytes);
    walk_pop_name(w, len);
    if (rc == 0 && walk_has(ents, n, ".keyhogignore"))
        rc = walk_load_ignore(w, dirfd, ".keyhogignore", &f->keyhogignore, &f->ignore_bytes);
    walk_pop_name(w, len);
    if (rc == 0 && is_root && walk_has(ents, n, ".git")) {
        struct stat st;
        if (fstatat(dirfd, ".git", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
            size_t charged = 0;
            rc = walk_load_ignore(w, dirfd, ".git/info/exclude", &w->exclude, &charged);
            walk_pop_name(w, len);
        }
    }
    return rc;
}

/* Is the current path excluded?  Deepest directory first; within one,
 * .keyhogignore over .gitignore; .git/info/exclude last. */
static int walk_ignored(const walker *w, int is_dir)
{
    const char *rel = w->path + w->rel;
    size_t n = w->len - w->rel;
    for (size_t d = w->depth; d-- > 0;) {
        const walk_frame *f = &w->frames[d];
        size_t off = f->base_len ? f->base_len + 1 : 0;
        int m = sources_ignore_match(f->keyhogignore, rel + off, n - off, is_dir);
        if (m == 0) m = sources_ignore_match(f->gitignore, rel + off, n - off, is_dir);
        if (m != 0) return m > 0;
    }
    return sources_ignore_match(w->exclude, rel, n, is_dir) > 0;
}

/* ---- the walk ---- */

/* Reads every name of an open directory into one block of names plus a
 * sorted entry array.  A read error is reported and leaves the names read
 * so far; only ENOMEM is returned. */
static int walk_list(walker *w, DIR *dir, const char *shown, char **names_out, walk_entry **out,
                     size_t *n_out)
{
    *names_out = NULL;
    *out = NULL;
    *n_out = 0;
    typedef struct {
        size_t off;
        unsigned char type;
    } raw_entry;
    char *names = NULL;
    raw_entry *raw = NULL;
    size_t nlen = 0, ncap = 0, n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(dir);
        if (!de) {
            if (errno) walk_report_errno(w, shown, errno);
            break;
        }
        const char *nm = de->d_name;
        if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0'))) continue;
        size_t l = strlen(nm) + 1;
        if (nlen + l > ncap) {
            size_t c = ncap ? ncap * 2 : 4096;
            while (c < nlen + l) c *= 2;
            char *p = realloc(names, c);
            if (!p) {
                rc = ENOMEM;
                break;
            }
            names = p;
            ncap = c;
        }
        if (n == cap) {
            size_t c = cap ? cap * 2 : 64;
            raw_entry *p = realloc(raw, c * sizeof *p);
            if (!p) {
                rc = ENOMEM;
                break;
            }
            raw = p;
            cap = c;
        }
        memcpy(names + nlen, nm, l);
        raw[n].off = nlen;
        raw[n].type = de->d_type;
        n++;
        nlen += l;
    }
    walk_entry *ents = NULL;
    if (rc == 0 && n > 0) {
        ents = malloc(n * sizeof *ents);
        if (!ents) rc = ENOMEM;
    }
    if (rc == 0) {
        /* Offsets become pointers only now: names moved while it grew. */
        for (size_t i = 0; i < n; i++) ents[i] = (walk_entry){names + raw[i].off, raw[i].type};
        if (n > 1) qsort(ents, n, sizeof *ents, walk_name_cmp);
    }
    free(raw);
    if (rc != 0) {
        free(names);
        free(ents);
        return rc;
    }
    *names_out = names;
    *out = ents;
    *n_out = n;
    return 0;
}

static int walk_dir(walker *w, const char *open_path, int nofollow, int via_link);

/* Whether the mode bits alone say this process may read the file, which
 * spares a faccessat (a second path lookup) for nearly every file.  Root
 * reads anything; the owner's bits decide for the owner; read for both
 * group and others covers everyone else, in the group or not.  What the
 * bits cannot show (an ACL entry naming us, an LSM) still ends at open in
 * the reader, which reports the same "Permission denied". */
static int walk_mode_readable(const walker *w, const struct stat *st)
{
    if (w->euid == 0) return 1;
    if (st->st_uid == w->euid) return (st->st_mode & S_IRUSR) != 0;
    return (st->st_mode & (S_IRGRP | S_IROTH)) == (S_IRGRP | S_IROTH);
}

/* Returns -1 when the file cannot be read (reported). */
static int walk_file(walker *w, const struct stat *st)
{
    /* Another shard's file: not even its skip reasons are ours. */
    if (!sources_shard_owns(&w->opts->shard, w->path + w->rel, w->len - w->rel)) return 0;
    uint64_t max = w->opts->max_file_size;
    if (max != 0 && (uint64_t)st->st_size > max) {
        char reason[96];
        snprintf(reason, sizeof reason, "larger than --max-file-size (%" PRIu64 " bytes)", max);
        walk_report(w, w->path, reason);
        return 0;
    }
    /* A file named as the root is always asked: its answer is the exit code. */
    if (!(w->depth > 0 && walk_mode_readable(w, st)) && faccessat(AT_FDCWD, w->path, R_OK, AT_EACCESS) != 0) {
        walk_report_errno(w, w->path, errno);
        return -1;
    }
    source_item item = {.path = w->path, .fs_path = w->path};
    if (w->emit && w->emit(&item, w->ctx) != 0) w->stop = 1;
    return 0;
}

/* The current path names an entry of the directory on top of the stack. */
static void walk_entry_visit(walker *w, const walk_entry *e)
{
    struct stat st;
    int have_st = 0, via_link = 0;
    unsigned char type = e->type;
    if (type == DT_UNKNOWN || type == DT_LNK) {
        if (lstat(w->path, &st) != 0) {
            walk_report_errno(w, w->path, errno);
            return;
        }
        have_st = 1;
        type = S_ISDIR(st.st_mode)   ? DT_DIR
               : S_ISREG(st.st_mode) ? DT_REG
               : S_ISLNK(st.st_mode) ? DT_LNK
                                     : DT_UNKNOWN;
    }
    if (type == DT_LNK) {
        if (!w->opts->follow_symlinks) return;
        if (stat(w->path, &st) != 0) {
            int e2 = errno;
            if (w->opts->no_ignore || !walk_ignored(w, 0)) walk_report_errno(w, w->path, e2);
            return;
        }
        via_link = 1;
        type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
    }
    if (type != DT_DIR && type != DT_REG) return; /* FIFO, socket, device */
    if (type == DT_DIR && strcmp(e->name, ".git") == 0) return;
    if (!w->opts->no_ignore && walk_ignored(w, type == DT_DIR)) return;
    if (type == DT_DIR) {
        (void)walk_dir(w, w->path, !via_link, via_link);
        return;
    }
    if (!have_st && w->opts->reader_checks) {
        /* readdir said regular: the reader's open and fstat will check size,
         * access and type again anyway, so no lstat here (one path lookup a
         * file saved). */
        if (sources_shard_owns(&w->opts->shard, w->path + w->rel, w->len - w->rel)) {
            source_item item = {.path = w->path, .fs_path = w->path};
            if (w->emit && w->emit(&item, w->ctx) != 0) w->stop = 1;
        }
        return;
    }
    if (!have_st && lstat(w->path, &st) != 0) {
        walk_report_errno(w, w->path, errno);
        return;
    }
    if (!S_ISREG(st.st_mode)) return; /* changed under us */
    (void)walk_file(w, &st);
}

/* Enters the directory at open_path (the current path, or the root as the
 * user gave it), pushes its frame, visits its sorted entries, pops.
 * Returns -1 when the directory itself could not be opened (reported). */
static int walk_dir(walker *w, const char *open_path, int nofollow, int via_link)
{
    /* The root is shown as the user wrote it, not as the prefix.  For any
     * other directory open_path is w->path itself. */
    const char *shown = w->depth == 0 ? open_path : w->path;
    if (w->depth > WALK_MAX_DEPTH) {
        walk_report(w, shown, "too deep");
        return 0;
    }
    int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    int fd = open(open_path, flags | (nofollow ? O_NOFOLLOW : 0));
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        walk_report_errno(w, shown, errno);
        if (fd >= 0) close(fd);
        return -1;
    }
    for (size_t d = 0; d < w->depth; d++) {
        if (w->frames[d].dev == st.st_dev && w->frames[d].ino == st.st_ino) {
            walk_report(w, shown, "symlink loop");
            close(fd);
            return 0;
        }
    }
    if (w->opts->follow_symlinks) {
        if (via_link && walk_seen_has(w, st.st_dev, st.st_ino)) {
            close(fd);
            return 0;
        }
        if (walk_seen_add(w, st.st_dev, st.st_ino)) {
            close(fd);
            walk_fail(w, shown);
            return 0;
        }
    }

    DIR *dir = fdopendir(fd);
    if (!dir) {
        walk_report_errno(w, shown, errno);
        close(fd);
        return -1;
    }
    char *names;
    walk_entry *ents;
    size_t n;
    int rc = walk_list(w, dir, shown, &names, &ents, &n);
    walk_frame *f = &w->frames[w->depth++];
    *f = (walk_frame){.dev = st.st_dev, .ino = st.st_ino, .base_len = w->len - w->rel};
    size_t len = w->len;
    if (rc == 0 && !w->opts->no_ignore)
        rc = walk_load_frame_ignores(w, dirfd(dir), f, ents, n, w->depth == 1);
    closedir(dir);
    /* Loading may have grown (moved) w->path, and open_path with it. */
    shown = w->depth == 1 ? shown : w->path;
    if (rc) {
        walk_fail(w, shown);
    } else {
        for (size_t i = 0; i < n && !w->stop && !w->failed; i++) {
            if (walk_push_name(w, ents[i].name)) {
                walk_fail(w, w->path);
                break;
            }
            walk_entry_visit(w, &ents[i]);
            walk_pop_name(w, len);
        }
    }
    free(ents);
    free(names);
    w->depth--;
    sources_ignore_free(f->gitignore);
    sources_ignore_free(f->keyhogignore);
    w->ignore_bytes -= f->ignore_bytes;
    return 0;
}

/* Root prefix: "" for ".", "/" for "/", else root without trailing '/'s
 * plus one '/'. */
static int walk_set_prefix(walker *w, const char *root)
{
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/') n--;
    int dot = (n == 1 && root[0] == '.');
    int slash = (n == 1 && root[0] == '/');
    size_t plen = dot ? 0 : slash ? 1 : n + 1;
    w->cap = plen + 256;
    w->path = malloc(w->cap);
    if (!w->path) return ENOMEM;
    if (!dot) {
        memcpy(w->path, root, slash ? 1 : n);
        w->path[plen - 1] = '/';
    }
    w->path[plen] = '\0';
    w->len = w->rel = plen;
    return 0;
}

int sources_walk(const char *root, const walk_opts *opts, source_emit_fn emit, source_skip_fn skip,
                 void *ctx)
{
    static const walk_opts defaults = {0};
    walker *w = calloc(1, sizeof *w);
    if (!w) {
        if (skip) skip(root, "Cannot allocate memory", ctx);
        return -1;
    }
    w->opts = opts ? opts : &defaults;
    w->emit = emit;
    w->skip = skip;
    w->ctx = ctx;
    w->euid = geteuid();

    int rc = 0;
    struct stat st;
    if (stat(root, &st) != 0) { /* the root is followed even if a link */
        walk_report_errno(w, root, errno);
        rc = -1;
    } else if (S_ISREG(st.st_mode)) {
        /* Named explicitly: emitted as given, no ignore rules apply. */
        w->path = (char *)root;
        w->len = strlen(root);
        rc = walk_file(w, &st);
        w->path = NULL;
    } else if (!S_ISDIR(st.st_mode)) {
        walk_report(w, root, "not a regular file");
    } else if (walk_set_prefix(w, root)) {
        walk_report_errno(w, root, ENOMEM);
        rc = -1;
    } else {
        rc = walk_dir(w, root, 0, 0);
        if (w->failed) rc = -1;
    }
    sources_ignore_free(w->exclude);
    free(w->seen);
    free(w->path);
    free(w);
    return rc;
}
