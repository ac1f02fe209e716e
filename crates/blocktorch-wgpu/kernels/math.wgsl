// BlockTorch's transcendental functions on the soft binary32 operations of soft.wgsl:
// a line-for-line port of crates/blocktorch/src/math.rs (docs/spec/blocktorch-math.md),
// every `*`, `+`, `-`, `/` and `mul_add` of the reference one f_mul, f_add, f_sub, f_div
// or f_fma here, in the same order. Constants are the reference's bit patterns.

const HALF: u32 = 0x3f000000u;
const NEG_HALF: u32 = 0xbf000000u;
const TWO: u32 = 0x40000000u;
const NEG_ONE: u32 = 0xbf800000u;
const NEG_INF: u32 = 0xff800000u;

const LOG2E: u32 = 0x3FB8AA3Bu;
const LN2_HI: u32 = 0x3F317218u;
const LN2_LO: u32 = 0xB102E308u;
const GT_C1_HI: u32 = 0x3FCC422Au;
const GT_C1_LO: u32 = 0xB342BC9Bu;
const GT_C2_HI: u32 = 0x3D922279u;
const GT_C2_LO: u32 = 0x3124D8B5u;
const FRAC_1_SQRT_2: u32 = 0x3F3504F3u;
const ERF_SMALL: u32 = 0x3F600000u;
const ERF_BIG: u32 = 0x407C0000u;
const ERFC_SHIFT: u32 = 0x3FE00000u;
const GE_H1_SHIFT: u32 = 0x3FC00000u;
const GE_H2_SHIFT: u32 = 0x40600000u;
const GE_X1: u32 = 0x3F200000u;
const GE_X2: u32 = 0x40200000u;
const GE_X2B: u32 = 0x40900000u;
const GE_X3: u32 = 0x41700000u;
const ROUND_MAGIC: u32 = 0x4B400000u;
const TWO_POW_23: u32 = 0x4B000000u;
const EXP_HI: u32 = 0x42B20000u;
const EXP_LO: u32 = 0xC2F00000u;
const GT_CLAMP: u32 = 0x41400000u;

const EXP_C = array<u32, 5>(0x3EFFFFFEu, 0x3E2AAA49u, 0x3D2AAC58u, 0x3C091CC7u, 0x3AB526B6u);
const LOG_C = array<u32, 9>(0xBEFFFFFCu, 0x3EAAAAA8u, 0xBE800219u, 0x3E4CD1F1u, 0xBE2A12BFu,
    0x3E1139F2u, 0xBE07A4BFu, 0x3E041CA6u, 0xBD9BD503u);
const TANH_C = array<u32, 7>(0xBEAAAA9Eu, 0x3E0885F3u, 0xBD5CB143u, 0x3CB005E0u, 0xBC02337Cu,
    0x3B16DB37u, 0xB9BC01ECu);
const ERF_C = array<u32, 7>(0x3E0375D4u, 0xBEC093A0u, 0x3DE716AEu, 0xBCDBFFC5u, 0x3BAA1873u,
    0xBA5262B9u, 0x38A4DFF3u);
const ERFC_C = array<u32, 11>(0x3E91E7E1u, 0xBE061EADu, 0x3D6468F3u, 0xBCB65737u, 0x3C09A87Eu,
    0xBB469308u, 0x3A886E88u, 0xB9AB9072u, 0x38E7B961u, 0xB83EB77Cu, 0x372D3D74u);
const GE_H1_C = array<u32, 11>(0x3E52B82Bu, 0xBDB8E026u, 0x3D101FF3u, 0xBC4CC009u, 0x3B86BA5Eu,
    0xBAA60657u, 0x39BF71EEu, 0xB8D365FBu, 0x37FFD6CAu, 0xB707873Eu, 0x3506C7ADu);
const GE_H2_C = array<u32, 10>(0x3DD9CB7Du, 0xBCDB01C5u, 0x3BD14F4Fu, 0xBABF411Du, 0x39A7EB60u,
    0xB88E0AAEu, 0x3764AEF0u, 0xB636AFE7u, 0x35336F2Au, 0xB4008620u);
const GE_G_C = array<u32, 7>(0x3ECC422Au, 0xBECC4431u, 0x3F99A178u, 0xC0C813A4u, 0x424A5959u,
    0xC3E3EAB4u, 0x4510DF26u);

// Horner's rule with fma, highest coefficient first (math.rs `horner`).
fn horner5(x: u32) -> u32 {
    var c = EXP_C;
    var acc = c[4];
    for (var k = 3; k >= 0; k = k - 1) {
        acc = f_fma(acc, x, c[k]);
    }
    return acc;
}

