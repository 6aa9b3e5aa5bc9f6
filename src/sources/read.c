/*
 * read.c - reading one file into memory, and the binary test.
 *
 * Called from worker threads on paths the walker already chose, so it must
 * be safe against the file changing under it: a file swapped for a FIFO is
 * refused after fstat (O_NONBLOCK makes the open itself return at once), a
 * file that grows while read is cut at the limit, one that shrinks just
 * ends early.  The caller's buffer is reused from file to file, which is why
 * it is passed in with its capacity instead of being returned.
 */
#include "sources/sources.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_MIN_ALLOC 4096
#define READ_BINARY_WINDOW 8192

static int read_reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    uint8_t *p = realloc(*buf, need);
    if (!p) return ENOMEM;
    *buf = p;
    *cap = need;
    return 0;
}

int sources_read_file(const char *path, uint64_t max, uint8_t **buf, size_t *cap, size_t *len)
{
    *len = 0;
    int fd;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return errno;

    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return EINVAL;
    }
    size_t limit = SIZE_MAX - 1;
    if (max != 0 && max < (uint64_t)limit) limit = (size_t)max;
    if (st.st_size > 0 && (uint64_t)st.st_size > (uint64_t)limit) {
        close(fd);
        return EFBIG;
    }

    /* st_size is only a hint: /proc files say 0 and have content, and the
     * file may change between fstat and read.  One byte of slack lets a
     * file of exactly st_size finish in one read plus the EOF read. */
    size_t want = st.st_size > 0 ? (size_t)st.st_size + 1 : READ_MIN_ALLOC;
    if (want > limit) want = limit;
    int rc = read_reserve(buf, cap, want ? want : 1);
    size_t got = 0;
    while (rc == 0 && got < limit) {
        if (got == *cap) {
            size_t grow = *cap > limit / 2 ? limit : *cap * 2;
            if ((rc = read_reserve(buf, cap, grow)) != 0) break;
        }
        size_t room = (*cap < limit ? *cap : limit) - got;
        ssize_t n = read(fd, *buf + got, room);
        if (n < 0) {
            if (errno == EINTR) continue;
            rc = errno;
            break;
        }
        if (n == 0) break;
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return rc;
}

int sources_is_binary(const uint8_t *data, size_t len)
{
    if (!data) return 0;
    return memchr(data, 0, len < READ_BINARY_WINDOW ? len : READ_BINARY_WINDOW) != NULL;
}
