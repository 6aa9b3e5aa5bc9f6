/*
 * keyhog_gpu.cu - the CUDA backend (libkeyhog_gpu.so): finds every
 * occurrence of every detector keyword in batches of chunks, and marks
 * where decode-through could find something (decode/trigger.h).
 *
 * Why only keywords: every pattern of a detector with keywords holds one of
 * them, so windows around all keyword occurrences contain every match, and
 * the CPU confirms those windows with exactly the code kh_scan runs.  The
 * device does the part that touches every byte; the CPU does the part that
 * needs regexes, on a few percent of the bytes.
 *
 * Kernel: each thread takes 16 bytes (one 16-byte load, coalesced across
 * the warp, into the block's tile in shared memory, which every later read
 * uses).  A position passes a filter in shared memory - a 64 Ki-bit table of 2-byte
 * keywords, a 128 Ki-bit hashed table of 3-byte keywords and one of 4-byte
 * prefixes of longer ones - and only then is it verified against the
 * keywords of its 2-byte prefix (a bucket table in global memory), with
 * ASCII letters folded to lower case, and against what must follow the
 * keyword (gpu_keyword_filter: a run of a class, and the bytes the match
 * must reach next), so that the CPU confirms only occurrences that can be
 * part of a match.  Then the thread's decode marks: escape characters are
 * tested with dt_trigger (the same code the CPU reference runs), and the
 * start of a long base64 run is queued for the block, which tests the
 * queued runs one a thread; the CPU decodes only the lines around marks.
 * Chunks are packed one after another with a NUL between them; no keyword
 * holds a NUL, so none spans two chunks.
 *
 * Session: device buffers stay resident (two input buffers, keyword tables,
 * hit queue, control block).  A batch is cut into pieces; piece k+1 is
 * copied on its own stream while the device scans piece k (double
 * buffering), each piece carrying the longest keyword and token run past its
 * end so no keyword straddles a cut.  libkeyhog packs each batch on the
 * worker's own thread into pinned memory (session_submit_packed), so the
 * copy engine reads it directly and the device lock covers only the device.
 *
 * Persistent mode: one block stays resident and serves small batches (at
 * most 16 KiB) from the caller's mapped memory, polling a command word
 * there and publishing the hit count and a done word back: no launch per
 * batch.  Bigger batches run as launches (which did not get the device
 * while the resident block spun, so a big batch stops it and the next
 * small one starts it again).  If it cannot start (launch error, no
 * handshake within 5 s) or a batch times out, the session drops to one
 * launch per piece; if that fails, submit fails and libkeyhog scans on the
 * CPU.  Each drop prints one line on stderr.  KEYHOG_GPU_FORCE_FAIL (passed
 * in as opts->force_fail, a comma list of open, persistent, launch) forces
 * each failure for tests.
 */
#include <cuda_runtime.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decode/trigger.h"
#include "engine/gpu.h"

#define THREADS 256
#define SEG 16
#define BIT2_WORDS (65536 / 32)
#define BIT3_LOG 17
#define BIT3_WORDS ((1u << BIT3_LOG) / 32)
#define BIT4_LOG 17
#define BIT4_WORDS ((1u << BIT4_LOG) / 32)
#define FILTER_WORDS (BIT2_WORDS + BIT3_WORDS + BIT4_WORDS)
#define DEFAULT_PIECE (16u << 20)
/* Hits and marks a batch may bring back (16 B each, a device queue and a
 * mapped host one per lane): a 16 MiB batch of source has about 2 500;
 * more than this and libkeyhog confirms the batch on the CPU alone. */
#define DEFAULT_MAX_HITS (1u << 20)
#define PAD 64
/* What the kernel reads past a batch's last byte: a keyword, the bytes its
 * filter reads, the 16-byte over-read; all zeros the caller put there. */
static_assert(GPU_MAX_KEYWORD + GPU_MAX_STOP + PAD <= GPU_PACK_PAD, "reads stay in the pad");
/* A block's 4096 bytes, the 16 before them and the bytes after them that
 * the decode marks of its runs may read (decode/trigger.h: a run of up to
 * DT_MAX_RUN characters, then its padding and line end), in shared memory. */
#define TILE (THREADS * SEG)
#define HALO (DT_MAX_RUN + 64)
#define TILE_WORDS ((SEG + TILE + HALO) / 16)
#define ZERO_COPY_MAX GPU_SMALL_BATCH /* block 0 alone scans such a batch */
#define START_TIMEOUT_S 5.0
#define PIECE_TIMEOUT_S 10.0

/* gpu_hit's layout: the host hands the queue out as it is. */
typedef struct dev_hit {
    unsigned long long pos; /* in the packed batch */
    unsigned int chunk;     /* GPU_CHUNK_PACKED */
    unsigned int keyword;
} dev_hit;
static_assert(sizeof(dev_hit) == sizeof(gpu_hit), "dev_hit is a gpu_hit");

typedef struct kw_entry {
    unsigned int off, len;
} kw_entry;

typedef struct tables {
    const unsigned int *bits; /* BIT2_WORDS, BIT3_WORDS, BIT4_WORDS */
    const unsigned int *bucket; /* 65537 starts into order[] by 2-byte prefix */
    const unsigned int *order;  /* keyword ids */
    const kw_entry *kw;
    const gpu_keyword_filter *filter; /* per keyword; min_run 0 = none */
    const unsigned char *bytes; /* lower-cased keywords */
    unsigned long long tail;    /* bytes readable past a piece: longest keyword + run */
} tables;

typedef struct sink {
    dev_hit *hits;
    unsigned long long *count;
    unsigned long long cap;
} sink;

/* Written by the host, read by block 0 of the persistent kernel. */
typedef struct host_ctrl {
    volatile unsigned int seq, stop, started, done_seq;
    volatile unsigned long long valid, nhits_out;
    volatile unsigned long long ptr;  /* the small batch in mapped host memory */
    volatile unsigned long long copy; /* its bytes to bring into the buffer (16-aligned) */
} host_ctrl;

__device__ __forceinline__ unsigned int fold(unsigned int c)
{
    return c + ((c - 'A') < 26u ? 32u : 0u);
}

__device__ __forceinline__ void load_filters(unsigned int *sbits, const tables &t)
{
    for (unsigned int i = threadIdx.x; i < FILTER_WORDS; i += blockDim.x)
        sbits[i] = t.bits[i];
    __syncthreads();
}

/* Four bytes at once: 0x80 in each byte of v that is zero, that equals c,
 * or (x: bytes below 0x80) that lies in [lo, hi]; bits4 packs those flags
 * into 4 bits, byte 0 lowest.  No sum carries out of its byte. */
__device__ __forceinline__ unsigned int zero4(unsigned int v)
{
    return ~(((v & 0x7F7F7F7Fu) + 0x7F7F7F7Fu) | v | 0x7F7F7F7Fu);
}

__device__ __forceinline__ unsigned int eq4(unsigned int v, unsigned int c)
{
    return zero4(v ^ (c * 0x01010101u));
}

__device__ __forceinline__ unsigned int range4(unsigned int x, unsigned int lo, unsigned int hi)
{
    unsigned int ge = x + (0x80u - lo) * 0x01010101u, gt = x + (0x7Fu - hi) * 0x01010101u;
    return ge & ~gt & 0x80808080u;
}

