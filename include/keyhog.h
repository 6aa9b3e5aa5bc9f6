/*
 * keyhog.h - the public API of libkeyhog, a secret scanner.
 *
 * The shape follows Hyperscan: a set of detectors is compiled once into an
 * immutable engine that any number of threads share; each thread owns a
 * scratch; one scan call walks a chunk of bytes and reports findings through
 * a callback.  Every function that can fail returns an int status (KH_OK or
 * a KH_E... code) and, where it takes a kh_error, fills it with a message
 * that names the file, detector or value at fault.
 *
 *   kh_detectors *d = kh_detectors_embedded();
 *   kh_engine *e;  kh_error err;
 *   if (kh_engine_compile(d, NULL, &e, &err) != KH_OK) die(err.message);
 *   kh_scratch *s;  kh_scratch_alloc(e, &s);          // one per thread
 *   kh_chunk c = { .data = buf, .len = n, .path = "config.env" };
 *   kh_scan(e, s, &c, on_finding, ctx);
 *   kh_scratch_free(s); kh_engine_free(e); kh_detectors_free(d);
 *
 * Everything a callback receives is valid only during the callback; copy
 * what you keep.
 */
#ifndef KEYHOG_H
#define KEYHOG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KH_VERSION "0.1.0"

/* Status codes.  KH_OK is zero; everything else is an error. */
enum {
    KH_OK = 0,
    KH_ENOMEM,       /* out of memory */
    KH_EINVAL,       /* bad argument */
    KH_EPARSE,       /* malformed TOML or detector spec */
    KH_EREGEX,       /* a pattern did not compile */
    KH_EIO,          /* a file could not be read */
    KH_ELIMIT,       /* a size, depth or count limit was hit */
    KH_ESTOPPED,     /* the finding callback asked to stop */
    KH_EUNSUPPORTED, /* feature not available in this build or machine */
    KH_EINTERNAL     /* a library (Vectorscan, PCRE2) failed unexpectedly */
};

/* A message for a caller; filled by any function taking one on failure. */
typedef struct kh_error {
    int code;
    char message[512];
} kh_error;

/* A short constant description of a status code ("out of memory"). */
const char *kh_strerror(int code);

typedef enum kh_severity {
    KH_SEVERITY_INFO = 0,
    KH_SEVERITY_LOW,
    KH_SEVERITY_MEDIUM,
    KH_SEVERITY_HIGH,
    KH_SEVERITY_CRITICAL
} kh_severity;

const char *kh_severity_name(kh_severity s);
/* Parses "critical".."info" (case-insensitive); -1 if unknown. */
int kh_severity_parse(const char *name);

/* ------------------------------------------------------------------ */
/* Detectors                                                            */
/* ------------------------------------------------------------------ */

typedef struct kh_detectors kh_detectors;

/* Read-only description of one detector, owned by its kh_detectors. */
typedef struct kh_detector_info {
    const char *id;      /* unique, kebab-case */
    const char *name;    /* human name */
    const char *service; /* e.g. "github" */
    kh_severity severity;
    const char *const *keywords;
    size_t keyword_count;
    size_t pattern_count;
    size_t test_count;
    int has_verify;       /* has a [detector.verify] section */
    const char *origin;   /* file it came from, or "embedded:<id>.toml" */
} kh_detector_info;

/* The detector set compiled into this binary; NULL only on out of memory.
 * The caller owns the result and frees it with kh_detectors_free. */
kh_detectors *kh_detectors_embedded(void);

/* Loads one .toml file, or every *.toml in a directory (not recursive).
 * Each file is one detector; every regex is compiled to check it. */
int kh_detectors_load(const char *dir_or_file, kh_detectors **out, kh_error *err);

/* Parses one detector from TOML text; `origin` names it in messages. */
int kh_detectors_parse(const char *text, size_t len, const char *origin,
                       kh_detectors **out, kh_error *err);

/* Moves every detector of `add` into `base`, replacing any with the same id.
 * `add` is left empty (still to be freed). */
