/*
 * fuzz_archive.c - libFuzzer target for archive reading (src/sources/
 * archive.c over libarchive): zip, tar, 7z and compressed streams, nested.
 *
 * libarchive's parsers are fuzzed upstream; what is keyhog's own is the
 * walk around them - the limits on total bytes, ratio, members, member
 * size and depth, member naming, and what happens on corrupt members - so
 * that is what is checked: every emitted member is in memory with data
 * ASan can read end to end, its path starts with "origin!", no member is
 * larger than max_member_size, and the bytes and members emitted for one
 * input stay within max_total and max_members.  The limits are small so
 * that a bomb trips them within an iteration's time.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sources/sources.h"

#define FUZZ_TOTAL (4u << 20)
#define FUZZ_MEMBER (1u << 20)
#define FUZZ_MEMBERS 500

typedef struct tally {
    uint64_t bytes, members;
} tally;

static int on_member(const source_item *it, void *arg)
{
    tally *t = arg;
    if (!it->path || strncmp(it->path, "fuzz.bin!", 9) != 0 || it->fs_path)
        abort();
    if (it->len > FUZZ_MEMBER || (it->len && !it->data))
        abort();
    if (it->len) {
        volatile uint8_t sink = it->data[0] ^ it->data[it->len - 1];
        (void)sink;
    }
    t->bytes += it->len;
    t->members++;
    if (t->bytes > FUZZ_TOTAL || t->members > FUZZ_MEMBERS)
        abort();
    return 0;
}

static void on_skip(const char *path, const char *reason, void *arg)
{
    (void)arg;
    if (!path || !reason || !*reason)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    archive_opts o = {.max_depth = 3, .max_total = FUZZ_TOTAL, .max_ratio = 100,
                      .max_members = FUZZ_MEMBERS, .max_member_size = FUZZ_MEMBER};
    tally t = {0};
    (void)sources_is_archive("fuzz.bin", data, size);
    (void)sources_archive(data, size, "fuzz.bin", &o, on_member, on_skip, &t);
    return 0;
}