__device__ __forceinline__ unsigned int bits4(unsigned int m)
{
    return (((m & 0x80808080u) >> 7) * 0x204081u >> 21) & 0xFu;
}

__device__ __forceinline__ void mark(const sink &out, unsigned long long pos)
{
    unsigned long long k = atomicAdd(out.count, 1ull);
    if (k < out.cap) {
        dev_hit h = {pos, GPU_CHUNK_PACKED, GPU_DECODE_MARK};
        out.hits[k] = h;
    }
}

/* Whether a keyword starts at tile[tp] (the block's bytes in shared
 * memory: a keyword and the run after it fit in the halo), and its token
 * shape follows; each one found is a hit at pos of the batch. */
__device__ __forceinline__ void verify(const unsigned char *tile, size_t tp,
                                       unsigned long long pos, unsigned int pair,
                                       const tables &t, const sink &out)
{
    unsigned int end = t.bucket[pair + 1];
    for (unsigned int k = t.bucket[pair]; k < end; k++) {
        unsigned int id = t.order[k];
        kw_entry e = t.kw[id];
        unsigned int j = 2;
        while (j < e.len && fold(tile[tp + j]) == t.bytes[e.off + j])
            j++;
        if (j == e.len) {
            /* The byte before the keyword, then the token shape after it
             * (gpu_keyword_filters). */
            const gpu_keyword_filter *f = &t.filter[id];
            if (f->before_test && !GPU_IN_CLASS(f->before, tile[tp - 1]))
                continue;
            unsigned int need = f->min_run, r = 0;
            while (r < need) {
                unsigned int b = tile[tp + e.len + r];
                if (!((f->cls[b >> 5] >> (b & 31)) & 1u))
                    break;
                r++;
            }
            if (r < need)
                continue;
            /* The bytes the match must reach, over bytes it may cross. */
            int pass = 1;
            for (int k2 = 0; k2 < GPU_STOP_TESTS && pass; k2++) {
                const gpu_stop_test *st = &f->stops[k2];
                unsigned int q = 0;
                for (; q < st->within; q++) {
                    unsigned int b = tile[tp + e.len + q];
                    if (GPU_IN_CLASS(st->stop, b))
                        break;
                    if (!GPU_IN_CLASS(st->skip, b))
                        q = st->within;
                }
                pass = !st->within || q < st->within;
            }
            if (!pass)
                continue;
            unsigned long long at = atomicAdd(out.count, 1ull);
            if (at < out.cap) {
                dev_hit h = {pos, GPU_CHUNK_PACKED, id};
                out.hits[at] = h;
            }
        }
    }
}

/* The positions of one thread's 16 bytes (w, then next) that pass the
 * keyword filter in shared memory, as a mask, byte 0 lowest; positions at
 * or past `left` (what is left of the piece) are not asked. */
__device__ __forceinline__ unsigned int keyword_mask(uint4 w, unsigned int next,
                                                     const unsigned int *sbits,
                                                     unsigned long long left)
{
    unsigned int mask = 0;
    {
        unsigned int c[SEG + 3];
        unsigned int words[5] = {w.x, w.y, w.z, w.w, next};
#pragma unroll
        for (int i = 0; i < SEG + 3; i++)
            c[i] = fold((words[i >> 2] >> ((i & 3) * 8)) & 0xffu);
#pragma unroll
        for (int i = 0; i < SEG; i++) {
            /* 2-byte keywords by their pair, 3-byte ones by a hash of 3
             * bytes, longer ones by a hash of 4: common 3-letter starts
             * ("ion" of "ion_") then cost nothing. */
            unsigned int pair = c[i] | (c[i + 1] << 8);
            unsigned int tri = pair | (c[i + 2] << 16);
            unsigned int h3 = (tri * 0x9E3779B1u) >> (32 - BIT3_LOG);
            unsigned int h4 = ((tri | (c[i + 3] << 24)) * 0x9E3779B1u) >> (32 - BIT4_LOG);
            unsigned int hit2 = (sbits[pair >> 5] >> (pair & 31)) & 1u;
            unsigned int hit3 = (sbits[BIT2_WORDS + (h3 >> 5)] >> (h3 & 31)) & 1u;
            unsigned int hit4 =
                (sbits[BIT2_WORDS + BIT3_WORDS + (h4 >> 5)] >> (h4 & 31)) & 1u;
            if ((hit2 | hit3 | hit4) && i < left)
                mask |= 1u << i;
        }
    }
    return mask;
}

/* The warp's keyword candidates (each lane's mask of positions from tile
 * offset p0), verified 32 at a time: a lane that verified its own would
 * hold up the other 31, and most lanes have none.  Each round the lanes
 * write their candidates, in lane order, to the warp's queue in shared
 * memory, up to WQ of them, then verify one a lane.  Every lane of the
 * warp must call it.  A position's place in the batch is tbase + its tile
 * offset. */
#define WQ 64
__device__ __forceinline__ void verify_warp(unsigned int rem, unsigned int p0,
                                            unsigned long long tbase,
                                            const unsigned char *tile, const tables &t,
                                            const sink &out, unsigned short *wq)
{
    const unsigned int lane = threadIdx.x & 31u;
    for (;;) {
        unsigned int cnt = __popc(rem), incl = cnt;
#pragma unroll
        for (unsigned int d = 1; d < 32; d <<= 1) {
            unsigned int v = __shfl_up_sync(0xffffffffu, incl, d);
            if (lane >= d)
                incl += v;
        }
        unsigned int total = __shfl_sync(0xffffffffu, incl, 31);
        if (!total)
            return;
        for (unsigned int slot = incl - cnt; rem && slot < WQ; slot++) {
            wq[slot] = (unsigned short)(p0 + __ffs(rem) - 1);
            rem &= rem - 1;
        }
        __syncwarp();
        unsigned int n = total < WQ ? total : WQ;
        for (unsigned int k = lane; k < n; k += 32) {
            unsigned int tp = wq[k];
            unsigned int pair = fold(tile[tp]) | (fold(tile[tp + 1]) << 8);
            verify(tile, tp, tbase + tp, pair, t, out);
        }
        __syncwarp();
    }
}

/* One thread's 16 bytes (w, then next; the block's tile holds them and
 * what follows): decode marks. */
