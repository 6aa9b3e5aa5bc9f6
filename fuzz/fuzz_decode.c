/*
 * fuzz_decode.c - libFuzzer target for decode-through.  Runs decode_find
 * twice on the input (a small budget, so the truncation paths run, and a
 * large one), then once more on the first level's output as the engine
 * does when it recurses, and checks the invariants the engine relies on:
 * every span lies within its input, every decoding within result->buf,
 * spans come sorted and the budget is kept.  Also drives the three public
 * single decoders with out_cap == len, which must always be enough.
 * decode_find_marked with decode_marks' marks (what the GPU path runs)
 * must give decode_find's spans exactly, at both budgets.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *       fuzz/fuzz_decode.c src/decode/decode.c -o fuzz_decode
 *   ./fuzz_decode -max_total_time=60 fuzz/corpus/decode
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"
#include "decode/trigger.h"

static void check(const uint8_t *in, size_t len, const decode_result *r, size_t budget)
{
    if (r->len > budget || r->len > r->cap || r->count > DECODE_MAX_SPANS)
        abort();
    for (size_t i = 0; i < r->count; i++) {
        const decode_span *s = &r->spans[i];
        if (!s->kind || s->length == 0 || s->offset > len || s->length > len - s->offset)
            abort();
        if (s->out_len == 0 || s->out_offset > r->len || s->out_len > r->len - s->out_offset)
            abort();
        if (i > 0 && r->spans[i - 1].offset > s->offset)
            abort();
        /* touch both ranges so ASan sees any stale pointer */
        volatile uint8_t sink = in[s->offset + s->length - 1] ^ r->buf[s->out_offset + s->out_len - 1];
        (void)sink;
    }
}

/* decode_find_marked must agree with decode_find span for span. */
static void check_marked(const uint8_t *in, size_t len, size_t budget)
{
    uint64_t *marks = malloc(((len + DT_SEG - 1) / DT_SEG + 1) * sizeof *marks);
    if (!marks)
        return;
    size_t nm = decode_marks(in, len, marks);
    decode_result a = {0}, b = {0};
    if (decode_find(in, len, budget, &a) == 0 &&
        decode_find_marked(in, len, marks, nm, budget, &b, NULL) == 0) {
        if (a.count != b.count || a.truncated != b.truncated || a.len != b.len)
            abort();
        for (size_t i = 0; i < a.count; i++) {
            const decode_span *x = &a.spans[i], *y = &b.spans[i];
            if (x->offset != y->offset || x->length != y->length || strcmp(x->kind, y->kind) ||
                x->out_len != y->out_len ||
                memcmp(a.buf + x->out_offset, b.buf + y->out_offset, x->out_len))
                abort();
        }
    }
    decode_result_free(&a);
    decode_result_free(&b);
    free(marks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_marked(data, size, 64);
    check_marked(data, size, 1 << 20);
    decode_result r = {0}, next = {0};
    if (decode_find(data, size, 64, &r) == 0)
        check(data, size, &r, 64);
    decode_result_reset(&r);
    if (decode_find(data, size, 1 << 20, &r) == 0) {
        check(data, size, &r, 1 << 20);
        for (size_t i = 0; i < r.count && i < 16; i++) {
            const decode_span *s = &r.spans[i];
            decode_result_reset(&next);
            if (decode_find(r.buf + s->out_offset, s->out_len, 1 << 16, &next) == 0)
                check(r.buf + s->out_offset, s->out_len, &next, 1 << 16);
        }
    }
    decode_result_free(&r);
    decode_result_free(&next);

    uint8_t *out = malloc(size ? size : 1);
    if (!out)
        return 0;
    long n = decode_base64(data, size, out, size);
    if (n > (long)size)
        abort();
    n = decode_hex(data, size, out, size);
    if (n > (long)size)
        abort();
    n = decode_percent(data, size, out, size);
    if (n < 0 || n > (long)size) /* every input is valid percent-encoding */
        abort();
    free(out);
    return 0;
}
