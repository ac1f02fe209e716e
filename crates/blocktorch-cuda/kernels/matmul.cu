// Batched matmul, C[z] = A[z] · B[z], following the spec (§3.6) bit for bit: every
// output element is ONE sequential fma chain over k from +0.0,
//     acc = +0.0; for t in 0..k: acc = fma(a[i, t], b[t, j], acc)
// Tiles split m and n only; k is walked tile by tile in increasing order and, inside a
// tile, step by step, so each accumulator sees exactly the reference chain. The last,
// partial k tile runs a guarded loop: padded k steps are never executed (an fma with
// zeros would turn an accumulated -0 into +0).
//
// Classic register-blocked SIMT SGEMM: a block computes a BM x BN tile with
// (BM/TM) x (BN/TN) threads, TM = 4*MG and TN = 4*NG; each thread owns a TM x TN
// micro-tile made of MG x NG blocks of 4 x 4 (rows g*(BM/MG) + ty*4 .., columns
// g*(BN/NG) + tx*4 ..) so shared-memory reads are conflict-free float4s. A is stored k-major in shared memory (transposed on the way
// in), both tiles are double-buffered and the next tile's global loads are in flight
// while the current one is multiplied. A and B are row-major with row strides lda and
// ldb; batch entry z starts at the offsets given by the walk `wb` (views 0 and 1).

#define BT_GROUP_M 8

template <int BM, int BN, int BK, int MG, int NG, bool VEC>
__device__ __forceinline__ void bt_matmul_body(const Walk& wb, const float* __restrict__ A,
                                               const float* __restrict__ B, float* __restrict__ C, unsigned M,
                                               unsigned N, unsigned K, unsigned lda, unsigned ldb) {
    constexpr int TM = 4 * MG, TN = 4 * NG;
    constexpr int TX = BN / TN;
    constexpr int THREADS = (BM / TM) * (BN / TN);
    constexpr int APAD = 4;
    constexpr int A_LOADS = BM * BK / 4 / THREADS;
    constexpr int B_LOADS = BK * BN / 4 / THREADS;
    static_assert(A_LOADS >= 1 && B_LOADS >= 1, "tile too small for the thread count");
    // Dynamic shared memory (the host sets the size, 4 * (2*BK*(BM+APAD) + 2*BK*BN)
    // bytes, and raises the kernel's limit past 48 KiB where needed).
    extern __shared__ __align__(16) float bt_smem[];
    float(*As)[BK][BM + APAD] = reinterpret_cast<float(*)[BK][BM + APAD]>(bt_smem);
    float(*Bs)[BK][BN] = reinterpret_cast<float(*)[BK][BN]>(bt_smem + 2 * BK * (BM + APAD));

    const unsigned tid = threadIdx.x;
    const unsigned tx = tid % TX, ty = tid / TX;
    const unsigned tiles_n = (N + BN - 1) / BN, tiles_m = (M + BM - 1) / BM;
    const unsigned per_z = tiles_n * tiles_m;
    const unsigned z = blockIdx.x / per_z;
    const unsigned pid = blockIdx.x - z * per_z;
    // Grouped tile order: BT_GROUP_M tile rows advance together for L2 reuse.
    const unsigned in_group = BT_GROUP_M * tiles_n;
    const unsigned first_m = (pid / in_group) * BT_GROUP_M;
    const unsigned gsize = min(tiles_m - first_m, (unsigned)BT_GROUP_M);
    const unsigned tm = first_m + (pid % in_group) % gsize;
    const unsigned tn = (pid % in_group) / gsize;
    const unsigned m0 = tm * BM, n0 = tn * BN;

    const float* Az = A + bt_view_off(wb, 0, z);
    const float* Bz = B + bt_view_off(wb, 1, z);
    float* Cz = C + (size_t)z * M * N;

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

    float4 ra[A_LOADS], rb[B_LOADS];

    auto load = [&](unsigned k0) {
#pragma unroll
        for (int l = 0; l < A_LOADS; ++l) {
            unsigned u = tid + l * THREADS;
            unsigned row = u / (BK / 4), kq = (u % (BK / 4)) * 4;
            unsigned gm = m0 + row, gk = k0 + kq;
            const float* src = Az + (size_t)gm * lda + gk;
            if (VEC && gm < M && gk + 3 < K) {
                ra[l] = *reinterpret_cast<const float4*>(src);
            } else {
                ra[l].x = (gm < M && gk + 0 < K) ? src[0] : 0.0f;
                ra[l].y = (gm < M && gk + 1 < K) ? src[1] : 0.0f;
                ra[l].z = (gm < M && gk + 2 < K) ? src[2] : 0.0f;
                ra[l].w = (gm < M && gk + 3 < K) ? src[3] : 0.0f;
            }
        }
#pragma unroll
        for (int l = 0; l < B_LOADS; ++l) {
            unsigned u = tid + l * THREADS;
            unsigned kr = u / (BN / 4), nq = (u % (BN / 4)) * 4;
            unsigned gk = k0 + kr, gn = n0 + nq;
            const float* src = Bz + (size_t)gk * ldb + gn;
            if (VEC && gk < K && gn + 3 < N) {
                rb[l] = *reinterpret_cast<const float4*>(src);
            } else {
                rb[l].x = (gk < K && gn + 0 < N) ? src[0] : 0.0f;
                rb[l].y = (gk < K && gn + 1 < N) ? src[1] : 0.0f;
                rb[l].z = (gk < K && gn + 2 < N) ? src[2] : 0.0f;
                rb[l].w = (gk < K && gn + 3 < N) ? src[3] : 0.0f;
            }
        }
    };
    auto store = [&](int buf) {
#pragma unroll
        for (int l = 0; l < A_LOADS; ++l) {
            unsigned u = tid + l * THREADS;
            unsigned row = u / (BK / 4), kq = (u % (BK / 4)) * 4;
            As[buf][kq + 0][row] = ra[l].x;
            As[buf][kq + 1][row] = ra[l].y;
            As[buf][kq + 2][row] = ra[l].z;
            As[buf][kq + 3][row] = ra[l].w;
        }
#pragma unroll
        for (int l = 0; l < B_LOADS; ++l) {
            unsigned u = tid + l * THREADS;
            unsigned kr = u / (BN / 4), nq = (u % (BN / 4)) * 4;
            *reinterpret_cast<float4*>(&Bs[buf][kr][nq]) = rb[l];
        }
    };
    auto step = [&](int buf, int kk) {
        float a[TM], b[TN];
#pragma unroll
        for (int g = 0; g < MG; ++g) {
            float4 v = *reinterpret_cast<const float4*>(&As[buf][kk][g * (BM / MG) + ty * 4]);
            a[g * 4 + 0] = v.x; a[g * 4 + 1] = v.y; a[g * 4 + 2] = v.z; a[g * 4 + 3] = v.w;
        }
#pragma unroll
        for (int g = 0; g < NG; ++g) {
            float4 v = *reinterpret_cast<const float4*>(&Bs[buf][kk][g * (BN / NG) + tx * 4]);
            b[g * 4 + 0] = v.x; b[g * 4 + 1] = v.y; b[g * 4 + 2] = v.z; b[g * 4 + 3] = v.w;
        }
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) acc[i][j] = __fmaf_rn(a[i], b[j], acc[i][j]);
    };

    const unsigned ntiles = (K + BK - 1) / BK;
    if (ntiles > 0) {
        load(0);
        store(0);
        __syncthreads();
    }
    for (unsigned t = 0; t < ntiles; ++t) {
        const int buf = t & 1;
        if (t + 1 < ntiles) load((t + 1) * BK);
        const unsigned kmax = min((unsigned)BK, K - t * BK);
        if (kmax == BK) {
#pragma unroll
            for (int kk = 0; kk < BK; ++kk) step(buf, kk);
        } else {
            for (int kk = 0; kk < (int)kmax; ++kk) step(buf, kk);
        }
        if (t + 1 < ntiles) store(buf ^ 1);
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < TM; ++i) {
        unsigned gm = m0 + (i / 4) * (BM / MG) + ty * 4 + (i % 4);
        if (gm >= M) continue;
#pragma unroll
        for (int h = 0; h < NG; ++h) {
            unsigned gn = n0 + h * (BN / NG) + tx * 4;
            float* dst = Cz + (size_t)gm * N + gn;
            if ((N & 3u) == 0 && gn + 3 < N) {
                *reinterpret_cast<float4*>(dst) =
                    make_float4(acc[i][h * 4 + 0], acc[i][h * 4 + 1], acc[i][h * 4 + 2], acc[i][h * 4 + 3]);
            } else {
#pragma unroll
                for (int j = 0; j < 4; ++j)
                    if (gn + j < N) dst[j] = acc[i][h * 4 + j];
            }
        }
    }
}

