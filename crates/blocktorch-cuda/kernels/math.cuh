// BlockTorch deterministic f32 math on CUDA: a line-for-line port of
// crates/blocktorch/src/math.rs and src/scalar.rs (the spec is
// docs/spec/blocktorch-math.md and docs/spec/blocktorch-semantics.md §3).
//
// Compiled by NVRTC with --fmad=false --ftz=false --prec-div=true --prec-sqrt=true:
// `a * b + c` is never contracted, subnormals are honoured, and division and
// square root are IEEE correctly rounded. A fused multiply-add happens exactly where
// the Rust reference writes `mul_add`, here `__fmaf_rn`. Division and square root are
// also spelled as the round-to-nearest intrinsics so no flag can change them.

#define BT_F(bits) __uint_as_float(bits##u)
#define BT_SIGN 0x80000000u
#define BT_CANONICAL_NAN BT_F(0x7FC00000)

__device__ __forceinline__ bool bt_isnan(float x) { return x != x; }
__device__ __forceinline__ float bt_fabs(float x) { return __uint_as_float(__float_as_uint(x) & ~BT_SIGN); }
__device__ __forceinline__ float bt_div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ float bt_sqrt(float x) { return __fsqrt_rn(x); }
__device__ __forceinline__ float bt_copysign_bits(float r, float x) {
    return __uint_as_float(__float_as_uint(r) | (__float_as_uint(x) & BT_SIGN));
}

// Horner's rule with fma, highest coefficient first.
template <int N>
__device__ __forceinline__ float bt_horner(float x, const float (&c)[N]) {
    float acc = c[N - 1];
#pragma unroll
    for (int k = N - 2; k >= 0; --k) acc = __fmaf_rn(acc, x, c[k]);
    return acc;
}

__device__ __forceinline__ float bt_pow2i(int k) { return __uint_as_float(((unsigned)(k + 127)) << 23); }

// v * 2^n with one final rounding (the power applied in two halves).
__device__ __forceinline__ float bt_scale2(float v, int n) {
    int n1 = n >> 1;
    int n2 = n - n1;
    return (v * bt_pow2i(n1)) * bt_pow2i(n2);
}

// The shared exponential core: exp(h + l) ~= (1 + s) * 2^n.
__device__ __forceinline__ float bt_exp_parts(float h, float l, int* n_out) {
    const float LOG2E = BT_F(0x3FB8AA3B), LN2_HI = BT_F(0x3F317218), LN2_LO = BT_F(0xB102E308);
    const float ROUND_MAGIC = BT_F(0x4B400000), EXP_HI = BT_F(0x42B20000), EXP_LO = BT_F(0xC2F00000);
    const float EXPC[5] = {BT_F(0x3EFFFFFE), BT_F(0x3E2AAA49), BT_F(0x3D2AAC58), BT_F(0x3C091CC7), BT_F(0x3AB526B6)};
    // Rust f32::clamp: NaN passes through.
    if (h < EXP_LO) h = EXP_LO;
    if (h > EXP_HI) h = EXP_HI;
    float t = __fmaf_rn(h, LOG2E, ROUND_MAGIC);
    float nf = t - ROUND_MAGIC;
    *n_out = (int)(__float_as_uint(t) - __float_as_uint(ROUND_MAGIC));
    float r1 = __fmaf_rn(nf, -LN2_HI, h);
    float c = __fmaf_rn(nf, -LN2_LO, l);
    float r = r1 + c;
    float q = bt_horner(r, EXPC);
    return __fmaf_rn(r * r, q, r);
}

__device__ __forceinline__ float bt_exp(float x) {
    int n;
    float s = bt_exp_parts(x, 0.0f, &n);
    return bt_scale2(1.0f + s, n);
}

