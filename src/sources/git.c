/*
 * git.c - git history as a source: every blob that ever existed in the
 * scanned commits, each emitted once, attributed to the commit that
 * introduced it.
 *
 * Shape: libgit2's revwalk gives commits oldest first (topological, then
 * by time, reversed), so the first commit that holds a blob is the one that
 * introduced it.  Each commit's tree is compared with its first parent's by
 * our own recursive tree diff rather than git_diff_tree_to_tree: we need no
 * rename detection, hunks or binary sniffing, only "which entries changed",
 * and comparing subtree ids lets whole unchanged directories be skipped
 * without reading them.  Two open-addressing sets of raw object ids keep the
 * work linear in the number of distinct objects: blobs already emitted (or
 * skipped), and trees already fully walked -- a tree seen before holds only
 * blobs already accounted for, which makes merges cheap (the side branch's
 * subtrees were walked on the side branch).
 *
 * Blobs are read by git's own reader when a `git` binary is on PATH: one
 * `git cat-file --batch` child per scan over a pair of sockets, with up to
 * GIT_AHEAD requests in flight so git inflates the next blobs while this
 * thread walks trees; items still leave in walk order.  Measured on the
 * 100k-commit history of make bench-git, reading every blob in history
 * order costs libgit2 about 8 times the CPU git needs (14.9 vs 1.9 s):
 * history order is the worst order for a pack (the newest version is
 * stored whole, the oldest at the end of the longest delta chain), and
 * git's delta-base cache is 96 MiB where libgit2's is a fixed 16 MiB.  The
 * tree walk stays on libgit2, with the subtrees of the last commits kept
 * parsed (each is the base of the next diff).  Without git, or when the
 * child fails (a repository git refuses as of dubious ownership, a damaged
 * object), libgit2 reads the blob, and the results are the same.
 *
 * Sizes are checked before any blob is scanned, so a huge blob costs no
 * scanning when it is over the limit.  A damaged object is reported through
 * skip and the walk goes on: one bad pack entry must not hide the rest of
 * the history.
 */
#include "sources/sources.h"

#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define GIT_MAX_TREE_DEPTH 256 /* deeper trees are hostile, not real */
#define GIT_SET_MIN 1024
#define GIT_RECENT 8
#define GIT_TREE_CACHE 1024 /* subtrees kept parsed, direct-mapped by id */

/* Open-addressing set of raw object ids.  Ids are uniformly random, so
 * their first bytes are a perfect hash; linear probing, load kept <= 1/2. */
typedef struct git_oidset {
    unsigned char (*slots)[GIT_OID_RAWSZ];
    unsigned char *used;
    size_t cap, count;
} git_oidset;

/* `git cat-file --batch` as a coprocess: requests go to fd `to`, replies
 * come back through `from`; both are ends of socket pairs, so a child that
 * dies costs an error code (MSG_NOSIGNAL), never a SIGPIPE. */
typedef struct git_catfile {
    pid_t pid;
    int to;
    FILE *from;
    int state; /* 0 not started, 1 running, -1 unusable: libgit2 reads */
} git_catfile;

/* Who and where, for an item emitted now or once its bytes arrive. */
typedef struct git_origin {
    const char *path, *commit, *author, *email, *date;
} git_origin;

/* A blob asked of cat-file and not yet emitted: its origin is copied into
 * text (reused from one blob to the next), at[] the offsets of path,
 * commit, author, email, date (SIZE_MAX for none). */
#define GIT_AHEAD 64
typedef struct git_ahead {
    git_oid oid;
    char *text;
    size_t cap, at[5];
} git_ahead;

