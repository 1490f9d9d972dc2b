/* The delayed product and its weight gradient for one scalar type, included by
 * delayed_product.c once per type with SCALAR (the C type) and SUFFIX (the end of its names)
 * defined. */

#define VECTOR JOIN(vector, SUFFIX)
#define ALL_ZERO JOIN(all_zero, SUFFIX)
#define COPY_IN JOIN(copy_in, SUFFIX)
#define NAME JOIN(delayed_product, SUFFIX)
#define CORRELATION JOIN(delayed_correlation, SUFFIX)

typedef SCALAR VECTOR __attribute__((vector_size(VECTOR_BYTES)));
#define LANES ((int64_t)(VECTOR_BYTES / sizeof(SCALAR)))
#define TILE (WIDE * LANES) /* values in one output tile */

/* Add the synapses of one input block (packed `w`, `shift`) to VECTORS vectors of output o's
 * tile, from its vector FIRST on: the accumulators stay in registers over the whole block.
 * A macro, not a function, so that it is compiled inside each CPU clone of the product. */
#define ACCUMULATE(VECTORS, FIRST)                                                                \
    do {                                                                                          \
        VECTOR *target = (VECTOR *)(sums + (tile * outputs + o) * TILE) + (FIRST); /* aligned */  \
        const SCALAR *start = rows + i0 * length + tile * TILE + (FIRST) * LANES;                 \
        VECTOR acc[VECTORS];                                                                      \
        for (int v = 0; v < VECTORS; ++v)                                                         \
            acc[v] = target[v];                                                                   \
        for (int64_t k = 0; k < i1 - i0; ++k) {                                                   \
            const SCALAR *source = start + shift[k];                                              \
            for (int v = 0; v < VECTORS; ++v) {                                                   \
                VECTOR slice;                                                                     \
                memcpy(&slice, source + v * LANES, sizeof slice);                                 \
                acc[v] += w[k] * slice;                                                           \
            }                                                                                     \
        }                                                                                         \
        for (int v = 0; v < VECTORS; ++v)                                                         \
            target[v] = acc[v];                                                                   \
    } while (0)

static int ALL_ZERO(const SCALAR *values, int64_t count)
{
    for (int64_t k = 0; k < count; ++k)
        if (values[k] != 0)
            return 0;
    return 1;
}

/* Copy channels c0 <= c < c1 of samples g0 .. g0 + group - 1 of a time-first sequence
 * source[steps, batch, channels] into rows side by side, rows[c * stride + (lead + t) * group + g]
 * (zeros past the batch), behind `lead` zero steps and followed by zeros to the row's end.
 * Callers take a few channels at a time, so that the pages written stay in the TLB. */
static void COPY_IN(const SCALAR *restrict source, int64_t steps, int64_t batch, int64_t channels, int64_t g0,
                    int64_t group, int64_t c0, int64_t c1, int64_t lead, int64_t stride, SCALAR *restrict rows)
{
    for (int64_t c = c0; c < c1; ++c) {
        memset(rows + c * stride, 0, sizeof(SCALAR) * lead * group);
        memset(rows + c * stride + (lead + steps) * group, 0, sizeof(SCALAR) * (stride - (lead + steps) * group));
    }
    for (int64_t t = 0; t < steps; ++t)
        for (int64_t c = c0; c < c1; ++c)
            for (int64_t g = 0; g < group; ++g)
                rows[c * stride + (lead + t) * group + g] = g0 + g < batch ? source[(t * batch + g0 + g) * channels + c] : 0;
}

