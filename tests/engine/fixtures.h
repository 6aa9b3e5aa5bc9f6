/*
 * fixtures.h - what the engine tests share: a detector set built from TOML
 * texts in the test itself, so a test reads its detectors where it uses
 * them and depends on no file and not on the embedded set.
 */
#ifndef KEYHOG_TESTS_ENGINE_FIXTURES_H
#define KEYHOG_TESTS_ENGINE_FIXTURES_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "keyhog.h"

/* Parses each of the n specs (origin names them in messages) and merges
 * them into one set, in order; fails the test on a spec that does not
 * parse or merge.  The caller frees the set with kh_detectors_free. */
static inline kh_detectors *fixture_detectors(const char *const *specs, size_t n,
                                              const char *origin)
{
    kh_detectors *set = NULL;
    for (size_t i = 0; i < n; i++) {
        kh_detectors *one = NULL;
        kh_error err = {0};
        if (kh_detectors_parse(specs[i], strlen(specs[i]), origin, &one, &err) != KH_OK)
            fail_msg("spec %zu: %s", i, err.message);
        if (!set) {
            set = one;
        } else {
            assert_int_equal(kh_detectors_merge(set, one, &err), KH_OK);
            kh_detectors_free(one);
        }
    }
    return set;
}

#endif
