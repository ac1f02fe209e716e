//! Bit-identity tests of the CPU SGEMM: every SIMD path, thread count and tile
//! configuration must produce exactly the bits of `sgemm_reference` (the naive
//! `f32::mul_add` chain), NaN payloads canonicalised.

use blocktorch::cpu::gemm::{sgemm, sgemm_batched, sgemm_reference, GemmConfig, MatRef, Simd};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Bits with every NaN mapped to one pattern (IEEE 754 leaves NaN payloads
/// unspecified; everything else must match exactly, including the sign of 0).
fn canon(x: f32) -> u32 {
    if x.is_nan() {
        0x7fc0_0000
    } else {
        x.to_bits()
    }
}

/// Asserts bit equality, reporting the first difference.
fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| canon(got[i]) != canon(want[i])) {
        panic!(
            "{what}: element {i} differs: got {:e} ({:#010x}), want {:e} ({:#010x})",
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

/// The SIMD paths this machine can run. Prints why a path is skipped.
fn simd_paths() -> Vec<Simd> {
    let mut v = vec![Simd::Scalar];
    if Simd::Avx2Fma.available() {
        v.push(Simd::Avx2Fma);
    } else {
        println!("SKIPPED Avx2Fma: this CPU lacks AVX2 and/or FMA (or is not x86-64)");
    }
    v
}

/// Tile configurations: the default and several odd ones (smaller than, not
/// multiples of, or much larger than the register block).
fn tile_configs() -> Vec<(usize, usize, usize)> {
    let d = GemmConfig::new(Simd::Scalar, 1);
    vec![
        (d.mc, d.kc, d.nc),
        (1, 1, 1),
        (7, 3, 5),
        (13, 17, 19),
        (6, 64, 16),
        (48, 7, 33),
        (1000, 1000, 1000),
    ]
}

/// Every (simd, threads, tiles) configuration to compare.
fn all_configs(threads: &[usize]) -> Vec<GemmConfig> {
    let mut out = Vec::new();
    for simd in simd_paths() {
        for &t in threads {
            for (mc, kc, nc) in tile_configs() {
                out.push(GemmConfig {
                    simd,
                    threads: t,
                    mc,
                    kc,
                    nc,
                });
            }
        }
    }
    out
}

/// Every `step`-th configuration, starting at a shape-dependent phase.
fn rotating(cfgs: &[GemmConfig], shape: usize, step: usize) -> Vec<GemmConfig> {
    cfgs.iter()
        .enumerate()
        .filter(|(i, _)| (i + shape).is_multiple_of(step))
        .map(|(_, c)| *c)
        .collect()
}

fn random_vec(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// Values that stress IEEE corner cases, mixed with ordinary ones.
fn edge_vec(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    const SPECIAL: [f32; 16] = [
        0.0,
        -0.0,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        1.0e-45,  // smallest subnormal
        -3.0e-41, // subnormal
        1.17e-38, // just below MIN_POSITIVE: subnormal
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
        -f32::MAX,
        3.0e38,
        1.0e20,
        -1.0e-20,
        1.0,
    ];
    (0..len)
        .map(|_| match rng.gen_range(0..4) {
            0 => SPECIAL[rng.gen_range(0..SPECIAL.len())],
            1 => rng.gen_range(-1.0f32..1.0) * 2f32.powi(rng.gen_range(-140..120)),
            _ => rng.gen_range(-4.0f32..4.0),
        })
        .collect()
}

/// Row-major view of a contiguous `rows × cols` matrix.
fn rm(data: &[f32], cols: usize) -> MatRef<'_> {
    MatRef {
        data,
        offset: 0,
        rs: cols,
        cs: 1,
    }
}

/// Compares every configuration against the reference for one problem.
fn check_all(what: &str, m: usize, n: usize, k: usize, a: MatRef, b: MatRef, cfgs: &[GemmConfig]) {
    let mut want = vec![0.0f32; m * n];
    sgemm_reference(m, n, k, a, b, &mut want);
    for cfg in cfgs {
        // Degenerate tiles (1×1×1 ...) are exercised on the smaller problems
        // only: they are correct but very slow.
        if cfg.mc * cfg.kc * cfg.nc < 100 && m * n * k > 1 << 16 {
            continue;
        }
        // Garbage in C must be overwritten, never read.
        let mut got = vec![f32::NAN; m * n];
        sgemm(cfg, m, n, k, a, b, &mut got);
        assert_bits_eq(&format!("{what} m{m} n{n} k{k} {cfg:?}"), &got, &want);
    }
}

#[test]
fn edge_sizes_grid() {
    const SIZES: [usize; 8] = [0, 1, 5, 17, 63, 64, 65, 130];
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let cfgs = all_configs(&[1, 2, 3, 7]);
    // Every configuration on the diagonal; off it, each shape gets a rotating
    // eighth of the configurations (so each configuration sees ~64 shapes).
    let mut shape = 0;
    for &m in &SIZES {
        for &n in &SIZES {
            for &k in &SIZES {
                let a = random_vec(&mut rng, m * k);
                let b = random_vec(&mut rng, k * n);
                let some = rotating(&cfgs, shape, if m == n && n == k { 1 } else { 8 });
                check_all("grid", m, n, k, rm(&a, k), rm(&b, n), &some);
                shape += 1;
            }
        }
    }
}

#[test]
fn random_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let cfgs = all_configs(&[1, 2, 3, 7]);
    for shape in 0..24 {
        let m = rng.gen_range(1..150);
        let n = rng.gen_range(1..150);
        let k = rng.gen_range(1..300);
        let a = random_vec(&mut rng, m * k);
        let b = random_vec(&mut rng, k * n);
        let some = rotating(&cfgs, shape, 4);
        check_all("random", m, n, k, rm(&a, k), rm(&b, n), &some);
    }
}

#[test]
fn primes_and_multithreaded_sizes() {
    // Large enough that every thread count really splits the work.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let cfgs: Vec<GemmConfig> = all_configs(&[1, 2, 3, 7])
        .into_iter()
        .filter(|c| c.mc * c.kc * c.nc > 100)
        .collect();
    for (m, n, k) in [
        (131, 257, 263),
        (97, 389, 101),
        (1, 1031, 257),
        (1031, 1, 257),
        (263, 263, 1),
        (200, 300, 517),
    ] {
        let a = random_vec(&mut rng, m * k);
        let b = random_vec(&mut rng, k * n);
        check_all("primes", m, n, k, rm(&a, k), rm(&b, n), &cfgs);
    }
}

#[test]
fn ieee_edge_values() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let cfgs = all_configs(&[1, 2, 3]);
    for (m, n, k) in [(7, 19, 33), (65, 33, 130), (13, 70, 300), (1, 1, 9)] {
        let a = edge_vec(&mut rng, m * k);
        let b = edge_vec(&mut rng, k * n);
        check_all("edge values", m, n, k, rm(&a, k), rm(&b, n), &cfgs);
    }
    // Signed zeros: every product is -0 and the chain starts at +0.
    let a = vec![-0.0f32; 6 * 5];
    let b = vec![1.0f32; 5 * 17];
    check_all("signed zero", 6, 17, 5, rm(&a, 5), rm(&b, 17), &cfgs);
    let mut c = vec![f32::NAN; 6 * 17];
    sgemm(
        &GemmConfig::new(Simd::detect(), 2),
        6,
        17,
        5,
        rm(&a, 5),
        rm(&b, 17),
        &mut c,
    );
    assert!(
        c.iter().all(|x| x.to_bits() == 0),
        "fma(-0, 1, +0) chains give +0"
    );
}

