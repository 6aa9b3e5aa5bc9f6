/*
 * test_walk.c - the filesystem walker and file reader against trees built
 * at test time under a mkdtemp directory (symlinks, FIFOs and permission
 * bits do not survive being committed).  Each test chdirs into its fresh
 * directory so the expected paths read as a person would type them.
 *
 * Anything that could block (FIFOs) runs under alarm(), so a regression
 * fails the test binary instead of hanging the suite.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sources/sources.h"

typedef struct fixture {
    char dir[64];
    int old_cwd;
} fixture;

/* What a walk produced: emitted paths and "path: reason" skips, each as
 * one newline-terminated string so a mismatch prints readably. */
typedef struct result {
    char *emitted, *skipped;
    size_t n_emitted, n_skipped;
    size_t stop_after; /* 0 = never stop */
} result;

static void append(char **s, const char *a, const char *b)
{
    size_t old = *s ? strlen(*s) : 0;
    size_t add = strlen(a) + (b ? strlen(b) + 2 : 0) + 1;
    char *p = realloc(*s, old + add + 1);
    assert_non_null(p);
    if (b) {
        sprintf(p + old, "%s: %s\n", a, b);
    } else {
        sprintf(p + old, "%s\n", a);
    }
    *s = p;
}

static int on_emit(const source_item *item, void *ctx)
{
    result *r = ctx;
    assert_non_null(item->path);
    assert_ptr_equal(item->data, NULL);
    assert_string_equal(item->path, item->fs_path);
    append(&r->emitted, item->path, NULL);
    r->n_emitted++;
    return r->stop_after && r->n_emitted >= r->stop_after;
}

static void on_skip(const char *path, const char *reason, void *ctx)
{
    result *r = ctx;
    append(&r->skipped, path, reason);
    r->n_skipped++;
}

static const char *str(const char *s)
{
    return s ? s : "";
}

static void result_free(result *r)
{
    free(r->emitted);
    free(r->skipped);
    memset(r, 0, sizeof *r);
}

/* Walks root and checks both lists exactly. */
static void expect_walk(const char *root, const walk_opts *o, int want_rc, const char *want_emitted,
                        const char *want_skipped)
{
    result r = {0};
    int rc = sources_walk(root, o, on_emit, on_skip, &r);
    assert_string_equal(str(r.emitted), want_emitted);
    assert_string_equal(str(r.skipped), want_skipped);
    assert_int_equal(rc, want_rc);
    result_free(&r);
}

/* Creates a file (and its parent directories) relative to the cwd. */
static void mk(const char *path, const char *content)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0) assert_int_equal(errno, EEXIST);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

/* path holding n copies of byte c (n < 1024). */
static void mk_filled(const char *path, int c, size_t n)
{
    char buf[1024];
    memset(buf, c, n);
    buf[n] = '\0';
    mk(path, buf);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/kh-walk-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    f->old_cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->old_cwd < 0 || chdir(f->dir) != 0) return -1;
    *state = f;
    return 0;
}

static int unlink_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP || flag == FTW_D) return rmdir(path) != 0;
    return unlink(path) != 0;
}

static int chmod_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_SL && flag != FTW_SLN && !S_ISLNK(st->st_mode)) chmod(path, 0700);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (fchdir(f->old_cwd) != 0) return -1;
    close(f->old_cwd);
    chmod(f->dir, 0700);
    nftw(f->dir, chmod_cb, 16, FTW_PHYS);
    int rc = nftw(f->dir, unlink_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc;
}

/* ------------------------------------------------------------------ */

