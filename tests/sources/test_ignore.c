/*
 * test_ignore.c - the gitignore matcher on its own, from strings: every
 * syntax rule the walker relies on, plus inputs built to make a naive
 * backtracking matcher take exponential time or read out of bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sources/sources.h"

/* Parses rules, matches path, frees. */
static int match(const char *rules, const char *path, int is_dir)
{
    sources_ignore *ig = NULL;
    assert_int_equal(sources_ignore_parse(rules, strlen(rules), &ig), 0);
    assert_non_null(ig);
    int r = sources_ignore_match(ig, path, strlen(path), is_dir);
    sources_ignore_free(ig);
    return r;
}

static void test_basename_patterns(void **state)
{
    (void)state;
    assert_int_equal(match("*.log\n", "a.log", 0), 1);
    assert_int_equal(match("*.log\n", "deep/er/a.log", 0), 1);
    assert_int_equal(match("*.log\n", "a.logx", 0), 0);
    assert_int_equal(match("*.log\n", ".log", 0), 1); /* no special leading dot */
    assert_int_equal(match("secret\n", "x/secret", 1), 1);
    assert_int_equal(match("secret\n", "secret/x", 0), 0); /* the walker never enters it */
    assert_int_equal(match("", "a", 0), 0);
    assert_int_equal(match("# only a comment\n\n   \n", "a", 0), 0);
}

static void test_anchoring(void **state)
{
    (void)state;
    assert_int_equal(match("/top.txt\n", "top.txt", 0), 1);
    assert_int_equal(match("/top.txt\n", "sub/top.txt", 0), 0);
    assert_int_equal(match("a/b\n", "a/b", 0), 1);
    assert_int_equal(match("a/b\n", "x/a/b", 0), 0);
    assert_int_equal(match("a/*.c\n", "a/x.c", 0), 1);
    assert_int_equal(match("a/*.c\n", "a/b/x.c", 0), 0); /* '*' stops at '/' */
    assert_int_equal(match("a/?\n", "a/b", 0), 1);
    assert_int_equal(match("/\n", "a", 0), 0); /* empty after the slash: no rule */
}

static void test_dir_only(void **state)
{
    (void)state;
    assert_int_equal(match("logs/\n", "logs", 1), 1);
    assert_int_equal(match("logs/\n", "logs", 0), 0);
    assert_int_equal(match("logs/\n", "x/logs", 1), 1);
    assert_int_equal(match("a/logs/\n", "a/logs", 1), 1);
    assert_int_equal(match("a/logs/\n", "b/a/logs", 1), 0);
}

static void test_negation_last_rule_wins(void **state)
{
    (void)state;
    assert_int_equal(match("*.log\n!keep.log\n", "keep.log", 0), -1);
    assert_int_equal(match("*.log\n!keep.log\n", "other.log", 0), 1);
    assert_int_equal(match("!keep.log\n*.log\n", "keep.log", 0), 1);
    assert_int_equal(match("!keep.log\n", "other", 0), 0);
    assert_int_equal(match("!\n", "x", 0), 0);
}

