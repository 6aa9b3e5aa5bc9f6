/*
 * test_git.c - git history source against a repository built at test time
 * with libgit2 under a mkdtemp directory (nothing binary is committed).
 *
 * History used by every test (times are commit and author times):
 *
 *   c1 (T)       README.md, config/app.env = secret-one
 *   c2 (T+1000)  config/app.env = secret-two, docs/copy.env = secret-one
 *   c3 (T+2000)  config/app.env deleted                         <- main, HEAD
 *   f1 (T+1500)  on c1: feature.txt, bin.dat (NUL), big.txt      <- feature
 *   t1 (T+2500)  on c3: tagged.txt, reachable only from tag v1 (annotated)
 *
 * Each emitted item is recorded as "path@commit:content" so a failure
 * prints what was found.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sources/sources.h"

#define T0 1000000000

typedef struct repo_fixture {
    char dir[64];
    char c1[GIT_OID_HEXSZ + 1], c2[GIT_OID_HEXSZ + 1], c3[GIT_OID_HEXSZ + 1];
    char f1[GIT_OID_HEXSZ + 1], t1[GIT_OID_HEXSZ + 1];
    git_oid feature_blob;
} repo_fixture;

typedef struct result {
    char *emitted, *skipped;
    size_t n_emitted, n_skipped;
    size_t stop_after;
    int check_attribution;
} result;

static void append(char **s, const char *text)
{
    size_t old = *s ? strlen(*s) : 0, add = strlen(text);
    char *p = realloc(*s, old + add + 2);
    assert_non_null(p);
    memcpy(p + old, text, add);
    p[old + add] = '\n';
    p[old + add + 1] = '\0';
    *s = p;
}

static int on_emit(const source_item *it, void *ctx)
{
    result *r = ctx;
    assert_non_null(it->data);
    assert_null(it->fs_path);
    assert_non_null(it->commit);
    char line[512];
    int n = snprintf(line, sizeof line, "%s@%s:%.*s", it->path, it->commit, (int)it->len,
                     (const char *)it->data);
    assert_true(n > 0 && (size_t)n < sizeof line);
    if (n > 0 && line[n - 1] == '\n') line[n - 1] = '\0';
    append(&r->emitted, line);
    if (r->check_attribution) {
        assert_string_equal(it->author, "Ada Tester");
        assert_string_equal(it->email, "ada@example.invalid");
        assert_non_null(it->date);
        assert_int_equal(strlen(it->date), 20); /* 2001-09-09T01:46:40Z */
        assert_int_equal(it->date[10], 'T');
        assert_int_equal(it->date[19], 'Z');
    }
    r->n_emitted++;
    return r->stop_after && r->n_emitted >= r->stop_after;
}

static void on_skip(const char *path, const char *reason, void *ctx)
{
    result *r = ctx;
    char line[512];
    snprintf(line, sizeof line, "%s: %s", path, reason);
    append(&r->skipped, line);
    r->n_skipped++;
}

static void result_free(result *r)
{
    free(r->emitted);
    free(r->skipped);
}