__device__ __forceinline__ void mark_segment(unsigned long long base, unsigned long long valid,
                                             unsigned long long seg, uint4 w, unsigned int next,
                                             const sink &out, const unsigned char *tile,
                                             unsigned long long tb, size_t lim,
                                             unsigned short *queue,
                                             unsigned int *nqueue)
{
    unsigned long long at = seg * SEG;
    size_t p0 = SEG + (size_t)(at - tb);
    /* Decode marks: the first position of the segment where decode could
     * find something (decode/trigger.h), and again after a NUL (a new
     * chunk).  The thread's 20 bytes in registers, four at a time, rule out
     * most positions: a mark needs an escape character, or a base64 run of
     * DT_MIN_B64 characters, which can start only at the run that reaches
     * the 20th byte.  dt_trigger decides the rest from the
     * block's tile, whose end (or that of what may be read) makes it say
     * yes. */
    unsigned int words[5] = {w.x, w.y, w.z, w.w, next};
    unsigned int b64 = 0, nul = 0, cand = 0;
#pragma unroll
    for (int k = 0; k < 5; k++) {
        unsigned int v = words[k], x = v & 0x7F7F7F7Fu;
        unsigned int m = range4(x, 'A', 'Z') | range4(x, 'a', 'z') | range4(x, '0', '9') |
                         eq4(v, '+') | eq4(v, '/') | eq4(v, '-') | eq4(v, '_');
        b64 |= bits4(m & ~v) << (4 * k); /* no byte >= 0x80 is base64 */
        if (k < 4) {
            nul |= bits4(zero4(v)) << (4 * k);
            /* Escape characters, whatever follows: dt_trigger looks at
             * the next bytes. */
            cand |= bits4(eq4(v, '%') | eq4(v, '=') | eq4(v, '\\') | eq4(v, '&')) << (4 * k);
        }
    }
    int run = -1; /* where the base64 run reaching byte 19 starts, if here */
    if ((b64 >> (SEG + 3)) & 1u) {
        unsigned int gaps = ~b64 & ((1u << (SEG + 4)) - 1u);
        int start = gaps ? 32 - __clz(gaps) : 0; /* first byte of the run at byte 19 */
        int before = start ? 0 : dt_b64(tile[p0 - 1]);
        if (start < SEG && !before && at + start < valid)
            run = start;
    }
    int last = -1;
    while (cand) {
        int i = __ffs(cand) - 1;
        cand &= cand - 1;
        /* One mark per segment, and one more after each NUL. */
        if (last >= 0 && !(nul & ((1u << i) - 1u) & ~((2u << last) - 1u)))
            continue;
        if (at + i < valid && dt_trigger(tile, p0 + i, lim)) {
            last = i;
            mark(out, base + at + i);
        }
    }
    /* The base64 run goes to the block's queue (a run is read byte by byte,
     * up to DT_MAX_RUN of them: done here, it would hold up the warp's
     * other threads), unless a mark before it in the segment, with no NUL
     * between, covers it already.  Both marks may come out: more marks
     * only mean a few more lines decoded. */
    if (run >= 0 && !(last >= 0 && last < run && !(nul & ((1u << run) - 1u) & ~((2u << last) - 1u))))
        queue[atomicAdd(nqueue, 1u)] = (unsigned short)(p0 + run);
}

/* Scans starts [0, valid) of buf; bytes up to valid + t.tail (and PAD
 * more) are readable.  Each round a block copies its 4096 bytes, the 16
 * before and HALO after into shared memory (one 16-byte load a thread,
 * coalesced), and every later read - keywords, their runs, decode marks -
 * is from there.  Trip counts
 * are uniform per block, so every thread reaches the barriers. */
__device__ void scan_piece(const unsigned char *buf, unsigned long long base,
                           unsigned long long valid, const unsigned int *sbits,
                           const tables &t, const sink &out, unsigned int block,
                           unsigned int nblocks, uint4 *tile, unsigned short *wq,
                           unsigned short *queue, unsigned int *nqueue)
{
    unsigned long long nseg = (valid + SEG - 1) / SEG;
    unsigned long long stride = (unsigned long long)nblocks * blockDim.x;
    /* What buf holds of this piece and beyond: a run may be read up to here. */
    unsigned long long readable = valid + t.tail;
    const uint4 zero = make_uint4(0, 0, 0, 0);
    for (unsigned long long first = (unsigned long long)block * blockDim.x; first < nseg;
         first += stride) {
        unsigned long long seg = first + threadIdx.x;
        int active = seg < nseg;
        uint4 w = seg * SEG < readable ? *(const uint4 *)(buf + seg * SEG) : zero;
        unsigned long long tb = first * SEG;
        tile[1 + threadIdx.x] = w;
        if (threadIdx.x < HALO / 16) {
            unsigned long long h = tb + TILE + threadIdx.x * 16ull;
            tile[1 + THREADS + threadIdx.x] = h < readable ? *(const uint4 *)(buf + h) : zero;
        } else if (threadIdx.x == HALO / 16) {
            tile[0] = tb >= SEG ? *(const uint4 *)(buf + tb - SEG) : zero;
        }
        __syncthreads();
        size_t lim = SEG + TILE + HALO; /* dt_trigger reads below this in the tile */
        if (readable - tb + SEG < lim)
            lim = (size_t)(readable - tb + SEG);
        const unsigned char *bytes = (const unsigned char *)tile;
        unsigned int p0 = SEG + threadIdx.x * SEG;
        unsigned int next = *(const unsigned int *)(bytes + p0 + SEG);
        unsigned int kmask = active ? keyword_mask(w, next, sbits, valid - seg * SEG) : 0;
        verify_warp(kmask, p0, base + tb - SEG, bytes, t, out, wq + (threadIdx.x >> 5) * WQ);
        if (active)
            mark_segment(base, valid, seg, w, next, out, bytes, tb, lim, queue, nqueue);
        __syncthreads();
        /* The queued base64 runs, one a thread. */
        if (threadIdx.x < *nqueue) {
            unsigned int p = queue[threadIdx.x];
            if (dt_trigger((const unsigned char *)tile, p, lim))
                mark(out, base + tb + (p - SEG));
        }
        __syncthreads(); /* the tile is rewritten next round */
        if (threadIdx.x == 0)
            *nqueue = 0;
    }
}

__global__ void __launch_bounds__(THREADS)
    launch_kernel(const unsigned char *buf, unsigned long long base, unsigned long long valid,
                  tables t, sink out)
{
    __shared__ unsigned int sbits[FILTER_WORDS];
    __shared__ uint4 tile[TILE_WORDS];
    __shared__ unsigned short wq[THREADS / 32 * WQ];
    __shared__ unsigned short queue[THREADS];
    __shared__ unsigned int nqueue;
    if (threadIdx.x == 0)
        nqueue = 0;
    load_filters(sbits, t);
    scan_piece(buf, base, valid, sbits, t, out, blockIdx.x, gridDim.x, tile, wq, queue,
               &nqueue);
}

/* The resident kernel: one block.  Thread 0 polls the command word in
 * mapped host memory; a command is a small batch in the caller's mapped,
 * pinned memory, which the block brings into buf (all loads in flight at
 * once, one PCIe round trip; volatile, since the host rewrites that memory
 * between commands), scans, and whose few hits it writes straight
 * to mapped host memory: no copy engine, no launch, no host sync.  Then it
 * publishes the hit count and the done word.  `stop` ends it. */
