// Matmul (semantics §3.6): each output is one sequential fma chain from +0 over k,
// in increasing order. P[0] the output count (batch * m * n); the walk is over the
// broadcast batch shape, view 0 giving A's matrix offset and view 1 B's; aux: m, n, k,
// A's row and column strides, B's row and column strides.

@compute @workgroup_size(64)
fn k_matmul(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let total = P[0];
    let m = aux(0u);
    let n = aux(1u);
    let k = aux(2u);
    let sam = aux(3u);
    let sak = aux(4u);
    let sbk = aux(5u);
    let sbn = aux(6u);
    let mn = m * n;
    for (var g = id.x; g < total; g = g + nw.x * WG) {
        let b = g / mn;
        let rest = g % mn;
        let i = rest / n;
        let j = rest % n;
        var pa = view_off(0u, b) + i * sam;
        var pb = view_off(1u, b) + j * sbn;
        var acc = 0u;
        for (var t = 0u; t < k; t = t + 1u) {
            acc = f_fma(A[pa], B[pb], acc);
            pa = pa + sak;
            pb = pb + sbk;
        }
        O[g] = acc;
    }
}
