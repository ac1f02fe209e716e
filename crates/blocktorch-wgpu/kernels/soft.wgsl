// BlockTorch IEEE-754 binary32 arithmetic in integers (docs/wgpu-fabric.md).
//
// WGSL lets an implementation flush subnormals, contract a * b + c, divide and take
// square roots to a few ULP, and assume that no infinity or NaN occurs. None of that
// is allowed by docs/spec/blocktorch-semantics.md, so these kernels never execute a
// floating-point instruction: an f32 is its bit pattern in a u32, and every operation
// the spec names (+, -, *, /, sqrt, fma, comparisons, conversions) is computed here
// from integer operations, which WGSL defines exactly (u32/i32 arithmetic wraps,
// shifts are below the bit width). Rounding is to nearest, ties to even; subnormals
// are produced and consumed; fma rounds once. NaN results are 0x7fc00000 (the spec
// leaves payloads free and canonicalises them before comparing or hashing).
//
// The rounding core follows the classic software floating-point design (the exact
// intermediate is kept with its leading bit at bit 30 and every lost bit ORed into
// bit 0, then rounded once); see docs/wgpu-fabric.md for the derivations.

const SIGN: u32 = 0x80000000u;
const MAG: u32 = 0x7fffffffu;
const QNAN: u32 = 0x7fc00000u;
const INF: u32 = 0x7f800000u;
const ONE: u32 = 0x3f800000u;

fn f_isnan(x: u32) -> bool {
    return (x & MAG) > INF;
}

fn f_neg(x: u32) -> u32 {
    return x ^ SIGN;
}

fn f_abs(x: u32) -> u32 {
    return x & MAG;
}

fn jam(lost: bool) -> u32 {
    return select(0u, 1u, lost);
}

// a >> d with every bit shifted out ORed into bit 0; d may be any size.
fn shr_jam(a: u32, d: u32) -> u32 {
    if (d == 0u) {
        return a;
    }
    if (d < 32u) {
        return (a >> d) | jam((a << (32u - d)) != 0u);
    }
    return jam(a != 0u);
}

// Rounds sig * 2^(e - 156) to binary32 (nearest, ties to even) with sign s. sig has
// its leading bit at bit 30 when e > 0; with e <= 0 the value is shifted into the
// subnormal range first (jamming what falls off).
fn round_pack(s: u32, e_in: i32, sig_in: u32) -> u32 {
    var e = e_in;
    var sig = sig_in;
    if (e < 0) {
        sig = shr_jam(sig, u32(-e));
        e = 0;
    } else if (e >= 0xFD) {
        if (e > 0xFD || sig + 0x40u >= 0x80000000u) {
            return (s << 31u) | INF;
        }
    }
    let rest = sig & 0x7Fu;
    sig = (sig + 0x40u) >> 7u;
    if (rest == 0x40u) {
        sig = sig & ~1u;
    }
    if (sig == 0u) {
        e = 0;
    }
    // The leading bit of sig, when present, carries into the exponent field.
    return (s << 31u) + (u32(e) << 23u) + sig;
}

// A finite nonzero magnitude as m * 2^(e - 150), m in [2^23, 2^24).
struct Unpacked {
    e: i32,
    m: u32,
}

fn unpack(x: u32) -> Unpacked {
    let e = (x >> 23u) & 0xFFu;
    let f = x & 0x7FFFFFu;
    if (e == 0u) {
        let sh = countLeadingZeros(f) - 8u;
        return Unpacked(1 - i32(sh), f << sh);
    }
    return Unpacked(i32(e), f | 0x800000u);
}

// 64-bit helpers on (lo, hi) pairs.
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xFFFFu;
    let a1 = a >> 16u;
    let b0 = b & 0xFFFFu;
    let b1 = b >> 16u;
    let p0 = a0 * b0;
    let p1 = a0 * b1;
    let p2 = a1 * b0;
    let p3 = a1 * b1;
    let mid = (p0 >> 16u) + (p1 & 0xFFFFu) + (p2 & 0xFFFFu);
    return vec2<u32>((p0 & 0xFFFFu) | (mid << 16u), p3 + (p1 >> 16u) + (p2 >> 16u) + (mid >> 16u));
}