static void test_sorted_order_and_git_skipped(void **state)
{
    (void)state;
    mk("b.txt", "");
    mk("a/z.txt", "");
    mk("a/b/c.txt", "");
    mk("a.txt", "");
    mk("a-b.txt", "");
    mk("B.txt", "");
    mk(".env", "");
    mk(".git/config", "");
    mk(".git/objects/x", "");
    mk("sub/.git/HEAD", "");
    walk_opts o = {0};
    expect_walk(".", &o, 0, ".env\nB.txt\na/b/c.txt\na/z.txt\na-b.txt\na.txt\nb.txt\n", "");
    expect_walk("./", &o, 0, ".env\nB.txt\na/b/c.txt\na/z.txt\na-b.txt\na.txt\nb.txt\n", "");
    expect_walk("a", &o, 0, "a/b/c.txt\na/z.txt\n", "");
    expect_walk("a/", &o, 0, "a/b/c.txt\na/z.txt\n", "");
    expect_walk("a//", &o, 0, "a/b/c.txt\na/z.txt\n", "");
    expect_walk("./a", &o, 0, "./a/b/c.txt\n./a/z.txt\n", "");
    expect_walk("a/z.txt", &o, 0, "a/z.txt\n", "");
    expect_walk("./a//z.txt", &o, 0, "./a//z.txt\n", "");
    /* No options at all means the defaults. */
    expect_walk("a/b", NULL, 0, "a/b/c.txt\n", "");
}

static void test_absolute_root(void **state)
{
    fixture *f = *state;
    mk("d/x.txt", "");
    char root[128], want[160];
    snprintf(root, sizeof root, "%s/d", f->dir);
    snprintf(want, sizeof want, "%s/d/x.txt\n", f->dir);
    expect_walk(root, NULL, 0, want, "");
}

static void test_missing_root(void **state)
{
    (void)state;
    expect_walk("nope", NULL, -1, "", "nope: No such file or directory\n");
}

static void test_nested_gitignore_anchoring(void **state)
{
    (void)state;
    mk(".gitignore", "/top.txt\n*.log\n");
    mk("top.txt", "");
    mk("x.log", "");
    mk("x/y.txt", "");
    mk("sub/.gitignore", "x/y.txt\n");
    mk("sub/top.txt", "");
    mk("sub/y.log", "");
    mk("sub/x/y.txt", "");
    mk("sub/z/x/y.txt", "");
    walk_opts o = {0};
    expect_walk(".", &o, 0,
                ".gitignore\nsub/.gitignore\nsub/top.txt\nsub/z/x/y.txt\nx/y.txt\n", "");
    /* The same rules apply when the walk starts from a subdirectory name. */
    expect_walk("sub", &o, 0, "sub/.gitignore\nsub/top.txt\nsub/y.log\nsub/z/x/y.txt\n", "");
}

static void test_negation_and_precedence(void **state)
{
    (void)state;
    mk(".gitignore", "*.env\nbuild/\n!build/keep.txt\nabc/**\n!abc/keep\n");
    mk("a.env", "");
    mk("build/keep.txt", "");
    mk("build/x", "");
    mk("abc/keep", "");
    mk("abc/drop", "");
    mk("abc/deep/keep", "");
    mk("sub/.gitignore", "!prod.env\n");
    mk("sub/prod.env", "");
    mk("sub/dev.env", "");
    walk_opts o = {0};
    expect_walk(".", &o, 0, ".gitignore\nabc/keep\nsub/.gitignore\nsub/prod.env\n", "");
}

static void test_dir_only_patterns(void **state)
{
    (void)state;
    mk(".gitignore", "logs/\n");
    mk("logs/a", "");
    mk("sub/logs", "");
    mk("sub/deeper/logs/b", "");
    walk_opts o = {0};
    expect_walk(".", &o, 0, ".gitignore\nsub/logs\n", "");
}

static void test_double_star_forms(void **state)
{
    (void)state;
    mk(".gitignore", "**/cache\na/**/b.txt\ndocs/**\n");
    mk("cache/x", "");
    mk("deep/er/cache/y", "");
    mk("a/b.txt", "");
    mk("a/x/b.txt", "");
    mk("a/x/y/b.txt", "");
    mk("a/xb.txt", "");
    mk("docs/readme", "");
    mk("docs/more/page", "");
    mk("keep.txt", "");
    walk_opts o = {0};
    expect_walk(".", &o, 0, ".gitignore\na/xb.txt\nkeep.txt\n", "");
}