CPU_CLONES int NAME(const SCALAR *restrict x, const SCALAR *restrict weights, const int64_t *restrict delays,
                    SCALAR *restrict out, int64_t steps, int64_t batch, int64_t inputs, int64_t outputs,
                    int64_t advance)
{
    const int64_t span = largest_delay(delays, outputs * inputs, steps);
    const int64_t group = samples_per_group(batch, LANES);
    const int64_t groups = (batch + group - 1) / group;
    const int64_t vectors = (steps * group + LANES - 1) / LANES; /* per output row */
    const int64_t tiles = (vectors + WIDE - 1) / WIDE;
    /* Row stride: span zero steps, the steps, and (advances read ahead) span more zero steps. */
    const int64_t length = (advance ? 2 : 1) * span * group + tiles * TILE;
    /* Inputs per block: their rows for one time block stay in L1 while every output reads them. */
    int64_t block = L1_BYTES / (int64_t)sizeof(SCALAR) / (TIME_BLOCK * TILE + span * group);
    block = block < MIN_BLOCK ? MIN_BLOCK : block > MAX_BLOCK ? MAX_BLOCK : block;

    /* Synapses packed block by block, output by output, so that the inner loops stream through
     * them: weight, and offset of the shifted slice from the block's first row. The threads
     * share the packing, output rows at a time (one thread took 0.5 ms for 512 x 512 synapses,
     * a third of a one-sample product over 160 steps); the loop's barrier ends it for all. */
    int64_t *packed_shifts = thread_buffer(PACKING, (sizeof(int64_t) + sizeof(SCALAR)) * outputs * inputs);
    if (!packed_shifts)
        return -1;
    SCALAR *packed_weights = (SCALAR *)(packed_shifts + outputs * inputs);

    int failed = 0;
#pragma omp parallel reduction(|| : failed)
    {
#pragma omp for schedule(static)
        for (int64_t o = 0; o < outputs; ++o)
            for (int64_t i0 = 0; i0 < inputs; i0 += block) {
                const int64_t i1 = i0 + block < inputs ? i0 + block : inputs;
                for (int64_t i = i0; i < i1; ++i) {
                    const int64_t d = delays[o * inputs + i] < steps ? delays[o * inputs + i] : steps;
                    const int64_t p = i0 * outputs + o * (i1 - i0) + i - i0;
                    packed_weights[p] = weights[o * inputs + i];
                    packed_shifts[p] = (i - i0) * length + (advance ? span + d : span - d) * group;
                }
            }
        /* This thread's share of the (group, output) items, split evenly. */
        const int64_t items = groups * outputs;
        const int64_t first = items * thread_index() / thread_count();
        const int64_t stop = items * (thread_index() + 1) / thread_count();
        const int64_t row_values = (inputs * length + 63) / 64 * 64; /* sums stay aligned */
        SCALAR *rows = thread_buffer(WORKING, sizeof(SCALAR) * (row_values + outputs * tiles * TILE)); /* a group */
        SCALAR *sums = rows + row_values;                                                              /* its outputs */
        failed = !rows;
        for (int64_t item = first; item < stop && !failed;) {
            const int64_t g0 = item / outputs * group, o_first = item % outputs;
            const int64_t o_stop = stop - item + o_first < outputs ? stop - item + o_first : outputs;
            for (int64_t r0 = 0; r0 < inputs; r0 += LOAD_ROWS)
                COPY_IN(x, steps, batch, inputs, g0, group, r0, r0 + LOAD_ROWS < inputs ? r0 + LOAD_ROWS : inputs, span,
                        length, rows);
            for (int64_t tile = 0; tile < tiles; ++tile)
                memset(sums + (tile * outputs + o_first) * TILE, 0, sizeof(SCALAR) * (o_stop - o_first) * TILE);
            /* Zero steps at the end of the group's input (a padded batch, a streaming tail) reach
             * no output past the last nonzero step (plus the span, for delays): those tiles stay zero. */
            const int64_t present = batch - g0 < group ? batch - g0 : group;
            int64_t last = steps - 1;
            while (last >= 0 && ALL_ZERO(x + (last * batch + g0) * inputs, present * inputs))
                --last;
            const int64_t reach_end = last + 1 + (advance ? 0 : span);
            const int64_t reach = reach_end < steps ? reach_end : steps; /* output steps [0, reach) */
            const int64_t reached = (reach * group + TILE - 1) / TILE;
            for (int64_t tile0 = 0; tile0 < reached; tile0 += TIME_BLOCK) {
                const int64_t tile1 = tile0 + TIME_BLOCK < reached ? tile0 + TIME_BLOCK : reached;
                for (int64_t i0 = 0; i0 < inputs; i0 += block) {
                    const int64_t i1 = i0 + block < inputs ? i0 + block : inputs;
                    for (int64_t o = o_first; o < o_stop; ++o) {
                        const SCALAR *w = packed_weights + i0 * outputs + o * (i1 - i0);
                        const int64_t *shift = packed_shifts + i0 * outputs + o * (i1 - i0);
                        for (int64_t tile = tile0; tile < tile1; ++tile) {
                            const int64_t left = vectors - tile * WIDE; /* the last tile is ragged */
                            if (left >= WIDE)
                                ACCUMULATE(WIDE, 0);
                            else
                                for (int64_t v = 0; v < left;) {
                                    if (left - v > 2 * NARROW) {
                                        ACCUMULATE(MIDDLE, v);
                                        v += MIDDLE;
                                    } else {
                                        ACCUMULATE(NARROW, v);
                                        v += NARROW;
                                    }
                                }
                        }
                    }
                }
            }
            /* Store the finished outputs: out[t, g0 + g, o] = sums at value t * group + g of row o. */
            for (int64_t t = 0; t < steps; ++t)
                for (int64_t g = 0; g < group && g0 + g < batch; ++g) {
                    const int64_t value = t * group + g;
                    const SCALAR *source = sums + (value / TILE * outputs) * TILE + value % TILE;
                    for (int64_t o = o_first; o < o_stop; ++o)
                        out[(t * batch + g0 + g) * outputs + o] = source[o * TILE];
                }
            item += o_stop - o_first;
        }
    }
    return failed ? -1 : 0;
}

