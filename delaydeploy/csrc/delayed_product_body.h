/* The delayed product for one scalar type, included by delayed_product.c once per type with
 * SCALAR (the C type), VECTOR (a name for its vector type), ALL_ZERO (a name for its helper)
 * and NAME (the exported function) defined. */

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

CPU_CLONES int NAME(const SCALAR *restrict x, const SCALAR *restrict weights, const int64_t *restrict delays,
                    SCALAR *restrict out, int64_t steps, int64_t batch, int64_t inputs, int64_t outputs)
{
    int64_t span = 0;
    for (int64_t k = 0; k < outputs * inputs; ++k)
        span = delays[k] > span ? delays[k] : span;
    span = span < steps ? span : steps;
    /* Samples interleaved in a row: as many as fill a vector (aligned slices), fewer where the
     * last group would be more than an eighth empty lanes. */
    int64_t group = LANES;
    while (group > 1 && ((batch + group - 1) / group * group - batch) * 8 > batch)
        group /= 2;
    const int64_t groups = (batch + group - 1) / group;
    const int64_t vectors = (steps * group + LANES - 1) / LANES; /* per output row */
    const int64_t tiles = (vectors + WIDE - 1) / WIDE;
    const int64_t length = span * group + tiles * TILE; /* row stride: span zero steps, then the steps */
    /* Inputs per block: their rows for one time block stay in L1 while every output reads them. */
    int64_t block = L1_BYTES / (int64_t)sizeof(SCALAR) / (TIME_BLOCK * TILE + span * group);
    block = block < MIN_BLOCK ? MIN_BLOCK : block > MAX_BLOCK ? MAX_BLOCK : block;

    /* Synapses packed block by block, output by output, so that the inner loops stream through
     * them: weight, and offset of the shifted slice from the block's first row. */
    int64_t *packed_shifts = thread_buffer(PACKING, (sizeof(int64_t) + sizeof(SCALAR)) * outputs * inputs);
    if (!packed_shifts)
        return -1;
    SCALAR *packed_weights = (SCALAR *)(packed_shifts + outputs * inputs);
    for (int64_t i0 = 0; i0 < inputs; i0 += block) {
        const int64_t i1 = i0 + block < inputs ? i0 + block : inputs;
        for (int64_t o = 0; o < outputs; ++o)
            for (int64_t i = i0; i < i1; ++i) {
                const int64_t d = delays[o * inputs + i] < steps ? delays[o * inputs + i] : steps;
                const int64_t p = i0 * outputs + o * (i1 - i0) + i - i0;
                packed_weights[p] = weights[o * inputs + i];
                packed_shifts[p] = (i - i0) * length + (span - d) * group;
            }
    }

    int failed = 0;
#pragma omp parallel reduction(|| : failed)
    {
        /* This thread's share of the (group, output) items, split evenly. */
        const int64_t items = groups * outputs;
        const int64_t first = items * thread_index() / thread_count();
        const int64_t stop = items * (thread_index() + 1) / thread_count();
        const int64_t row_values = (inputs * length + 63) / 64 * 64; /* sums stay aligned */
        SCALAR *rows = thread_buffer(WORKING, sizeof(SCALAR) * (row_values + outputs * tiles * TILE)); /* a group */
        SCALAR *sums = rows + row_values;                                                              /* its outputs */
        failed = !rows;
        /* Zero each row before and after its steps; the steps are filled for every group. */
        for (int64_t i = 0; i < inputs && !failed; ++i) {
            memset(rows + i * length, 0, sizeof(SCALAR) * span * group);
            memset(rows + i * length + (span + steps) * group, 0, sizeof(SCALAR) * (length - (span + steps) * group));
        }
        for (int64_t item = first; item < stop && !failed;) {
            const int64_t g0 = item / outputs * group, o_first = item % outputs;
            const int64_t o_stop = stop - item + o_first < outputs ? stop - item + o_first : outputs;
            /* Load samples g0.. (zeros past the batch): rows[i, (span + t) * group + g] = x[t, g0 + g, i],
             * a few rows at a time, so that the pages written stay in the TLB. */
            for (int64_t r0 = 0; r0 < inputs; r0 += LOAD_ROWS)
                for (int64_t t = 0; t < steps; ++t)
                    for (int64_t i = r0; i < r0 + LOAD_ROWS && i < inputs; ++i)
                        for (int64_t g = 0; g < group; ++g)
                            rows[i * length + (span + t) * group + g] =
                                g0 + g < batch ? x[(t * batch + g0 + g) * inputs + i] : 0;
            for (int64_t tile = 0; tile < tiles; ++tile)
                memset(sums + (tile * outputs + o_first) * TILE, 0, sizeof(SCALAR) * (o_stop - o_first) * TILE);
            /* Zero steps at the end of the group's input (a padded batch, a streaming tail) reach
             * no output past the last nonzero step plus the span: those tiles stay zero. */
            const int64_t present = batch - g0 < group ? batch - g0 : group;
            int64_t last = steps - 1;
            while (last >= 0 && ALL_ZERO(x + (last * batch + g0) * inputs, present * inputs))
                --last;
            const int64_t reach = last + 1 + span < steps ? last + 1 + span : steps; /* steps [0, reach) */
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

#undef ACCUMULATE
#undef TILE
#undef LANES
