/*
 * trigger.h - where decode-through could find something: a necessary
 * condition, byte by byte, for decode_find to decode anything near a
 * position.  The GPU backend evaluates it on the device for every byte and
 * marks the positions where it holds; the CPU then runs decode_find only
 * over the lines around a mark (decode_find_marked), which gives the same
 * spans as decode_find over the whole buffer.
 *
 * Compiled both as C (the library, the reference backend, tests) and as
 * CUDA device code (keyhog_gpu.cu), so it uses no tables and no library
 * calls.
 *
 * dt_trigger(d, p, limit) is true when byte p starts
 *   - a percent escape "%XX" (hex digits) that is "%3D" or "%3A", or that
 *     another one follows in its run of URL characters;
 *   - a backslash escape other than the whitespace ones (\n \t \r \b \f \v
 *     \a): a run of escapes is decoded only if one of them is not
 *     whitespace;
 *   - a quoted-printable "=XX" (upper-case hex): a run needs one;
 *   - an HTML entity: "&#", or one of the named ones decode.c knows;
 *   - a run of base64 characters (either alphabet, at least 20, starting
 *     at p) that decode.c's base64 pass could decode: the run, or a piece
 *     of it between '+', '-', '/' and '_', passes b64_try's shape gates
 *     and its whole quads do not decode to more bytes than is_text lets
 *     through that is_text counts bad whatever follows (or to a NUL before
 *     other bytes); or it holds a hex word of 32 digits or more; or it has
 *     40 characters or more, not of both alphabets, and ends its line
 *     before a line that is (after its indentation) a base64 run (the
 *     first line of a wrapped block, whose lines are tried together).
 * Runs longer than DT_MAX_RUN, or reaching `limit` (the end of what may be
 * read), are triggers without looking further.
 */
#ifndef KH_DECODE_TRIGGER_H
#define KH_DECODE_TRIGGER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define DT_FN __host__ __device__ static __forceinline__
#else
#define DT_FN static inline
#endif

/* Byte i of d (on the device, d is a block's tile in shared memory). */
#define DT_AT(d, i) ((unsigned)(d)[i])

/* decode.c's thresholds (its B64_MIN_CHARS, B64_WRAP_MIN, HEX_MIN_DIGITS
 * are these). */
#define DT_MIN_B64 20  /* shortest base64 run decoded */
#define DT_WRAP_MIN 40 /* a base64 line this long may continue on the next */
#define DT_MIN_HEX 32  /* shortest hex word decoded */
#define DT_MAX_RUN 256

DT_FN int dt_upper(unsigned c) { return c - 'A' < 26u; }
DT_FN int dt_lower(unsigned c) { return c - 'a' < 26u; }
DT_FN int dt_digit(unsigned c) { return c - '0' < 10u; }
DT_FN int dt_alnum(unsigned c) { return dt_upper(c) || dt_lower(c) || dt_digit(c); }
DT_FN int dt_hex(unsigned c) { return dt_digit(c) || (c | 32u) - 'a' < 6u; }
DT_FN int dt_upper_hex(unsigned c) { return dt_digit(c) || c - 'A' < 6u; }
DT_FN int dt_b64(unsigned c)
{
    return dt_alnum(c) || c == '+' || c == '/' || c == '-' || c == '_';
}

/* Sextet of a base64 character of either alphabet. */
DT_FN unsigned dt_b64_value(unsigned c)
{
    return dt_upper(c)   ? c - 'A'
           : dt_lower(c) ? c - 'a' + 26
           : dt_digit(c) ? c - '0' + 52
           : c == '+' || c == '-' ? 62u
                                  : 63u;
}

/* Bytes decode.c's is_text counts bad wherever they stand (decode.c builds
 * its always_bad table from this). */
