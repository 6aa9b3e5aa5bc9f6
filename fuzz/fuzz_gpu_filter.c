/*
 * fuzz_gpu_filter.c - libFuzzer target for the GPU keyword filters
 * (gpu_regex_filters, gpu_filter_pass): the device drops a keyword
 * occurrence whose test fails, so a filter that is too strict loses
 * findings on the GPU path only.  The input is a regex, one to four
 * keywords and a text, separated by NUL bytes.  When the filters claim the
 * regex always passes through one of the keywords, every match PCRE2 finds
 * in the text (anchored at each start) must hold an occurrence of a keyword
 * whose test passes; otherwise the target aborts.
 *
 *   ./fuzz_gpu_filter -max_total_time=60 fuzz/corpus/gpu_filter
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gpu.h"

static int fold(int c)
{
    return c >= 'A' && c <= 'Z' ? c | 0x20 : c;
}

/* Whether a keyword occurrence inside [s, e) of text passes its test. */
static int covered(const uint8_t *text, size_t len, size_t s, size_t e, char **kw, size_t nk,
                   const gpu_keyword_filter *f)
{
    for (size_t q = 0; q < nk; q++) {
        size_t kl = strlen(kw[q]);
        for (size_t k = s; k + kl <= e; k++) {
            size_t j = 0;
            while (j < kl && fold(text[k + j]) == fold((unsigned char)kw[q][j]))
                j++;
            if (j == kl && gpu_filter_pass(&f[q], text, len, k, k + kl))
                return 1;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* regex NUL kw NUL [kw NUL ...] text */
    const uint8_t *part[6];
    size_t plen[6], np = 0, at = 0;
    while (np < 5 && at <= size) {
        const uint8_t *z = memchr(data + at, 0, size - at);
        if (!z)
            break;
        part[np] = data + at;
        plen[np++] = (size_t)(z - (data + at));
        at = (size_t)(z - data) + 1;
    }
    if (np < 2 || plen[0] == 0 || plen[0] > 400)
        return 0;
    const uint8_t *text = data + at;
    size_t len = size - at;
    if (len > 2048)
        return 0;
    char *regex = strndup((const char *)part[0], plen[0]);
    char *kw[4];
    size_t nk = 0;
    for (size_t i = 1; i < np && nk < 4; i++)
        if (plen[i] >= 2 && plen[i] <= GPU_MAX_KEYWORD)
            kw[nk++] = strndup((const char *)part[i], plen[i]);
    gpu_keyword_filter f[4];
    const char *rx[1] = {regex};
    int ok = regex && nk && gpu_regex_filters(rx, 1, (const char *const *)kw, nk, f);
    int err;
    PCRE2_SIZE off;
    pcre2_code *code =
        ok ? pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL) : NULL;
    if (code) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
        pcre2_match_context *mc = pcre2_match_context_create(NULL);
        pcre2_set_match_limit(mc, 20000);
        pcre2_set_depth_limit(mc, 2000);
        for (size_t s = 0; md && mc && s <= len; s++) {
            int rc = pcre2_match(code, (PCRE2_SPTR)text, len, s, PCRE2_ANCHORED, md, mc);
            if (rc <= 0)
                continue;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (ov[1] > ov[0] && !covered(text, len, ov[0], ov[1], kw, nk, f))
                abort(); /* a match no surviving keyword hit would find */
        }
        pcre2_match_context_free(mc);
        pcre2_match_data_free(md);
        pcre2_code_free(code);
    }
    for (size_t i = 0; i < nk; i++)
        free(kw[i]);
    free(regex);
    return 0;
}
