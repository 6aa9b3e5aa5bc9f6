/*
 * test_stdin.c - reading standard input, with stdin replaced by a pipe (or
 * a file) for each test; the writer side is filled before reading, so the
 * inputs are kept below the pipe buffer size and nothing can block.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sources/sources.h"

/* Makes stdin a pipe holding `len` bytes of `data`, then EOF. */
static int feed(const void *data, size_t len)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], data, len), (ssize_t)len);
    close(fds[1]);
    int saved = dup(STDIN_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fds[0], STDIN_FILENO), STDIN_FILENO);
    close(fds[0]);
    return saved;
}

static void restore(int saved)
{
    dup2(saved, STDIN_FILENO);
    close(saved);
}

static void test_reads_everything(void **state)
{
    (void)state;
    char data[5000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (char)('a' + i % 26);
    int saved = feed(data, sizeof data);
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    assert_int_equal(sources_read_stdin(&buf, &cap, &len, 0), 0);
    restore(saved);
    assert_int_equal(len, sizeof data);
    assert_memory_equal(buf, data, sizeof data);
    free(buf);
}

static void test_limit(void **state)
{
    (void)state;
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    int saved = feed("0123456789", 10);
    assert_int_equal(sources_read_stdin(&buf, &cap, &len, 10), 0); /* exactly max */
    restore(saved);
    assert_int_equal(len, 10);

    saved = feed("0123456789X", 11);
    assert_int_equal(sources_read_stdin(&buf, &cap, &len, 10), EFBIG);
    restore(saved);
    assert_int_equal(len, 10);
    assert_memory_equal(buf, "0123456789", 10);

    saved = feed("", 0);
    assert_int_equal(sources_read_stdin(&buf, &cap, &len, 10), 0);
    restore(saved);
    assert_int_equal(len, 0);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_everything),
        cmocka_unit_test(test_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
