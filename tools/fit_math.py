#!/usr/bin/env python3
"""Polynomial fits for BlockTorch's deterministic f32 math (crates/blocktorch/src/math.rs).

Every polynomial in math.rs is produced by this script; run it and copy the
printed `f32::from_bits(0x...)` constants (the script also prints the Rust
`const` block and the markdown rows for docs/spec/blocktorch-math.md).

Method, for each approximation  T(v) ~= sum_i c_i * b_i(v)  on [lo, hi]:

1. References are evaluated with mpmath at 60 significant digits.
2. A weighted minimax fit (minimise max_v |w(v) * (T(v) - sum c_i b_i(v))|) is
   computed on Chebyshev nodes of [lo, hi] with Lawson's algorithm (iteratively
   re-weighted least squares; each least-squares solve is done in mpmath
   precision via the normal equations).
3. The coefficients are rounded to f32 one at a time, lowest order first; after
   each rounding the remaining (still real) coefficients are re-fitted with the
   rounded ones held fixed, so later coefficients absorb the rounding errors.
4. The final f32 polynomial is evaluated exactly (mpmath) on a dense grid and
   the maximum weighted error is printed (in units of 2^-24, i.e. in "f32
   ulps at 1" of the weighted quantity), so you can see the approximation
   error alone, before any f32 evaluation error.

Usage:  python3 tools/fit_math.py            (prints everything, ~10 min on one core)
        python3 tools/fit_math.py --explore  (error versus degree tables)
"""

import struct
import sys

import mpmath as mp

mp.mp.dps = 60

# ---------------------------------------------------------------------------
# f32 helpers
# ---------------------------------------------------------------------------


def f32_bits(v):
    """Round an mpmath/float value to the nearest f32 and return its bit pattern.

    mp -> Python float (round to nearest double) -> f32 (struct, round to
    nearest) can double-round, so we correct the last step exactly in mpmath.
    """
    v = mp.mpf(v)
    d = float(v)
    b = struct.unpack("<I", struct.pack("<f", d))[0]
    # check the neighbours exactly and keep the closest (ties to even)
    best = None
    for cand in (b - 1, b, b + 1):
        if cand < 0 or (cand & 0x7F800000) == 0x7F800000:
            continue
        fv = mp.mpf(struct.unpack("<f", struct.pack("<I", cand))[0])
        err = abs(fv - v)
        key = (err, cand & 1)
        if best is None or key < best[0]:
            best = (key, cand)
    return best[1]


def bits_f32(b):
    return mp.mpf(struct.unpack("<f", struct.pack("<I", b))[0])


def f32(v):
    return bits_f32(f32_bits(v))


def f32_dec(b):
    """Shortest decimal that round-trips for display."""
    x = struct.unpack("<f", struct.pack("<I", b))[0]
    for p in range(6, 12):
        s = "%.*e" % (p, x)
        if struct.unpack("<I", struct.pack("<f", float(s)))[0] == b:
            return s
    return repr(x)


# ---------------------------------------------------------------------------
# weighted minimax by Lawson's algorithm
# ---------------------------------------------------------------------------


def cheb_nodes(lo, hi, n):
    lo, hi = mp.mpf(lo), mp.mpf(hi)
    return [
        (lo + hi) / 2 + (hi - lo) / 2 * mp.cos(mp.pi * (2 * k + 1) / (2 * n))
        for k in range(n)
    ] + [lo, hi]


def solve_wls(rows, rhs, wts):
    m = len(rows[0])
    A = mp.matrix(m, m)
    b = mp.matrix(m, 1)
    for r, y, w in zip(rows, rhs, wts):
        for i in range(m):
            wi = w * r[i]
            b[i] += wi * y
            for j in range(i, m):
                A[i, j] += wi * r[j]
    for i in range(m):
        for j in range(i):
            A[i, j] = A[j, i]
    return list(mp.lu_solve(A, b))