__device__ __forceinline__ float bt_log(float x) {
    const float LN2_HI = BT_F(0x3F317218), LN2_LO = BT_F(0xB102E308), TWO_POW_23 = BT_F(0x4B000000);
    const float LOGC[9] = {BT_F(0xBEFFFFFC), BT_F(0x3EAAAAA8), BT_F(0xBE800219), BT_F(0x3E4CD1F1), BT_F(0xBE2A12BF),
                           BT_F(0x3E1139F2), BT_F(0xBE07A4BF), BT_F(0x3E041CA6), BT_F(0xBD9BD503)};
    unsigned bits = __float_as_uint(x);
    bool sub = bits < 0x00800000u;
    unsigned ix = sub ? __float_as_uint(x * TWO_POW_23) : bits;
    int k = sub ? -23 : 0;
    unsigned tmp = ix - 0x3F3504F3u;
    int e = (((int)tmp) >> 23) + k;
    float m = __uint_as_float(ix - (tmp & 0xFF800000u));
    float f = m - 1.0f;
    float ef = __int2float_rn(e);
    float y = __fmaf_rn(f * f, bt_horner(f, LOGC), ef * LN2_LO);
    float res = __fmaf_rn(ef, LN2_HI, f + y);
    const float INF = BT_F(0x7F800000);
    if (x > 0.0f && x < INF) return res;
    if (x == 0.0f) return -INF;
    if (x == INF) return INF;
    return BT_CANONICAL_NAN;
}

__device__ __forceinline__ float bt_tanh(float x) {
    const float TANHC[7] = {BT_F(0xBEAAAA9E), BT_F(0x3E0885F3), BT_F(0xBD5CB143), BT_F(0x3CB005E0),
                            BT_F(0xBC02337C), BT_F(0x3B16DB37), BT_F(0xB9BC01EC)};
    float a = bt_fabs(x);
    float r;
    if (a < 1.0f) {
        float z = a * a;
        r = __fmaf_rn(a, z * bt_horner(z, TANHC), a);
    } else {
        float e = bt_exp(a + a);
        r = 1.0f - bt_div(2.0f, e + 1.0f);
    }
    return bt_copysign_bits(r, x);
}

__device__ __forceinline__ float bt_sigmoid(float x) {
    float e = bt_exp(-bt_fabs(x));
    float num = x < 0.0f ? e : 1.0f;
    return bt_div(num, 1.0f + e);
}

__device__ __forceinline__ float bt_erf_poly(float a) {
    const float ERFC_[7] = {BT_F(0x3E0375D4), BT_F(0xBEC093A0), BT_F(0x3DE716AE), BT_F(0xBCDBFFC5),
                            BT_F(0x3BAA1873), BT_F(0xBA5262B9), BT_F(0x38A4DFF3)};
    return __fmaf_rn(a, bt_horner(a * a, ERFC_), a);
}

__device__ __forceinline__ float bt_erf(float x) {
    const float ERF_SMALL = BT_F(0x3F600000), ERF_BIG = BT_F(0x407C0000), ERFC_SHIFT = BT_F(0x3FE00000);
    const float RC[11] = {BT_F(0x3E91E7E1), BT_F(0xBE061EAD), BT_F(0x3D6468F3), BT_F(0xBCB65737),
                          BT_F(0x3C09A87E), BT_F(0xBB469308), BT_F(0x3A886E88), BT_F(0xB9AB9072),
                          BT_F(0x38E7B961), BT_F(0xB83EB77C), BT_F(0x372D3D74)};
    float a = bt_fabs(x);
    float r;
    if (a < ERF_SMALL) {
        r = bt_erf_poly(a);
    } else {
        float ac = a > ERF_BIG ? ERF_BIG : a;
        float h = ac * ac;
        float l = __fmaf_rn(ac, ac, -h);
        int n;
        float s = bt_exp_parts(-h, -l, &n);
        float e = bt_scale2(1.0f + s, n);
        r = __fmaf_rn(-e, bt_horner(ac - ERFC_SHIFT, RC), 1.0f);
    }
    return bt_copysign_bits(r, x);
}