__global__ void __launch_bounds__(THREADS)
    persistent_kernel(host_ctrl *hc, unsigned char *buf, tables t, sink out, dev_hit *host_hits)
{
    __shared__ unsigned int sbits[FILTER_WORDS];
    __shared__ uint4 tile[TILE_WORDS];
    __shared__ unsigned int s_seq, s_stop;
    __shared__ unsigned long long s_valid, s_ptr, s_copy;
    __shared__ unsigned short wq[THREADS / 32 * WQ];
    __shared__ unsigned short queue[THREADS];
    __shared__ unsigned int nqueue;
    if (threadIdx.x == 0)
        nqueue = 0;
    load_filters(sbits, t);
    if (threadIdx.x == 0) {
        hc->started = 1;
        __threadfence_system();
    }
    unsigned int last = 0;
    for (;;) {
        if (threadIdx.x == 0) {
            unsigned int q;
            while ((q = hc->seq) == last)
                __nanosleep(64);
            __threadfence_system();
            s_seq = q;
            s_stop = hc->stop;
            s_valid = hc->valid;
            s_ptr = hc->ptr;
            s_copy = hc->copy;
        }
        __syncthreads();
        if (s_stop)
            return;
        last = s_seq;
        const uint4 *from = (const uint4 *)s_ptr;
        uint4 *into = (uint4 *)buf;
        for (unsigned long long i = threadIdx.x; i < s_copy / 16; i += blockDim.x)
            into[i] = __ldcv(from + i);
        /* The block's own stores, visible to its own plain loads after the
         * barrier (the CUDA memory model's guarantee within a block): no
         * other writer touches buf while this kernel runs, since launches
         * stop it first.  Reading buf through L2 only (.cg), which this
         * once did, made the scan twice as slow. */
        __syncthreads();
        sink to = out;
        to.hits = host_hits;
        scan_piece(buf, 0, s_valid, sbits, t, to, 0, 1, tile, wq, queue, &nqueue);
        __syncthreads();
        if (threadIdx.x == 0) {
            /* The hits must reach the host before the done word. */
            __threadfence_system();
            volatile unsigned long long *count = out.count;
            hc->nhits_out = *count;
            *count = 0;
            __threadfence_system();
            hc->done_seq = last;
        }
        __syncthreads();
    }
}

/* ------------------------------------------------------------------ */
/* Host side                                                           */
/* ------------------------------------------------------------------ */

enum { MODE_LAUNCH = 0, MODE_PERSISTENT = 1 };

struct gpu_session {
    int device;
    volatile int mode;
    int quiet, fail_launch;
    int nkeywords, maxkw, maxrun;
    cudaStream_t copy[2], kstream;
    cudaEvent_t copied[2], computed[2];
    unsigned char *stage[2], *dbuf[2];
    size_t piece;
    void *dtables; /* one allocation holding every table */
    tables t;
    dev_hit *dhits, *hhits, *hhits_dev; /* hhits is mapped: the resident kernel
                                           writes a small batch's hits there */
    int zero_copy;   /* the device reads mapped host memory (UVA) */
    int hits_on_host; /* the last batch's hits are already in hhits */
    unsigned long long *dcount;
    size_t cap;
    host_ctrl *hctrl, *hctrl_dev;
    unsigned int seq;
    int grid;
    int persistent_running;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int forced(const char *list, const char *what)
{
    if (!list)
        return 0;
    size_t n = strlen(what);
    for (const char *p = list; (p = strstr(p, what)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
            return 1;
    return 0;
}

static int cuda_fail(cudaError_t e, const char *what, char *msg, size_t cap)
{
    if (e == cudaSuccess)
        return 0;
    snprintf(msg, cap, "%s: %s", what, cudaGetErrorString(e));
    return 1;
}

#define TRY(call, what)                                                                       \
    do {                                                                                      \
        if (cuda_fail((call), (what), msg, cap))                                              \
            goto fail;                                                                        \
    } while (0)

static int kh_api_version(void)
{
    return GPU_ABI_VERSION;
}

static int kh_device_count(int *count, char *msg, size_t cap)
{
    *count = 0;
    cudaError_t e = cudaGetDeviceCount(count);
    if (e != cudaSuccess) {
        *count = 0;
        snprintf(msg, cap, "%s", cudaGetErrorString(e));
        (void)cudaGetLastError();
        return 1;
    }
    if (*count == 0)
        snprintf(msg, cap, "no CUDA device");
    return 0;
}

static int kh_device_name(int device, char *name, size_t cap)
{
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, device) != cudaSuccess)
        return 1;
    snprintf(name, cap, "%s", p.name);
    return 0;
}

static void drop_line(gpu_session *s, const char *why)
{
    if (!s->quiet)
        fprintf(stderr, "keyhog: gpu %d: persistent kernel dropped: %s; one launch per batch\n",
                s->device, why);
}

/* Spins on a word the device writes into mapped memory.  It yields the
 * core only after SPIN_S: a yield is a system call, slow under some
 * hypervisors, and a small batch is done long before. */
#define SPIN_S 200e-6
static int wait_word(volatile unsigned int *word, unsigned int want, double timeout)
{
    double start = now_s(), deadline = start + timeout;
    for (unsigned int spin = 1; *word != want; spin++) {
        if ((spin & 255) == 0) {
            double t = now_s();
            if (t > deadline)
                return 1;
            if (t - start > SPIN_S)
                sched_yield();
        }
    }
    __sync_synchronize();
    return 0;
}

static int wait_stream(cudaStream_t st, double timeout, char *msg, size_t cap)
{
    double start = now_s(), deadline = start + timeout;
    for (;;) {
        cudaError_t e = cudaStreamQuery(st);
        if (e == cudaSuccess)
            return 0;
        if (e != cudaErrorNotReady)
            return cuda_fail(e, "kernel", msg, cap);
        double t = now_s();
        if (t > deadline) {
            snprintf(msg, cap, "kernel did not finish within %.0f s", timeout);
            return 1;
        }
        if (t - start > SPIN_S)
            sched_yield();
    }
}

static void stop_persistent(gpu_session *s)
{
    if (!s->persistent_running)
        return;
    s->hctrl->stop = 1;
    __sync_synchronize();
    s->hctrl->seq = ++s->seq;
    char msg[64];
    wait_stream(s->kstream, 2.0, msg, sizeof msg);
    s->persistent_running = 0;
}

static int start_persistent(gpu_session *s, char *msg, size_t cap)
{
    int per_sm = 0;
    TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, persistent_kernel, THREADS, 0),
        "occupancy");
    if (per_sm < 1) {
        snprintf(msg, cap, "kernel does not fit on a multiprocessor");
        return 1;
    }
    {
        memset((void *)s->hctrl, 0, sizeof *s->hctrl);
        s->seq = 0;
        TRY(cudaMemset(s->dcount, 0, sizeof *s->dcount), "hit counter");
        unsigned char *b0 = s->dbuf[0];
        sink out = {s->dhits, s->dcount, s->cap};
        void *args[] = {&s->hctrl_dev, &b0, &s->t, &out, &s->hhits_dev};
        /* One resident block: it serves the small batches, whose cost is
         * the round trip, and leaves the device to the launches that scan
         * big batches (every resident block would take part in each
         * command's done count and slow the round trip). */
        dim3 grid(1), block(THREADS);
        TRY(cudaLaunchKernel((const void *)persistent_kernel, grid, block, args, 0, s->kstream),
            "resident launch");
        s->persistent_running = 1;
        if (wait_word(&s->hctrl->started, 1, START_TIMEOUT_S)) {
            snprintf(msg, cap, "no handshake within %.0f s", START_TIMEOUT_S);
            stop_persistent(s);
            return 1;
        }
        return 0;
    }
fail:
    (void)cudaGetLastError();
    return 1;
}