fn horner_log(x: u32) -> u32 {
    var c = LOG_C;
    var acc = c[8];
    for (var k = 7; k >= 0; k = k - 1) {
        acc = f_fma(acc, x, c[k]);
    }
    return acc;
}

fn horner7(x: u32, coefficients: array<u32, 7>) -> u32 {
    var c = coefficients;
    var acc = c[6];
    for (var k = 5; k >= 0; k = k - 1) {
        acc = f_fma(acc, x, c[k]);
    }
    return acc;
}

fn horner11(x: u32, coefficients: array<u32, 11>) -> u32 {
    var c = coefficients;
    var acc = c[10];
    for (var k = 9; k >= 0; k = k - 1) {
        acc = f_fma(acc, x, c[k]);
    }
    return acc;
}

fn horner10(x: u32) -> u32 {
    var c = GE_H2_C;
    var acc = c[9];
    for (var k = 8; k >= 0; k = k - 1) {
        acc = f_fma(acc, x, c[k]);
    }
    return acc;
}

fn pow2i(k: i32) -> u32 {
    return u32(k + 127) << 23u;
}

// v * 2^n with one final rounding (the power applied in two halves).
fn scale2(v: u32, n: i32) -> u32 {
    let n1 = n >> 1u;
    let n2 = n - n1;
    return f_mul(f_mul(v, pow2i(n1)), pow2i(n2));
}

struct ExpParts {
    s: u32,
    n: i32,
}

// exp(h + l) ~= (1 + s) * 2^n.
fn exp_parts(h_in: u32, l: u32) -> ExpParts {
    var h = h_in;
    // f32::clamp: a NaN passes through.
    if (f_lt(h, EXP_LO)) {
        h = EXP_LO;
    }
    if (f_gt(h, EXP_HI)) {
        h = EXP_HI;
    }
    let t = f_fma(h, LOG2E, ROUND_MAGIC);
    let nf = f_sub(t, ROUND_MAGIC);
    let n = i32(t) - i32(ROUND_MAGIC);
    let r1 = f_fma(nf, f_neg(LN2_HI), h);
    let c = f_fma(nf, f_neg(LN2_LO), l);
    let r = f_add(r1, c);
    let q = horner5(r);
    return ExpParts(f_fma(f_mul(r, r), q, r), n);
}

fn m_exp(x: u32) -> u32 {
    let p = exp_parts(x, 0u);
    return scale2(f_add(ONE, p.s), p.n);
}

fn m_log(x: u32) -> u32 {
    var ix = x;
    var k = 0;
    if (x < 0x00800000u) {
        ix = f_mul(x, TWO_POW_23);
        k = -23;
    }
    let tmp = ix - 0x3F3504F3u;
    let e = (i32(tmp) >> 23u) + k;
    let m = ix - (tmp & 0xFF800000u);
    let f = f_sub(m, ONE);
    let ef = i32_to_f32(e);
    let y = f_fma(f_mul(f, f), horner_log(f), f_mul(ef, LN2_LO));
    let res = f_fma(ef, LN2_HI, f_add(f, y));
    if (f_gt(x, 0u) && f_lt(x, INF)) {
        return res;
    }
    if (f_eq(x, 0u)) {
        return NEG_INF;
    }
    if (x == INF) {
        return INF;
    }
    return QNAN;
}

fn m_tanh(x: u32) -> u32 {
    let a = f_abs(x);
    var r: u32;
    if (f_lt(a, ONE)) {
        let z = f_mul(a, a);
        r = f_fma(a, f_mul(z, horner7(z, TANH_C)), a);
    } else {
        let e = m_exp(f_add(a, a));
        r = f_sub(ONE, f_div(TWO, f_add(e, ONE)));
    }
    return r | (x & SIGN);
}

fn m_sigmoid(x: u32) -> u32 {
    let e = m_exp(f_neg(f_abs(x)));
    let num = select(ONE, e, f_lt(x, 0u));
    return f_div(num, f_add(ONE, e));
}

fn m_erf(x: u32) -> u32 {
    let a = f_abs(x);
    var r: u32;
    if (f_lt(a, ERF_SMALL)) {
        r = f_fma(a, horner7(f_mul(a, a), ERF_C), a);
    } else {
        var ac = a;
        if (f_gt(a, ERF_BIG)) {
            ac = ERF_BIG;
        }
        let h = f_mul(ac, ac);
        let l = f_fma(ac, ac, f_neg(h));
        let p = exp_parts(f_neg(h), f_neg(l));
        let e = scale2(f_add(ONE, p.s), p.n);
        r = f_fma(f_neg(e), horner11(f_sub(ac, ERFC_SHIFT), ERFC_C), ONE);
    }
    return r | (x & SIGN);
}

