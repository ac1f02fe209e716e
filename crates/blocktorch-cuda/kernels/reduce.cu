// Reductions over the last axis, one warp per row, in the canonical order of the spec
// (§3.5): lane l accumulates x[l], x[l + 32], x[l + 64], ... in increasing order, then
// the fixed tree s = 16, 8, 4, 2, 1 combines p[l] with p[l + s] — exactly
// `__shfl_down_sync` by s. The walk `w` runs over the rows (the output shape) and view
// 0 gives each row's first input element; `len` and `istride` describe the row.

__device__ __forceinline__ float bt_combine(int op, float a, float b) {
    return op == 0 ? __fadd_rn(a, b) : bt_max(a, b);
}

// op 0: Sum (identity +0), op 1: Max (identity -inf).
extern "C" __global__ void bt_reduce(Walk w, int op, unsigned len, unsigned istride, const float* __restrict__ x,
                                     float* __restrict__ y) {
    const unsigned lane = threadIdx.x & 31u;
    const unsigned warps = (gridDim.x * blockDim.x) >> 5;
    for (unsigned r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < w.n; r += warps) {
        unsigned base = bt_view_off(w, 0, r);
        float p = op == 0 ? 0.0f : BT_F(0xFF800000);
        for (unsigned j = lane; j < len; j += 32u) p = bt_combine(op, p, x[base + j * istride]);
#pragma unroll
        for (int s = 16; s >= 1; s >>= 1) {
            float q = __shfl_down_sync(0xffffffffu, p, s);
            p = bt_combine(op, p, q);
        }
        if (lane == 0) y[r] = p;
    }
}

// ArgMax: the smallest index of the maximum, NaN larger than every number (first NaN
// wins), -0 and +0 tied. Each lane keeps its own first maximum; lanes are merged with
// the same rule and ties broken by the smaller index, which equals the sequential scan.
__device__ __forceinline__ bool bt_arg_better(float v2, int i2, float v1, int i1) {
    if (i2 < 0) return false;
    if (i1 < 0) return true;
    bool n1 = bt_isnan(v1), n2 = bt_isnan(v2);
    if (n1 && n2) return i2 < i1;
    if (n1) return false;
    if (n2) return true;
    if (v2 > v1) return true;
    if (v1 > v2) return false;
    return i2 < i1;
}

extern "C" __global__ void bt_argmax(Walk w, unsigned len, unsigned istride, const float* __restrict__ x,
                                     int* __restrict__ y) {
    const unsigned lane = threadIdx.x & 31u;
    const unsigned warps = (gridDim.x * blockDim.x) >> 5;
    for (unsigned r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < w.n; r += warps) {
        unsigned base = bt_view_off(w, 0, r);
        float bv = 0.0f;
        int bi = -1;
        for (unsigned j = lane; j < len; j += 32u) {
            float v = x[base + j * istride];
            if (bt_arg_better(v, (int)j, bv, bi)) {
                bv = v;
                bi = (int)j;
            }
        }
#pragma unroll
        for (int s = 16; s >= 1; s >>= 1) {
            float qv = __shfl_down_sync(0xffffffffu, bv, s);
            int qi = __shfl_down_sync(0xffffffffu, bi, s);
            if (lane + s < 32u && bt_arg_better(qv, qi, bv, bi)) {
                bv = qv;
                bi = qi;
            }
        }
        if (lane == 0) y[r] = bi;
    }
}