static void kh_session_close(gpu_session *s)
{
    if (!s)
        return;
    cudaSetDevice(s->device);
    stop_persistent(s);
    for (int i = 0; i < 2; i++) {
        if (s->copy[i])
            cudaStreamDestroy(s->copy[i]);
        if (s->copied[i])
            cudaEventDestroy(s->copied[i]);
        if (s->computed[i])
            cudaEventDestroy(s->computed[i]);
        cudaFreeHost(s->stage[i]);
        cudaFree(s->dbuf[i]);
    }
    if (s->kstream)
        cudaStreamDestroy(s->kstream);
    cudaFree(s->dtables);
    cudaFree(s->dhits);
    cudaFree(s->dcount);
    cudaFreeHost(s->hhits);
    cudaFreeHost((void *)s->hctrl);
    free(s);
}

static unsigned int host_fold(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned)c | 0x20u : c;
}

/* Builds the filter bits, buckets and keyword bytes in one host block laid
 * out exactly as on the device, and copies it over in one go. */
static int upload_tables(gpu_session *s, const char *const *kws, unsigned int n,
                         const gpu_keyword_filter *filters, char *msg, size_t cap)
{
    size_t total = 0;
    for (unsigned int i = 0; i < n; i++)
        total += strlen(kws[i]);
    size_t off_bits = 0;
    size_t off_bucket = off_bits + FILTER_WORDS * 4;
    size_t off_order = off_bucket + 65537 * 4;
    size_t off_kw = off_order + (size_t)n * 4;
    size_t off_filter = off_kw + (size_t)n * sizeof(kw_entry);
    size_t off_bytes = off_filter + (size_t)n * sizeof(gpu_keyword_filter);
    size_t size = off_bytes + total + 16;
    unsigned char *h = (unsigned char *)calloc(1, size);
    if (!h) {
        snprintf(msg, cap, "out of memory");
        return 1;
    }
    unsigned int *bits = (unsigned int *)(h + off_bits);
    unsigned int *bucket = (unsigned int *)(h + off_bucket);
    unsigned int *order = (unsigned int *)(h + off_order);
    kw_entry *kw = (kw_entry *)(h + off_kw);
    unsigned char *bytes = h + off_bytes;
    gpu_keyword_filter *flt = (gpu_keyword_filter *)(h + off_filter);
    size_t at = 0;
    s->maxkw = 0;
    s->maxrun = 0;
    for (unsigned int i = 0; filters && i < n; i++) {
        flt[i] = filters[i];
        if (flt[i].min_run > GPU_MAX_RUN)
            flt[i].min_run = GPU_MAX_RUN;
        if ((int)flt[i].min_run > s->maxrun)
            s->maxrun = (int)flt[i].min_run;
        for (int k = 0; k < GPU_STOP_TESTS; k++) {
            gpu_stop_test *st = &flt[i].stops[k];
            if (st->within > GPU_MAX_STOP)
                st->within = 0; /* no test rather than a cut one */
            if ((int)st->within > s->maxrun)
                s->maxrun = (int)st->within;
        }
    }
    for (unsigned int i = 0; i < n; i++) {
        size_t l = strlen(kws[i]);
        kw[i].off = (unsigned)at;
        kw[i].len = (unsigned)l;
        for (size_t j = 0; j < l; j++)
            bytes[at + j] = (unsigned char)host_fold((unsigned char)kws[i][j]);
        unsigned int pair = bytes[at] | (bytes[at + 1] << 8);
        unsigned int tri = pair | ((unsigned)bytes[at + 2 < at + l ? at + 2 : at] << 16);
        if (l == 2) {
            bits[pair >> 5] |= 1u << (pair & 31);
        } else if (l == 3) {
            unsigned int hh = (tri * 0x9E3779B1u) >> (32 - BIT3_LOG);
            bits[BIT2_WORDS + (hh >> 5)] |= 1u << (hh & 31);
        } else {
            unsigned int hh = ((tri | ((unsigned)bytes[at + 3] << 24)) * 0x9E3779B1u) >>
                              (32 - BIT4_LOG);
            bits[BIT2_WORDS + BIT3_WORDS + (hh >> 5)] |= 1u << (hh & 31);
        }
        bucket[pair + 1]++;
        if ((int)l > s->maxkw)
            s->maxkw = (int)l;
        at += l;
    }
    for (unsigned int i = 0; i < 65536; i++)
        bucket[i + 1] += bucket[i];
    unsigned int *fill = (unsigned int *)calloc(65536, sizeof *fill);
    if (!fill) {
        free(h);
        snprintf(msg, cap, "out of memory");
        return 1;
    }
    for (unsigned int i = 0; i < n; i++) {
        unsigned int pair = bytes[kw[i].off] | (bytes[kw[i].off + 1] << 8);
        order[bucket[pair] + fill[pair]++] = i;
    }
    free(fill);
    cudaError_t e = cudaMalloc(&s->dtables, size);
    if (e == cudaSuccess)
        e = cudaMemcpy(s->dtables, h, size, cudaMemcpyHostToDevice);
    free(h);
    if (cuda_fail(e, "keyword tables", msg, cap))
        return 1;
    unsigned char *d = (unsigned char *)s->dtables;
    s->t.bits = (const unsigned int *)(d + off_bits);
    s->t.bucket = (const unsigned int *)(d + off_bucket);
    s->t.order = (const unsigned int *)(d + off_order);
    s->t.kw = (const kw_entry *)(d + off_kw);
    s->t.filter = (const gpu_keyword_filter *)(d + off_filter);
    s->t.bytes = d + off_bytes;
    s->t.tail = (unsigned long long)(s->maxkw + s->maxrun);
    return 0;
}