def lawson(rows, rhs, iters=60):
    """min max |rhs - rows.c| (rows/rhs already multiplied by the weight)."""
    n = len(rows)
    u = [mp.mpf(1) / n] * n
    best = None
    for _ in range(iters):
        c = solve_wls(rows, rhs, [ui for ui in u])
        res = [abs(y - mp.fsum(ci * ri for ci, ri in zip(c, r))) for r, y in zip(rows, rhs)]
        emax = max(res)
        if best is None or emax < best[0]:
            best = (emax, c)
        s = mp.fsum(ui * ri for ui, ri in zip(u, res))
        u = [ui * ri / s for ui, ri in zip(u, res)]
        # keep weights from collapsing to exactly zero
        u = [max(ui, mp.mpf(10) ** -40) for ui in u]
    return best[1]


class Fit:
    """T(v) ~= sum_i c_i * basis_i(v) on [lo, hi], error weighted by w(v).

    fixed: dict index -> exact f32 bit pattern that must be used (e.g. 1.0).
    """

    def __init__(self, name, target, basis, weight, lo, hi, fixed=None, nodes=None):
        self.name, self.target, self.basis, self.weight = name, target, basis, weight
        self.lo, self.hi = mp.mpf(lo), mp.mpf(hi)
        self.fixed = dict(fixed or {})
        n = nodes or max(40 * len(basis), 200)
        self.xs = [v for v in cheb_nodes(lo, hi, n) if self._ok(v)]
        self.T = [target(v) for v in self.xs]
        self.W = [weight(v) for v in self.xs]
        self.B = [[b(v) for b in basis] for v in self.xs]

    @staticmethod
    def _ok(v):
        return v != 0

    def fit(self, fixed_vals):
        """Minimax over the free coefficients with fixed_vals (index -> mpf) held."""
        free = [i for i in range(len(self.basis)) if i not in fixed_vals]
        rows, rhs = [], []
        for t, w, brow in zip(self.T, self.W, self.B):
            y = t - mp.fsum(fixed_vals[i] * brow[i] for i in fixed_vals)
            rows.append([w * brow[i] for i in free])
            rhs.append(w * y)
        c = lawson(rows, rhs) if free else []
        out = dict(fixed_vals)
        for i, ci in zip(free, c):
            out[i] = ci
        return [out[i] for i in range(len(self.basis))]

    def run(self):
        fixed = {i: bits_f32(b) for i, b in self.fixed.items()}
        self.real = self.fit(fixed)
        order = [i for i in range(len(self.basis)) if i not in fixed]
        for i in order:
            c = self.fit(fixed)
            fixed[i] = f32(c[i])
        self.bits = [f32_bits(fixed[i]) for i in range(len(self.basis))]
        self.err_real = self.max_err(self.real)
        self.err_f32 = self.max_err([bits_f32(b) for b in self.bits])
        return self

    def max_err(self, c, n=4000):
        e = mp.mpf(0)
        for k in range(n + 1):
            v = self.lo + (self.hi - self.lo) * k / n
            if v == 0:
                continue
            p = mp.fsum(ci * b(v) for ci, b in zip(c, self.basis))
            e = max(e, abs(self.weight(v) * (self.target(v) - p)))
        return e


def ulp24(e):
    return float(e * mp.mpf(2) ** 24)


# ---------------------------------------------------------------------------
# the approximations used by math.rs
# ---------------------------------------------------------------------------

LN2 = mp.log(2)
SQRT1_2 = 1 / mp.sqrt(2)


def erfcx(a):
    return mp.erfc(a) * mp.exp(a * a)


def pw(k, shift=0):
    s = mp.mpf(shift)
    return lambda v: (v - s) ** k


