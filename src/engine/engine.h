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
/* Bytes searched for a companion on each side of a secret, whatever
 * within_lines says: on a one-line (minified) file a line window is the
 * whole file, and searching it once per hit was quadratic. */
#define ENGINE_COMPANION_WINDOW (4u * 1024)
/* Time budget of one kh_scan call: 10 s plus 1 s per MiB of chunk, i.e. a
 * floor of 1 MB/s, far below any honest input (the embedded set keeps
 * above 5 MB/s on inputs built to be slow).  Past it the scan stops, keeps
 * what it found and returns KH_ELIMIT, which the CLI reports as a skip. */
#define ENGINE_TIME_BUDGET_BASE_NS 10000000000ull
#define ENGINE_TIME_BUDGET_NS_PER_MIB 1000000000ull

typedef struct engine_pattern {
    uint32_t detector; /* index in the set */
    uint32_t index;    /* pattern index within the detector */
    pcre2_code *re;
    int group;
    unsigned max_width; /* from Vectorscan; UINT_MAX unbounded */
    int on_vectorscan;
    int parsed; /* Vectorscan parses it (max_width is known) */
    int anchored; /* its detector has keywords: every match holds one */
    int prefilter; /* in db_prefilter: ENGINE_PF_EXACT, ENGINE_PF_APPROX or 0 */
} engine_pattern;

/* How a pattern sits in the prefilter database: as itself (its reports are
 * its real match ends), as Vectorscan's prefilter approximation
 * (HS_FLAG_PREFILTER: a superset of its match ends), or not at all. */
#define ENGINE_PF_EXACT 1
#define ENGINE_PF_APPROX 2

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
    hs_database_t *db_unanchored;  /* patterns of keyword-less detectors */
    /* Every pattern without start of match (cheap: no SOM tracking), run
     * over whole buffers to find where matches end; db then runs only
     * around those ends.  Ids >= pattern_count are caseless keyword
     * literals of detectors with a pattern missing from it:
     * pf_keyword_detector[id - pattern_count] is the detector, and
     * pf_whole[detector] says a keyword of it means scanning the whole
     * buffer with db. */
    hs_database_t *db_prefilter;
    uint32_t *pf_keyword_detector;
    uint32_t pf_keyword_count;
    uint8_t *pf_whole;
    /* Vectorscan ids >= pattern_count are keyword literals of fallback
     * detectors: keyword_detector[id - pattern_count] is the detector. */
    uint32_t *keyword_detector;
    uint32_t *keyword_index; /* which keyword of that detector */
    uint32_t keyword_count;
    uint32_t *fallback; /* pattern indexes on the PCRE2 fallback */
    uint32_t fallback_count;
    uint32_t max_capture; /* largest capture count of any regex */
    uint32_t unanchored_count; /* patterns of detectors without keywords */
    unsigned *detector_width;  /* per detector: widest match, capped at overlap */
    const char **all_keywords; /* every detector's keywords, in set order */
    uint32_t *all_keyword_detector;
    size_t all_keyword_count;
    size_t block_size;
    size_t overlap;
    int decode_depth;
    size_t decode_max_bytes;
    pcre2_match_context *match_context;
    int from_cache; /* databases came from kh_engine_opts.cache */
};

/* A stretch [start, end) of a chunk in which match starts are looked for.
 * `reach` is the context the scan needs on each side: the widest match of
 * the detectors whose keywords made the region, plus slack for assertions.
 * Every match starting in the region belongs to one of those detectors, so
 * a window of `reach` sees it whole and sees every earlier start of its end,
 * as the block scan's window of the global overlap does; 0 means that
 * overlap. */
typedef struct engine_region {
    size_t start, end;
    size_t reach;
} engine_region;

/* kh_scan limited to regions (sorted, disjoint) for keyword-anchored
 * patterns; patterns of detectors without keywords are looked for in the
 * whole chunk.  With regions built by engine_regions_from_hits from every
 * keyword occurrence, the findings equal kh_scan's: the GPU backend uses
 * this to confirm its candidate windows with the CPU path's own code. */
int engine_scan_regions(const kh_engine *e, kh_scratch *s, const kh_chunk *chunk,
                        const engine_region *regions, size_t nregions, kh_on_finding cb,
                        void *ctx);

/* The prefilter pass over the keyword regions of a whole batch of chunks
 * (engine_prefilter_batch): each chunk's windows, one after another with a
 * newline between them, in a few hs_scan calls instead of one call a
 * region, whose fixed cost was most of the GPU path's CPU time.  Windows
 * at a chunk's first or last byte (where ^, $ and \b see the buffer's
 * edge) or longer than a quarter block are scanned on their own, as
 * before.  The result per chunk is what its own prefilter pass would
 * give; ends the joins make up (a match across a newline) only add
 * windows the confirming scan finds nothing in. */
typedef struct engine_batch_pre engine_batch_pre;

int engine_prefilter_batch(const kh_engine *e, kh_scratch *s, const kh_chunk *chunks,
                           size_t n, const engine_region *regions, const size_t *rfirst,
                           const size_t *rcount, engine_batch_pre **out);
void engine_batch_pre_free(engine_batch_pre *bp);

/* What the GPU found in a chunk: keyword regions, and where decode-through
 * could find something (decode/trigger.h): the chunk's own bytes are then
 * decoded only in the paragraphs that hold a mark (decode_find_marked),
 * with the same spans as decoding them all.  `pre` (optional): the batch's
 * prefilter result, of which this chunk is number pre_chunk. */
typedef struct engine_hints {
    const engine_region *regions;
    size_t nregions;
    const uint64_t *marks; /* ascending offsets in the chunk */
    size_t nmarks;
    const engine_batch_pre *pre;
    size_t pre_chunk;
    size_t decoded_bytes; /* out: bytes of the chunk given to decode_find */
} engine_hints;

int engine_scan_hinted(const kh_engine *e, kh_scratch *s, const kh_chunk *chunk,
                       engine_hints *h, kh_on_finding cb, void *ctx);

/* Keyword table for candidate finders: keyword i of the whole set, its
 * detector, and the detector's widest match.  Keywords match ASCII
 * case-insensitively. */
size_t engine_keyword_count(const kh_engine *e);
const char *engine_keyword(const kh_engine *e, size_t i, uint32_t *detector);

/* Turns keyword occurrences (offset of the keyword, keyword index) into
 * sorted disjoint regions holding every match start they imply.  Writes at
 * most `cap` regions (merging as it goes) and returns how many. */
size_t engine_regions_from_hits(const kh_engine *e, const uint64_t *hit_offsets,
                                const uint32_t *hit_keywords, size_t nhits, size_t chunk_len,
                                engine_region *out, size_t cap);

#endif