#[test]
fn order_is_sequential_fma() {
    // Catches any reassociation or split-K: 1 + 2^-24 * 2^24 terms cancel
    // only in one order. a = [1e8, 1, -1e8], b = ones: the chain gives
    // fma(-1e8, 1, fma(1, 1, 1e8)) = -1e8 + (1e8 + 1 rounded) = 0, while any
    // other order gives 1.
    let k = 3;
    let a = vec![1.0e8f32, 1.0, -1.0e8];
    let b = vec![1.0f32; 3];
    for cfg in all_configs(&[1, 2]) {
        let mut c = vec![f32::NAN; 1];
        sgemm(&cfg, 1, 1, k, rm(&a, k), rm(&b, 1), &mut c);
        assert_eq!(c[0].to_bits(), 0.0f32.to_bits(), "{cfg:?}");
    }
    // And the FMA is fused: x*x + c with one rounding. The chain is
    // fma(x, x, fma(-1, 1 + 2eps, +0)) = (1 + 2eps + eps^2) - (1 + 2eps) = eps^2;
    // an unfused multiply would round x*x to 1 + 2eps and give 0.
    let x = 1.0f32 + f32::EPSILON;
    let y = 1.0f32 + 2.0 * f32::EPSILON;
    let a = vec![-1.0f32, x];
    let b = vec![y, x];
    let want = x.mul_add(x, (-1.0f32).mul_add(y, 0.0));
    for cfg in all_configs(&[1]) {
        let mut c = vec![f32::NAN; 1];
        sgemm(&cfg, 1, 1, 2, rm(&a, 2), rm(&b, 1), &mut c);
        assert_eq!(c[0].to_bits(), want.to_bits(), "{cfg:?}");
    }
    assert_eq!(
        want,
        f32::EPSILON * f32::EPSILON,
        "fused: no rounding of x*x"
    );
}