static int has(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

static void expect(const result *r, const char *path, const char *commit, const char *content)
{
    char line[512];
    snprintf(line, sizeof line, "%s@%s:%s\n", path, commit, content);
    if (!has(r->emitted, line)) fail_msg("missing %s in:\n%s", line, r->emitted ? r->emitted : "");
}

/* ---- building the repository ---- */

static void add_file(git_index *index, const char *path, const char *content, size_t len)
{
    git_index_entry e = {0};
    e.path = path;
    e.mode = GIT_FILEMODE_BLOB;
    assert_int_equal(git_index_add_from_buffer(index, &e, content, len), 0);
}

static void commit(git_repository *repo, git_index *index, const char *ref, git_commit *parent,
                   git_time_t when, char *hex_out, git_commit **out)
{
    git_oid tree_id, id;
    git_tree *tree = NULL;
    git_signature *sig = NULL;
    assert_int_equal(git_index_write_tree_to(&tree_id, index, repo), 0);
    assert_int_equal(git_tree_lookup(&tree, repo, &tree_id), 0);
    assert_int_equal(git_signature_new(&sig, "Ada Tester", "ada@example.invalid", when, 0), 0);
    const git_commit *parents[1] = {parent};
    assert_int_equal(git_commit_create(&id, repo, ref, sig, sig, NULL, "msg", tree, parent ? 1 : 0,
                                       parents),
                     0);
    git_oid_tostr(hex_out, GIT_OID_HEXSZ + 1, &id);
    assert_int_equal(git_commit_lookup(out, repo, &id), 0);
    git_signature_free(sig);
    git_tree_free(tree);
}

static void load_tree(git_index *index, git_commit *c)
{
    git_tree *tree = NULL;
    assert_int_equal(git_commit_tree(&tree, c), 0);
    assert_int_equal(git_index_read_tree(index, tree), 0);
    git_tree_free(tree);
}

static int setup(void **state)
{
    repo_fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/kh_test_git_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    git_libgit2_init();

    git_repository *repo = NULL;
    git_index *index = NULL;
    assert_int_equal(git_repository_init(&repo, f->dir, 0), 0);
    assert_int_equal(git_repository_index(&index, repo), 0);

    git_commit *c1, *c2, *c3, *f1, *t1;
    add_file(index, "README.md", "hello\n", 6);
    add_file(index, "config/app.env", "TOKEN=secret-one\n", 17);
    commit(repo, index, "refs/heads/main", NULL, T0, f->c1, &c1);

    add_file(index, "config/app.env", "TOKEN=secret-two\n", 17);
    add_file(index, "docs/copy.env", "TOKEN=secret-one\n", 17);
    commit(repo, index, "refs/heads/main", c1, T0 + 1000, f->c2, &c2);

    assert_int_equal(git_index_remove_bypath(index, "config/app.env"), 0);
    commit(repo, index, "refs/heads/main", c2, T0 + 2000, f->c3, &c3);

    load_tree(index, c1);
    add_file(index, "feature.txt", "KEY=feature-key\n", 16);
    add_file(index, "bin.dat", "ab\0cd", 5);
    add_file(index, "big.txt", "0123456789abcdefghij-big\n", 25);
    commit(repo, index, "refs/heads/feature", c1, T0 + 1500, f->f1, &f1);
    const git_index_entry *fe = git_index_get_bypath(index, "feature.txt", 0);
    assert_non_null(fe);
    git_oid_cpy(&f->feature_blob, &fe->id);

    load_tree(index, c3);
    add_file(index, "tagged.txt", "only-in-tag\n", 12);
    commit(repo, index, NULL, c3, T0 + 2500, f->t1, &t1);
    git_signature *sig = NULL;
    git_oid tag_id;
    assert_int_equal(git_signature_new(&sig, "Ada Tester", "ada@example.invalid", T0 + 2600, 0), 0);
    assert_int_equal(git_tag_create(&tag_id, repo, "v1", (const git_object *)t1, sig, "tag", 0), 0);
    git_signature_free(sig);

    assert_int_equal(git_repository_set_head(repo, "refs/heads/main"), 0);
    load_tree(index, c3);
    assert_int_equal(git_index_write(index), 0);

    git_commit_free(c1);
    git_commit_free(c2);
    git_commit_free(c3);
    git_commit_free(f1);
    git_commit_free(t1);
    git_index_free(index);
    git_repository_free(repo);
    *state = f;
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    repo_fixture *f = *state;
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    git_libgit2_shutdown();
    free(f);
    return 0;
}

static void scan(const repo_fixture *f, const git_scan_opts *o, result *r, int want_rc)
{
    assert_int_equal(sources_git(f->dir, o, on_emit, on_skip, r), want_rc);
}

/* ---- tests ---- */

static void test_all_refs(void **state)
{
    repo_fixture *f = *state;
    result r = {.check_attribution = 1};
    scan(f, NULL, &r, 0);
    expect(&r, "README.md", f->c1, "hello");
    expect(&r, "config/app.env", f->c1, "TOKEN=secret-one");
    /* Deleted in c3, still in history. */
    expect(&r, "config/app.env", f->c2, "TOKEN=secret-two");
    expect(&r, "feature.txt", f->f1, "KEY=feature-key");
    expect(&r, "big.txt", f->f1, "0123456789abcdefghij-big");
    expect(&r, "tagged.txt", f->t1, "only-in-tag");
    /* docs/copy.env has secret-one's blob: emitted once, from c1. */
    assert_false(has(r.emitted, "docs/copy.env"));
    assert_int_equal(r.n_emitted, 6);
    assert_int_equal(r.n_skipped, 1);
    assert_true(has(r.skipped, "bin.dat: binary"));
    /* Oldest first: c1's blobs come before everything else. */
    assert_true(strstr(r.emitted, f->c1) < strstr(r.emitted, f->c2));
    result_free(&r);
}

static void test_branch(void **state)
{
    repo_fixture *f = *state;
    git_scan_opts o = {.branch = "feature"};
    result r = {0};
    scan(f, &o, &r, 0);
    expect(&r, "README.md", f->c1, "hello");
    expect(&r, "config/app.env", f->c1, "TOKEN=secret-one");
    expect(&r, "feature.txt", f->f1, "KEY=feature-key");
    expect(&r, "big.txt", f->f1, "0123456789abcdefghij-big");
    assert_int_equal(r.n_emitted, 4);
    result_free(&r);

    /* A tag name peels through the annotated tag to its commit. */
    o.branch = "v1";
    result t = {0};
    scan(f, &o, &t, 0);
    expect(&t, "tagged.txt", f->t1, "only-in-tag");
    assert_false(has(t.emitted, "feature.txt"));
    assert_int_equal(t.n_emitted, 4); /* README, secret-one, secret-two, tagged */
    result_free(&t);

    o.branch = "no-such-branch";
    result u = {0};
    scan(f, &o, &u, -1);
    assert_int_equal(u.n_emitted, 0);
    assert_true(has(u.skipped, "no-such-branch: unknown revision"));
    result_free(&u);
}

static void test_range(void **state)
{
    repo_fixture *f = *state;
    char range[2 * GIT_OID_HEXSZ + 8];
    snprintf(range, sizeof range, "%s..main", f->c1);
    git_scan_opts o = {.range = range, .branch = "feature"}; /* range wins */
    result r = {0};
    scan(f, &o, &r, 0);
    /* c1 is excluded, so secret-one's blob is first seen in c2's copy. */
    expect(&r, "config/app.env", f->c2, "TOKEN=secret-two");
    expect(&r, "docs/copy.env", f->c2, "TOKEN=secret-one");
    assert_int_equal(r.n_emitted, 2);
    result_free(&r);

    /* An empty side means HEAD: nothing is in main but not in HEAD. */
    o.range = "main..";
    result h = {0};
    scan(f, &o, &h, 0);
    assert_int_equal(h.n_emitted, 0);
    result_free(&h);

    o.range = "main..nowhere";
    result b = {0};
    scan(f, &o, &b, -1);
    assert_true(has(b.skipped, "nowhere: unknown revision"));
    assert_int_equal(b.n_skipped, 1);
    result_free(&b);

    o.range = "main...feature"; /* symmetric difference is not supported */
    result s = {0};
    scan(f, &o, &s, -1);
    assert_true(has(s.skipped, "bad revision range"));
    result_free(&s);
}

static void test_since(void **state)
{
    repo_fixture *f = *state;
    git_scan_opts o = {.since = T0 + 1200};
    result r = {0};
    scan(f, &o, &r, 0);
    expect(&r, "feature.txt", f->f1, "KEY=feature-key");
    expect(&r, "tagged.txt", f->t1, "only-in-tag");
    expect(&r, "big.txt", f->f1, "0123456789abcdefghij-big");
    assert_int_equal(r.n_emitted, 3);
    assert_false(has(r.emitted, f->c1));
    assert_false(has(r.emitted, f->c2));
    result_free(&r);
}

static void test_max_blob_size(void **state)
{
    repo_fixture *f = *state;
    git_scan_opts o = {.branch = "feature", .max_blob_size = 20};
    result r = {0};
    scan(f, &o, &r, 0);
    assert_false(has(r.emitted, "big.txt"));
    assert_true(has(r.skipped, "big.txt: larger than"));
    assert_int_equal(r.n_emitted, 3);
    result_free(&r);
}

static void test_staged(void **state)
{
    repo_fixture *f = *state;
    git_repository *repo = NULL;
    git_index *index = NULL;
    assert_int_equal(git_repository_open(&repo, f->dir), 0);
    assert_int_equal(git_repository_index(&index, repo), 0);
    add_file(index, "README.md", "hello staged\n", 13);
    add_file(index, "new.env", "PASSWORD=staged-pass\n", 21);
    assert_int_equal(git_index_write(index), 0);

    git_scan_opts o = {.staged = 1};
    result r = {0};
    scan(f, &o, &r, 0);
    expect(&r, "README.md", "staged", "hello staged");
    expect(&r, "new.env", "staged", "PASSWORD=staged-pass");
    assert_int_equal(r.n_emitted, 2);
    result_free(&r);

    /* Put the index back as HEAD has it for the other tests. */
    git_object *head = NULL;
    assert_int_equal(git_revparse_single(&head, repo, "HEAD^{tree}"), 0);
    assert_int_equal(git_index_read_tree(index, (git_tree *)head), 0);
    assert_int_equal(git_index_write(index), 0);
    git_object_free(head);
    result e = {0};
    scan(f, &o, &e, 0);
    assert_int_equal(e.n_emitted, 0);
    result_free(&e);
    git_index_free(index);
    git_repository_free(repo);
}

static void test_stop_and_errors(void **state)
{
    repo_fixture *f = *state;
    result r = {.stop_after = 1};
    scan(f, NULL, &r, 0);
    assert_int_equal(r.n_emitted, 1);
    result_free(&r);

    result n = {0};
    assert_int_equal(sources_git("/nonexistent/kh-no-repo", NULL, on_emit, on_skip, &n), -1);
    assert_int_equal(n.n_skipped, 1);
    assert_true(has(n.skipped, "not a git repository"));
    result_free(&n);
}

/* Blobs come from `git cat-file` where git is on PATH and from libgit2
 * otherwise (or when asked): both give the same items, skips and order. */
static void test_readers_agree(void **state)
{
    repo_fixture *f = *state;
    git_scan_opts limits[] = {{0}, {.max_blob_size = 20}, {.branch = "feature"}};
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        git_scan_opts o = limits[i];
        result a = {.check_attribution = 1}, b = {.check_attribution = 1}, c = {0};
        scan(f, &o, &a, 0);
        o.libgit2_only = 1;
        scan(f, &o, &b, 0);
        assert_non_null(a.emitted);
        assert_string_equal(a.emitted, b.emitted);
        assert_string_equal(a.skipped ? a.skipped : "", b.skipped ? b.skipped : "");

        /* No git binary at all: the libgit2 reader, the same result. */
        const char *path = getenv("PATH");
        char *saved = path ? strdup(path) : NULL;
        setenv("PATH", "/nonexistent/kh-no-git", 1);
        o.libgit2_only = 0;
        scan(f, &o, &c, 0);
        if (saved) setenv("PATH", saved, 1);
        free(saved);
        assert_string_equal(a.emitted, c.emitted);
        assert_string_equal(a.skipped ? a.skipped : "", c.skipped ? c.skipped : "");
        result_free(&a);
        result_free(&b);
        result_free(&c);
    }
}

/* Runs last: removes the loose object of feature.txt's blob. */
static void test_corrupt_object(void **state)
{
    repo_fixture *f = *state;
    char hex[GIT_OID_HEXSZ + 1], path[256];
    git_oid_tostr(hex, sizeof hex, &f->feature_blob);
    snprintf(path, sizeof path, "%s/.git/objects/%.2s/%s", f->dir, hex, hex + 2);
    assert_int_equal(unlink(path), 0);

    result r = {0};
    scan(f, NULL, &r, 0);
    assert_true(has(r.skipped, "feature.txt: unreadable blob"));
    assert_false(has(r.emitted, "feature.txt"));
    expect(&r, "tagged.txt", f->t1, "only-in-tag");
    assert_int_equal(r.n_emitted, 5);
    result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_refs),       cmocka_unit_test(test_branch),
        cmocka_unit_test(test_range),          cmocka_unit_test(test_since),
        cmocka_unit_test(test_max_blob_size),  cmocka_unit_test(test_staged),
        cmocka_unit_test(test_stop_and_errors), cmocka_unit_test(test_readers_agree),
        cmocka_unit_test(test_corrupt_object),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
