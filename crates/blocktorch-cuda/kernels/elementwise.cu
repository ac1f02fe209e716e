// Elementwise kernels: unary, binary, compare, select, cast and strided copy.
// Every output element depends on its inputs only, so the launch shape never
// affects results. Index arithmetic is 32-bit: blocktorch caps a tensor at
// 2^31 - 1 elements and the host checks every offset and stride fits.

#define BT_RANK_MAX 8
#define BT_VIEWS 4

// A walk over `n` elements of a row-major `shape`; view v reads element i at
// off[v] + sum(coord[d] * stride[v][d]). Bit v of `contig` says view v is
// contiguous (element i is at off[v] + i). Mirrors `Walk` in src/lib.rs.
struct Walk {
    unsigned n;
    unsigned rank;
    unsigned contig;
    unsigned pad;
    unsigned shape[BT_RANK_MAX];
    unsigned off[BT_VIEWS];
    unsigned stride[BT_VIEWS][BT_RANK_MAX];
};

__device__ __forceinline__ unsigned bt_view_off(const Walk& w, int v, unsigned i) {
    if ((w.contig >> v) & 1u) return w.off[v] + i;
    unsigned o = w.off[v];
#pragma unroll
    for (int d = BT_RANK_MAX - 1; d >= 0; --d) {
        if (d < (int)w.rank) {
            unsigned s = w.shape[d];
            unsigned c = i % s;
            i /= s;
            o += c * w.stride[v][d];
        }
    }
    return o;
}

#define BT_GRID_LOOP(i, n) \
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += gridDim.x * blockDim.x)

extern "C" __global__ void bt_unary(Walk w, int op, float p, const float* __restrict__ x, float* __restrict__ y) {
    BT_GRID_LOOP(i, w.n) { y[i] = bt_unary(op, p, x[bt_view_off(w, 0, i)]); }
}

extern "C" __global__ void bt_binary(Walk w, int op, const float* __restrict__ a, const float* __restrict__ b,
                                     float* __restrict__ y) {
    BT_GRID_LOOP(i, w.n) { y[i] = bt_binary(op, a[bt_view_off(w, 0, i)], b[bt_view_off(w, 1, i)]); }
}

extern "C" __global__ void bt_compare(Walk w, int op, const float* __restrict__ a, const float* __restrict__ b,
                                      unsigned char* __restrict__ y) {
    BT_GRID_LOOP(i, w.n) { y[i] = bt_compare(op, a[bt_view_off(w, 0, i)], b[bt_view_off(w, 1, i)]); }
}

extern "C" __global__ void bt_select(Walk w, const unsigned char* __restrict__ c, const float* __restrict__ a,
                                     const float* __restrict__ b, float* __restrict__ y) {
    BT_GRID_LOOP(i, w.n) {
        y[i] = c[bt_view_off(w, 0, i)] != 0 ? a[bt_view_off(w, 1, i)] : b[bt_view_off(w, 2, i)];
    }
}

// dtype tags as blocktorch::DType: 1 f32, 2 u8, 3 i32, 4 u32.
__device__ __forceinline__ long long bt_load_int(int dt, const void* x, unsigned o) {
    switch (dt) {
    case 2: return (long long)((const unsigned char*)x)[o];
    case 3: return (long long)((const int*)x)[o];
    default: return (long long)((const unsigned*)x)[o];
    }
}

__device__ __forceinline__ long long bt_clamp_ll(long long v, long long lo, long long hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

extern "C" __global__ void bt_cast(Walk w, int from, int to, const void* __restrict__ x, void* __restrict__ y) {
    BT_GRID_LOOP(i, w.n) {
        unsigned o = bt_view_off(w, 0, i);
        if (from == 1) {
            float v = ((const float*)x)[o];
            switch (to) {
            case 1: ((float*)y)[i] = v; break;
            case 2: {
                // truncate toward zero, saturate, NaN -> 0
                unsigned char r;
                if (bt_isnan(v) || v <= 0.0f) r = 0;
                else if (v >= 255.0f) r = 255;
                else r = (unsigned char)__float2uint_rz(v);
                ((unsigned char*)y)[i] = r;
                break;
            }
            case 3: {
                int r;
                if (bt_isnan(v)) r = 0;
                else if (v >= 2147483648.0f) r = 2147483647;
                else if (v <= -2147483648.0f) r = (-2147483647 - 1);
                else r = __float2int_rz(v);
                ((int*)y)[i] = r;
                break;
            }
            default: {
                unsigned r;
                if (bt_isnan(v) || v <= 0.0f) r = 0u;
                else if (v >= 4294967296.0f) r = 4294967295u;
                else r = __float2uint_rz(v);
                ((unsigned*)y)[i] = r;
                break;
            }
            }
        } else {
            long long v = bt_load_int(from, x, o);
            switch (to) {
            case 1:
                // integer -> f32, round to nearest even (exact for u8)
                ((float*)y)[i] = from == 3 ? __int2float_rn((int)v) : __uint2float_rn((unsigned)v);
                break;
            case 2: ((unsigned char*)y)[i] = (unsigned char)bt_clamp_ll(v, 0, 255); break;
            case 3: ((int*)y)[i] = (int)bt_clamp_ll(v, -2147483648LL, 2147483647LL); break;
            default: ((unsigned*)y)[i] = (unsigned)bt_clamp_ll(v, 0, 4294967295LL); break;
            }
        }
    }
}

// Strided copy: view 0 is the source, view 3 the destination.
extern "C" __global__ void bt_copy32(Walk w, const unsigned* __restrict__ x, unsigned* __restrict__ y) {
    BT_GRID_LOOP(i, w.n) { y[bt_view_off(w, 3, i)] = x[bt_view_off(w, 0, i)]; }
}

extern "C" __global__ void bt_copy8(Walk w, const unsigned char* __restrict__ x, unsigned char* __restrict__ y) {
    BT_GRID_LOOP(i, w.n) { y[bt_view_off(w, 3, i)] = x[bt_view_off(w, 0, i)]; }
}