#[test]
fn strided_views() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let cfgs = all_configs(&[1, 2, 3]);
    for (m, n, k) in [(17, 33, 65), (64, 64, 64), (5, 130, 7), (130, 5, 300)] {
        let a = random_vec(&mut rng, m * k);
        let b = random_vec(&mut rng, k * n);
        // Transposed storage: A stored k×m (column-major), B stored n×k.
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let a_t = MatRef {
            data: &at,
            offset: 0,
            rs: 1,
            cs: m,
        };
        let b_t = MatRef {
            data: &bt,
            offset: 0,
            rs: 1,
            cs: k,
        };
        let mut want = vec![0.0f32; m * n];
        sgemm_reference(m, n, k, rm(&a, k), rm(&b, n), &mut want);
        for cfg in &cfgs {
            for (an, av) in [("A", rm(&a, k)), ("At", a_t)] {
                for (bn, bv) in [("B", rm(&b, n)), ("Bt", b_t)] {
                    let mut got = vec![f32::NAN; m * n];
                    sgemm(cfg, m, n, k, av, bv, &mut got);
                    assert_bits_eq(&format!("{an}·{bn} m{m} n{n} k{k} {cfg:?}"), &got, &want);
                }
            }
        }

        // Offset sub-matrix views inside a larger buffer with padded rows,
        // and a generic (neither unit) stride.
        let (pad_r, off) = (k + 3, 11);
        let mut big = vec![f32::NAN; off + m * pad_r];
        for i in 0..m {
            big[off + i * pad_r..off + i * pad_r + k].copy_from_slice(&a[i * k..(i + 1) * k]);
        }
        let a_off = MatRef {
            data: &big,
            offset: off,
            rs: pad_r,
            cs: 1,
        };
        let mut big_b = vec![f32::NAN; 5 + 2 * k * n * 3];
        for p in 0..k {
            for j in 0..n {
                big_b[5 + p * 3 * n * 2 + j * 2] = b[p * n + j];
            }
        }
        let b_gen = MatRef {
            data: &big_b,
            offset: 5,
            rs: 6 * n,
            cs: 2,
        };
        check_all("offset A, strided B", m, n, k, a_off, b_gen, &cfgs);
    }
}