static int kh_session_open(const char *const *keywords, uint32_t n, const gpu_session_opts *o,
                           gpu_session **out, char *msg, size_t cap)
{
    *out = NULL;
    if (forced(o->force_fail, "open")) {
        snprintf(msg, cap, "device %d: session open failed (forced by KEYHOG_GPU_FORCE_FAIL)",
                 o->device);
        return 1;
    }
    for (uint32_t i = 0; i < n; i++) {
        size_t l = strlen(keywords[i]);
        if (l < 2 || l > GPU_MAX_KEYWORD) {
            snprintf(msg, cap, "keyword length %zu out of range", l);
            return 1;
        }
    }
    gpu_session *s = (gpu_session *)calloc(1, sizeof *s);
    if (!s) {
        snprintf(msg, cap, "out of memory");
        return 1;
    }
    s->device = o->device;
    s->quiet = o->quiet;
    s->fail_launch = forced(o->force_fail, "launch");
    s->nkeywords = (int)n;
    s->piece = o->piece_bytes ? o->piece_bytes : DEFAULT_PIECE;
    s->piece = (s->piece + SEG - 1) / SEG * SEG;
    s->cap = o->max_hits ? o->max_hits : DEFAULT_MAX_HITS;
    s->mode = MODE_LAUNCH;
    cudaDeviceProp p;
    TRY(cudaSetDevice(o->device), "set device");
    TRY(cudaGetDeviceProperties(&p, o->device), "device properties");
    s->grid = p.multiProcessorCount * 4;
    if (upload_tables(s, keywords, n, o->filters, msg, cap))
        goto fail;
    for (int i = 0; i < 2; i++) {
        size_t bytes = s->piece + GPU_MAX_KEYWORD + GPU_MAX_STOP + PAD;
        TRY(cudaStreamCreateWithFlags(&s->copy[i], cudaStreamNonBlocking), "stream");
        TRY(cudaEventCreateWithFlags(&s->copied[i], cudaEventDisableTiming), "event");
        TRY(cudaEventCreateWithFlags(&s->computed[i], cudaEventDisableTiming), "event");
        TRY(cudaMalloc((void **)&s->dbuf[i], bytes), "input buffer");
        TRY(cudaMemset(s->dbuf[i], 0, bytes), "input buffer");
    }
    TRY(cudaStreamCreateWithFlags(&s->kstream, cudaStreamNonBlocking), "stream");
    TRY(cudaMalloc((void **)&s->dhits, s->cap * sizeof(dev_hit)), "hit queue");
    TRY(cudaHostAlloc((void **)&s->hhits, s->cap * sizeof(dev_hit), cudaHostAllocMapped),
        "pinned hit queue");
    TRY(cudaHostGetDevicePointer((void **)&s->hhits_dev, (void *)s->hhits, 0),
        "mapped hit queue");
    s->zero_copy = p.canMapHostMemory && p.unifiedAddressing;
    TRY(cudaMalloc((void **)&s->dcount, sizeof *s->dcount), "hit counter");
    TRY(cudaMemset(s->dcount, 0, sizeof *s->dcount), "hit counter");
    TRY(cudaHostAlloc((void **)&s->hctrl, sizeof *s->hctrl, cudaHostAllocMapped),
        "mapped control block");
    TRY(cudaHostGetDevicePointer((void **)&s->hctrl_dev, (void *)s->hctrl, 0),
        "mapped control block");
    if (o->persistent) {
        char why[200];
        if (forced(o->force_fail, "persistent")) {
            drop_line(s, "not started (forced by KEYHOG_GPU_FORCE_FAIL)");
        } else if (start_persistent(s, why, sizeof why)) {
            drop_line(s, why);
        } else {
            s->mode = MODE_PERSISTENT;
        }
    }
    *out = s;
    return 0;
fail:
    (void)cudaGetLastError();
    kh_session_close(s);
    return 1;
}

/* Copies the packed stream [from, from + n) into dst: each chunk followed by
 * one NUL.  *ci / *co is the cursor (chunk, offset within chunk + NUL). */
static void pack(const uint8_t *const *data, const size_t *len, size_t nchunks, size_t *ci,
                 size_t *co, unsigned char *dst, size_t n)
{
    while (n && *ci < nchunks) {
        size_t avail = len[*ci] + 1 - *co;
        size_t take = avail < n ? avail : n;
        size_t from_data = *co < len[*ci] ? len[*ci] - *co : 0;
        if (from_data > take)
            from_data = take;
        if (from_data)
            memcpy(dst, data[*ci] + *co, from_data);
        if (take > from_data)
            dst[from_data] = 0;
        dst += take;
        n -= take;
        *co += take;
        if (*co == len[*ci] + 1) {
            (*ci)++;
            *co = 0;
        }
    }
}

/* Copies and scans the batch.  A small batch packed by the caller in
 * mapped memory goes to the resident kernel (persistent mode; started when
 * the first one comes), which reads it where it is: no copy, no launch, no
 * synchronisation call.  Any other batch is cut into pieces, each copied on its own stream and scanned by
 * one launch across the device while the next piece copies; with `packed`
 * (the caller's pinned, packed batch) the copy engine reads it directly,
 * without, each piece is first packed from data/len into staging memory. */
static int run_pieces(gpu_session *s, const unsigned char *packed, const uint8_t *const *data,
                      const size_t *len, size_t nchunks, unsigned long long total,
                      unsigned long long *nhits, char *msg, size_t cap)
{
    s->hits_on_host = 0;
    int small = packed && s->zero_copy && total <= ZERO_COPY_MAX && total <= s->piece &&
                ((uintptr_t)packed & 15) == 0;
    if (s->mode == MODE_PERSISTENT && small && !s->persistent_running) {
        char why[200];
        if (start_persistent(s, why, sizeof why)) {
            drop_line(s, why);
            s->mode = MODE_LAUNCH;
        }
    }
    /* Launched kernels never run beside the resident one (they did not get
     * the device while it spun): a big batch stops it, the next small one
     * starts it again. */
    if (s->persistent_running && !(s->mode == MODE_PERSISTENT && small))
        stop_persistent(s);
    if (s->mode == MODE_PERSISTENT && small) {
        /* The batch and what the kernel reads past it (a keyword, the
         * bytes its filter reads, the over-read): the GPU_PACK_PAD zeros the
         * caller put there. */
        size_t bytes = (size_t)(total + s->t.tail + PAD);
        s->hctrl->ptr = (unsigned long long)(uintptr_t)packed;
        s->hctrl->copy = (bytes + 15) / 16 * 16;
        s->hctrl->valid = total;
        s->hits_on_host = 1;
        __sync_synchronize();
        s->hctrl->seq = ++s->seq;
        if (wait_word(&s->hctrl->done_seq, s->seq, PIECE_TIMEOUT_S)) {
            snprintf(msg, cap, "batch not done within %.0f s", PIECE_TIMEOUT_S);
            return 2;
        }
        *nhits = s->hctrl->nhits_out;
        return 0;
    }
    sink out = {s->dhits, s->dcount, s->cap};
    size_t ci = 0, co = 0;
    unsigned int k = 0;
    if (s->fail_launch && s->mode != MODE_PERSISTENT) { /* "launch": per-batch mode fails */
        snprintf(msg, cap, "kernel launch failed (forced by KEYHOG_GPU_FORCE_FAIL)");
        return 1;
    }
    TRY(cudaMemsetAsync(s->dcount, 0, sizeof *s->dcount, s->copy[0]), "hit counter");
    TRY(cudaStreamSynchronize(s->copy[0]), "hit counter");
    for (unsigned long long a = 0; a < total; a += s->piece, k++) {
        int b = k & 1;
        unsigned long long valid = total - a < s->piece ? total - a : s->piece;
        unsigned long long extra = total - a - valid;
        /* A keyword starting in the piece, and the run after it, must be
         * there whole. */
        if (extra > (unsigned long long)(s->maxkw + s->maxrun))
            extra = (unsigned long long)(s->maxkw + s->maxrun);
        const unsigned char *src;
        size_t bytes;
        if (packed) {
            /* Past the piece the batch's own bytes (or its zero pad) follow,
             * which is what the kernel's over-read expects. */
            src = packed + a;
            bytes = (size_t)(valid + s->t.tail + PAD);
        } else {
            /* Staging b is free once its previous copy has finished.  It is
             * allocated on first use: libkeyhog packs batches itself. */
            TRY(cudaEventSynchronize(s->copied[b]), "copy");
            if (!s->stage[b])
                TRY(cudaHostAlloc((void **)&s->stage[b],
                                  s->piece + GPU_MAX_KEYWORD + GPU_MAX_STOP + PAD,
                                  cudaHostAllocDefault),
                    "pinned staging");
            pack(data, len, nchunks, &ci, &co, s->stage[b], (size_t)valid);
            size_t sci = ci, sco = co;
            pack(data, len, nchunks, &sci, &sco, s->stage[b] + valid, (size_t)extra);
            memset(s->stage[b] + valid + extra, 0, (size_t)(s->t.tail - extra) + PAD);
            src = s->stage[b];
            bytes = (size_t)(valid + s->t.tail + PAD);
        }
        /* Stream b runs copy k, then kernel k: buffer b is not rewritten
         * while kernel k-2 still reads it. */
        TRY(cudaMemcpyAsync(s->dbuf[b], src, bytes, cudaMemcpyHostToDevice, s->copy[b]), "copy");
        TRY(cudaEventRecord(s->copied[b], s->copy[b]), "copy");
        launch_kernel<<<s->grid, THREADS, 0, s->copy[b]>>>(s->dbuf[b], a, valid, s->t, out);
        TRY(cudaGetLastError(), "kernel launch");
    }
    for (int b = 0; b < 2; b++)
        if (wait_stream(s->copy[b], PIECE_TIMEOUT_S * 4, msg, cap))
            return 1;
    TRY(cudaMemcpy(nhits, s->dcount, sizeof *nhits, cudaMemcpyDeviceToHost), "hit count");
    return 0;
fail:
    (void)cudaGetLastError();
    return 1;
}