typedef struct git_scan {
    git_repository *repo;
    git_odb *odb;
    const git_scan_opts *opts;
    source_emit_fn emit;
    source_skip_fn skip;
    void *ctx;
    git_oidset blobs, trees;
    char *path; /* current path, grown as needed */
    size_t path_cap;
    char commit_hex[GIT_OID_HEXSZ + 1];
    const char *author, *email;
    char date[32];
    /* Root trees of the last commits walked: the parent is nearly always
     * among them, and parsing its tree again would double the tree work
     * (libgit2's cache does not keep trees over 4 KiB). */
    git_oid recent_id[GIT_RECENT];
    git_tree *recent_tree[GIT_RECENT];
    unsigned recent_next;
    int stopped; /* emit asked to stop */
    int failed;  /* out of memory */
    /* Subtrees parsed for the last commits: a directory changed in one
     * commit is the base of the next commit's diff, and parsing it twice
     * was a third of the tree walk. */
    git_oid tree_id[GIT_TREE_CACHE];
    git_tree *tree_cached[GIT_TREE_CACHE];
    git_catfile cat;
    git_ahead ahead[GIT_AHEAD]; /* ring of blobs in flight */
    size_t ahead_head, ahead_count;
    uint8_t *buf; /* blob bytes from cat-file, reused */
    size_t buf_cap;
} git_scan;

static size_t git_oidset_slot(const git_oidset *s, const unsigned char *id)
{
    size_t h;
    memcpy(&h, id, sizeof h);
    size_t i = h & (s->cap - 1);
    while (s->used[i] && memcmp(s->slots[i], id, GIT_OID_RAWSZ) != 0) i = (i + 1) & (s->cap - 1);
    return i;
}

static int git_oidset_has(const git_oidset *s, const git_oid *oid)
{
    return s->cap && s->used[git_oidset_slot(s, oid->id)];
}

static int git_oidset_grow(git_oidset *s)
{
    size_t cap = s->cap ? s->cap * 2 : GIT_SET_MIN;
    git_oidset n = {calloc(cap, GIT_OID_RAWSZ), calloc(cap, 1), cap, 0};
    if (!n.slots || !n.used) {
        free(n.slots);
        free(n.used);
        return -1;
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->used[i]) continue;
        size_t j = git_oidset_slot(&n, s->slots[i]);
        memcpy(n.slots[j], s->slots[i], GIT_OID_RAWSZ);
        n.used[j] = 1;
        n.count++;
    }
    free(s->slots);
    free(s->used);
    *s = n;
    return 0;
}

/* Returns 1 when newly added, 0 when already there, -1 out of memory. */
static int git_oidset_add(git_oidset *s, const git_oid *oid)
{
    if ((s->count + 1) * 2 > s->cap && git_oidset_grow(s) != 0) return -1;
    size_t i = git_oidset_slot(s, oid->id);
    if (s->used[i]) return 0;
    memcpy(s->slots[i], oid->id, GIT_OID_RAWSZ);
    s->used[i] = 1;
    s->count++;
    return 1;
}

static void git_oidset_free(git_oidset *s)
{
    free(s->slots);
    free(s->used);
}

static void git_report(git_scan *g, const char *what, const char *why)
{
    const git_error *e = git_error_last();
    char msg[256];
    snprintf(msg, sizeof msg, "%s%s%s", why, e && e->message ? ": " : "",
             e && e->message ? e->message : "");
    if (g->skip) g->skip(what, msg, g->ctx);
}

/* Makes room for path[0..len) plus a name, a '/' and a NUL. */
static int git_path_reserve(git_scan *g, size_t need)
{
    if (need <= g->path_cap) return 0;
    size_t cap = g->path_cap ? g->path_cap : 256;
    while (cap < need) cap *= 2;
    char *p = realloc(g->path, cap);
    if (!p) return -1;
    g->path = p;
    g->path_cap = cap;
    return 0;
}

static void git_format_date(char *out, size_t n, git_time_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm)) out[0] = '\0';
}

static void git_catfile_stop(git_catfile *c)
{
    if (c->state != 1) return;
    close(c->to);
    fclose(c->from);
    int status;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) continue;
    c->state = -1;
}

/* A partial clone (extensions.partialClone, or a promisor remote): blobs
 * it lacks are fetched by git on demand, which a scan must never do, so
 * such a repository is read with libgit2 alone. */
