/* One step of delay synapses into ring buffers, for the fast Lava DelayDense models
 * (exporters/lava/processes.py, through ctypes):
 *
 *     sum[l, c]  = sum_i x[l, i] * w[k]            over the synapses k of input i with column c
 *     buf[l, rotate(c)] += scale(sum[l, c])
 *
 * for `lanes` independent copies of one layer, each ring laid out [slots, outputs]. A
 * synapse's column is delay * outputs + post; `rotate` moves its delay `head` slots on around
 * the ring (the ring's row `head` is the one sent next). The synapses come as a CSR matrix over inputs (`indptr`, `columns`,
 * `weights`), so a step costs one multiply-add per synapse of an active input. Every sum is
 * formed from zero in input order before it reaches the buffer, as the sparse product of the
 * pure-numpy path does, so both give the same floats (where a sum is zero the ring may turn
 * -0.0 into 0.0, which compares equal). `scratch[lanes, width]` must be zero on
 * entry and is zero again on return; width = slots * outputs.
 *
 * The float form adds the sums; the integer form scales each sum by 2^shift (a negative shift
 * floors, as numpy's right shift of an int64 does) and adds it to an int32 buffer, as Lava's
 * bit-accurate DelayDense applies weight_exp to each (step, delay) sum.
 */
#include <stdint.h>

/* Add lane sums[delay * outputs + post] to ring[((delay + head) % slots) * outputs + post]:
 * one contiguous row of outputs per delay. ADD(target, sum) adds one. */
#define DRAIN(ADD)                                                                                 \
    for (int64_t d = 0; d < slots; d++) {                                                          \
        int64_t turned = d + head < slots ? d + head : d + head - slots;                           \
        ring_type *target = ring + turned * outputs;                                               \
        sum_type *source = sums + d * outputs;                                                     \
        for (int64_t post = 0; post < outputs; post++) {                                           \
            ADD(target[post], source[post]);                                                       \
            source[post] = 0;                                                                      \
        }                                                                                          \
    }

#define ACCUMULATE                                                                                 \
    for (int64_t i = 0; i < inputs; i++) {                                                         \
        if (row[i] == 0)                                                                           \
            continue;                                                                              \
        for (int64_t k = indptr[i]; k < indptr[i + 1]; k++)                                        \
            sums[columns[k]] += row[i] * weights[k];                                               \
    }

#define ADD_FLOAT(target, sum) target += (sum)
/* gcc and clang shift signed integers arithmetically: a right shift floors, as numpy's does */
#define ADD_RIGHT_SHIFTED(target, sum) target += (int32_t)((sum) >> -shift)
#define ADD_SCALED(target, sum) target += (int32_t)((sum) * factor)

void ring_step_f64(int64_t lanes, int64_t inputs, int64_t width, int64_t slots, int64_t head,
                   const double *x, const int64_t *indptr, const int64_t *columns, const double *weights,
                   double *scratch, double *buffer)
{
    typedef double ring_type;
    typedef double sum_type;
    int64_t outputs = width / slots;
    for (int64_t lane = 0; lane < lanes; lane++) {
        const double *row = x + lane * inputs;
        double *sums = scratch + lane * width;
        double *ring = buffer + lane * width;
        ACCUMULATE
        DRAIN(ADD_FLOAT)
    }
}

void ring_step_i64(int64_t lanes, int64_t inputs, int64_t width, int64_t slots, int64_t head,
                   const int64_t *x, const int64_t *indptr, const int64_t *columns, const int64_t *weights,
                   int64_t shift, int64_t *scratch, int32_t *buffer)
{
    typedef int32_t ring_type;
    typedef int64_t sum_type;
    int64_t outputs = width / slots;
    int64_t factor = shift >= 0 ? (int64_t)1 << shift : 0;
    for (int64_t lane = 0; lane < lanes; lane++) {
        const int64_t *row = x + lane * inputs;
        int64_t *sums = scratch + lane * width;
        int32_t *ring = buffer + lane * width;
        ACCUMULATE
        if (shift >= 0) {
            DRAIN(ADD_SCALED)
        } else {
            DRAIN(ADD_RIGHT_SHIFTED)
        }
    }
}
