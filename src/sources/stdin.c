/*
 * stdin.c - standard input as one in-memory item (`keyhog scan -`).
 *
 * A pipe has no size to ask for, so the buffer doubles as it fills, and one
 * byte more than the limit is asked for so that "exactly max bytes" and
 * "more than max" can be told apart without a second read.  The caller's
 * buffer is passed in with its capacity, as for sources_read_file, so the
 * same buffer can be reused.
 */
#include "sources/sources.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define STDIN_MIN_ALLOC 65536

int sources_read_stdin(uint8_t **buf, size_t *cap, size_t *len, uint64_t max)
{
    *len = 0;
    size_t limit = SIZE_MAX - 1;
    if (max != 0 && max < (uint64_t)limit) limit = (size_t)max;
    for (;;) {
        if (*len == *cap) {
            size_t want = *cap ? *cap * 2 : STDIN_MIN_ALLOC;
            if (want < *cap || want > limit + 1) want = limit + 1;
            if (want <= *cap) return EFBIG;
            uint8_t *p = realloc(*buf, want);
            if (!p) return ENOMEM;
            *buf = p;
            *cap = want;
        }
        ssize_t n = read(STDIN_FILENO, *buf + *len, *cap - *len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (n == 0) return 0;
        *len += (size_t)n;
        if (*len > limit) {
            *len = limit;
            return EFBIG;
        }
    }
}