static int git_is_partial_clone(git_repository *repo)
{
    git_config *cfg = NULL;
    if (git_repository_config_snapshot(&cfg, repo) != 0) return 1; /* unsure: be safe */
    int partial = 0;
    git_buf v = {0};
    if (git_config_get_string_buf(&v, cfg, "extensions.partialclone") == 0) partial = 1;
    git_buf_dispose(&v);
    /* Every entry, matched here: libgit2's glob iterator leaks PCRE2 match
     * data on each name that does not match. */
    git_config_iterator *it = NULL;
    if (!partial && git_config_iterator_new(&it, cfg) == 0) {
        git_config_entry *e;
        while (!partial && git_config_next(&e, it) == 0) {
            size_t n = strlen(e->name);
            int b = 0;
            partial = n > 16 && strncmp(e->name, "remote.", 7) == 0 &&
                      strcmp(e->name + n - 9, ".promisor") == 0 &&
                      git_config_parse_bool(&b, e->value) == 0 && b;
        }
        git_config_iterator_free(it);
    }
    git_config_free(cfg);
    return partial;
}

static int git_catfile_start(git_catfile *c, const char *gitdir)
{
    int req[2], rep[2];
    c->state = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, req) != 0) return -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rep) != 0) {
        close(req[0]);
        close(req[1]);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, req[1], 0);
    posix_spawn_file_actions_adddup2(&fa, rep[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    /* --no-replace-objects: refs/replace must not let a repository show
     * the scanner other bytes than the blob it names (libgit2 ignores
     * replace refs too, so both readers agree).  The repository being
     * scanned is untrusted: a partial-clone config would have git fetch a
     * missing blob with the repository's own core.sshCommand or remote
     * helper, so no transport is allowed, nothing is fetched lazily and
     * nothing may prompt: a missing blob is just "missing". */
    char *argv[] = {"git", "--no-replace-objects", "-c", "protocol.allow=never",
                    "--git-dir", (char *)gitdir, "cat-file", "--batch", NULL};
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 4, sizeof *env);
    if (!env) {
        posix_spawn_file_actions_destroy(&fa);
        close(req[0]), close(req[1]), close(rep[0]), close(rep[1]);
        return -1;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "GIT_NO_LAZY_FETCH=", 18) &&
            strncmp(environ[i], "GIT_TERMINAL_PROMPT=", 20) &&
            strncmp(environ[i], "GIT_ASKPASS=", 12))
            env[m++] = environ[i];
    env[m++] = "GIT_NO_LAZY_FETCH=1";
    env[m++] = "GIT_TERMINAL_PROMPT=0";
    env[m++] = "GIT_ASKPASS=/bin/false";
    env[m] = NULL;
    int rc = posix_spawnp(&c->pid, "git", &fa, NULL, argv, env);
    free(env);
    posix_spawn_file_actions_destroy(&fa);
    close(req[1]);
    close(rep[1]);
    c->from = rc == 0 ? fdopen(rep[0], "r") : NULL;
    if (!c->from) {
        close(req[0]);
        close(rep[0]);
        if (rc == 0) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, NULL, 0);
        }
        return -1;
    }
    c->to = req[0];
    c->state = 1;
    return 0;
}

/* Asks cat-file for blob `oid`.  Returns 0, or -1 when the child is gone
 * (it is then stopped, and libgit2 reads everything from here on). */
