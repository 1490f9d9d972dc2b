/* Delayed synaptic product on the CPU, for delaydeploy/delay_ops.py (through ctypes):
 *
 *     out[t, b, o] = sum_i w[o, i] * x[t - d[o, i], b, i]      (0 where t - d < 0)
 *
 * for time-first x[T, B, I], out[T, B, O] and int64 delays d >= 0.
 *
 * Each sample is first copied time-contiguous, row i = x[., b, i] behind `span` zeros (span =
 * the largest delay, at most T), so a synapse of delay d reads its row from span - min(d, T).
 * An output row is then built a tile of steps at a time in a block of vector registers, a
 * block of inputs at a time: every synapse adds its weight times its shifted slice, whatever
 * the delays. The cost is one multiply-add per synapse and step -- a delay-free layer's
 * count -- at a third to a half of a tuned GEMM's speed (each loaded slice serves one
 * synapse), with no dependence on activity.
 *
 * Work is split over (sample, output) rows on OpenMP threads -- torch's own runtime, which
 * has loaded libgomp already -- and every output sums its terms in input order, so results
 * do not depend on the thread count.
 * The vectors are GCC/Clang vector extensions (portable; SSE/NEON where AVX is absent); on
 * x86-64 with GCC an AVX2 clone is chosen at load time where the CPU has it.
 * Returns 0, or -1 if a thread's working memory cannot be allocated.
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

#define VECTOR_BYTES 32
/* Accumulators (vectors) per tile: a wide tile (8 x 32 bytes: 64 float or 32 double steps)
 * keeps the multiply-add units busy and, with its operands, fits the 16 AVX registers; a
 * sequence's last steps go to one wide tile if more than half of one remains, else to middle
 * and narrow tiles, so little is computed past its end. */
#define WIDE 8
#define MIDDLE 4
#define NARROW 1
/* Inputs per pass over a sample's outputs: their rows (BLOCK x (span + T) values, ~20 KiB)
 * stay in the L1 cache while every output reads them. Measured best of 16-64 (2-core Zen 3):
 * 10 % faster than one pass at 256 inputs, 30 % at 512. */
#define BLOCK 32

#if defined(__x86_64__) && !defined(__clang__)
#define CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CPU_CLONES
#endif

#define SCALAR float
#define VECTOR float_vector
#define NAME delayed_product_f32
#include "delayed_product_body.h"
#undef SCALAR
#undef VECTOR
#undef NAME

#define SCALAR double
#define VECTOR double_vector
#define NAME delayed_product_f64
#include "delayed_product_body.h"
#undef SCALAR
#undef VECTOR
#undef NAME
