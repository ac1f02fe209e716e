// Gather and IndexAdd. The host validates the indices (so a bad index is refused with
// the same typed error as on the CPU) and hands the kernels checked row numbers.

// out[p, e] = table[toff + rows[p] * row + e].
extern "C" __global__ void bt_gather(unsigned n, unsigned row, const unsigned* __restrict__ rows,
                                     const float* __restrict__ table, unsigned toff, float* __restrict__ y) {
    BT_GRID_LOOP(i, n) {
        unsigned p = i / row, e = i - p * row;
        y[i] = table[toff + rows[p] * row + e];
    }
}

// out[i, e] = ((+0 + src[p0, e]) + src[p1, e]) + ... over the positions p0 < p1 < ...
// whose index is i (given as CSR: positions[start[i] .. start[i + 1]] in increasing
// order). Sequential in p for each (i, e), as the spec requires (§3.8).
extern "C" __global__ void bt_index_add(unsigned n, unsigned row, const unsigned* __restrict__ start,
                                        const unsigned* __restrict__ positions, const float* __restrict__ src,
                                        unsigned soff, float* __restrict__ y) {
    BT_GRID_LOOP(i, n) {
        unsigned r = i / row, e = i - r * row;
        float acc = 0.0f;
        for (unsigned q = start[r]; q < start[r + 1]; ++q) acc = __fadd_rn(acc, src[soff + positions[q] * row + e]);
        y[i] = acc;
    }
}