static int git_catfile_send(git_catfile *c, const git_oid *oid)
{
    char req[GIT_OID_HEXSZ + 1];
    git_oid_fmt(req, oid);
    req[GIT_OID_HEXSZ] = '\n';
    for (size_t off = 0; off < sizeof req;) {
        ssize_t n = send(c->to, req + off, sizeof req - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            git_catfile_stop(c);
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

/* Reads the reply to the oldest request into g->buf.  Returns 0 with *len
 * set, 1 when the blob is over `max` (its bytes drained), or -1 when
 * cat-file cannot answer (missing object, not a blob, child gone): the
 * caller then asks libgit2, which says why. */
static int git_catfile_receive(git_scan *g, uint64_t max, size_t *len)
{
    git_catfile *c = &g->cat;
    /* "<hex> blob <size>\n" then the bytes and "\n", or "<hex> missing\n". */
    char head[128];
    if (!fgets(head, sizeof head, c->from)) goto broken;
    char type[16];
    unsigned long long size;
    if (sscanf(head, "%*40s %15s %llu", type, &size) != 2) {
        if (strchr(head, '\n')) return -1; /* missing, ambiguous: libgit2 decides */
        goto broken;
    }
    if (size > SIZE_MAX - 1) goto broken;
    int over = max && size > max;
    size_t want = over ? 0 : (size_t)size;
    if (!over && want + 1 > g->buf_cap) {
        size_t cap = g->buf_cap ? g->buf_cap : 65536;
        while (cap < want + 1) cap *= 2;
        uint8_t *b = realloc(g->buf, cap);
        if (!b) {
            g->failed = 1;
            goto broken;
        }
        g->buf = b;
        g->buf_cap = cap;
    }
    if (over) { /* drain it without keeping it */
        char sink[65536];
        for (unsigned long long left = size; left;) {
            size_t n = fread(sink, 1, left < sizeof sink ? (size_t)left : sizeof sink, c->from);
            if (!n) goto broken;
            left -= n;
        }
    } else if (want && fread(g->buf, 1, want, c->from) != want) {
        goto broken;
    }
    if (fgetc(c->from) != '\n') goto broken;
    *len = (size_t)size;
    if (strcmp(type, "blob") != 0) return -1;
    return over;
broken:
    git_catfile_stop(c); /* the protocol is out of step: libgit2 from now on */
    return -1;
}

static void git_emit_bytes(git_scan *g, const git_origin *o, const uint8_t *data, size_t len)
{
    if (sources_is_binary(data, len)) {
        if (g->skip) g->skip(o->path, "binary", g->ctx);
        return;
    }
    source_item it = {.path = o->path, .data = data, .len = len, .commit = o->commit,
                      .author = o->author, .email = o->email, .date = o->date};
    if (g->emit && g->emit(&it, g->ctx) != 0) g->stopped = 1;
}

static void git_skip_size(git_scan *g, const char *path)
{
    char msg[96];
    snprintf(msg, sizeof msg, "larger than the blob size limit (%llu bytes)",
             (unsigned long long)g->opts->max_blob_size);
    if (g->skip) g->skip(path, msg, g->ctx);
}

/* Reads one blob with libgit2 and emits it, unless it is over the size
 * limit or binary. */
static void git_emit_libgit2(git_scan *g, const git_oid *oid, const git_origin *o)
{
    /* The header costs a walk down the delta chain (about a tenth of the
     * whole scan), so it is read only when there is a limit to check. */
    size_t size = 0;
    git_object_t type = GIT_OBJECT_INVALID;
    uint64_t max = g->opts->max_blob_size;
    if (max && (git_odb_read_header(&size, &type, g->odb, oid) != 0 || type != GIT_OBJECT_BLOB)) {
        git_report(g, o->path, "unreadable blob");
        return;
    }
    if (max && size > max) {
        git_skip_size(g, o->path);
        return;
    }
    git_blob *blob = NULL;
    if (git_blob_lookup(&blob, g->repo, oid) != 0) {
        git_report(g, o->path, "unreadable blob");
        return;
    }
    git_emit_bytes(g, o, git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob));
    git_blob_free(blob);
}

/* Copies a string into a slot's text; returns its offset, or SIZE_MAX for
 * NULL or out of memory (g->failed). */
static size_t git_ahead_put(git_scan *g, git_ahead *a, size_t *len, const char *str)
{
    if (!str) return SIZE_MAX;
    size_t n = strlen(str) + 1;
    if (*len + n > a->cap) {
        size_t cap = a->cap ? a->cap : 256;
        while (cap < *len + n) cap *= 2;
        char *t = realloc(a->text, cap);
        if (!t) {
            g->failed = 1;
            return SIZE_MAX;
        }
        a->text = t;
        a->cap = cap;
    }
    memcpy(a->text + *len, str, n);
    *len += n;
    return *len - n;
}

/* Emits the oldest blob in flight: cat-file's reply, or libgit2's reading
 * when cat-file could not answer.  Items leave in the order they came, so
 * history order (and with it attribution ties) does not depend on who read
 * the bytes. */
static void git_ahead_emit_one(git_scan *g)
{
    git_ahead *a = &g->ahead[g->ahead_head];
    g->ahead_head = (g->ahead_head + 1) % GIT_AHEAD;
    g->ahead_count--;
    git_origin o = {a->text + a->at[0], a->text + a->at[1],
                    a->at[2] == SIZE_MAX ? NULL : a->text + a->at[2],
                    a->at[3] == SIZE_MAX ? NULL : a->text + a->at[3],
                    a->at[4] == SIZE_MAX ? NULL : a->text + a->at[4]};
    size_t len = 0;
    int r = g->cat.state == 1 ? git_catfile_receive(g, g->opts->max_blob_size, &len) : -1;
    if (r == 0) {
        git_emit_bytes(g, &o, g->buf, len);
    } else if (r == 1) {
        git_skip_size(g, o.path);
    } else if (!g->failed) {
        git_emit_libgit2(g, &a->oid, &o);
    }
}

/* Emits every blob still in flight (or drops them once emit said stop). */
static void git_ahead_flush(git_scan *g)
{
    while (g->ahead_count && !g->stopped && !g->failed) git_ahead_emit_one(g);
    if (g->ahead_count) git_catfile_stop(&g->cat); /* replies nobody will read */
    g->ahead_count = 0;
}

/* Emits blob `oid` first seen at `path` in the current commit, once. */
static void git_emit_blob(git_scan *g, const git_oid *oid, const char *path)
{
    int added = git_oidset_add(&g->blobs, oid);
    if (added < 0) {
        g->failed = 1;
        return;
    }
    if (added == 0) return;
    if (!sources_shard_owns(&g->opts->shard, oid->id, GIT_OID_RAWSZ)) return; /* --shard */

    git_origin now = {path, g->commit_hex, g->author, g->email, g->date[0] ? g->date : NULL};
    if (!g->opts->libgit2_only && g->cat.state == 0) {
        if (git_is_partial_clone(g->repo))
            g->cat.state = -1; /* git would try to fetch what is missing */
        else
            git_catfile_start(&g->cat, git_repository_path(g->repo));
    }
    if (g->cat.state != 1 && g->ahead_count == 0) {
        git_emit_libgit2(g, oid, &now);
        return;
    }
    /* Up to GIT_AHEAD requests in flight (41 bytes each, far below a socket
     * buffer, so sending never blocks): git inflates the next blobs while
     * this thread walks trees and hands bytes on. */
    if (g->ahead_count == GIT_AHEAD) git_ahead_emit_one(g);
    if (g->stopped || g->failed) return;
    git_ahead *a = &g->ahead[(g->ahead_head + g->ahead_count) % GIT_AHEAD];
    git_oid_cpy(&a->oid, oid);
    size_t len = 0;
    a->at[0] = git_ahead_put(g, a, &len, now.path);
    a->at[1] = git_ahead_put(g, a, &len, now.commit);
    a->at[2] = git_ahead_put(g, a, &len, now.author);
    a->at[3] = git_ahead_put(g, a, &len, now.email);
    a->at[4] = git_ahead_put(g, a, &len, now.date);
    if (g->failed) return;
    g->ahead_count++;
    if (g->cat.state == 1) git_catfile_send(&g->cat, oid);
}

static size_t git_tree_slot(const git_oid *id)
{
    return ((size_t)id->id[0] | (size_t)id->id[1] << 8) & (GIT_TREE_CACHE - 1);
}

/* Tree `id`, out of the cache or read; the caller owns it until it gives
 * it back, so a deeper level can never evict a tree still in use. */
static int git_tree_take(git_scan *g, git_tree **out, const git_oid *id)
{
    size_t i = git_tree_slot(id);
    if (g->tree_cached[i] && git_oid_equal(&g->tree_id[i], id)) {
        *out = g->tree_cached[i];
        g->tree_cached[i] = NULL;
        return 0;
    }
    return git_tree_lookup(out, g->repo, id);
}

static void git_tree_give(git_scan *g, git_tree *tree)
{
    if (!tree) return;
    size_t i = git_tree_slot(git_tree_id(tree));
    git_tree_free(g->tree_cached[i]);
    git_oid_cpy(&g->tree_id[i], git_tree_id(tree));
    g->tree_cached[i] = tree;
}

/* The entry of `base` named `name`.  Both trees are sorted, so a cursor
 * that walks base alongside finds it in O(1) nearly always; the cursor
 * uses plain strcmp order, which differs from git's (a tree sorts as if
 * its name ended in '/'), so a miss falls back to the binary search and
 * the answer is exact either way. */
static const git_tree_entry *git_base_entry(const git_tree *base, size_t nbase, size_t *j,
                                            const char *name)
{
    if (!base) return NULL;
    while (*j < nbase) {
        const git_tree_entry *b = git_tree_entry_byindex(base, *j);
        int c = strcmp(git_tree_entry_name(b), name);
        if (c == 0) {
            ++*j;
            return b;
        }
        if (c > 0) break;
        ++*j;
    }
    return git_tree_entry_byname(base, name);
}

/* Emits the blobs of `tree` that differ from `base` (NULL = all of them),
 * the tree's path being g->path[0..len). */
static void git_diff_tree(git_scan *g, const git_tree *tree, const git_tree *base, size_t len,
                          int depth)
{
    if (depth > GIT_MAX_TREE_DEPTH) {
        g->path[len] = '\0';
        if (g->skip) g->skip(len ? g->path : g->commit_hex, "tree nested too deep", g->ctx);
        return;
    }
    size_t n = git_tree_entrycount(tree), nbase = base ? git_tree_entrycount(base) : 0, j = 0;
    for (size_t i = 0; i < n && !g->stopped && !g->failed; i++) {
        const git_tree_entry *e = git_tree_entry_byindex(tree, i);
        const git_oid *id = git_tree_entry_id(e);
        git_filemode_t mode = git_tree_entry_filemode(e);
        const git_tree_entry *old = git_base_entry(base, nbase, &j, git_tree_entry_name(e));
        if (old && git_oid_equal(git_tree_entry_id(old), id) &&
            git_tree_entry_filemode(old) == mode)
            continue;

        /* Submodule links and symlinks carry no content of this repo. */
        if (mode != GIT_FILEMODE_TREE && mode != GIT_FILEMODE_BLOB &&
            mode != GIT_FILEMODE_BLOB_EXECUTABLE)
            continue;
        if (mode != GIT_FILEMODE_TREE && git_oidset_has(&g->blobs, id)) continue;
        if (mode == GIT_FILEMODE_TREE && git_oidset_has(&g->trees, id)) continue;

        const char *name = git_tree_entry_name(e);
        size_t nlen = strlen(name);
        if (git_path_reserve(g, len + nlen + 2) != 0) {
            g->failed = 1;
            return;
        }
        memcpy(g->path + len, name, nlen + 1);

        if (mode != GIT_FILEMODE_TREE) {
            git_emit_blob(g, id, g->path);
            continue;
        }
        git_tree *sub = NULL, *subbase = NULL;
        if (git_tree_take(g, &sub, id) != 0) {
            git_report(g, g->path, "unreadable tree");
            continue;
        }
        if (old && git_tree_entry_filemode(old) == GIT_FILEMODE_TREE &&
            git_tree_take(g, &subbase, git_tree_entry_id(old)) != 0)
            subbase = NULL; /* unreadable base: scan the whole subtree */
        g->path[len + nlen] = '/';
        g->path[len + nlen + 1] = '\0';
        git_diff_tree(g, sub, subbase, len + nlen + 1, depth + 1);
        /* Only a completely walked tree may be skipped next time. */
        if (!g->stopped && !g->failed && git_oidset_add(&g->trees, id) < 0) g->failed = 1;
        git_tree_give(g, subbase);
        git_tree_give(g, sub);
    }
}

static git_tree *git_recent_find(const git_scan *g, const git_oid *commit)
{
    for (unsigned i = 0; i < GIT_RECENT; i++)
        if (g->recent_tree[i] && git_oid_equal(&g->recent_id[i], commit)) return g->recent_tree[i];
    return NULL;
}

static void git_recent_put(git_scan *g, const git_oid *commit, git_tree *tree)
{
    unsigned i = g->recent_next++ % GIT_RECENT;
    git_tree_free(g->recent_tree[i]);
    git_oid_cpy(&g->recent_id[i], commit);
    g->recent_tree[i] = tree;
}

static void git_scan_commit(git_scan *g, const git_oid *oid)
{
    git_oid_tostr(g->commit_hex, sizeof g->commit_hex, oid);
    git_commit *c = NULL;
    if (git_commit_lookup(&c, g->repo, oid) != 0) {
        git_report(g, g->commit_hex, "unreadable commit");
        return;
    }
    if (g->opts->since && (time_t)git_commit_time(c) < g->opts->since) {
        git_commit_free(c);
        return;
    }
    git_tree *tree = NULL, *base = NULL, *owned_base = NULL;
    if (git_commit_tree(&tree, c) != 0) {
        git_report(g, g->commit_hex, "unreadable tree");
        git_commit_free(c);
        return;
    }
    if (git_commit_parentcount(c) > 0) {
        const git_oid *pid = git_commit_parent_id(c, 0);
        base = pid ? git_recent_find(g, pid) : NULL;
        git_commit *parent = NULL;
        /* A missing parent (shallow clone, damage) means everything in this
         * tree is new as far as we can tell. */
        if (!base && git_commit_parent(&parent, c, 0) == 0 &&
            git_commit_tree(&owned_base, parent) == 0)
            base = owned_base;
        git_commit_free(parent);
    }
    const git_signature *sig = git_commit_author(c);
    g->author = sig ? sig->name : NULL;
    g->email = sig ? sig->email : NULL;
    g->date[0] = '\0';
    if (sig) git_format_date(g->date, sizeof g->date, sig->when.time);
    if (git_path_reserve(g, 1) == 0) {
        g->path[0] = '\0';
        git_diff_tree(g, tree, base, 0, 0);
    } else {
        g->failed = 1;
    }
    git_tree_free(owned_base);
    git_recent_put(g, oid, tree); /* takes the tree */
    git_commit_free(c);
}

/* Resolves one revision to a commit and pushes (or hides) it. */
static int git_push_rev(git_scan *g, git_revwalk *walk, const char *rev, int hide)
{
    git_object *obj = NULL, *peeled = NULL;
    if (git_revparse_single(&obj, g->repo, rev) != 0) {
        git_report(g, rev, "unknown revision");
        return -1;
    }
    int rc = git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT);
    if (rc == 0) {
        const git_oid *id = git_object_id(peeled);
        rc = hide ? git_revwalk_hide(walk, id) : git_revwalk_push(walk, id);
    }
    if (rc != 0) git_report(g, rev, "not a commit");
    git_object_free(peeled);
    git_object_free(obj);
    return rc == 0 ? 0 : -1;
}

/* Pushes the starting points.  Returns 0 or -1 (reported). */
static int git_push_start(git_scan *g, git_revwalk *walk)
{
    const git_scan_opts *o = g->opts;
    if (o->range) {
        /* Split by hand rather than git_revwalk_push_range, which leaks
         * when one side does not resolve; an empty side means HEAD, as in
         * git.  "A...B" (symmetric difference) is refused. */
        const char *dots = strstr(o->range, "..");
        if (!dots || dots[2] == '.') {
            if (g->skip) g->skip(o->range, "bad revision range: expected A..B", g->ctx);
            return -1;
        }
        size_t alen = (size_t)(dots - o->range);
        char *from = strndup(o->range, alen);
        if (!from) {
            g->failed = 1;
            return -1;
        }
        int rc = git_push_rev(g, walk, alen ? from : "HEAD", 1);
        free(from);
        if (rc == 0) rc = git_push_rev(g, walk, dots[2] ? dots + 2 : "HEAD", 0);
        return rc;
    }
    if (o->branch) return git_push_rev(g, walk, o->branch, 0);
    /* Globs ignore refs that do not peel to a commit; an empty or unborn
     * repository simply has nothing to walk. */
    static const char *const globs[] = {"refs/heads", "refs/tags", "refs/remotes"};
    for (size_t i = 0; i < sizeof globs / sizeof *globs; i++) {
        if (git_revwalk_push_glob(walk, globs[i]) != 0) {
            git_report(g, globs[i], "unreadable refs");
            return -1;
        }
    }
    git_revwalk_push_head(walk); /* detached HEAD; fails harmlessly when unborn */
    git_error_clear();
    return 0;
}

static int git_scan_history(git_scan *g)
{
    git_revwalk *walk = NULL;
    if (git_revwalk_new(&walk, g->repo) != 0) {
        git_report(g, git_repository_path(g->repo), "cannot walk history");
        return -1;
    }
    git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME | GIT_SORT_REVERSE);
    int rc = git_push_start(g, walk);
    git_oid oid;
    int r = 0;
    while (rc == 0 && !g->stopped && !g->failed && (r = git_revwalk_next(&oid, walk)) == 0)
        git_scan_commit(g, &oid);
    git_ahead_flush(g);
    if (rc == 0 && r != 0 && r != GIT_ITEROVER) {
        /* libgit2 reads every reachable commit before handing out the first
         * (it must, to sort), so a damaged commit ends the walk here. */
        git_report(g, git_repository_path(g->repo), "history walk failed");
    }
    git_revwalk_free(walk);
    return rc;
}

