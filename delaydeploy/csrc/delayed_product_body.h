/* The delayed product for one scalar type, included by delayed_product.c once per type with
 * SCALAR (the C type), VECTOR (a name for its vector type) and NAME (the exported function)
 * defined. */

typedef SCALAR VECTOR __attribute__((vector_size(VECTOR_BYTES)));
#define LANES ((int64_t)(VECTOR_BYTES / sizeof(SCALAR)))

/* Add inputs i0 <= i < i1 to one tile of output row o from step t0 on, VECTORS vectors wide:
 * sums[o, t0 + j] += sum_i w[i] * rows[i, span - min(d[i], T) + t0 + j].
 * A macro, not a function, so that it is compiled inside each CPU clone of the product. */
#define ACCUMULATE_TILE(VECTORS)                                                                  \
    do {                                                                                          \
        VECTOR acc[VECTORS];                                                                      \
        memcpy(acc, sums + o * padded + t0, sizeof acc);                                          \
        for (int64_t i = i0; i < i1; ++i) {                                                       \
            const SCALAR *source = rows + i * length + span - (d[i] < steps ? d[i] : steps) + t0; \
            for (int v = 0; v < VECTORS; ++v) {                                                   \
                VECTOR slice;                                                                     \
                memcpy(&slice, source + v * LANES, sizeof slice);                                 \
                acc[v] += w[i] * slice;                                                           \
            }                                                                                     \
        }                                                                                         \
        memcpy(sums + o * padded + t0, acc, sizeof acc);                                          \
        t0 += VECTORS * LANES;                                                                    \
    } while (0)

CPU_CLONES int NAME(const SCALAR *restrict x, const SCALAR *restrict weights, const int64_t *restrict delays,
                    SCALAR *restrict out, int64_t steps, int64_t batch, int64_t inputs, int64_t outputs)
{
    const int64_t covered = (steps + LANES - 1) / LANES * LANES; /* steps, in whole vectors */
    const int64_t slack = WIDE * LANES;                          /* a last wide tile may run past the end */
    const int64_t padded = covered + slack;                      /* stride of `sums` */
    int64_t span = 0;
    for (int64_t k = 0; k < outputs * inputs; ++k)
        span = delays[k] > span ? delays[k] : span;
    span = span < steps ? span : steps;
    const int64_t length = span + covered; /* rows stay compact: tile reads stream through them */
    int failed = 0;
#pragma omp parallel reduction(|| : failed)
    {
        /* This thread's share of the (sample, output) rows, split evenly. */
        const int64_t items = batch * outputs;
        const int64_t first = items * thread_index() / thread_count();
        const int64_t stop = items * (thread_index() + 1) / thread_count();
        SCALAR *rows = calloc(inputs * length + slack, sizeof(SCALAR)); /* sample b, time-contiguous */
        SCALAR *sums = malloc(sizeof(SCALAR) * outputs * padded);      /* its outputs, time-contiguous */
        failed = !rows || !sums;
        for (int64_t item = first; item < stop && !failed;) {
            const int64_t b = item / outputs, o_first = item % outputs;
            const int64_t o_stop = stop - b * outputs < outputs ? stop - b * outputs : outputs;
            /* Load sample b: rows[i, span + t] = x[t, b, i]. */
            for (int64_t t = 0; t < steps; ++t)
                for (int64_t i = 0; i < inputs; ++i)
                    rows[i * length + span + t] = x[(t * batch + b) * inputs + i];
            memset(sums + o_first * padded, 0, sizeof(SCALAR) * (o_stop - o_first) * padded);
            for (int64_t i0 = 0; i0 < inputs; i0 += BLOCK) {
                const int64_t i1 = i0 + BLOCK < inputs ? i0 + BLOCK : inputs;
                for (int64_t o = o_first; o < o_stop; ++o) {
                    const SCALAR *w = weights + o * inputs;
                    const int64_t *d = delays + o * inputs;
                    for (int64_t t0 = 0; t0 < covered;) {
                        const int64_t remaining = (covered - t0) / LANES;
                        if (remaining > WIDE / 2)
                            ACCUMULATE_TILE(WIDE);
                        else if (remaining > 2 * NARROW)
                            ACCUMULATE_TILE(MIDDLE);
                        else
                            ACCUMULATE_TILE(NARROW);
                    }
                }
            }
            /* Store the finished outputs: out[t, b, o] = sums[o, t]. */
            for (int64_t t = 0; t < steps; ++t)
                for (int64_t o = o_first; o < o_stop; ++o)
                    out[(t * batch + b) * outputs + o] = sums[o * padded + t];
            item = (b + 1) * outputs;
        }
        free(rows);
        free(sums);
    }
    return failed ? -1 : 0;
}

#undef ACCUMULATE_TILE
#undef LANES
