/*
 * engine.h - private parts of the engine shared by its files (compile,
 * scan) and by the GPU backend, which finds candidate windows the same CPU
 * code then confirms.
 */
#ifndef KH_ENGINE_H
#define KH_ENGINE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <hs/hs.h>
#include <pcre2.h>
#include <stdint.h>

#include "spec/spec.h"

/* Longest match the block scanner guarantees to see whole; patterns whose
 * maximum width is larger (or unbounded) are found when their match is
 * shorter than this. */
#define ENGINE_MAX_OVERLAP (64u * 1024)
#define ENGINE_DEFAULT_BLOCK (8u * 1024 * 1024)
#define ENGINE_DEFAULT_DECODE_DEPTH 3
#define ENGINE_DEFAULT_DECODE_BYTES (16u * 1024 * 1024)
/* Work bounds against hostile input. */
#define ENGINE_MAX_CANDIDATES (1u << 20) /* per block */
#define ENGINE_MAX_FINDINGS 100000u       /* per chunk */
#define ENGINE_PCRE2_MATCH_LIMIT 1000000u

typedef struct engine_pattern {
    uint32_t detector; /* index in the set */
    uint32_t index;    /* pattern index within the detector */
    pcre2_code *re;
    int group;
    unsigned max_width; /* from Vectorscan; UINT_MAX unbounded */
    int on_vectorscan;
} engine_pattern;

typedef struct engine_companion {
    pcre2_code *re;
    int group;
} engine_companion;

struct kh_engine {
    const kh_detectors *set;
    engine_pattern *patterns;
    uint32_t pattern_count;
    engine_companion **companions; /* [detector][companion] */
    hs_database_t *db;             /* NULL when no pattern made it */
    /* Vectorscan ids >= pattern_count are keyword literals of fallback
     * detectors: keyword_detector[id - pattern_count] is the detector. */
    uint32_t *keyword_detector;
    uint32_t *keyword_index; /* which keyword of that detector */
    uint32_t keyword_count;
    uint32_t *fallback; /* pattern indexes on the PCRE2 fallback */
    uint32_t fallback_count;
    uint32_t max_capture; /* largest capture count of any regex */
    size_t block_size;
    size_t overlap;
    int decode_depth;
    size_t decode_max_bytes;
    pcre2_match_context *match_context;
};

#endif