# Interval ends.  The exp reduction leaves |r| <= ln2/2 (plus rounding slack).
EXP_R = mp.mpf("0.3467")
LOG_LO, LOG_HI = mp.sqrt(mp.mpf("0.5")) - 1 - mp.mpf("1e-7"), mp.sqrt(2) - 1 + mp.mpf("1e-7")
TANH_SMALL = mp.mpf("1.0")  # |x| < TANH_SMALL: odd polynomial
ERF_SMALL = mp.mpf("0.875")  # |x| < ERF_SMALL: odd polynomial, else 1 - exp(-x^2) R(x)
ERF_BIG = mp.mpf("3.9375")  # erf(x) rounds to 1 beyond 3.9192; R fitted up to here
ERFC_SHIFT = mp.mpf("1.75")  # R is a polynomial in (a - 1.75): exact subtraction
GE_H1_SHIFT = mp.mpf("1.5")  # H1 is a polynomial in (|x| - 1.5): exact subtraction
GE_H2_SHIFT = mp.mpf("3.5")  # H2 is a polynomial in (|x| - 3.5): exact subtraction
GE_X1 = mp.mpf("0.625")  # gelu_erf: |x| < GE_X1 uses the erf odd polynomial
GE_X2 = mp.mpf("2.5")  # GE_X1 <= |x| < GE_X2: |x| H(|x|) e^{-x^2/2}
GE_X2B = mp.mpf("4.5")  # GE_X2 <= |x| < GE_X2B: |x| H2(|x|) e^{-x^2/2}
GE_X3 = mp.mpf("15")  # GE_X2B <= |x| <= GE_X3: G(1/x^2) e^{-x^2/2}


def make_fits(deg, only=None):
    """The list of fits (only the one named `only` if given)."""
    def H(v):
        return erfcx(v * SQRT1_2) / 2

    def G(u):
        if u == 0:
            return 1 / mp.sqrt(2 * mp.pi)
        v = 1 / mp.sqrt(u)
        return v * erfcx(v * SQRT1_2) / 2

    specs = {
        # exp(r) = 1 + r + r^2 Q(r):  T = e^r - 1 - r, basis r^2..; relative error
        "EXP": lambda: Fit("EXP", lambda r: mp.exp(r) - 1 - r,
                           [pw(k) for k in range(2, 3 + deg["EXP"])],
                           lambda r: 1 / mp.exp(r), -EXP_R, EXP_R),
        # log(1+f) = f + f^2 P(f): T = log1p(f) - f, basis f^2..; relative error
        "LOG": lambda: Fit("LOG", lambda f: mp.log1p(f) - f,
                           [pw(k) for k in range(2, 3 + deg["LOG"])],
                           lambda f: 1 / abs(mp.log1p(f)), LOG_LO, LOG_HI),
        # tanh(a) = a + a^3 P(a^2): basis a^3, a^5, ...; relative error
        "TANH": lambda: Fit("TANH", lambda a: mp.tanh(a) - a,
                            [pw(2 * k + 3) for k in range(deg["TANH"] + 1)],
                            lambda a: 1 / mp.tanh(a), 0, TANH_SMALL),
        # erf(a) = a + a P(a^2): basis a, a^3, ...; relative error
        "ERF": lambda: Fit("ERF", lambda a: mp.erf(a) - a,
                           [pw(2 * k + 1) for k in range(deg["ERF"] + 1)],
                           lambda a: 1 / mp.erf(a), 0, ERF_SMALL),
        # erfc(a) = exp(-a^2) R(a - c); absolute error of erfc (what 1 - erfc needs)
        "ERFC": lambda: Fit("ERFC", erfcx, [pw(k, ERFC_SHIFT) for k in range(deg["ERFC"] + 1)],
                            lambda a: mp.exp(-a * a), ERF_SMALL, ERF_BIG),
        # gelu_erf tail: 0.5 v erfc(v/sqrt2) = v H(v - c) exp(-v^2/2); relative error
        "GE_H1": lambda: Fit("GE_H1", H, [pw(k, GE_H1_SHIFT) for k in range(deg["GE_H1"] + 1)],
                             lambda v: 1 / H(v), GE_X1, GE_X2),
        "GE_H2": lambda: Fit("GE_H2", H, [pw(k, GE_H2_SHIFT) for k in range(deg["GE_H2"] + 1)],
                             lambda v: 1 / H(v), GE_X2, GE_X2B),
        # far tail in u = 1/v^2: 0.5 v erfc(v/sqrt2) = G(u) exp(-v^2/2); relative error
        "GE_G": lambda: Fit("GE_G", G, [pw(k) for k in range(deg["GE_G"] + 1)],
                            lambda u: 1 / G(u), mp.mpf(0), 1 / GE_X2B ** 2),
    }
    return [th() for name, th in specs.items() if only is None or name == only]