/* The weight gradient of the product: grad_weights[o, i] = sum_{t, b} grad[t, b, o] * x[t - d[o, i], b, i].
 *
 * Both sequences are copied once, for all samples, into rows laid out as the product's (a group
 * of samples side by side; input rows behind span zero steps). A synapse is then one dot
 * product of its output's gradient row with its input's row shifted by its delay: one
 * multiply-add per synapse, sample and step, four synapses of an output at a time so that each
 * gradient vector loaded serves four. Outputs are split over threads in blocks (the input rows
 * of a block of inputs are read by every output of it); each synapse adds its terms in a
 * fixed order, so results do not depend on the thread count. Returns 0, or -1 without memory. */
CPU_CLONES int CORRELATION(const SCALAR *restrict x, const SCALAR *restrict grad, const int64_t *restrict delays,
                           SCALAR *restrict grad_weights, int64_t steps, int64_t batch, int64_t inputs,
                           int64_t outputs)
{
    const int64_t span = largest_delay(delays, outputs * inputs, steps);
    const int64_t group = samples_per_group(batch, LANES);
    const int64_t groups = (batch + group - 1) / group;
    const int64_t row = (steps * group + LANES - 1) / LANES * LANES; /* values in a gradient row */
    const int64_t length = span * group + row; /* values in an input row */
    /* All input rows, then one row of zeros (stands in for missing inputs), then all gradient rows. */
    SCALAR *input_rows = thread_buffer(PACKING, sizeof(SCALAR) * ((groups * inputs + 1) * length + groups * outputs * row));
    if (!input_rows)
        return -1;
    SCALAR *zero_row = input_rows + groups * inputs * length;
    SCALAR *grad_rows = zero_row + length;
    memset(zero_row, 0, sizeof(SCALAR) * length);

    int failed = 0;
#pragma omp parallel reduction(|| : failed)
    {
        /* Input rows, then gradient rows, for (group, block of LOAD_ROWS channels) items. */
        const int64_t input_blocks = (inputs + LOAD_ROWS - 1) / LOAD_ROWS;
        const int64_t output_blocks = (outputs + LOAD_ROWS - 1) / LOAD_ROWS;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < groups * input_blocks; ++item) {
            const int64_t gi = item / input_blocks, r0 = item % input_blocks * LOAD_ROWS;
            COPY_IN(x, steps, batch, inputs, gi * group, group, r0, r0 + LOAD_ROWS < inputs ? r0 + LOAD_ROWS : inputs,
                    span, length, input_rows + gi * inputs * length);
        }
#pragma omp for schedule(static)
        for (int64_t item = 0; item < groups * output_blocks; ++item) {
            const int64_t gi = item / output_blocks, r0 = item % output_blocks * LOAD_ROWS;
            COPY_IN(grad, steps, batch, outputs, gi * group, group, r0,
                    r0 + LOAD_ROWS < outputs ? r0 + LOAD_ROWS : outputs, 0, row, grad_rows + gi * outputs * row);
        }
        /* This thread's sums, four synapses to a vector per lane, for one block of outputs. */
        const int64_t quads = (inputs + 3) / 4;
        VECTOR *sums = thread_buffer(WORKING, sizeof(VECTOR) * CORRELATION_OUTPUTS * quads * 4);
        failed = !sums;
#pragma omp for schedule(static)
        for (int64_t o0 = 0; o0 < outputs; o0 += CORRELATION_OUTPUTS) {
            const int64_t o1 = o0 + CORRELATION_OUTPUTS < outputs ? o0 + CORRELATION_OUTPUTS : outputs;
            if (failed)
                continue;
            memset(sums, 0, sizeof(VECTOR) * (o1 - o0) * quads * 4);
            /* One group at a time: the rows of four inputs stay in L1 while every output of the
             * block reads them, the block's gradient rows in L2. */
            for (int64_t gi = 0; gi < groups; ++gi)
                for (int64_t q = 0; q < quads; ++q)
                    for (int64_t o = o0; o < o1; ++o) {
                        const SCALAR *gradient = grad_rows + (gi * outputs + o) * row;
                        const SCALAR *source[4];
                        for (int k = 0; k < 4; ++k) {
                            const int64_t i = 4 * q + k;
                            if (i < inputs) {
                                const int64_t d = delays[o * inputs + i] < steps ? delays[o * inputs + i] : steps;
                                source[k] = input_rows + (gi * inputs + i) * length + (span - d) * group;
                            } else {
                                source[k] = zero_row;
                            }
                        }
                        VECTOR *acc = sums + ((o - o0) * quads + q) * 4;
                        VECTOR a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
                        for (int64_t c = 0; c < row; c += LANES) {
                            VECTOR value, slice0, slice1, slice2, slice3;
                            memcpy(&value, gradient + c, sizeof value);
                            memcpy(&slice0, source[0] + c, sizeof slice0);
                            memcpy(&slice1, source[1] + c, sizeof slice1);
                            memcpy(&slice2, source[2] + c, sizeof slice2);
                            memcpy(&slice3, source[3] + c, sizeof slice3);
                            a0 += value * slice0;
                            a1 += value * slice1;
                            a2 += value * slice2;
                            a3 += value * slice3;
                        }
                        acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
                    }
            for (int64_t o = o0; o < o1; ++o)
                for (int64_t i = 0; i < inputs; ++i) {
                    const VECTOR *acc = sums + ((o - o0) * quads + i / 4) * 4 + i % 4;
                    SCALAR total = 0;
                    for (int lane = 0; lane < LANES; ++lane)
                        total += (*acc)[lane];
                    grad_weights[o * inputs + i] = total;
                }
        }
    }
    return failed ? -1 : 0;
}

#undef ACCUMULATE
#undef TILE
#undef LANES
#undef VECTOR
#undef ALL_ZERO
#undef COPY_IN
#undef NAME
#undef CORRELATION