int kh_detectors_merge(kh_detectors *base, kh_detectors *add, kh_error *err);

/* Removes the detector with this id; KH_EINVAL if there is none. */
int kh_detectors_remove(kh_detectors *set, const char *id);

size_t kh_detectors_count(const kh_detectors *set);
const kh_detector_info *kh_detectors_get(const kh_detectors *set, size_t i);
const kh_detector_info *kh_detectors_find(const kh_detectors *set, const char *id);
void kh_detectors_free(kh_detectors *set);

/* Warnings found while loading (unknown keys, ...), one per line; "" if none. */
const char *kh_detectors_warnings(const kh_detectors *set);

/* ------------------------------------------------------------------ */
/* Engine                                                               */
/* ------------------------------------------------------------------ */

typedef struct kh_engine kh_engine;
typedef struct kh_scratch kh_scratch;

typedef struct kh_engine_opts {
    size_t block_size;       /* bytes per scan block; 0 = default (8 MiB) */
    int decode_depth;        /* decode-through nesting; -1 = default (3), 0 = off */
    size_t decode_max_bytes; /* decoded bytes per chunk; 0 = default (16 MiB) */
    const void *cache;       /* bytes from kh_engine_serialize of an earlier run, or
                                NULL; used only if made from the same detector set
                                and Vectorscan version, ignored otherwise */
    size_t cache_len;
} kh_engine_opts;

/* Compiles every pattern of `set` into one immutable engine.  The engine
 * keeps a reference to `set`: free the engine before the set. */
int kh_engine_compile(const kh_detectors *set, const kh_engine_opts *opts,
                      kh_engine **out, kh_error *err);
void kh_engine_free(kh_engine *engine);

/* The compiled databases as bytes (free with free()), to hand back through
 * kh_engine_opts.cache next time and skip compilation. */
int kh_engine_serialize(const kh_engine *engine, void **out, size_t *len);
/* The hex key that cached bytes of this detector set carry, for naming
 * cache files. */
void kh_engine_cache_key(const kh_detectors *set, char out[65]);
/* 1 if the engine was built from kh_engine_opts.cache. */
int kh_engine_from_cache(const kh_engine *engine);

/* How the engine placed patterns: on Vectorscan, or on the PCRE2 fallback. */
typedef struct kh_engine_stats {
    size_t patterns;
    size_t vectorscan_patterns;
    size_t fallback_patterns;
} kh_engine_stats;
void kh_engine_stats_get(const kh_engine *engine, kh_engine_stats *out);

int kh_scratch_alloc(const kh_engine *engine, kh_scratch **out);
void kh_scratch_free(kh_scratch *scratch);

/* One piece of input: bytes and where they came from. */
typedef struct kh_chunk {
    const uint8_t *data;
    size_t len;
    const char *path;     /* origin shown to people; used for path hints */
    uint64_t base_offset; /* offset of data[0] within the origin */
    uint32_t base_line;   /* line of data[0] (1-based); 0 means 1 */
} kh_chunk;

typedef struct kh_companion {
    const char *name;
    const uint8_t *value;
    size_t value_len;
    uint64_t offset; /* within the origin */
    uint32_t line;
} kh_companion;

typedef struct kh_finding {
    const kh_detector_info *detector;
    const uint8_t *secret; /* the capture group that is the credential */
    size_t secret_len;
    uint64_t offset; /* of the secret within the origin (for decoded
                        findings: of the encoded span) */
    size_t length;
    uint32_t line, column;         /* 1-based; column counts bytes */
    uint32_t end_line, end_column; /* inclusive last byte */
    double confidence;             /* [0, 1] */
    const kh_companion *companions;
    size_t companion_count;
    const char *const *decoded_from; /* e.g. {"base64","url"}; NULL if plain */
    size_t decode_depth;
    int checksum_valid;               /* 1 valid, 0 none, -1 invalid */
} kh_finding;

/* Return 0 to go on, non-zero to stop the scan (kh_scan returns KH_ESTOPPED). */
typedef int (*kh_on_finding)(const kh_finding *finding, void *ctx);