#define BT_MATMUL_KERNEL(NAME, BM, BN, BK, MG, NG, VEC, MINB)                                                \
    extern "C" __global__ void __launch_bounds__((BM / (4 * MG)) * (BN / (4 * NG)), MINB)                      \
        NAME(Walk wb, const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,          \
             unsigned M, unsigned N, unsigned K, unsigned lda, unsigned ldb) {                                   \
        bt_matmul_body<BM, BN, BK, MG, NG, VEC>(wb, A, B, C, M, N, K, lda, ldb);                                \
    }

// Name: bt_matmul_<BM>x<BN>x<BK>_<v: float4 loads | s: scalar loads>. 64x64 tiles run
// 64 threads, every other tile 256.
#define BT_MATMUL_PAIR(BM, BN, BK, MG, NG, MINB)                                                             \
    BT_MATMUL_KERNEL(bt_matmul_##BM##x##BN##x##BK##_v, BM, BN, BK, MG, NG, true, MINB)                        \
    BT_MATMUL_KERNEL(bt_matmul_##BM##x##BN##x##BK##_s, BM, BN, BK, MG, NG, false, MINB)

BT_MATMUL_PAIR(128, 256, 16, 2, 4, 1)
BT_MATMUL_PAIR(128, 128, 32, 2, 2, 1)
BT_MATMUL_PAIR(64, 64, 8, 2, 2, 4)
