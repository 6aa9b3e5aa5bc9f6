/*
 * marks_check.c - the GPU path's decode marks against decoding everything,
 * on real files: reads paths from stdin, and for each file compares
 * decode_find over the whole file with decode_find_marked over the lines
 * around decode_marks' marks (the marks the device makes), span by span
 * and byte by byte.  Prints the totals and the share of bytes the marked
 * decoding read; exits 1 if any file differs (naming it on stderr).
 *
 * Usage: find DIR -type f | marks_check
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"
#include "decode/trigger.h"

#define MAX_FILE (64u << 20)
#define BUDGET (1u << 20)

static int same(const decode_result *a, const decode_result *b)
{
    if (a->count != b->count || a->truncated != b->truncated)
        return 0;
    for (size_t i = 0; i < a->count; i++) {
        const decode_span *x = &a->spans[i], *y = &b->spans[i];
        if (x->offset != y->offset || x->length != y->length || strcmp(x->kind, y->kind) ||
            x->out_len != y->out_len ||
            memcmp(a->buf + x->out_offset, b->buf + y->out_offset, x->out_len))
            return 0;
    }
    return 1;
}

int main(void)
{
    char path[4096];
    size_t files = 0, bytes = 0, differ = 0, fed_all = 0, spans = 0;
    uint8_t *buf = malloc(MAX_FILE);
    uint64_t *marks = malloc((MAX_FILE / DT_SEG + 2) * sizeof *marks);
    if (!buf || !marks)
        return 2;
    while (fgets(path, sizeof path, stdin)) {
        path[strcspn(path, "\n")] = 0;
        FILE *f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "marks_check: %s: cannot open\n", path);
            continue;
        }
        size_t n = fread(buf, 1, MAX_FILE, f);
        fclose(f);
        size_t nm = decode_marks(buf, n, marks), fed = 0;
        decode_result a = {0}, b = {0};
        if (decode_find(buf, n, BUDGET, &a) ||
            decode_find_marked(buf, n, marks, nm, BUDGET, &b, &fed)) {
            fprintf(stderr, "marks_check: %s: out of memory\n", path);
            return 2;
        }
        if (!same(&a, &b)) {
            differ++;
            fprintf(stderr, "marks_check: %s: spans differ\n", path);
        }
        spans += a.count;
        files++;
        bytes += n;
        fed_all += fed;
        decode_result_free(&a);
        decode_result_free(&b);
    }
    printf("%zu files, %zu bytes, %zu spans, %zu differ, %.2f%% of the bytes decoded\n", files,
           bytes, spans, differ, bytes ? 100.0 * (double)fed_all / (double)bytes : 0.0);
    free(buf);
    free(marks);
    return differ != 0;
}