/* Scans one chunk.  Findings come in order of offset. */
int kh_scan(const kh_engine *engine, kh_scratch *scratch, const kh_chunk *chunk,
            kh_on_finding cb, void *ctx);

/* ------------------------------------------------------------------ */
/* GPU backend                                                          */
/* ------------------------------------------------------------------ */

/* The GPU finds where keywords occur in a batch of chunks; the CPU confirms
 * with the same code as kh_scan, so findings are identical.  The backend is
 * a separate libkeyhog_gpu.so loaded at run time (next to the executable,
 * or $KEYHOG_GPU_LIB, or the default library path): without it, or without
 * a device, kh_gpu_open fails with KH_EUNSUPPORTED and callers use the CPU. */
typedef struct kh_gpu kh_gpu;

typedef struct kh_gpu_opts {
    int device;             /* the device to use when all_devices is 0 */
    int all_devices;        /* one session per visible device, batches round
                               robin; opts NULL means all devices */
    int no_persistent;      /* skip the resident kernel; one launch per batch */
    const char *library;    /* path of libkeyhog_gpu.so; NULL = search */
    const char *force_fail; /* test hook "load", "open", "persistent", "launch";
                               NULL = $KEYHOG_GPU_FORCE_FAIL */
    int quiet;              /* no line on stderr when a mode is dropped */
} kh_gpu_opts;

/* Opens sessions (device buffers stay resident until kh_gpu_close).  The
 * kh_gpu may be shared by threads; `engine` must outlive it. */
int kh_gpu_open(const kh_engine *engine, const kh_gpu_opts *opts, kh_gpu **out,
                kh_error *err);
void kh_gpu_close(kh_gpu *gpu);
/* What serves batches now, e.g. "gpu: 1 device, persistent kernel" or
 * "cpu: <why the GPU was dropped>". */
const char *kh_gpu_status(const kh_gpu *gpu);

/* A buffer to read a batch straight into, so the device copies it as it
 * is (page-locked when the backend can): chunk after chunk from the
 * buffer's first byte, one NUL after each, and KH_GPU_BUFFER_PAD zero bytes
 * after the last NUL.  kh_scan_batch over chunks laid out so skips its
 * packing copy; any other batch is packed as usual.  At least `bytes`
 * long; NULL when gpu is NULL or out of memory.  Give it back before
 * kh_gpu_close (which frees it in any case). */
#define KH_GPU_BUFFER_PAD 256
uint8_t *kh_gpu_buffer_take(kh_gpu *gpu, size_t bytes);
void kh_gpu_buffer_give(kh_gpu *gpu, uint8_t *buffer);

/* kh_on_finding for a batch: `chunk` is the index of the finding's chunk. */
typedef int (*kh_on_batch_finding)(const kh_finding *finding, size_t chunk, void *ctx);

/* Scans n chunks; findings of each chunk come in kh_scan's order, chunks in
 * index order.  gpu NULL scans on the CPU.  chunk_status (may be NULL) gets
 * kh_scan's status of each chunk.  Returns KH_OK, KH_ESTOPPED when the
 * callback stopped, or KH_EINVAL / KH_ENOMEM for the batch as a whole. */
int kh_scan_batch(const kh_engine *engine, kh_gpu *gpu, kh_scratch *scratch,
                  const kh_chunk *chunks, size_t n, kh_on_batch_finding cb, void *ctx,
                  int *chunk_status);

/* The fingerprint of a secret: lowercase hex SHA-256 of "<id>\0<secret>",
 * stable across runs and machines.  `out` has room for 65 bytes. */
void kh_fingerprint(const char *detector_id, const uint8_t *secret, size_t len,
                    char out[65]);

/* "ghp_…7890": first 4 and last 4 bytes, fewer for short secrets; NUL-ended.
 * `out` has room for at least 32 bytes. */
void kh_redact(const uint8_t *secret, size_t len, char *out, size_t out_size);

#ifdef __cplusplus
}
#endif
#endif
