/*
 * gpu.h - the seam between libkeyhog and the CUDA backend.
 *
 * The backend lives in its own shared object (libkeyhog_gpu.so, built from
 * src/engine/gpu/ only where nvcc exists) so that the keyhog binary never
 * links libcudart: src/engine/gpu.c dlopens it and reaches it only through
 * the plain C ABI below.  The ABI is deliberately tiny: open a session on
 * one device with the keyword table, submit a batch of chunks, read back
 * (chunk, offset, keyword) hits, close.  The GPU only says where keywords
 * are; the CPU path's own code confirms every match (engine_scan_regions),
 * which is what makes both backends print the same bytes.
 *
 * gpu.c also carries a CPU implementation of the same ABI (gpu_reference_api)
 * so the whole dispatch, fallback chain included, is tested on machines
 * without a GPU.
 */
#ifndef KH_ENGINE_GPU_H
#define KH_ENGINE_GPU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a struct or signature below changes; the loader refuses a
 * library that reports another version. */
#define GPU_ABI_VERSION 5

/* A packed batch (session_submit_packed) ends with this many zero bytes
 * after its last chunk's NUL: the kernel reads a little past the end. */
#define GPU_PACK_PAD 256
/* A packed batch of at most this many bytes goes to the resident kernel. */
#define GPU_SMALL_BATCH (16u << 10)

/* Longest keyword the device tables hold; longer ones (none today) make the
 * loader keep the CPU. */
#define GPU_MAX_KEYWORD 64

typedef struct gpu_session gpu_session;

/* Longest class run a keyword filter asks for. */
#define GPU_MAX_RUN 32

/* Farthest a keyword filter's stop byte may lie after the keyword. */
#define GPU_MAX_STOP 64

/* A byte of `stop` among the first `within` bytes after a keyword, with
 * only bytes of `skip` before it (within 0: no test). */
typedef struct gpu_stop_test {
    uint32_t within;
    uint32_t stop[8], skip[8];
} gpu_stop_test;

/* What must surround a keyword for its occurrence to matter (256-bit sets,
 * both letter cases in each):
 * - when before_test is set, the byte right before it in the class before
 *   (NUL, which is what the device reads before a chunk's first byte, is
 *   always in it): the 'i', '_', '.' or '-' of 'api[_.-]?key', the
 *   non-word byte of '\bsk_';
 * - at least min_run bytes of the class cls right after it (min_run 0: no
 *   test);
 * - two stop tests: the first byte the match must reach after the keyword
 *   (the 'k' of 'api[_.-]?key'), then the first punctuation after that
 *   (the '[:=]' of the assignment that keyword-context names lead to):
 *   most occurrences of common words fail one of them. */
#define GPU_STOP_TESTS 2
typedef struct gpu_keyword_filter {
    uint32_t cls[8];
    uint32_t min_run;
    gpu_stop_test stops[GPU_STOP_TESTS];
    uint32_t before_test;
    uint32_t before[8];
} gpu_keyword_filter;

#define GPU_IN_CLASS(c, b) (((c)[(b) >> 5] >> ((b) & 31)) & 1u)

/* One keyword occurrence: keyword `keyword` starts at byte `offset` of chunk
 * `chunk` of the submitted batch.  A session returns hits in device order
 * with `offset` the position in the packed batch (chunk i at starts[i], each
 * chunk followed by a NUL; for session_submit_batch the same layout, from
 * len[]) and `chunk` GPU_CHUNK_PACKED: the caller maps them to chunks on its
 * own thread, after the device lock is released (gpu_hits_group).
 * Hits whose keyword is GPU_DECODE_MARK are decode marks: within each
 * GPU_DECODE_SEG-byte segment of the packed batch, the first position where
 * decode/trigger.h's dt_trigger holds, and again the first after each NUL
 * (so every chunk's own triggers are covered by marks in that chunk). */
#define GPU_DECODE_MARK 0xFFFFFFFFu
#define GPU_DECODE_SEG 16
#define GPU_CHUNK_PACKED 0xFFFFFFFFu
typedef struct gpu_hit {
    uint64_t offset;
    uint32_t chunk;
    uint32_t keyword;
} gpu_hit;

typedef struct gpu_session_opts {
    int device;             /* CUDA device index */
    int persistent;         /* try the resident kernel first */
    const char *force_fail; /* test hook: "open", "persistent" or "launch" */
    size_t piece_bytes;     /* bytes per copy/compute piece; 0 = default */
    size_t max_hits;        /* hit queue capacity per batch; 0 = default */
    int quiet;              /* no line on stderr when a mode is dropped */
    const gpu_keyword_filter *filters; /* one per keyword, or NULL */
} gpu_session_opts;

typedef struct gpu_batch_result {
    const gpu_hit *hits; /* owned by the session, valid until the next call */
    size_t nhits;
    int overflow;        /* more hits than the queue holds: scan on the CPU */
    double device_ms;    /* time from first copy to last hit read back */
} gpu_batch_result;

/* Every entry point of a backend.  Functions returning int give 0 on
 * success, otherwise non-zero with a one-line reason in msg. */