DEG = {"EXP": 4, "LOG": 8, "TANH": 6, "ERF": 6, "ERFC": 10,
       "GE_H1": 10, "GE_H2": 9, "GE_G": 6}


def explore():
    mp.mp.dps = 40
    names = sys.argv[2:] or list(DEG)
    for name in names:
        f = make_fits(DEG, name)[0]
        print(f"{f.name}: interval [{mp.nstr(f.lo, 6)}, {mp.nstr(f.hi, 6)}]")
        d0 = DEG[f.name]
        for d in range(max(1, d0 - 3), d0 + 3):
            deg = dict(DEG)
            deg[f.name] = d
            g = make_fits(deg, f.name)[0]
            c = g.fit({})
            print(f"   degree index {d}: minimax error {ulp24(g.max_err(c, 1500)):.3e} x 2^-24")


def split(name, v):
    """v ~= hi + lo with hi = f32(v), lo = f32(v - hi)."""
    hi = f32_bits(v)
    lo = f32_bits(mp.mpf(v) - bits_f32(hi))
    return [(name + "_HI", hi, "f32(%s)" % name), (name + "_LO", lo, "f32(%s - %s_HI)" % (name, name))]


def scalar_constants():
    k0 = mp.sqrt(2 / mp.pi)
    k1 = mp.mpf("0.044715")
    out = []
    out += [("LOG2E", f32_bits(1 / LN2), "f32(1/ln 2)")]
    out += split("LN2", LN2)
    # gelu_tanh: z = 2*sqrt(2/pi)*(x + 0.044715 x^3) = x*(C1 + C2*x^2)
    out += split("GT_C1", 2 * k0)
    out += split("GT_C2", 2 * k0 * k1)
    out += [("FRAC_1_SQRT_2", f32_bits(SQRT1_2), "f32(1/sqrt 2)")]
    for name, v in [("TANH_SMALL", TANH_SMALL), ("ERF_SMALL", ERF_SMALL), ("ERF_BIG", ERF_BIG),
                    ("ERFC_SHIFT", ERFC_SHIFT), ("GE_H1_SHIFT", GE_H1_SHIFT),
                    ("GE_H2_SHIFT", GE_H2_SHIFT), ("GE_X1", GE_X1), ("GE_X2", GE_X2),
                    ("GE_X2B", GE_X2B), ("GE_X3", GE_X3)]:
        out.append((name, f32_bits(v), "interval end / shift (exact)"))
    return out


def main():
    if "--explore" in sys.argv:
        explore()
        return
    print("// ---- generated by tools/fit_math.py ----")
    for name, b, what in scalar_constants():
        print(f"const {name}: f32 = f32::from_bits(0x{b:08X}); // {f32_dec(b)} = {what}")
    fits = [f.run() for f in make_fits(DEG)]
    for f in fits:
        print()
        print(f"/// {f.name}: fitted on [{mp.nstr(f.lo, 8)}, {mp.nstr(f.hi, 8)}]; max weighted error")
        print(f"/// {ulp24(f.err_f32):.4f} x 2^-24 with these f32 coefficients evaluated exactly")
        print(f"/// ({ulp24(f.err_real):.4f} x 2^-24 with the unrounded minimax coefficients).")
        print(f"const {f.name}: [f32; {len(f.bits)}] = [")
        for i, b in enumerate(f.bits):
            print(f"    f32::from_bits(0x{b:08X}), // c{i} = {f32_dec(b)}")
        print("];")
    print("// ---- markdown ----")
    for f in fits:
        row = ", ".join(f"`0x{b:08X}`" for b in f.bits)
        print(f"| {f.name} | {row} |")


if __name__ == "__main__":
    main()