#define DT_ALWAYS_BAD(c)                                                                     \
    (((c) >= 1 && (c) < 0x20 && (c) != '\t' && (c) != '\n' && (c) != '\r') || (c) == 0x7F ||    \
     (c) == 0xC0 || (c) == 0xC1 || (c) >= 0xF5)

/* Bad bytes in is_text, told from a decoded byte c and the one before it
 * (prev, 0 for none): c always bad; c a continuation byte after an ASCII
 * byte, which no sequence takes in; prev a UTF-8 lead byte that c does not
 * continue (a lead byte always starts a sequence, and that one fails).
 * Each byte is counted at most once: as c by the first two, as prev by the
 * last. */
DT_FN unsigned dt_surely_bad(unsigned prev, unsigned c)
{
    unsigned cont = c - 0x80u < 0x40u;
    return (DT_ALWAYS_BAD(c) || (cont && prev < 0x80u)) + (prev - 0xC2u < 0x33u && !cont);
}

/* The most bad bytes is_text lets through in n; never smaller for a
 * larger n, so a bound on the length gives a bound on the bad bytes. */
DT_FN size_t dt_text_max_bad(size_t n)
{
    /* good/n >= 0.85, i.e. bad * 20 <= 3n, without division by n. */
    return n < 32 ? n / 16 : 3 * n / 20;
}

/* What a base64 character c tells b64_try's shape gates: 1 upper, 2 lower,
 * 4 digit, 8 a letter that is not a hex digit, 16 '+' or '/', 32 '-' or
 * '_'. */
DT_FN unsigned dt_b64_kind(unsigned c)
{
    unsigned k = dt_upper(c)   ? 1u
                 : dt_lower(c) ? 2u
                 : dt_digit(c) ? 4u
                 : c == '+' || c == '/' ? 16u
                                        : 32u;
    return k | (dt_alnum(c) && !dt_hex(c) ? 8u : 0u);
}

/* b64_try's shape gates on the kinds seen in a run: one alphabet, a letter
 * that is not a hex digit, two of upper, lower and digit. */
DT_FN int dt_b64_shape(unsigned seen)
{
    unsigned classes = (seen & 1u) + ((seen >> 1) & 1u) + ((seen >> 2) & 1u);
    return (seen & 48u) != 48u && (seen & 8u) && classes >= 2;
}

/* Whether b64_try could keep the run or piece d[s..e) (base64
 * characters, then at most two '='): its shape gates, then is_text's
 * verdict as far as the decoding's whole quads tell it (b64_surely_binary
 * looks at the first 4 of them only). */
DT_FN int dt_b64_keepable(const uint8_t *d, size_t s, size_t e)
{
    unsigned seen = 0;
    size_t data = 0;
    unsigned lastc = 0;
    for (size_t i = s; i < e; i++) {
        unsigned c = DT_AT(d, i);
        if (c == '=')
            continue;
        data++;
        lastc = c;
        seen |= dt_b64_kind(c);
    }
    if (!dt_b64_shape(seen) || data < DT_MIN_B64)
        return 0;
    size_t rem = data % 4;
    unsigned last = dt_b64_value(lastc);
    if (rem == 1 || (rem == 2 && (last & 15)) || (rem == 3 && (last & 3)))
        return 0;
    /* The decoding of the whole quads, byte by byte: bytes is_text cannot
     * count good, more than it lets through in the longest decoding, or a
     * NUL before a byte that is not one, mean b64_try keeps nothing. */
    size_t bound = data / 4 * 3 + (rem ? rem - 1 : 0), bad = 0, max_bad = dt_text_max_bad(bound);
    unsigned prev = 0, nul = 0;
    for (size_t i = s; i + 4 <= s + data; i += 4) {
        unsigned v = dt_b64_value(DT_AT(d, i)) << 18 | dt_b64_value(DT_AT(d, i + 1)) << 12 |
                     dt_b64_value(DT_AT(d, i + 2)) << 6 | dt_b64_value(DT_AT(d, i + 3));
        for (int k = 16; k >= 0; k -= 8) {
            unsigned c = (v >> k) & 0xFFu;
            if (nul && c)
                return 0;
            nul |= !c;
            bad += dt_surely_bad(prev, c);
            prev = c;
        }
        if (bad > max_bad)
            return 0;
    }
    return 1;
}

