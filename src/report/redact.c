/*
 * redact.c - the two ways keyhog names a secret without showing it:
 * kh_redact (a short, partial form a person can recognise) and
 * kh_fingerprint (a stable hash a program can match, e.g. in a baseline).
 *
 * Redaction shows the first and last few bytes, because that is what a
 * person needs to find the key in a provider's console, but never more than
 * a third of the secret: a 12-byte secret showing 8 bytes would leave too few
 * to guess.  Short secrets therefore show only a prefix, and very short ones
 * nothing at all.  Bytes outside printable ASCII become '?' so the result is
 * safe to print on a terminal and to embed in any output format as is.
 *
 * The fingerprint hashes the detector id together with the secret, so the
 * same string matched by two detectors gives two findings a baseline can
 * accept separately; the NUL between them keeps ("ab","c") apart from
 * ("a","bc").
 */
#include <string.h>

#include <openssl/evp.h>

#include "keyhog.h"

#define REDACT_ELLIPSIS "\xe2\x80\xa6" /* U+2026, 3 bytes of UTF-8 */
#define REDACT_SHORT 12                /* below this, show a prefix only */
#define REDACT_EDGE 4                  /* bytes shown at each end at most */
#define REDACT_SHORT_EDGE 2            /* prefix bytes of a short secret */

static char redact_printable(uint8_t c)
{
    return (c >= 0x20 && c < 0x7f) ? (char)c : '?';
}

void kh_redact(const uint8_t *secret, size_t len, char *out, size_t out_size)
{
    if (!out || out_size == 0)
        return;
    if (!secret)
        len = 0;
    size_t budget = len / 3; /* bytes we may reveal in all */
    size_t head, tail;
    if (len >= REDACT_SHORT) {
        head = budget / 2 < REDACT_EDGE ? budget / 2 : REDACT_EDGE;
        tail = head;
    } else {
        head = budget < REDACT_SHORT_EDGE ? budget : REDACT_SHORT_EDGE;
        tail = 0;
    }
    /* Truncate rather than overflow; never cut the ellipsis in half. */
    size_t room = out_size - 1, n = 0;
    for (size_t i = 0; i < head && n < room; i++)
        out[n++] = redact_printable(secret[i]);
    if (n + sizeof REDACT_ELLIPSIS - 1 <= room) {
        memcpy(out + n, REDACT_ELLIPSIS, sizeof REDACT_ELLIPSIS - 1);
        n += sizeof REDACT_ELLIPSIS - 1;
        for (size_t i = len - tail; i < len && n < room; i++)
            out[n++] = redact_printable(secret[i]);
    }
    out[n] = '\0';
}

void kh_fingerprint(const char *detector_id, const uint8_t *secret, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!out)
        return;
    out[0] = '\0';
    if (!detector_id)
        detector_id = "";
    if (!secret)
        len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, detector_id, strlen(detector_id)) &&
             EVP_DigestUpdate(ctx, "", 1) && (len == 0 || EVP_DigestUpdate(ctx, secret, len)) &&
             EVP_DigestFinal_ex(ctx, md, &md_len) && md_len == 32;
    EVP_MD_CTX_free(ctx);
    /* On failure out stays "": an empty fingerprint matches no baseline
     * entry, which is safer than a made-up one that might. */
    if (!ok)
        return;
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}
