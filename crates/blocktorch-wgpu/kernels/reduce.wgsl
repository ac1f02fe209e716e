// Reductions over the last axis in the canonical order (semantics §3.5): one workgroup
// of 32 invocations per row; invocation l folds x[l], x[l + 32], ... in increasing
// order into its partial, then the fixed tree 16, 8, 4, 2, 1 combines the partials.
// P[0] rows; view 0 walks the output shape and gives each row's first element;
// aux 0 the row length, aux 1 the stride along the row. OP: 0 sum, 1 max.

var<workgroup> part: array<u32, 32>;
var<workgroup> part_index: array<u32, 32>;

const EMPTY: u32 = 0xffffffffu;

fn fold(a: u32, b: u32) -> u32 {
    if (OP == 0u) {
        return f_add(a, b);
    }
    return f_max(a, b);
}

@compute @workgroup_size(32)
fn k_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) l: u32) {
    let rows = P[0];
    let len = aux(0u);
    let stride = aux(1u);
    for (var r = wg.x; r < rows; r = r + nw.x) {
        let base = view_off(0u, r);
        // +0 for the sum, -inf for the max.
        var acc = select(0u, NEG_INF, OP == 1u);
        for (var i = l; i < len; i = i + 32u) {
            acc = fold(acc, A[base + i * stride]);
        }
        part[l] = acc;
        workgroupBarrier();
        for (var s = 16u; s > 0u; s = s >> 1u) {
            if (l < s) {
                part[l] = fold(part[l], part[l + s]);
            }
            workgroupBarrier();
        }
        if (l == 0u) {
            O[r] = part[0];
        }
        workgroupBarrier();
    }
}

// Whether candidate (vb, ib) beats (va, ia) for argmax: larger under IEEE order with
// NaN above every number; ties (equal values, -0 = +0, or both NaN) go to the
// smaller index.
fn beats(va: u32, ia: u32, vb: u32, ib: u32) -> bool {
    if (ib == EMPTY) {
        return false;
    }
    if (ia == EMPTY) {
        return true;
    }
    let na = f_isnan(va);
    let nb = f_isnan(vb);
    if (na || nb) {
        if (na && nb) {
            return ib < ia;
        }
        return nb;
    }
    if (f_gt(vb, va)) {
        return true;
    }
    if (f_gt(va, vb)) {
        return false;
    }
    return ib < ia;
}

@compute @workgroup_size(32)
fn k_argmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) l: u32) {
    let rows = P[0];
    let len = aux(0u);
    let stride = aux(1u);
    for (var r = wg.x; r < rows; r = r + nw.x) {
        let base = view_off(0u, r);
        var best = 0u;
        var at = EMPTY;
        for (var i = l; i < len; i = i + 32u) {
            let v = A[base + i * stride];
            if (beats(best, at, v, i)) {
                best = v;
                at = i;
            }
        }
        part[l] = best;
        part_index[l] = at;
        workgroupBarrier();
        for (var s = 16u; s > 0u; s = s >> 1u) {
            if (l < s && beats(part[l], part_index[l], part[l + s], part_index[l + s])) {
                part[l] = part[l + s];
                part_index[l] = part_index[l + s];
            }
            workgroupBarrier();
        }
        if (l == 0u) {
            O[r] = part_index[0];
        }
        workgroupBarrier();
    }
}