/* Whether the base64 run starting at d[p] (d[p-1] is not base64) could
 * give decode_find a span: as a whole, by a piece between '+', '-', '/'
 * and '_', by a hex word, or as the first line of a wrapped block. */
DT_FN int dt_b64_run(const uint8_t *d, size_t p, size_t limit)
{
    /* One pass finds the run's end and what decides most runs without
     * another: its classes (dt_b64_keepable's shape gates), its longest
     * alphanumeric stretch before the last separator and the last one
     * (the pieces, and the words a hex word lies in). */
    size_t q = p, longest = 0, stretch = 0;
    unsigned seen = 0; /* dt_b64_kind's bits */
    while (q < limit && q - p < DT_MAX_RUN) {
        unsigned c = DT_AT(d, q);
        if (!dt_b64(c))
            break;
        seen |= dt_b64_kind(c);
        if (dt_alnum(c)) {
            stretch++;
        } else {
            longest = stretch > longest ? stretch : longest;
            stretch = 0;
        }
        q++;
    }
    if (q >= limit || q - p >= DT_MAX_RUN)
        return 1; /* its end is out of sight */
    if (q - p < DT_MIN_B64)
        return 0;
    if (q + 2 >= limit)
        return 1; /* so are its padding and line end */
    size_t e = q + (DT_AT(d, q) == '=') + (DT_AT(d, q) == '=' && DT_AT(d, q + 1) == '=');
    if (dt_b64_shape(seen) && dt_b64_keepable(d, p, e))
        return 1;
    /* Pieces (not the whole run): only between separators, and only one
     * of DT_MIN_B64 characters or more (the last one holds the padding). */
    int pieces = (seen & 48u) && (longest >= DT_MIN_B64 || stretch + (e - q) >= DT_MIN_B64);
    size_t piece = p;
    for (size_t i = p; pieces && i <= e; i++) {
        if (i == e || (dt_b64(DT_AT(d, i)) && !dt_alnum(DT_AT(d, i)))) {
            if ((piece > p || i < e) && i - piece >= DT_MIN_B64 && dt_b64_keepable(d, piece, i))
                return 1;
            piece = i + 1;
        }
    }
    /* Hex words: each lies in an alphanumeric stretch. */
    size_t widest = stretch > longest ? stretch : longest;
    for (size_t i = p; widest >= DT_MIN_HEX && i < q;) {
        if (!dt_alnum(DT_AT(d, i))) {
            i++;
            continue;
        }
        if (q - i > 2 && DT_AT(d, i) == '0' && (DT_AT(d, i + 1) == 'x' || DT_AT(d, i + 1) == 'X'))
            i += 2;
        size_t w = i;
        int lower = 0, upper = 0, other = 0;
        for (; i < q && dt_alnum(DT_AT(d, i)); i++) {
            lower |= dt_lower(DT_AT(d, i));
            upper |= dt_upper(DT_AT(d, i));
            other |= !dt_hex(DT_AT(d, i));
        }
        if (!other && !(lower && upper) && i - w >= DT_MIN_HEX && (i - w) % 2 == 0)
            return 1;
    }
    /* A line long enough to continue on the next (b64_extent joins only
     * without padding before the line end). */
    if (e == q && q - p >= DT_WRAP_MIN) {
        size_t j = q + (DT_AT(d, q) == '\r');
        if (DT_AT(d, j) != '\n')
            return 0;
        /* Joined only to a next line that is, after its indentation, a
         * base64 run, at most two '=' and blanks (b64_extent); a block
         * with both alphabets fails whole and is retried line by line
         * (each line a run of its own). */
        if ((seen & 48u) == 48u)
            return 0;
        for (j++; j < limit && (DT_AT(d, j) == ' ' || DT_AT(d, j) == '\t');)
            j++;
        size_t r = j;
        while (r < limit && r - j < DT_MAX_RUN && dt_b64(DT_AT(d, r)))
            r++;
        if (r == j && r < limit)
            return 0;
        for (unsigned k = 0; k < 2 && r < limit && DT_AT(d, r) == '='; k++)
            r++;
        while (r < limit && r - j < DT_MAX_RUN && (DT_AT(d, r) == ' ' || DT_AT(d, r) == '\t'))
            r++;
        return r >= limit || r - j >= DT_MAX_RUN || DT_AT(d, r) == '\n' || DT_AT(d, r) == '\r';
    }
    return 0;
}