static void test_double_star(void **state)
{
    (void)state;
    const char *lead = "**/foo\n";
    assert_int_equal(match(lead, "foo", 0), 1);
    assert_int_equal(match(lead, "a/foo", 0), 1);
    assert_int_equal(match(lead, "a/b/foo", 1), 1);
    assert_int_equal(match(lead, "a/foox", 0), 0);
    assert_int_equal(match("**/foo/bar\n", "foo/bar", 0), 1);
    assert_int_equal(match("**/foo/bar\n", "x/y/foo/bar", 0), 1);
    assert_int_equal(match("**/foo/bar\n", "x/foo/y/bar", 0), 0);

    const char *trail = "abc/**\n";
    assert_int_equal(match(trail, "abc/x", 0), 1);
    assert_int_equal(match(trail, "abc/x/y", 0), 1);
    assert_int_equal(match(trail, "abc", 1), 0); /* inside only */
    assert_int_equal(match(trail, "x/abc/y", 0), 0);

    const char *mid = "a/**/b\n";
    assert_int_equal(match(mid, "a/b", 0), 1);
    assert_int_equal(match(mid, "a/x/b", 0), 1);
    assert_int_equal(match(mid, "a/x/y/b", 0), 1);
    assert_int_equal(match(mid, "a/xb", 0), 0);
    assert_int_equal(match(mid, "a/x/b/c", 0), 0);
    assert_int_equal(match("a/**/b/**/c\n", "a/1/b/2/3/c", 0), 1);
    assert_int_equal(match("a/**/b/**/c\n", "a/1/2/c", 0), 0);

    /* "**" not alone in its segment is two plain stars. */
    assert_int_equal(match("foo**bar\n", "fooXYbar", 0), 1);
    assert_int_equal(match("a/foo**bar\n", "a/foo/x/bar", 0), 0);
    assert_int_equal(match("/**\n", "anything/at/all", 0), 1);
    assert_int_equal(match("**\n", "any", 0), 1);
}

static void test_wildcards_and_classes(void **state)
{
    (void)state;
    assert_int_equal(match("file?.txt\n", "file1.txt", 0), 1);
    assert_int_equal(match("file?.txt\n", "file10.txt", 0), 0);
    assert_int_equal(match("[abc].c\n", "b.c", 0), 1);
    assert_int_equal(match("[abc].c\n", "d.c", 0), 0);
    assert_int_equal(match("[!abc].c\n", "d.c", 0), 1);
    assert_int_equal(match("[!abc].c\n", "a.c", 0), 0);
    assert_int_equal(match("[^abc].c\n", "a.c", 0), 0);
    assert_int_equal(match("[a-c]x\n", "bx", 0), 1);
    assert_int_equal(match("[a-c]x\n", "dx", 0), 0);
    assert_int_equal(match("[]]\n", "]", 0), 1);
    assert_int_equal(match("[a-]\n", "-", 0), 1);
    assert_int_equal(match("[[:digit:]]x\n", "7x", 0), 1);
    assert_int_equal(match("[[:digit:]]x\n", "ax", 0), 0);
    assert_int_equal(match("[[:upper:][:digit:]]\n", "Q", 0), 1);
    assert_int_equal(match("[\\]]\n", "]", 0), 1);
    assert_int_equal(match("[abc\n", "[abc", 0), 1); /* unclosed: literal '[' */
    assert_int_equal(match("[abc\n", "a", 0), 0);
    assert_int_equal(match("[[:bogus:]]\n", "b", 0), 0);
    assert_int_equal(match("*.[ch]\n", "x.h", 0), 1);
    assert_int_equal(match("a*b*c\n", "aXXbYYc", 0), 1);
    assert_int_equal(match("a*b*c\n", "aXXbYY", 0), 0);
    assert_int_equal(match("*\n", "x", 0), 1);
}

static void test_escapes_and_spaces(void **state)
{
    (void)state;
    assert_int_equal(match("#hash\n", "#hash", 0), 0); /* a comment */
    assert_int_equal(match("\\#hash\n", "#hash", 0), 1);
    assert_int_equal(match("\\!bang\n", "!bang", 0), 1);
    assert_int_equal(match("\\!bang\n", "bang", 0), 0);
    assert_int_equal(match("\\*\n", "*", 0), 1);
    assert_int_equal(match("\\*\n", "x", 0), 0);
    assert_int_equal(match("\\?\n", "x", 0), 0);
    assert_int_equal(match("trail   \n", "trail", 0), 1);
    assert_int_equal(match("trail   \n", "trail ", 0), 0);
    assert_int_equal(match("space\\ \n", "space ", 0), 1);
    assert_int_equal(match("space\\ \n", "space", 0), 0);
    assert_int_equal(match("two\\  \n", "two ", 0), 1);
    assert_int_equal(match("lone\\\n", "lone\\", 0), 0); /* invalid: dropped */
    assert_int_equal(match("lone\\\n", "lone", 0), 0);
    assert_int_equal(match("back\\\\slash\n", "back\\slash", 0), 1);
    assert_int_equal(match("  lead\n", "  lead", 0), 1); /* leading spaces kept */
}

