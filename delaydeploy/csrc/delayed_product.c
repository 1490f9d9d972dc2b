/* Delayed synaptic product on the CPU, for delaydeploy/delay_ops.py (through ctypes):
 *
 *     out[t, b, o] = sum_i w[o, i] * x[t - d[o, i], b, i]      (0 where t - d < 0)
 *
 * for time-first x[T, B, I], out[T, B, O] and int64 delays d >= 0.
 *
 * Samples are taken a group at a time (as many as fill a vector, fewer for a small batch) and
 * copied input-major: row i holds x[t, ., i] step by step, the group's samples side by side,
 * behind `span` zero steps (span = the largest delay, at most T). A synapse of delay d then
 * reads one contiguous slice of its row, starting d steps back -- a whole number of vectors
 * when the group fills one, so every load is aligned. Output rows are built a tile of vectors
 * at a time in registers, a block of inputs at a time: every synapse adds its weight times its
 * slice, whatever the delays. The cost is one multiply-add per synapse, sample and step -- a
 * delay-free layer's count -- at about 60 % of a tuned GEMM's speed (each loaded slice serves
 * one synapse), with no dependence on activity.
 *
 * Work is split over (group, output) items on OpenMP threads -- torch's own runtime, which
 * has loaded libgomp already -- and every output sums its terms in input order from zero, so
 * results depend neither on the thread count nor on the batch size.
 *
 * The gradients: dL/dx is the same product reading ahead (`advance`: out[t] = sum w x[t + d],
 * with the transposed weights and delays), and delayed_correlation_* computes
 * dL/dw[o, i] = sum_{t, b} grad[t, b, o] x[t - d[o, i], b, i], one dot product per synapse.
 *
 * The vectors are GCC/Clang vector extensions (portable; SSE/NEON where AVX is absent); on
 * x86-64 with GCC an AVX2 clone is chosen at load time where the CPU has it.
 * Every function returns 0, or -1 if working memory cannot be allocated.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
static int thread_index(void) { return omp_get_thread_num(); }
static int thread_count(void) { return omp_get_num_threads(); }
#else
static int thread_index(void) { return 0; }
static int thread_count(void) { return 1; }
#endif

/* Working memory, kept per thread between calls and grown as needed: a layer's buffers are
 * megabytes, and fresh pages for every call cost as much as a tenth of the product. PACKING
 * holds what the calling thread prepares for all (the packed synapses; the correlation's
 * rows), WORKING each thread's own rows and sums. */
enum { PACKING, WORKING };
static __thread struct {
    void *data;
    size_t bytes;
} buffers[2];

/* At least `bytes` of 64-byte aligned memory in this thread's buffer `which`, or NULL. */
static void *thread_buffer(int which, size_t bytes)
{
    bytes = (bytes + 63) / 64 * 64;
    if (bytes > buffers[which].bytes) {
        free(buffers[which].data);
        buffers[which].data = aligned_alloc(64, bytes);
        buffers[which].bytes = buffers[which].data ? bytes : 0;
    }
    return buffers[which].data;
}

#define VECTOR_BYTES 32
/* Accumulators (vectors) per tile: a wide tile (12 x 32 bytes) keeps the multiply-add units
 * busy and, with the weight and a product, fits the 16 AVX registers (5 % faster than 8, no
 * better at 10 or 14); a sequence's last vectors go to middle and narrow tiles, so little is
 * computed past its end. */
#define WIDE 12
#define MIDDLE 4
#define NARROW 1
/* Tiles per time block, and the L1 bytes that a block of inputs may fill with its rows for one
 * time block (slices reach `span` steps back): MIN_BLOCK to MAX_BLOCK inputs, as many as fit.
 * Measured best (2-core Zen 3, 140-512 channels, T = 136-160, delays 0-30): 2 tiles, 24 KiB. */
#define TIME_BLOCK 2
#define L1_BYTES (24 * 1024)
#define MIN_BLOCK 4
#define MAX_BLOCK 32
/* Rows filled at a time when a group of samples is copied in: few enough pages for the TLB. */
#define LOAD_ROWS 16
/* The weight gradient: outputs per block of work (measured: 8-32 alike, 4 slower). */
#define CORRELATION_OUTPUTS 16

#if defined(__x86_64__) && !defined(__clang__)
#define CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CPU_CLONES
#endif

/* Type-independent pieces of the body. */

/* The span: the largest delay, at most `steps` (a delay past the sequence reaches nothing). */
static int64_t largest_delay(const int64_t *delays, int64_t count, int64_t steps)
{
    int64_t span = 0;
    for (int64_t k = 0; k < count; ++k)
        span = delays[k] > span ? delays[k] : span;
    return span < steps ? span : steps;
}

/* Samples interleaved in a row: as many as fill a vector of `lanes` (aligned slices), fewer
 * where the last group would be more than an eighth empty lanes. */
static int64_t samples_per_group(int64_t batch, int64_t lanes)
{
    int64_t group = lanes;
    while (group > 1 && ((batch + group - 1) / group * group - batch) * 8 > batch)
        group /= 2;
    return group;
}

/* The body once per scalar type: SCALAR is the C type, SUFFIX ends the names of its vector
 * type, helpers and exported functions (delayed_product_f32, delayed_correlation_f64, ...). */
#define JOIN_(name, suffix) name##_##suffix
#define JOIN(name, suffix) JOIN_(name, suffix)

#define SCALAR float
#define SUFFIX f32
#include "delayed_product_body.h"
#undef SCALAR
#undef SUFFIX

#define SCALAR double
#define SUFFIX f64
#include "delayed_product_body.h"
#undef SCALAR
#undef SUFFIX