/* The index entries that differ from HEAD's tree: what `git commit` would
 * record now.  Conflicted entries (stage > 0) cannot be committed yet. */
static int git_scan_staged(git_scan *g)
{
    git_index *index = NULL;
    if (git_repository_index(&index, g->repo) != 0) {
        git_report(g, git_repository_path(g->repo), "unreadable index");
        return -1;
    }
    git_tree *head = NULL;
    git_object *obj = NULL;
    if (git_revparse_single(&obj, g->repo, "HEAD^{tree}") == 0) head = (git_tree *)obj;
    git_error_clear(); /* unborn HEAD: everything staged is new */

    memcpy(g->commit_hex, "staged", sizeof "staged");
    g->author = g->email = NULL;
    g->date[0] = '\0';
    size_t n = git_index_entrycount(index);
    for (size_t i = 0; i < n && !g->stopped && !g->failed; i++) {
        const git_index_entry *e = git_index_get_byindex(index, i);
        if (!e || git_index_entry_stage(e) != 0) continue;
        if (e->flags_extended & GIT_INDEX_ENTRY_INTENT_TO_ADD) continue;
        if (e->mode != GIT_FILEMODE_BLOB && e->mode != GIT_FILEMODE_BLOB_EXECUTABLE) continue;
        if (head) {
            git_tree_entry *te = NULL;
            int same = git_tree_entry_bypath(&te, head, e->path) == 0 &&
                       git_oid_equal(git_tree_entry_id(te), &e->id);
            git_tree_entry_free(te);
            if (same) continue;
        }
        git_emit_blob(g, &e->id, e->path);
    }
    git_ahead_flush(g);
    git_error_clear();
    git_tree_free(head);
    git_index_free(index);
    return 0;
}