/* Runs a batch of `total` packed bytes (packed by the caller, or packed
 * here from data/len) and hands out the device's hits as they are. */
static int submit_common(gpu_session *s, const unsigned char *packed, const uint8_t *const *data,
                         const size_t *len, size_t nchunks, unsigned long long total,
                         gpu_batch_result *res, char *msg, size_t cap, double t0)
{
    unsigned long long nhits = 0;
    int rc = run_pieces(s, packed, data, len, nchunks, total, &nhits, msg, cap);
    if (rc == 2) {
        /* The resident kernel failed this batch: drop it, redo the batch
         * with one launch per piece. */
        drop_line(s, msg);
        stop_persistent(s);
        s->mode = MODE_LAUNCH;
        rc = run_pieces(s, packed, data, len, nchunks, total, &nhits, msg, cap);
    }
    if (rc)
        return 1;
    if (nhits > s->cap) {
        res->overflow = 1;
        res->device_ms = (now_s() - t0) * 1e3;
        return 0;
    }
    if (nhits && !s->hits_on_host &&
        cuda_fail(cudaMemcpy(s->hhits, s->dhits, nhits * sizeof(dev_hit), cudaMemcpyDeviceToHost),
                  "hit queue", msg, cap))
        return 1;
    res->hits = (const gpu_hit *)s->hhits; /* device order, packed positions */
    res->nhits = (size_t)nhits;
    res->device_ms = (now_s() - t0) * 1e3;
    return 0;
}

static int kh_session_submit(gpu_session *s, const uint8_t *const *data, const size_t *len,
                             size_t nchunks, gpu_batch_result *res, char *msg, size_t cap)
{
    double t0 = now_s();
    memset(res, 0, sizeof *res);
    if (cuda_fail(cudaSetDevice(s->device), "set device", msg, cap))
        return 1;
    unsigned long long total = 0;
    for (size_t i = 0; i < nchunks; i++)
        total += len[i] + 1; /* each chunk and its NUL */
    return submit_common(s, NULL, data, len, nchunks, total, res, msg, cap, t0);
}

static int kh_session_submit_packed(gpu_session *s, const uint8_t *packed,
                                    const uint64_t *starts, size_t nchunks,
                                    gpu_batch_result *res, char *msg, size_t cap)
{
    double t0 = now_s();
    memset(res, 0, sizeof *res);
    if (cuda_fail(cudaSetDevice(s->device), "set device", msg, cap))
        return 1;
    return submit_common(s, packed, NULL, NULL, nchunks, starts[nchunks], res, msg, cap, t0);
}

static int kh_host_alloc(size_t bytes, void **out)
{
    *out = NULL;
    if (cudaHostAlloc(out, bytes ? bytes : 1, cudaHostAllocPortable | cudaHostAllocMapped) !=
        cudaSuccess) {
        (void)cudaGetLastError();
        *out = NULL;
        return 1;
    }
    return 0;
}

static void kh_host_free(void *p)
{
    if (p)
        cudaFreeHost(p);
}

static int kh_session_pause(gpu_session *s, int pause)
{
    if (s->mode != MODE_PERSISTENT)
        return 0;
    cudaSetDevice(s->device);
    if (pause) {
        stop_persistent(s);
        return 0;
    }
    if (s->persistent_running)
        return 0;
    char why[200];
    if (start_persistent(s, why, sizeof why)) {
        drop_line(s, why);
        s->mode = MODE_LAUNCH;
    }
    return 0;
}

static const char *kh_session_mode(const gpu_session *s)
{
    return s->mode == MODE_PERSISTENT ? "persistent" : "launch";
}

extern "C" __attribute__((visibility("default"))) int keyhog_gpu_get_api(gpu_api *api)
{
    api->api_version = kh_api_version;
    api->device_count = kh_device_count;
    api->device_name = kh_device_name;
    api->session_open = kh_session_open;
    api->session_submit_batch = kh_session_submit;
    api->session_submit_packed = kh_session_submit_packed;
    api->host_alloc = kh_host_alloc;
    api->host_free = kh_host_free;
    api->session_pause = kh_session_pause;
    api->session_mode = kh_session_mode;
    api->session_close = kh_session_close;
    return 0;
}

#ifdef KH_GPU_BENCH
/* keyhog_gpu_bench: device-side numbers for docs/gpu.md.  Reads keywords
 * (one per line) from argv[1], scans argv[2] MiB of generated text. */