fn shl64(v: vec2<u32>, d: u32) -> vec2<u32> {
    if (d == 0u) {
        return v;
    }
    if (d >= 32u) {
        return vec2<u32>(0u, v.x << (d - 32u));
    }
    return vec2<u32>(v.x << d, (v.y << d) | (v.x >> (32u - d)));
}

fn shr_jam64(v: vec2<u32>, d: u32) -> vec2<u32> {
    if (d == 0u) {
        return v;
    }
    if (d >= 64u) {
        return vec2<u32>(jam((v.x | v.y) != 0u), 0u);
    }
    if (d >= 32u) {
        var lost = v.x != 0u;
        if (d > 32u) {
            lost = lost || (v.y << (64u - d)) != 0u;
        }
        return vec2<u32>((v.y >> (d - 32u)) | jam(lost), 0u);
    }
    let lost = (v.x << (32u - d)) != 0u;
    return vec2<u32>((v.x >> d) | (v.y << (32u - d)) | jam(lost), v.y >> d);
}

fn add64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + jam(lo < a.x));
}

fn sub64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(a.x - b.x, a.y - b.y - jam(a.x < b.x));
}

fn lt64(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y < b.y || (a.y == b.y && a.x < b.x);
}

fn clz64(v: vec2<u32>) -> u32 {
    if (v.y != 0u) {
        return countLeadingZeros(v.y);
    }
    return 32u + countLeadingZeros(v.x);
}

// a + b, one rounding.
fn f_add(a: u32, b: u32) -> u32 {
    if (f_isnan(a) || f_isnan(b)) {
        return QNAN;
    }
    let ma = a & MAG;
    let mb = b & MAG;
    if (ma == INF) {
        if (mb == INF && (a ^ b) == SIGN) {
            return QNAN;
        }
        return a;
    }
    if (mb == INF) {
        return b;
    }
    if (ma == 0u) {
        if (mb == 0u) {
            return a & b;
        }
        return b;
    }
    if (mb == 0u) {
        return a;
    }
    // x is the operand of larger magnitude.
    var x = a;
    var y = b;
    if (mb > ma) {
        x = b;
        y = a;
    }
    let ex = max((x >> 23u) & 0xFFu, 1u);
    let ey = max((y >> 23u) & 0xFFu, 1u);
    var sx = x & 0x7FFFFFu;
    var sy = y & 0x7FFFFFu;
    if ((x & INF) != 0u) {
        sx = sx | 0x800000u;
    }
    if ((y & INF) != 0u) {
        sy = sy | 0x800000u;
    }
    sx = sx << 6u;
    sy = shr_jam(sy << 6u, ex - ey);
    var sig: u32;
    if (((a ^ b) & SIGN) == 0u) {
        sig = sx + sy;
    } else {
        sig = sx - sy;
        if (sig == 0u) {
            return 0u;
        }
    }
    let sh = countLeadingZeros(sig) - 1u;
    return round_pack(x >> 31u, i32(ex) - i32(sh), sig << sh);
}

fn f_sub(a: u32, b: u32) -> u32 {
    return f_add(a, f_neg(b));
}

// a * b, one rounding.
fn f_mul(a: u32, b: u32) -> u32 {
    if (f_isnan(a) || f_isnan(b)) {
        return QNAN;
    }
    let s = (a ^ b) >> 31u;
    let ma = a & MAG;
    let mb = b & MAG;
    if (ma == INF || mb == INF) {
        if (ma == 0u || mb == 0u) {
            return QNAN;
        }
        return (s << 31u) | INF;
    }
    if (ma == 0u || mb == 0u) {
        return s << 31u;
    }
    let ua = unpack(a);
    let ub = unpack(b);
    let p = mul_wide(ua.m << 7u, ub.m << 8u);
    var sig = p.y | jam(p.x != 0u);
    var e = ua.e + ub.e - 0x7F;
    if (sig < 0x40000000u) {
        e = e - 1;
        sig = sig << 1u;
    }
    return round_pack(s, e, sig);
}

