/*
 * read.c - reading one file into memory, the binary test, and UTF-16 text.
 *
 * Called from worker threads on paths the walker already chose, so it must
 * be safe against the file changing under it: a file swapped for a FIFO is
 * refused after fstat (O_NONBLOCK makes the open itself return at once), a
 * file that grows while read is cut at the limit, one that shrinks just
 * ends early (a short read that reaches fstat's size is taken as the end,
 * so a file costs open, fstat, one read, close).  The caller's buffer is reused from file to file, which is why
 * it is passed in with its capacity instead of being returned.
 */
#include "sources/sources.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_MIN_ALLOC 4096
#define READ_BINARY_WINDOW 8192

/* sources_utf16 results: the byte order, and whether a BOM leads. */
enum { UTF16_LE = 1, UTF16_BE, UTF16_LE_BOM, UTF16_BE_BOM };

/* fixed: the buffer is the caller's and cannot grow (ENOSPC). */
static int read_reserve(uint8_t **buf, size_t *cap, size_t need, int fixed)
{
    if (need <= *cap) return 0;
    if (fixed) return ENOSPC;
    uint8_t *p = realloc(*buf, need);
    if (!p) return ENOMEM;
    *buf = p;
    *cap = need;
    return 0;
}

static int read_file(const char *path, uint64_t max, uint8_t **buf, size_t *cap, size_t *len,
                     int fixed)
{
    *len = 0;
    /* O_NOATIME spares the inode an atime update (and its journal write
     * under strictatime/relatime's daily refresh).  Only the owner or a
     * privileged process may ask; after the first EPERM it is not asked again. */
    static _Atomic int noatime_denied;
    int noatime = atomic_load_explicit(&noatime_denied, memory_order_relaxed) ? 0 : O_NOATIME;
    int fd;
    for (;;) {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | noatime);
        if (fd >= 0) break;
        if (errno == EINTR) continue;
        if (errno == EPERM && noatime) {
            atomic_store_explicit(&noatime_denied, 1, memory_order_relaxed);
            noatime = 0;
            continue;
        }
        return errno;
    }

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
    int rc = read_reserve(buf, cap, want ? want : 1, fixed);
    size_t got = 0;
    while (rc == 0 && got < limit) {
        if (got == *cap) {
            size_t grow = *cap > limit / 2 ? limit : *cap * 2;
            if ((rc = read_reserve(buf, cap, grow, fixed)) != 0) break;
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
        /* A regular file read short at the size fstat gave is at its end:
         * the EOF read would only return 0 (one syscall a file saved).  A
         * file that grew since fstat filled the slack byte and reads on. */
        if (st.st_size > 0 && (size_t)n < room && got >= (size_t)st.st_size) break;
    }
    close(fd);
    *len = got;
    return rc;
}

int sources_read_file(const char *path, uint64_t max, uint8_t **buf, size_t *cap, size_t *len)
{
    return read_file(path, max, buf, cap, len, 0);
}

int sources_read_into(const char *path, uint64_t max, uint8_t *dst, size_t room, size_t *len)
{
    return read_file(path, max, &dst, &room, len, 1);
}

int sources_is_binary(const uint8_t *data, size_t len)
{
    if (!data) return 0;
    if (!memchr(data, 0, len < READ_BINARY_WINDOW ? len : READ_BINARY_WINDOW)) return 0;
    return sources_utf16(data, len) == 0;
}

int sources_classify(const uint8_t *data, size_t len, size_t *mark)
{
    *mark = 0;
    if (!data || !memchr(data, 0, len < READ_BINARY_WINDOW ? len : READ_BINARY_WINDOW))
        return 0; /* the common case: one pass of memchr, not two */
    *mark = sources_utf16(data, len);
    return *mark == 0;
}

/* A code unit that text is made of: printable ASCII or common whitespace. */
static int utf16_texty(unsigned lo, unsigned hi)
{
    return hi == 0 && ((lo >= 0x20 && lo < 0x7f) || lo == '\n' || lo == '\r' || lo == '\t');
}

size_t sources_utf16(const uint8_t *data, size_t len)
{
    if (!data || len < 4) return 0;
    /* ASCII code units have a zero byte: without a NUL it is not UTF-16 of
     * any text we look for, and memchr settles that at memory speed. */
    if (!memchr(data, 0, len < READ_BINARY_WINDOW ? len : READ_BINARY_WINDOW)) return 0;
    int bom_le = data[0] == 0xff && data[1] == 0xfe, bom_be = data[0] == 0xfe && data[1] == 0xff;
    size_t start = (bom_le || bom_be) ? 2 : 0;
    size_t n = ((len < READ_BINARY_WINDOW ? len : READ_BINARY_WINDOW) - start) / 2;
    const uint8_t *p = data + start;
    size_t le = 0, be = 0;
    for (size_t i = 0; i < n; i++) {
        le += utf16_texty(p[2 * i], p[2 * i + 1]);
        be += utf16_texty(p[2 * i + 1], p[2 * i]);
    }
    /* With a BOM, half the units ASCII text in that order (a binary format
     * that happens to start FF FE is not); without one, 95% in one order,
     * which binary data with NULs essentially never is. */
    if (bom_le) return le * 2 >= n ? UTF16_LE_BOM : 0;
    if (bom_be) return be * 2 >= n ? UTF16_BE_BOM : 0;
    if (n && le * 20 >= n * 19) return UTF16_LE;
    if (n && be * 20 >= n * 19) return UTF16_BE;
    return 0;
}

size_t sources_utf16_start(size_t mark)
{
    return (mark == UTF16_LE_BOM || mark == UTF16_BE_BOM) ? 2 : 0;
}

int sources_utf16_narrow(const uint8_t *data, size_t len, size_t mark, uint8_t **out,
                         size_t *cap, size_t *out_len)
{
    size_t start = sources_utf16_start(mark);
    int big = mark == UTF16_BE || mark == UTF16_BE_BOM;
    size_t units = (len - start) / 2;
    if (read_reserve(out, cap, units ? units : 1, 0)) return ENOMEM;
    const uint8_t *p = data + start;
    for (size_t i = 0; i < units; i++) {
        unsigned u = big ? (unsigned)p[2 * i] << 8 | p[2 * i + 1]
                         : (unsigned)p[2 * i + 1] << 8 | p[2 * i];
        (*out)[i] = u < 0x80 ? (uint8_t)u : 0x1a;
    }
    *out_len = units;
    return 0;
}