static void test_line_endings_and_bom(void **state)
{
    (void)state;
    assert_int_equal(match("*.log\r\n*.tmp\r\n", "a.log", 0), 1);
    assert_int_equal(match("*.log\r\n*.tmp\r\n", "a.tmp", 0), 1);
    assert_int_equal(match("\xEF\xBB\xBFsecret.txt\n", "secret.txt", 0), 1);
    assert_int_equal(match("no-newline-at-end", "no-newline-at-end", 0), 1);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Patterns that make a backtracking matcher exponential must finish at
 * once; a wrong matcher makes this test time out instead of passing. */
static void test_pathological_patterns_are_fast(void **state)
{
    (void)state;
    char text[251];
    memset(text, 'a', 250);
    text[250] = '\0';
    double t0 = now_seconds();
    for (int i = 0; i < 100; i++)
        assert_int_equal(match("*a*a*a*a*a*a*a*a*a*a*a*a*a*b\n", text, 0), 0);

    /* 120 components of "a", against many "**" separated segments. */
    char path[512];
    size_t n = 0;
    for (int i = 0; i < 120; i++) {
        path[n++] = 'a';
        path[n++] = '/';
    }
    path[n - 1] = '\0';
    char pat[512];
    n = 0;
    for (int i = 0; i < 40; i++) {
        memcpy(pat + n, "**/a/", 5);
        n += 5;
    }
    memcpy(pat + n, "b\n", 3);
    for (int i = 0; i < 20; i++) assert_int_equal(match(pat, path, 0), 0);
    assert_true(now_seconds() - t0 < 2.0);
}

/* Arbitrary bytes must parse and match without reading out of bounds (the
 * sanitizer build checks that); results are not interesting. */
static void test_hostile_bytes(void **state)
{
    (void)state;
    uint32_t x = 12345;
    size_t len = 1 << 16;
    char *buf = malloc(len);
    assert_non_null(buf);
    const char alphabet[] = "*?[]!^\\/-:# \n\r\xEF\xBB\xBF\0az";
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = alphabet[(x >> 16) % (sizeof alphabet - 1)];
    }
    sources_ignore *ig = NULL;
    assert_int_equal(sources_ignore_parse(buf, len, &ig), 0);
    const char *paths[] = {"a", "a/b", "z/a/z", "[", "\\", "a/b/c/d/e/f/g/h", "*"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        int r = sources_ignore_match(ig, paths[i], strlen(paths[i]), (int)(i & 1));
        assert_true(r >= -1 && r <= 1);
    }
    sources_ignore_free(ig);
    /* A bracket left open at the very end of the text. */
    assert_int_equal(match("[", "[", 0), 1);
    assert_int_equal(match("[!", "x", 0), 0);
    assert_int_equal(match("[a-\\", "a", 0), 0);
    free(buf);
    sources_ignore_free(NULL);
    assert_int_equal(sources_ignore_match(NULL, "a", 1, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basename_patterns),
        cmocka_unit_test(test_anchoring),
        cmocka_unit_test(test_dir_only),
        cmocka_unit_test(test_negation_last_rule_wins),
        cmocka_unit_test(test_double_star),
        cmocka_unit_test(test_wildcards_and_classes),
        cmocka_unit_test(test_escapes_and_spaces),
        cmocka_unit_test(test_line_endings_and_bom),
        cmocka_unit_test(test_pathological_patterns_are_fast),
        cmocka_unit_test(test_hostile_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