int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: keyhog_gpu_bench KEYWORDS_FILE MIB [TEXT_FILE]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    FILE *f = fopen(argv[1], "r");
    if (!f)
        return 2;
    char *kws[4096];
    unsigned int n = 0;
    char line[256];
    while (n < 4096 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (strlen(line) >= 2)
            kws[n++] = strdup(line);
    }
    fclose(f);
    size_t mib = (size_t)atol(argv[2]);
    size_t total = mib << 20;
    unsigned char *text = (unsigned char *)malloc(total);
    unsigned long long x = 88172645463325252ull;
    static const char words[][12] = {"int ", "return ", "static ", "void ", "char *",
                                      "if (", "} else {", "for (i = 0;", "size_t ", "\n",
                                      "struct ", "const ", "key_len", "token", "0x1f;"};
    for (size_t i = 0; i < total;) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const char *w = words[x % 15];
        for (size_t j = 0; w[j] && i < total; j++)
            text[i++] = (unsigned char)w[j];
    }
    if (argc > 3) {
        /* Real text (e.g. a source tree concatenated), repeated to size:
         * the filter's pass rate, hence the kernel's speed, depends on it. */
        FILE *tf = fopen(argv[3], "rb");
        size_t got = tf ? fread(text, 1, total, tf) : 0;
        if (tf)
            fclose(tf);
        for (size_t i = got; got && i < total; i++)
            text[i] = text[i % got];
        printf("text: %s (%zu bytes, repeated to %zu MiB)\n", argv[3], got, mib);
    }
    /* Pinned memory is allocated before any resident kernel starts. */
    size_t per_b = 64;
    unsigned char *packed_all = NULL;
    kh_host_alloc((per_b << 20) + per_b + GPU_PACK_PAD, (void **)&packed_all);
    /* One big chunk per 1 MiB, like files of a large tree. */
    size_t nchunks = mib;
    const uint8_t **data = (const uint8_t **)malloc(nchunks * sizeof *data);
    size_t *lens = (size_t *)malloc(nchunks * sizeof *lens);
    for (size_t i = 0; i < nchunks; i++) {
        data[i] = text + (i << 20);
        lens[i] = 1u << 20;
    }
    char msg[256];
    for (int persistent = 0; persistent < 2; persistent++) {
        /* Room for every hit of a 1 GiB resident scan: the kernel-alone
         * figure writes them all. */
        gpu_session_opts o = {0, persistent, NULL, 0, 8u << 20, 0, NULL};
        gpu_session *s;
        if (kh_session_open(kws, n, &o, &s, msg, sizeof msg)) {
            fprintf(stderr, "open: %s\n", msg);
            return 1;
        }
        gpu_batch_result r;
        size_t per = 64; /* 64 MiB batches */
        kh_session_submit(s, data, lens, per, &r, msg, sizeof msg); /* warm */
        double t0 = now_s();
        size_t hits = 0;
        for (size_t b = 0; b + per <= nchunks; b += per) {
            if (kh_session_submit(s, data + b, lens + b, per, &r, msg, sizeof msg)) {
                fprintf(stderr, "submit: %s\n", msg);
                return 1;
            }
            hits += r.nhits;
        }
        double dt = now_s() - t0;
        printf("mode=%s session, packed here (pack+copy+scan+hits) %.2f GB/s, %zu hits\n",
               kh_session_mode(s), (double)(nchunks / per * per << 20) / dt / 1e9, hits);
        {
            /* Packed by the caller into pinned memory, as kh_scan_batch
             * does on its own thread: the device side alone. */
            unsigned char *packed = packed_all;
            uint64_t *st = (uint64_t *)malloc((per + 1) * sizeof *st);
            if (packed && st) {
                for (size_t i = 0; i < per; i++) {
                    st[i] = i * ((1u << 20) + 1);
                    memcpy(packed + st[i], text + (i << 20) % (total - (1u << 20) + 1), 1u << 20);
                    packed[st[i] + (1u << 20)] = 0;
                }
                st[per] = per * ((1u << 20) + 1);
                memset(packed + st[per], 0, GPU_PACK_PAD);
                kh_session_submit_packed(s, packed, st, per, &r, msg, sizeof msg);
                int reps = 16;
                t0 = now_s();
                for (int i = 0; i < reps; i++)
                    kh_session_submit_packed(s, packed, st, per, &r, msg, sizeof msg);
                dt = now_s() - t0;
                printf("mode=%s session, pre-packed pinned (copy+scan+hits) %.2f GB/s\n",
                       kh_session_mode(s), (double)st[per] * reps / dt / 1e9);
                /* Many small batches, one chunk a batch: 10,000 of 4 KiB,
                 * and of 15 bytes (the round trip alone).  The hits'
                 * digest must be the same in both modes. */
                static const size_t sizes[] = {15, 4096};
                for (int z = 0; z < 2; z++) {
                    size_t sz = sizes[z], nh = 0;
                    unsigned long long digest = 0;
                    int small = 10000;
                    uint64_t st1[2] = {0, sz + 1};
                    t0 = now_s();
                    for (int i = 0; i < small; i++) {
                        memcpy(packed, text + ((size_t)i * 4096) % (total - 4096), sz);
                        packed[sz] = 0;
                        memset(packed + sz + 1, 0, GPU_PACK_PAD);
                        if (kh_session_submit_packed(s, packed, st1, 1, &r, msg, sizeof msg)) {
                            fprintf(stderr, "submit: %s\n", msg);
                            return 1;
                        }
                        nh += r.nhits;
                        for (size_t h = 0; h < r.nhits; h++)
                            digest += (r.hits[h].offset + 1) *
                                      (r.hits[h].keyword * 2654435761ull + 1) *
                                      (unsigned long long)(i + 1);
                    }
                    dt = now_s() - t0;
                    printf("mode=%s 10000 batches of one %zu-byte chunk: %.1f us/batch, "
                           "%zu hits, digest %016llx\n",
                           kh_session_mode(s), sz, dt / small * 1e6, nh, digest);
                }
            }
            free(st);
        }
        if (!persistent) {
            /* Kernel alone on resident data. */
            cudaEvent_t e0, e1;
            cudaEventCreate(&e0);
            cudaEventCreate(&e1);
            unsigned char *d;
            size_t len = 1u << 30;
            cudaMalloc(&d, len + 128);
            for (size_t off = 0; off < len; off += total < len - off ? total : len - off)
                cudaMemcpy(d + off, text, total < len - off ? total : len - off,
                           cudaMemcpyHostToDevice);
            cudaMemset(d + len, 0, 128);
            sink out = {s->dhits, s->dcount, s->cap};
            cudaMemset(s->dcount, 0, 8);
            launch_kernel<<<s->grid, THREADS>>>(d, 0, len, s->t, out);
            cudaEventRecord(e0);
            int reps = 5;
            for (int i = 0; i < reps; i++) {
                cudaMemset(s->dcount, 0, 8);
                launch_kernel<<<s->grid, THREADS>>>(d, 0, len, s->t, out);
            }
            cudaEventRecord(e1);
            cudaEventSynchronize(e1);
            float ms;
            cudaEventElapsedTime(&ms, e0, e1);
            unsigned long long c;
            cudaMemcpy(&c, s->dcount, 8, cudaMemcpyDeviceToHost);
            printf("kernel alone: %.1f GB/s over 1 GiB resident (%llu hits/GiB), %s\n",
                   (double)len * reps / (ms / 1e3) / 1e9, c, cudaGetErrorString(cudaGetLastError()));
            /* One block on one 4 KiB tile: the device time of a small batch. */
            cudaEventRecord(e0);
            for (int i = 0; i < 1000; i++)
                launch_kernel<<<1, THREADS>>>(d + ((size_t)i << 12), 0, 4097, s->t, out);
            cudaEventRecord(e1);
            cudaEventSynchronize(e1);
            cudaEventElapsedTime(&ms, e0, e1);
            printf("kernel, one block on a 4 KiB tile: %.1f us\n", ms * 1e3 / 1000);
            unsigned char *pinned = packed_all;
            size_t cb = 64u << 20;
            memcpy(pinned, text, total < cb ? total : cb);
            cudaMemcpy(d, pinned, cb, cudaMemcpyHostToDevice);
            cudaEventRecord(e0);
            for (int i = 0; i < 8; i++)
                cudaMemcpy(d, pinned, cb, cudaMemcpyHostToDevice);
            cudaEventRecord(e1);
            cudaEventSynchronize(e1);
            cudaEventElapsedTime(&ms, e0, e1);
            printf("host-to-device from pinned: %.1f GB/s\n", 8.0 * cb / (ms / 1e3) / 1e9);
            cudaFree(d);
        }
        kh_session_close(s);
    }
    return 0;
}
#endif