// fma(a, b, c) = a * b + c with one rounding (IEEE fusedMultiplyAdd).
fn f_fma(a: u32, b: u32, c: u32) -> u32 {
    if (f_isnan(a) || f_isnan(b) || f_isnan(c)) {
        return QNAN;
    }
    let sp = (a ^ b) >> 31u;
    let sc = c >> 31u;
    let ma = a & MAG;
    let mb = b & MAG;
    let mc = c & MAG;
    if (ma == INF || mb == INF) {
        if (ma == 0u || mb == 0u) {
            return QNAN;
        }
        if (mc == INF && sc != sp) {
            return QNAN;
        }
        return (sp << 31u) | INF;
    }
    if (mc == INF) {
        return c;
    }
    if (ma == 0u || mb == 0u) {
        if (mc == 0u) {
            // An exact zero product plus a zero: -0 only if both are -0.
            return (sp << 31u) & c;
        }
        return c;
    }
    if (mc == 0u) {
        return f_mul(a, b);
    }
    let ua = unpack(a);
    let ub = unpack(b);
    let uc = unpack(c);
    // The exact product, leading bit at 60 or 61: x * 2^(ea + eb - 314).
    var x = shl64(mul_wide(ua.m, ub.m), 14u);
    let ex = ua.e + ub.e - 314;
    // The addend, leading bit at 60: y * 2^(ec - 187).
    var y = vec2<u32>(0u, uc.m << 5u);
    let ey = uc.e - 187;
    var e: i32;
    if (ex >= ey) {
        y = shr_jam64(y, u32(ex - ey));
        e = ex;
    } else {
        x = shr_jam64(x, u32(ey - ex));
        e = ey;
    }
    var z: vec2<u32>;
    var s: u32;
    if (sp == sc) {
        z = add64(x, y);
        s = sp;
    } else {
        if (lt64(x, y)) {
            z = sub64(y, x);
            s = sc;
        } else {
            z = sub64(x, y);
            s = sp;
        }
        if (z.x == 0u && z.y == 0u) {
            return 0u;
        }
    }
    let lz = clz64(z);
    let zn = shl64(z, lz - 1u);
    return round_pack(s, e - i32(lz) + 189, zn.y | jam(zn.x != 0u));
}

// a / b, correctly rounded (restoring division, 31 quotient bits and a sticky bit).
fn f_div(a: u32, b: u32) -> u32 {
    if (f_isnan(a) || f_isnan(b)) {
        return QNAN;
    }
    let s = (a ^ b) >> 31u;
    let ma = a & MAG;
    let mb = b & MAG;
    if (ma == INF) {
        if (mb == INF) {
            return QNAN;
        }
        return (s << 31u) | INF;
    }
    if (mb == INF) {
        return s << 31u;
    }
    if (mb == 0u) {
        if (ma == 0u) {
            return QNAN;
        }
        return (s << 31u) | INF;
    }
    if (ma == 0u) {
        return s << 31u;
    }
    let ua = unpack(a);
    let ub = unpack(b);
    var e = ua.e - ub.e + 126;
    var rem = ua.m;
    if (rem < ub.m) {
        rem = rem << 1u;
        e = e - 1;
    }
    var q = 0u;
    for (var i = 0u; i < 31u; i = i + 1u) {
        q = q << 1u;
        if (rem >= ub.m) {
            rem = rem - ub.m;
            q = q | 1u;
        }
        rem = rem << 1u;
    }
    return round_pack(s, e, q | jam(rem != 0u));
}