__device__ __forceinline__ float bt_gelu_tanh(float x) {
    const float C1H = BT_F(0x3FCC422A), C1L = BT_F(0xB342BC9B), C2H = BT_F(0x3D922279), C2L = BT_F(0x3124D8B5);
    const float CLAMP = BT_F(0x41400000);
    float xc = x;
    if (xc < -CLAMP) xc = -CLAMP;
    if (xc > CLAMP) xc = CLAMP;
    float sh = xc * xc;
    float sl = __fmaf_rn(xc, xc, -sh);
    float ph = C2H * sh;
    float pl = __fmaf_rn(C2H, sh, -ph);
    pl = __fmaf_rn(C2L, sh, __fmaf_rn(C2H, sl, pl));
    float wh = C1H + ph;
    float bb = wh - C1H;
    float werr = (C1H - (wh - bb)) + (ph - bb);
    float wl = werr + (pl + C1L);
    float zh = xc * wh;
    float zl = __fmaf_rn(xc, wl, __fmaf_rn(xc, wh, -zh));
    bool neg = xc < 0.0f;
    float h = neg ? zh : -zh;
    float l = neg ? zl : -zl;
    int n;
    float s = bt_exp_parts(h, l, &n);
    float d = 1.0f + bt_scale2(1.0f + s, n);
    if (neg) return bt_scale2(bt_div(__fmaf_rn(xc, s, xc), d), n);
    return bt_div(x, d);
}

__device__ __forceinline__ float bt_gelu_erf(float x) {
    const float FRAC_1_SQRT_2 = BT_F(0x3F3504F3);
    const float X1 = BT_F(0x3F200000), X2 = BT_F(0x40200000), X2B = BT_F(0x40900000), X3 = BT_F(0x41700000);
    const float H1S = BT_F(0x3FC00000), H2S = BT_F(0x40600000);
    const float H1[11] = {BT_F(0x3E52B82B), BT_F(0xBDB8E026), BT_F(0x3D101FF3), BT_F(0xBC4CC009),
                          BT_F(0x3B86BA5E), BT_F(0xBAA60657), BT_F(0x39BF71EE), BT_F(0xB8D365FB),
                          BT_F(0x37FFD6CA), BT_F(0xB707873E), BT_F(0x3506C7AD)};
    const float H2[10] = {BT_F(0x3DD9CB7D), BT_F(0xBCDB01C5), BT_F(0x3BD14F4F), BT_F(0xBABF411D),
                          BT_F(0x39A7EB60), BT_F(0xB88E0AAE), BT_F(0x3764AEF0), BT_F(0xB636AFE7),
                          BT_F(0x35336F2A), BT_F(0xB4008620)};
    const float G[7] = {BT_F(0x3ECC422A), BT_F(0xBECC4431), BT_F(0x3F99A178), BT_F(0xC0C813A4),
                        BT_F(0x424A5959), BT_F(0xC3E3EAB4), BT_F(0x4510DF26)};
    float v = bt_fabs(x);
    if (v < X1) {
        float a = x * FRAC_1_SQRT_2;
        float erf_a = bt_erf_poly(a);
        return (0.5f * x) * (1.0f + erf_a);
    }
    float vc = v > X3 ? X3 : v;
    float sh = vc * vc;
    float sl = __fmaf_rn(vc, vc, -sh);
    int n;
    float s = bt_exp_parts(-0.5f * sh, -0.5f * sl, &n);
    float g;
    if (vc < X2) {
        g = vc * bt_horner(vc - H1S, H1);
    } else if (vc < X2B) {
        g = vc * bt_horner(vc - H2S, H2);
    } else {
        g = bt_horner(bt_div(1.0f, sh), G);
    }
    float t = bt_scale2(__fmaf_rn(g, s, g), n);
    return x > 0.0f ? x - t : -t;
}