int sources_git(const char *repo_path, const git_scan_opts *opts, source_emit_fn emit,
                source_skip_fn skip, void *ctx)
{
    static const git_scan_opts defaults = {0};
    if (git_libgit2_init() < 0) {
        if (skip) skip(repo_path, "cannot initialise libgit2", ctx);
        return -1;
    }
    git_scan g = {.opts = opts ? opts : &defaults, .emit = emit, .skip = skip, .ctx = ctx};
    int rc = -1;
    if (git_repository_open_ext(&g.repo, repo_path, 0, NULL) != 0) {
        git_report(&g, repo_path, "not a git repository");
    } else if (git_repository_odb(&g.odb, g.repo) != 0) {
        git_report(&g, repo_path, "unreadable object database");
    } else {
        rc = g.opts->staged ? git_scan_staged(&g) : git_scan_history(&g);
        if (g.failed) {
            if (skip) skip(repo_path, "Cannot allocate memory", ctx);
            rc = -1;
        }
    }
    git_catfile_stop(&g.cat);
    for (size_t i = 0; i < GIT_AHEAD; i++) free(g.ahead[i].text);
    free(g.buf);
    for (unsigned i = 0; i < GIT_RECENT; i++) git_tree_free(g.recent_tree[i]);
    for (size_t i = 0; i < GIT_TREE_CACHE; i++) git_tree_free(g.tree_cached[i]);
    git_oidset_free(&g.blobs);
    git_oidset_free(&g.trees);
    free(g.path);
    git_odb_free(g.odb);
    git_repository_free(g.repo);
    git_libgit2_shutdown();
    return rc;
}