// sqrt(x), correctly rounded (digit-by-digit square root of a 54-bit radicand).
fn f_sqrt(x: u32) -> u32 {
    if (f_isnan(x)) {
        return QNAN;
    }
    if ((x & MAG) == 0u) {
        return x;
    }
    if ((x & SIGN) != 0u) {
        return QNAN;
    }
    if (x == INF) {
        return INF;
    }
    let u = unpack(x);
    var e = u.e - 127;
    var m = u.m;
    if ((e & 1) != 0) {
        m = m << 1u;
        e = e - 1;
    }
    // The radicand m * 2^29 as (lo, hi); its square root has 27 bits.
    let hi = m >> 3u;
    let lo = m << 29u;
    var r = 0u;
    var rem = 0u;
    for (var j = 0u; j < 27u; j = j + 1u) {
        let p = 52u - 2u * j;
        var two: u32;
        if (p >= 32u) {
            two = (hi >> (p - 32u)) & 3u;
        } else {
            two = (lo >> p) & 3u;
        }
        rem = (rem << 2u) | two;
        let t = (r << 2u) | 1u;
        if (rem >= t) {
            rem = rem - t;
            r = (r << 1u) | 1u;
        } else {
            r = r << 1u;
        }
    }
    return round_pack(0u, 126 + (e >> 1u), (r << 4u) | jam(rem != 0u));
}

// Comparisons (IEEE: false with a NaN, -0 == +0).
fn f_key(x: u32) -> i32 {
    if ((x & SIGN) != 0u) {
        return -i32(x & MAG);
    }
    return i32(x);
}

fn f_lt(a: u32, b: u32) -> bool {
    return !f_isnan(a) && !f_isnan(b) && f_key(a) < f_key(b);
}

fn f_le(a: u32, b: u32) -> bool {
    return !f_isnan(a) && !f_isnan(b) && f_key(a) <= f_key(b);
}

fn f_gt(a: u32, b: u32) -> bool {
    return f_lt(b, a);
}

fn f_ge(a: u32, b: u32) -> bool {
    return f_le(b, a);
}

fn f_eq(a: u32, b: u32) -> bool {
    return !f_isnan(a) && !f_isnan(b) && f_key(a) == f_key(b);
}

// max and min of the spec (§3.2): NaN if either is NaN; on a tie, bits ANDed / ORed.
fn f_max(a: u32, b: u32) -> u32 {
    if (f_isnan(a) || f_isnan(b)) {
        return QNAN;
    }
    if (f_gt(a, b)) {
        return a;
    }
    if (f_gt(b, a)) {
        return b;
    }
    return a & b;
}

fn f_min(a: u32, b: u32) -> u32 {
    if (f_isnan(a) || f_isnan(b)) {
        return QNAN;
    }
    if (f_lt(a, b)) {
        return a;
    }
    if (f_lt(b, a)) {
        return b;
    }
    return a | b;
}

// Integer to f32, round to nearest even.
fn u32_to_f32(v: u32) -> u32 {
    if (v == 0u) {
        return 0u;
    }
    let lz = countLeadingZeros(v);
    return round_pack(0u, 157 - i32(lz), shr_jam(v << lz, 1u));
}

fn i32_to_f32(v: i32) -> u32 {
    let bits = u32(v);
    if (v < 0) {
        return u32_to_f32(0u - bits) | SIGN;
    }
    return u32_to_f32(bits);
}

// f32 to integer: truncate toward zero, saturate, NaN -> 0.
fn f_to_i32(x: u32) -> u32 {
    if (f_isnan(x)) {
        return 0u;
    }
    let e = (x >> 23u) & 0xFFu;
    let neg = (x & SIGN) != 0u;
    if (e < 127u) {
        return 0u;
    }
    if (e >= 158u) {
        return select(0x7fffffffu, 0x80000000u, neg);
    }
    let m = (x & 0x7FFFFFu) | 0x800000u;
    var mag: u32;
    if (e >= 150u) {
        mag = m << (e - 150u);
    } else {
        mag = m >> (150u - e);
    }
    return select(mag, 0u - mag, neg);
}

fn f_to_u32(x: u32) -> u32 {
    if (f_isnan(x) || (x & SIGN) != 0u) {
        return 0u;
    }
    let e = (x >> 23u) & 0xFFu;
    if (e < 127u) {
        return 0u;
    }
    if (e >= 159u) {
        return 0xffffffffu;
    }
    let m = (x & 0x7FFFFFu) | 0x800000u;
    if (e >= 150u) {
        return m << (e - 150u);
    }
    return m >> (150u - e);
}