fn m_gelu_tanh(x: u32) -> u32 {
    var xc = x;
    if (f_lt(xc, f_neg(GT_CLAMP))) {
        xc = f_neg(GT_CLAMP);
    }
    if (f_gt(xc, GT_CLAMP)) {
        xc = GT_CLAMP;
    }
    let sh = f_mul(xc, xc);
    let sl = f_fma(xc, xc, f_neg(sh));
    let ph = f_mul(GT_C2_HI, sh);
    let pl0 = f_fma(GT_C2_HI, sh, f_neg(ph));
    let pl = f_fma(GT_C2_LO, sh, f_fma(GT_C2_HI, sl, pl0));
    let wh = f_add(GT_C1_HI, ph);
    let bb = f_sub(wh, GT_C1_HI);
    let werr = f_add(f_sub(GT_C1_HI, f_sub(wh, bb)), f_sub(ph, bb));
    let wl = f_add(werr, f_add(pl, GT_C1_LO));
    let zh = f_mul(xc, wh);
    let zl = f_fma(xc, wl, f_fma(xc, wh, f_neg(zh)));
    let neg = f_lt(xc, 0u);
    var h = f_neg(zh);
    var l = f_neg(zl);
    if (neg) {
        h = zh;
        l = zl;
    }
    let p = exp_parts(h, l);
    let d = f_add(ONE, scale2(f_add(ONE, p.s), p.n));
    if (neg) {
        return scale2(f_div(f_fma(xc, p.s, xc), d), p.n);
    }
    return f_div(x, d);
}

fn m_gelu_erf(x: u32) -> u32 {
    let v = f_abs(x);
    if (f_lt(v, GE_X1)) {
        let a = f_mul(x, FRAC_1_SQRT_2);
        let erf_a = f_fma(a, horner7(f_mul(a, a), ERF_C), a);
        return f_mul(f_mul(HALF, x), f_add(ONE, erf_a));
    }
    var vc = v;
    if (f_gt(v, GE_X3)) {
        vc = GE_X3;
    }
    let sh = f_mul(vc, vc);
    let sl = f_fma(vc, vc, f_neg(sh));
    let p = exp_parts(f_mul(NEG_HALF, sh), f_mul(NEG_HALF, sl));
    var g: u32;
    if (f_lt(vc, GE_X2)) {
        g = f_mul(vc, horner11(f_sub(vc, GE_H1_SHIFT), GE_H1_C));
    } else if (f_lt(vc, GE_X2B)) {
        g = f_mul(vc, horner10(f_sub(vc, GE_H2_SHIFT)));
    } else {
        g = horner7(f_div(ONE, sh), GE_G_C);
    }
    let t = scale2(f_fma(g, p.s, g), p.n);
    if (f_gt(x, 0u)) {
        return f_sub(x, t);
    }
    return f_neg(t);
}

// pow_scalar (semantics §3.1), with the case of the exponent decided on the host:
// mode 0: 1; 1: x; 2: x * x; 3: sqrt x; 4: 1 / x; 5: the integer power n (1 / r when
// negative); 6: the general case with exponent bits p.
fn m_pow(x: u32, mode: u32, n_in: u32, negative: bool, p: u32) -> u32 {
    switch mode {
        case 0u: {
            return ONE;
        }
        case 1u: {
            return x;
        }
        case 2u: {
            return f_mul(x, x);
        }
        case 3u: {
            return f_sqrt(x);
        }
        case 4u: {
            return f_div(ONE, x);
        }
        case 5u: {
            var n = n_in;
            var r = ONE;
            var b = x;
            loop {
                if (n == 0u) {
                    break;
                }
                if ((n & 1u) == 1u) {
                    r = f_mul(r, b);
                }
                n = n >> 1u;
                if (n > 0u) {
                    b = f_mul(b, b);
                }
            }
            if (negative) {
                return f_div(ONE, r);
            }
            return r;
        }
        default: {
            if (f_isnan(x) || f_isnan(p) || f_lt(x, 0u)) {
                return QNAN;
            }
            if (f_eq(x, 0u)) {
                return select(INF, 0u, f_gt(p, 0u));
            }
            if (x == INF) {
                return select(0u, INF, f_gt(p, 0u));
            }
            return m_exp(f_mul(p, m_log(x)));
        }
    }
}