static void test_escapes(void **state)
{
    (void)state;
    mk(".gitignore", "\\#hash\n\\!bang\nspace\\ \ntrail   \n# comment\n");
    mk("#hash", "");
    mk("!bang", "");
    mk("space ", "");
    mk("space", "");
    mk("trail", "");
    mk("# comment", "");
    mk("ok", "");
    walk_opts o = {0};
    expect_walk(".", &o, 0, "# comment\n.gitignore\nok\nspace\n", "");
}

static void test_keyhogignore_exclude_and_no_ignore(void **state)
{
    (void)state;
    mk(".git/info/exclude", "excluded.dat\n");
    mk(".gitignore", "*.txt\n");
    mk(".keyhogignore", "!wanted.txt\nkh.dat\n");
    mk("a.txt", "");
    mk("wanted.txt", "");
    mk("kh.dat", "");
    mk("excluded.dat", "");
    mk("other.dat", "");
    walk_opts o = {0};
    expect_walk(".", &o, 0, ".gitignore\n.keyhogignore\nother.dat\nwanted.txt\n", "");
    o.no_ignore = 1;
    expect_walk(".", &o, 0,
                ".gitignore\n.keyhogignore\na.txt\nexcluded.dat\nkh.dat\nother.dat\n"
                "wanted.txt\n",
                "");
}

static void test_exclude_only_in_git_work_tree(void **state)
{
    (void)state;
    /* info/exclude is read from <root>/.git only. */
    mk("repo/.git/info/exclude", "secret\n");
    mk("repo/secret", "");
    mk("repo/plain", "");
    expect_walk("repo", NULL, 0, "repo/plain\n", "");
    expect_walk(".", NULL, 0, "repo/plain\nrepo/secret\n", "");
}

static void test_symlinks_not_followed_by_default(void **state)
{
    (void)state;
    mk("real/f.txt", "");
    assert_int_equal(symlink("real", "link_dir"), 0);
    assert_int_equal(symlink("real/f.txt", "link_file"), 0);
    assert_int_equal(symlink("nowhere", "dangling"), 0);
    walk_opts o = {0};
    expect_walk(".", &o, 0, "real/f.txt\n", "");
    /* A symlink given as the root is followed. */
    expect_walk("link_dir", &o, 0, "link_dir/f.txt\n", "");
    expect_walk("link_file", &o, 0, "link_file\n", "");

    o.follow_symlinks = 1;
    expect_walk(".", &o, 0, "link_dir/f.txt\nlink_file\nreal/f.txt\n",
                "dangling: No such file or directory\n");
}

static void test_symlink_loop_reported_once(void **state)
{
    (void)state;
    mk("a/f.txt", "");
    mk("b/g.txt", "");
    assert_int_equal(symlink("..", "a/up"), 0);
    assert_int_equal(symlink(".", "b/self"), 0);
    walk_opts o = {.follow_symlinks = 1};
    expect_walk(".", &o, 0, "a/f.txt\nb/g.txt\n", "a/up: symlink loop\nb/self: symlink loop\n");
    o.follow_symlinks = 0;
    expect_walk(".", &o, 0, "a/f.txt\nb/g.txt\n", "");
}

/* Each directory links twice to the next: 2^40 paths if every link were
 * walked.  Must finish at once, every real file still emitted. */
static void test_symlink_fanout_is_bounded(void **state)
{
    (void)state;
    char a[64], b[64];
    for (int i = 0; i <= 40; i++) {
        snprintf(a, sizeof a, "d%02d", i);
        assert_int_equal(mkdir(a, 0755), 0);
    }
    for (int i = 0; i < 40; i++) {
        snprintf(a, sizeof a, "../d%02d", i + 1);
        snprintf(b, sizeof b, "d%02d/x", i);
        assert_int_equal(symlink(a, b), 0);
        snprintf(b, sizeof b, "d%02d/y", i);
        assert_int_equal(symlink(a, b), 0);
    }
    mk("d40/f.txt", "");
    alarm(20);
    walk_opts o = {.follow_symlinks = 1};
    result r = {0};
    assert_int_equal(sources_walk(".", &o, on_emit, on_skip, &r), 0);
    alarm(0);
    assert_string_equal(str(r.skipped), "");
    assert_true(r.n_emitted >= 1 && r.n_emitted <= 2);
    assert_non_null(strstr(r.emitted, "d40/f.txt\n"));
    result_free(&r);
}