#[test]
fn broadcast_views() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let cfgs = all_configs(&[1, 2, 3]);
    let (m, n, k) = (23, 41, 37);
    let row = random_vec(&mut rng, k);
    let col = random_vec(&mut rng, k);
    let b = random_vec(&mut rng, k * n);
    let a = random_vec(&mut rng, m * k);
    // Every row of A is the same vector (row stride 0).
    let a_bc = MatRef {
        data: &row,
        offset: 0,
        rs: 0,
        cs: 1,
    };
    check_all("A rows broadcast", m, n, k, a_bc, rm(&b, n), &cfgs);
    // Every column of B is the same vector (column stride 0).
    let b_bc = MatRef {
        data: &col,
        offset: 0,
        rs: 1,
        cs: 0,
    };
    check_all("B columns broadcast", m, n, k, rm(&a, k), b_bc, &cfgs);
    // A scalar broadcast to the whole matrix.
    let one = [0.75f32];
    let s = MatRef {
        data: &one,
        offset: 0,
        rs: 0,
        cs: 0,
    };
    check_all("scalar broadcast", m, n, k, s, s, &cfgs);
}

#[test]
fn batched_with_shared_b() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (batch, m, n, k) in [
        (1, 70, 90, 33),
        (3, 65, 17, 130),
        (5, 9, 200, 64),
        (12, 64, 64, 64),
    ] {
        let a_all = random_vec(&mut rng, batch * m * k + 3);
        let b_shared = random_vec(&mut rng, k * n);
        let b_own = random_vec(&mut rng, batch * k * n);
        // A_i at offset 3 + i*m*k; B shared by all, or one per entry (transposed).
        let a: Vec<MatRef> = (0..batch)
            .map(|i| MatRef {
                data: &a_all,
                offset: 3 + i * m * k,
                rs: k,
                cs: 1,
            })
            .collect();
        let shared: Vec<MatRef> = vec![rm(&b_shared, n); batch];
        let own: Vec<MatRef> = (0..batch)
            .map(|i| MatRef {
                data: &b_own,
                offset: i * k * n,
                rs: 1,
                cs: k,
            })
            .collect();
        for (bname, bviews) in [("shared B", &shared), ("own Bt", &own)] {
            let mut want = vec![0.0f32; batch * m * n];
            for (i, w) in want.chunks_mut(m * n).enumerate() {
                sgemm_reference(m, n, k, a[i], bviews[i], w);
            }
            for cfg in rotating(&all_configs(&[1, 2, 3, 7]), batch, 2) {
                let mut got = vec![f32::NAN; batch * m * n];
                sgemm_batched(&cfg, m, n, k, &a, bviews, &mut got);
                assert_bits_eq(
                    &format!("batch {batch} {bname} m{m} n{n} k{k} {cfg:?}"),
                    &got,
                    &want,
                );
            }
        }
    }
    // An empty batch is a no-op.
    sgemm_batched(
        &GemmConfig::new(Simd::detect(), 2),
        4,
        4,
        4,
        &[],
        &[],
        &mut [],
    );
}

#[test]
fn k_zero_gives_positive_zeros() {
    for cfg in all_configs(&[1, 2]) {
        let mut c = vec![f32::NAN; 3 * 2 * 5];
        let a: Vec<MatRef> = vec![rm(&[], 0); 3];
        sgemm_batched(&cfg, 2, 5, 0, &a, &a, &mut c);
        assert!(c.iter().all(|x| x.to_bits() == 0), "{cfg:?}");
    }
}

#[test]
fn detect_is_available() {
    assert!(Simd::detect().available());
    assert!(Simd::Scalar.available());
    println!("detected SIMD path: {:?}", Simd::detect());
}

#[test]
#[should_panic(expected = "out of bounds")]
fn out_of_bounds_view_panics() {
    let a = vec![0.0f32; 5];
    let mut c = vec![0.0f32; 4];
    sgemm(
        &GemmConfig::new(Simd::Scalar, 1),
        2,
        2,
        3,
        rm(&a, 3),
        rm(&a, 2),
        &mut c,
    );
}

#[test]
#[should_panic(expected = "C has")]
fn wrong_c_len_panics() {
    let a = vec![0.0f32; 4];
    let mut c = vec![0.0f32; 3];
    sgemm(
        &GemmConfig::new(Simd::Scalar, 1),
        2,
        2,
        2,
        rm(&a, 2),
        rm(&a, 2),
        &mut c,
    );
}