typedef struct gpu_api {
    int (*api_version)(void);
    int (*device_count)(int *count, char *msg, size_t msg_cap);
    int (*device_name)(int device, char *name, size_t cap);
    int (*session_open)(const char *const *keywords, uint32_t nkeywords,
                        const gpu_session_opts *opts, gpu_session **out, char *msg,
                        size_t msg_cap);
    int (*session_submit_batch)(gpu_session *s, const uint8_t *const *data, const size_t *len,
                                size_t nchunks, gpu_batch_result *res, char *msg,
                                size_t msg_cap);
    /* The same batch, already packed by the caller: chunk i is at
     * packed[starts[i]], starts[i+1] - starts[i] - 1 bytes long, followed by
     * a NUL; starts has nchunks + 1 entries, starts[nchunks] is the total,
     * and GPU_PACK_PAD zero bytes follow it.  `packed` must come from
     * host_alloc (pinned and mapped): the copy engine reads it directly,
     * and the resident kernel reads a small batch in place with no copy at
     * all; the packing (a memcpy per chunk) is done by each caller's own
     * thread, outside any device lock. */
    int (*session_submit_packed)(gpu_session *s, const uint8_t *packed, const uint64_t *starts,
                                 size_t nchunks, gpu_batch_result *res, char *msg,
                                 size_t msg_cap);
    /* Page-locked host memory usable with every device (NULL, or 0 from
     * host_free, where the backend has none: use malloc). */
    int (*host_alloc)(size_t bytes, void **out);
    void (*host_free)(void *p);
    /* pause 1 stops the resident kernel (if one runs), pause 0 starts it
     * again (or drops the session to one launch per batch, with a line).
     * Page-locked allocations wait for the device to be idle, which a
     * resident kernel never is: callers pause around host_alloc/free. */
    int (*session_pause)(gpu_session *s, int pause);
    /* "persistent" or "launch": which kernel mode serves batches now. */
    const char *(*session_mode)(const gpu_session *s);
    void (*session_close)(gpu_session *s);
} gpu_api;

/* The symbol the shared object exports: fills *api; 0 on success. */
typedef int (*gpu_get_api_fn)(gpu_api *api);
#define GPU_GET_API_SYMBOL "keyhog_gpu_get_api"

#ifdef __cplusplus
}
#endif

#ifndef __CUDACC__
#include "keyhog.h"

/* The CPU implementation of the ABI: finds every keyword occurrence by
 * plain search.  Honours force_fail like the real backend ("launch" fails
 * every batch, "persistent" starts in launch mode, "open" fails open). */
const gpu_api *gpu_reference_api(void);

/* Counters of a kh_gpu since it was opened, summed over all threads:
 * where a batch's time goes (bench/gpu_bench.c prints them). */
typedef struct gpu_stats {
    uint64_t batches, bytes;   /* batches confirmed on the GPU path, their bytes */
    uint64_t prepacked;        /* batches read into a kh_gpu_buffer_take buffer */
    uint64_t pack_ns;          /* packing into (pinned) batch buffers */
    uint64_t wait_ns;          /* waiting for a device's lock */
    uint64_t device_ns;        /* holding it: copy, kernel, hit readback */
    uint64_t confirm_ns;       /* CPU confirmation of the candidate regions */
    uint64_t hits, regions, region_bytes;
    uint64_t decoded_bytes; /* of the chunks' own bytes, given to decode_find */
} gpu_stats;
void gpu_stats_get(const kh_gpu *g, gpu_stats *out);

/* Fills one filter per keyword of the engine (engine_keyword order) from
 * the detectors' regexes; returns how many keywords got a test. */
int gpu_keyword_filters(const kh_engine *e, gpu_keyword_filter *out);

/* The same for one detector: its patterns' regexes and its keywords (at
 * most 64); 1 when every pattern passes through one of its keywords in
 * every match (f[k]: keyword k's test, all zero when none relies on it),
 * else 0 and no tests.  fuzz_gpu_filter checks with PCRE2 that every match
 * holds a keyword occurrence whose test passes. */
int gpu_regex_filters(const char *const *regexes, size_t npatterns,
                      const char *const *keywords, size_t nkeywords, gpu_keyword_filter *f);

/* Whether the occurrence of a keyword at data[start..at) passes f, as the
 * device decides it (the byte before data[0] and the byte at len read as
 * NUL separators; a test still undecided past len passes: the device reads
 * on). */
int gpu_filter_pass(const gpu_keyword_filter *f, const uint8_t *data, size_t len, size_t start,
                    size_t at);

/* kh_gpu_open with a given backend instead of the dlopened one (tests). */
int gpu_open_api(const kh_engine *e, const gpu_api *api, const kh_gpu_opts *opts,
                 kh_gpu **out, kh_error *err);

/* Groups a session's hits (packed positions, device order) by chunk, in
 * ascending chunk order, with chunk-relative offsets: hits[0..n) into out
 * (room for n).  starts as for session_submit_packed.  Hits past the batch
 * are dropped; returns how many were kept, or SIZE_MAX when out of memory
 * (a batch must then be scanned without them, on the CPU). */
size_t gpu_hits_group(const gpu_hit *hits, size_t n, const uint64_t *starts, size_t nchunks,
                      gpu_hit *out);

/* Every keyword occurrence in data (ASCII case-insensitive), appended to
 * hits (grown with realloc); returns the count, or (size_t)-1 on out of
 * memory.  The reference the device kernel is tested against. */
size_t gpu_find_keywords_cpu(const char *const *keywords, uint32_t nkeywords,
                             const uint8_t *data, size_t len, uint32_t chunk, gpu_hit **hits,
                             size_t *nhits, size_t *cap);
#endif

#endif