/* A character decode.c's percent pass counts as part of a URL. */
DT_FN int dt_urlish(unsigned c)
{
    return c - 0x21u < 0x5Eu && c != '"' && c != '<' && c != '>' && c != '\\' && c != '^' &&
           c != '`' && c != '{' && c != '|' && c != '}';
}

/* For the percent escape at d[p]: whether it is "%3D" or "%3A" (one such
 * escape may do), or another escape follows it in its run of URL
 * characters (a run needs two): the first escape of every run the percent
 * pass decodes then holds. */
DT_FN int dt_pct_more(const uint8_t *d, size_t p, size_t limit)
{
    unsigned a = DT_AT(d, p + 1), b = DT_AT(d, p + 2) | 32u;
    if (a == '3' && (b == 'd' || b == 'a'))
        return 1;
    for (size_t i = p + 3; i - p < DT_MAX_RUN; i++) {
        if (i + 2 >= limit)
            return 1; /* out of sight */
        unsigned c = DT_AT(d, i);
        if (c == '%' && dt_hex(DT_AT(d, i + 1)) && dt_hex(DT_AT(d, i + 2)))
            return 1;
        if (!dt_urlish(c))
            return 0;
    }
    return 1;
}

/* d[0..limit) may be read; p < limit. */
DT_FN int dt_trigger(const uint8_t *d, size_t p, size_t limit)
{
    unsigned c = DT_AT(d, p);
    if (c == '%' || c == '=' || c == '\\' || c == '&') {
        if (p + 2 >= limit)
            return 1;
        unsigned a = DT_AT(d, p + 1), b = DT_AT(d, p + 2);
        if (c == '%')
            return dt_hex(a) && dt_hex(b) && dt_pct_more(d, p, limit);
        if (c == '=')
            return dt_upper_hex(a) && dt_upper_hex(b);
        if (c == '\\')
            return a == '"' || a == '\'' || a == '\\' || a == '/' || a == '$' || a == '`' ||
                   a == 'x' || a == 'u' || a == 'U';
        if (a == '#')
            return 1;
        /* &amp; &lt; &gt; &quot; &apos; &nbsp; */
        if (p + 5 >= limit)
            return 1;
        unsigned x = DT_AT(d, p + 3), y = DT_AT(d, p + 4), z = DT_AT(d, p + 5);
        return (a == 'a' && b == 'm' && x == 'p' && y == ';') ||
               ((a == 'l' || a == 'g') && b == 't' && x == ';') ||
               (a == 'q' && b == 'u' && x == 'o' && y == 't' && z == ';') ||
               (a == 'a' && b == 'p' && x == 'o' && y == 's' && z == ';') ||
               (a == 'n' && b == 'b' && x == 's' && y == 'p' && z == ';');
    }
    if (!dt_b64(c) || (p > 0 && dt_b64(DT_AT(d, p - 1))))
        return 0;
    return dt_b64_run(d, p, limit);
}

/* Segments of DT_SEG bytes: the device marks the first trigger of each. */
#define DT_SEG 16

#endif