// ---- scalar.rs ----------------------------------------------------------------

__device__ __forceinline__ float bt_max(float a, float b) {
    if (bt_isnan(a) || bt_isnan(b)) return BT_CANONICAL_NAN;
    if (a > b) return a;
    if (b > a) return b;
    return __uint_as_float(__float_as_uint(a) & __float_as_uint(b));
}

__device__ __forceinline__ float bt_min(float a, float b) {
    if (bt_isnan(a) || bt_isnan(b)) return BT_CANONICAL_NAN;
    if (a < b) return a;
    if (b < a) return b;
    return __uint_as_float(__float_as_uint(a) | __float_as_uint(b));
}

__device__ __forceinline__ float bt_relu(float x) { return (bt_isnan(x) || x > 0.0f) ? x : 0.0f; }

__device__ __forceinline__ float bt_sign(float x) {
    if (x > 0.0f) return 1.0f;
    if (x < 0.0f) return -1.0f;
    return x;
}

__device__ __forceinline__ float bt_pow_scalar(float x, float p) {
    if (p == 0.0f) return 1.0f;
    if (p == 1.0f) return x;
    if (p == 2.0f) return x * x;
    if (p == 0.5f) return bt_sqrt(x);
    if (p == -1.0f) return bt_div(1.0f, x);
    if (bt_fabs(p) <= 16777216.0f && p == __int2float_rn(__float2int_rz(p))) {
        unsigned n = __float2uint_rz(bt_fabs(p));
        float r = 1.0f;
        float b = x;
        while (n > 0u) {
            if (n & 1u) r = r * b;
            n >>= 1;
            if (n > 0u) b = b * b;
        }
        return p < 0.0f ? bt_div(1.0f, r) : r;
    }
    if (bt_isnan(x) || bt_isnan(p) || x < 0.0f) return BT_CANONICAL_NAN;
    const float INF = BT_F(0x7F800000);
    if (x == 0.0f) return p > 0.0f ? 0.0f : INF;
    if (x == INF) return p > 0.0f ? INF : 0.0f;
    return bt_exp(p * bt_log(x));
}

// Unary op codes: the order of blocktorch::UnaryOp (see src/lib.rs `unary_code`).
__device__ __forceinline__ float bt_unary(int op, float p, float x) {
    switch (op) {
    case 0: return -x;
    case 1: return bt_fabs(x);
    case 2: return bt_exp(x);
    case 3: return bt_log(x);
    case 4: return bt_sqrt(x);
    case 5: return bt_div(1.0f, bt_sqrt(x));
    case 6: return bt_div(1.0f, x);
    case 7: return bt_tanh(x);
    case 8: return bt_sigmoid(x);
    case 9: return bt_relu(x);
    case 10: return bt_gelu_tanh(x);
    case 11: return bt_gelu_erf(x);
    case 12: return bt_erf(x);
    case 13: return bt_sign(x);
    default: return bt_pow_scalar(x, p);
    }
}

// Binary op codes: Add, Sub, Mul, Div, Max, Min.
__device__ __forceinline__ float bt_binary(int op, float a, float b) {
    switch (op) {
    case 0: return __fadd_rn(a, b);
    case 1: return __fsub_rn(a, b);
    case 2: return __fmul_rn(a, b);
    case 3: return bt_div(a, b);
    case 4: return bt_max(a, b);
    default: return bt_min(a, b);
    }
}

// Compare op codes: Eq, Ne, Lt, Le, Gt, Ge (IEEE; NaN false except Ne).
__device__ __forceinline__ unsigned char bt_compare(int op, float a, float b) {
    bool r;
    switch (op) {
    case 0: r = a == b; break;
    case 1: r = a != b; break;
    case 2: r = a < b; break;
    case 3: r = a <= b; break;
    case 4: r = a > b; break;
    default: r = a >= b; break;
    }
    return r ? 1 : 0;
}