/* Like expect_walk but without cmocka, for use in a forked child (a
 * failing cmocka assertion there would resume the runner in the child). */
static int walk_is(const char *root, int want_rc, const char *want_emitted,
                   const char *want_skipped)
{
    result r = {0};
    int rc = sources_walk(root, NULL, on_emit, on_skip, &r);
    int ok = rc == want_rc && strcmp(str(r.emitted), want_emitted) == 0 &&
             strcmp(str(r.skipped), want_skipped) == 0;
    if (!ok)
        fprintf(stderr, "walk %s: rc %d\nemitted:\n%sskipped:\n%s", root, rc, str(r.emitted),
                str(r.skipped));
    free(r.emitted);
    free(r.skipped);
    return ok;
}

static int check_unreadable(void)
{
    return walk_is(".", 0, "open.txt\n",
                   "locked: Permission denied\nsecret.txt: Permission denied\n") &&
           walk_is("secret.txt", -1, "", "secret.txt: Permission denied\n") &&
           walk_is("locked", -1, "", "locked: Permission denied\n");
}

static void test_unreadable_reported(void **state)
{
    fixture *f = *state;
    mk("locked/s.txt", "");
    mk("secret.txt", "");
    mk("open.txt", "");
    assert_int_equal(chmod("locked", 0), 0);
    assert_int_equal(chmod("secret.txt", 0), 0);
    if (geteuid() != 0) {
        assert_true(check_unreadable());
        return;
    }
    /* root reads everything: check as an unprivileged user in a child. */
    assert_int_equal(chmod(f->dir, 0755), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(77);
        _exit(check_unreadable() ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) skip();
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_size_limit(void **state)
{
    (void)state;
    mk_filled("big", 'x', 100);
    mk_filled("edge", 'x', 50);
    mk("small", "x");
    walk_opts o = {.max_file_size = 50};
    expect_walk(".", &o, 0, "edge\nsmall\n", "big: larger than --max-file-size (50 bytes)\n");
    expect_walk("big", &o, 0, "", "big: larger than --max-file-size (50 bytes)\n");
    o.max_file_size = 0;
    expect_walk(".", &o, 0, "big\nedge\nsmall\n", "");
}

/* reader_checks: regular files readdir typed are emitted without lstat; the
 * size limit is then the reader's (EFBIG), links and FIFOs are as before,
 * and shards split the same files as without it. */
static void test_reader_checks(void **state)
{
    (void)state;
    mk_filled("big", 'x', 100);
    mk("small", "x");
    mk("d/e/f", "x");
    assert_int_equal(mkfifo("pipe", 0644), 0);
    assert_int_equal(symlink("small", "link"), 0);
    walk_opts o = {.max_file_size = 50, .reader_checks = 1};
    expect_walk(".", &o, 0, "big\nd/e/f\nsmall\n", "");
    expect_walk("big", &o, 0, "", "big: larger than --max-file-size (50 bytes)\n");
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    assert_int_equal(sources_read_file("big", 50, &buf, &cap, &len), EFBIG);
    free(buf);
    o.follow_symlinks = 1;
    expect_walk(".", &o, 0, "big\nd/e/f\nlink\nsmall\n", "");
    for (uint32_t k = 0; k < 3; k++) {
        walk_opts a = {.shard = {k, 3}}, b = {.shard = {k, 3}, .reader_checks = 1};
        result ra = {0}, rb = {0};
        assert_int_equal(sources_walk(".", &a, on_emit, on_skip, &ra), 0);
        assert_int_equal(sources_walk(".", &b, on_emit, on_skip, &rb), 0);
        assert_string_equal(str(ra.emitted), str(rb.emitted));
        result_free(&ra);
        result_free(&rb);
    }
}

static void test_fifo_never_opened(void **state)
{
    (void)state;
    assert_int_equal(mkfifo("pipe", 0644), 0);
    assert_int_equal(symlink("pipe", "link_to_pipe"), 0);
    assert_int_equal(mkfifo(".gitignore", 0644), 0); /* an ignore file that is a FIFO */
    mk("sub/.keyhogignore", "");
    assert_int_equal(mkfifo("sub/.keyhogignore.tmp", 0644), 0);
    mk("f.txt", "");
    alarm(10);
    walk_opts o = {.follow_symlinks = 1};
    expect_walk(".", &o, 0, "f.txt\nsub/.keyhogignore\n", "");
    o.follow_symlinks = 0;
    expect_walk(".", &o, 0, "f.txt\nsub/.keyhogignore\n", "");
    expect_walk("pipe", &o, 0, "", "pipe: not a regular file\n");
    expect_walk("link_to_pipe", &o, 0, "", "link_to_pipe: not a regular file\n");
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    assert_int_equal(sources_read_file("pipe", 0, &buf, &cap, &len), EINVAL);
    alarm(0);
    free(buf);
}

static void test_emit_can_stop(void **state)
{
    (void)state;
    mk("a", "");
    mk("b", "");
    mk("c/d", "");
    result r = {.stop_after = 2};
    assert_int_equal(sources_walk(".", NULL, on_emit, on_skip, &r), 0);
    assert_string_equal(str(r.emitted), "a\nb\n");
    result_free(&r);
}

static void test_depth_bounded(void **state)
{
    (void)state;
    char path[1024] = "";
    size_t n = 0;
    for (int i = 0; i < 260; i++) {
        path[n++] = 'd';
        path[n] = '\0';
        assert_int_equal(mkdir(path, 0755), 0);
        path[n++] = '/';
    }
    memcpy(path + n, "f", 2);
    mk(path, "");
    mk("top.txt", "");
    result r = {0};
    assert_int_equal(sources_walk(".", NULL, on_emit, on_skip, &r), 0);
    assert_string_equal(str(r.emitted), "top.txt\n");
    assert_int_equal(r.n_skipped, 1);
    /* The 257th level is the first refused. */
    char want[1024];
    n = 0;
    for (int i = 0; i < 257; i++) {
        want[n++] = 'd';
        want[n++] = '/';
    }
    want[n - 1] = '\0';
    strcat(want, ": too deep\n");
    assert_string_equal(r.skipped, want);
    result_free(&r);
}

/* Writes an ignore file of exactly `size` bytes: `head`, comment padding,
 * then `tail` starting at byte size - strlen(tail). */
static void mk_ignore(const char *path, size_t size, const char *head, const char *tail)
{
    char *buf = malloc(size + 1);
    assert_non_null(buf);
    size_t h = strlen(head), t = strlen(tail);
    assert_true(h + t + 2 <= size);
    memcpy(buf, head, h);
    memset(buf + h, '#', size - h - t);
    for (size_t i = h + 999; i < size - t; i += 1000) buf[i] = '\n';
    buf[size - t - 1] = '\n';
    memcpy(buf + size - t, tail, t + 1);
    mk(path, buf);
    free(buf);
}

/* Past 1 MiB an ignore file is cut at its last whole line: the rule
 * straddling the limit and those after it are not applied. */
static void test_large_ignore_file_cut_at_line(void **state)
{
    (void)state;
    size_t mib = 1u << 20;
    mk_ignore(".gitignore", mib + 100, "a.txt\n", "b.txt\nc.txt\n");
    /* make a rule straddle the 1 MiB boundary */
    FILE *f = fopen(".gitignore", "r+b");
    assert_non_null(f);
    fseek(f, (long)mib - 2, SEEK_SET);
    fputs("\nbb.txt\n", f); /* cut anywhere, this would leave a rule "b" */
    fclose(f);
    mk("a.txt", "");
    mk("b", "");
    mk("bb.txt", "");
    mk("b.txt", "");
    mk("c.txt", "");
    expect_walk(".", NULL, 0, ".gitignore\nb\nb.txt\nbb.txt\nc.txt\n", "");
}

/* Ignore rules held at once are capped; a file past the cap is reported
 * and not applied (so more is scanned, never less). */
static void test_ignore_budget(void **state)
{
    (void)state;
    char dir[64] = "", path[96];
    for (int i = 1; i <= 9; i++) {
        size_t n = strlen(dir);
        snprintf(dir + n, sizeof dir - n, "%sd%d", n ? "/" : "", i);
        snprintf(path, sizeof path, "%s/.gitignore", dir);
        mk_ignore(path, 1u << 20, "", "*.tmp\n");
        snprintf(path, sizeof path, "%s/x.tmp", dir);
        mk(path, "");
    }
    result r = {0};
    assert_int_equal(sources_walk(".", NULL, on_emit, on_skip, &r), 0);
    assert_string_equal(str(r.skipped), "d1/d2/d3/d4/d5/d6/d7/d8/d9/.gitignore: ignore rules over "
                                        "the 8 MiB limit, this ignore file is not applied\n");
    assert_non_null(strstr(str(r.emitted), "d9/.gitignore\n"));
    assert_null(strstr(str(r.emitted), ".tmp")); /* d8's rule still covers d9 */
    result_free(&r);
}

/* The walk must not lose entries to names that need exact byte order. */
static void test_bytewise_sort_high_bytes(void **state)
{
    (void)state;
    mk("\xC3\xA9", "");
    mk("z", "");
    mk("Z", "");
    mk("_", "");
    expect_walk(".", NULL, 0, "Z\n_\nz\n\xC3\xA9\n", "");
}

/* ------------------------------------------------------------------ */
/* sources_read_file, sources_is_binary                                */

static void test_read_file(void **state)
{
    (void)state;
    mk("hello", "hello, world");
    mk("empty", "");
    char big[101];
    memset(big, 'y', 100);
    big[100] = '\0';
    mk("big", big);
    mk("dir/x", "");

    uint8_t *buf = NULL;
    size_t cap = 0, len = 99;
    assert_int_equal(sources_read_file("hello", 0, &buf, &cap, &len), 0);
    assert_int_equal(len, 12);
    assert_true(cap >= len);
    assert_memory_equal(buf, "hello, world", 12);

    /* The buffer is reused: a larger one stays, content is replaced. */
    uint8_t *before = buf;
    assert_int_equal(sources_read_file("big", 0, &buf, &cap, &len), 0);
    assert_int_equal(len, 100);
    assert_memory_equal(buf, big, 100);
    size_t cap_after = cap;
    assert_int_equal(sources_read_file("hello", 0, &buf, &cap, &len), 0);
    assert_int_equal(len, 12);
    assert_int_equal(cap, cap_after);
    (void)before;

    assert_int_equal(sources_read_file("big", 100, &buf, &cap, &len), 0);
    assert_int_equal(len, 100);
    assert_int_equal(sources_read_file("big", 99, &buf, &cap, &len), EFBIG);
    assert_int_equal(sources_read_file("empty", 0, &buf, &cap, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(sources_read_file("dir", 0, &buf, &cap, &len), EINVAL);
    assert_int_equal(sources_read_file("missing", 0, &buf, &cap, &len), ENOENT);
    free(buf);

    /* A file that reports size 0 but has content (procfs) is read whole,
     * and cut at the limit rather than refused. */
    if (access("/proc/self/status", R_OK) == 0) {
        buf = NULL;
        cap = 0;
        assert_int_equal(sources_read_file("/proc/self/status", 0, &buf, &cap, &len), 0);
        assert_true(len > 10);
        assert_memory_equal(buf, "Name:", 5);
        assert_int_equal(sources_read_file("/proc/self/status", 8, &buf, &cap, &len), 0);
        assert_int_equal(len, 8);
        free(buf);
    }
}

static void test_read_file_larger_than_initial_buffer(void **state)
{
    (void)state;
    size_t n = 300000;
    char *content = malloc(n + 1);
    assert_non_null(content);
    for (size_t i = 0; i < n; i++) content[i] = (char)('a' + i % 26);
    content[n] = '\0';
    mk("large", content);
    uint8_t *buf = malloc(16);
    size_t cap = 16, len = 0;
    assert_non_null(buf);
    assert_int_equal(sources_read_file("large", 0, &buf, &cap, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(buf, content, n);
    free(buf);
    free(content);
}

static void test_is_binary(void **state)
{
    (void)state;
    uint8_t data[9000];
    memset(data, 'a', sizeof data);
    assert_false(sources_is_binary(data, sizeof data));
    data[0] = 0;
    assert_true(sources_is_binary(data, sizeof data));
    data[0] = 'a';
    data[8191] = 0;
    assert_true(sources_is_binary(data, sizeof data));
    data[8191] = 'a';
    data[8192] = 0;
    assert_false(sources_is_binary(data, sizeof data));
    assert_false(sources_is_binary(data, 0));
    assert_false(sources_is_binary(NULL, 0));
}

static void test_utf16(void **state)
{
    (void)state;
    static const char text[] = "key = 'abc'\r\n\t\xe9";
    uint8_t le[64], be[64], *out = NULL;
    size_t n = 0, cap = 0, len = 0;
    le[0] = 0xff, le[1] = 0xfe, be[0] = 0xfe, be[1] = 0xff;
    for (const char *s = text; *s; s++, n++) {
        uint8_t c = (uint8_t)*s;
        le[2 + 2 * n] = c, le[3 + 2 * n] = 0;
        be[2 + 2 * n] = 0, be[3 + 2 * n] = c;
    }
    size_t bytes = 2 + 2 * n;
    /* With a BOM either way round, and without one: text, not binary. */
    size_t m = sources_utf16(le, bytes);
    assert_true(m);
    assert_false(sources_is_binary(le, bytes));
    assert_int_equal(sources_utf16_start(m), 2);
    assert_int_equal(sources_utf16_narrow(le, bytes, m, &out, &cap, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(out, "key = 'abc'\r\n\t\x1a", n);
    m = sources_utf16(be, bytes);
    assert_true(m);
    assert_int_equal(sources_utf16_narrow(be, bytes, m, &out, &cap, &len), 0);
    assert_memory_equal(out, "key = 'abc'\r\n\t\x1a", n);
    m = sources_utf16(le + 2, 22); /* the ASCII part: 95% of units must be */
    assert_true(m);
    assert_int_equal(sources_utf16_start(m), 0);
    assert_int_equal(sources_utf16_narrow(le + 2, 22, m, &out, &cap, &len), 0);
    assert_memory_equal(out, "key = 'abc'", 11);
    /* Binary data with NULs, a lone BOM and text without NULs are not. */
    uint8_t bin[4096];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (uint8_t)(i * 7919u >> 3);
    bin[10] = 0;
    assert_false(sources_utf16(bin, sizeof bin));
    assert_true(sources_is_binary(bin, sizeof bin));
    bin[0] = 0xff, bin[1] = 0xfe;
    assert_false(sources_utf16(bin, sizeof bin));
    assert_false(sources_utf16((const uint8_t *)"\xff\xfe", 2));
    assert_false(sources_utf16((const uint8_t *)"plain ascii text", 16));
    free(out);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_sorted_order_and_git_skipped),
        T(test_absolute_root),
        T(test_missing_root),
        T(test_nested_gitignore_anchoring),
        T(test_negation_and_precedence),
        T(test_dir_only_patterns),
        T(test_double_star_forms),
        T(test_escapes),
        T(test_keyhogignore_exclude_and_no_ignore),
        T(test_exclude_only_in_git_work_tree),
        T(test_symlinks_not_followed_by_default),
        T(test_symlink_loop_reported_once),
        T(test_symlink_fanout_is_bounded),
        T(test_unreadable_reported),
        T(test_size_limit),
        T(test_reader_checks),
        T(test_fifo_never_opened),
        T(test_emit_can_stop),
        T(test_depth_bounded),
        T(test_large_ignore_file_cut_at_line),
        T(test_ignore_budget),
        T(test_bytewise_sort_high_bytes),
        T(test_read_file),
        T(test_read_file_larger_than_initial_buffer),
        T(test_is_binary),
        T(test_utf16),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
