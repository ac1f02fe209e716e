// Elementwise kernels: one invocation per output element, a grid-stride loop.
// OP (common.wgsl) selects the operation.

fn unary_op(x: u32) -> u32 {
    switch OP {
        case 0u: { return f_neg(x); }
        case 1u: { return f_abs(x); }
        case 2u: { return m_exp(x); }
        case 3u: { return m_log(x); }
        case 4u: { return f_sqrt(x); }
        case 5u: { return f_div(ONE, f_sqrt(x)); }
        case 6u: { return f_div(ONE, x); }
        case 7u: { return m_tanh(x); }
        case 8u: { return m_sigmoid(x); }
        case 9u: {
            // relu: NaN -> NaN, x > 0 -> x, otherwise +0.
            if (f_isnan(x) || f_gt(x, 0u)) {
                return x;
            }
            return 0u;
        }
        case 10u: { return m_gelu_tanh(x); }
        case 11u: { return m_gelu_erf(x); }
        case 12u: { return m_erf(x); }
        case 13u: {
            if (f_gt(x, 0u)) {
                return ONE;
            }
            if (f_lt(x, 0u)) {
                return NEG_ONE;
            }
            return x;
        }
        default: { return m_pow(x, aux(0u), aux(1u), aux(2u) != 0u, aux(3u)); }
    }
}

fn binary_op(a: u32, b: u32) -> u32 {
    switch OP {
        case 0u: { return f_add(a, b); }
        case 1u: { return f_sub(a, b); }
        case 2u: { return f_mul(a, b); }
        case 3u: { return f_div(a, b); }
        case 4u: { return f_max(a, b); }
        default: { return f_min(a, b); }
    }
}

fn compare_op(a: u32, b: u32) -> bool {
    switch OP {
        case 0u: { return f_eq(a, b); }
        case 1u: { return !f_eq(a, b); }
        case 2u: { return f_lt(a, b); }
        case 3u: { return f_le(a, b); }
        case 4u: { return f_gt(a, b); }
        default: { return f_ge(a, b); }
    }
}

// dtype tags: f32 = 1, u8 = 2, i32 = 3, u32 = 4 (OP = src_tag * 8 + dst_tag).
fn cast_op(x: u32) -> u32 {
    let src_tag = OP >> 3u;
    let dst_tag = OP & 7u;
    if (src_tag == dst_tag) {
        return x;
    }
    if (src_tag == 1u) {
        switch dst_tag {
            case 2u: { return min(f_to_u32(x), 255u); }
            case 3u: { return f_to_i32(x); }
            default: { return f_to_u32(x); }
        }
    }
    if (dst_tag == 1u) {
        if (src_tag == 3u) {
            return i32_to_f32(i32(x));
        }
        return u32_to_f32(x);
    }
    // integer dst_tag integer, saturating.
    let negative = src_tag == 3u && i32(x) < 0;
    switch dst_tag {
        case 2u: {
            if (negative) {
                return 0u;
            }
            return min(x, 255u);
        }
        case 3u: {
            return min(x, 0x7fffffffu);
        }
        default: {
            if (negative) {
                return 0u;
            }
            return x;
        }
    }
}

@compute @workgroup_size(64)
fn k_unary(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let n = P[0];
    for (var i = id.x; i < n; i = i + nw.x * WG) {
        O[i] = unary_op(A[view_off(0u, i)]);
    }
}

@compute @workgroup_size(64)
fn k_binary(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let n = P[0];
    for (var i = id.x; i < n; i = i + nw.x * WG) {
        O[i] = binary_op(A[view_off(0u, i)], B[view_off(1u, i)]);
    }
}

@compute @workgroup_size(64)
fn k_compare(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let n = P[0];
    for (var i = id.x; i < n; i = i + nw.x * WG) {
        O[i] = select(0u, 1u, compare_op(A[view_off(0u, i)], B[view_off(1u, i)]));
    }
}

@compute @workgroup_size(64)
fn k_select(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let n = P[0];
    for (var i = id.x; i < n; i = i + nw.x * WG) {
        O[i] = select(C[view_off(2u, i)], B[view_off(1u, i)], A[view_off(0u, i)] != 0u);
    }
}

@compute @workgroup_size(64)
fn k_cast(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let n = P[0];
    for (var i = id.x; i < n; i = i + nw.x * WG) {
        O[i] = cast_op(A[view_off(0u, i)]);
    }
}

// A strided copy: view 0 is the source, view 3 the destination.
@compute @workgroup_size(64)
fn k_copy(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let n = P[0];
    for (var i = id.x; i < n; i = i + nw.x * WG) {
        O[view_off(3u, i)] = A[view_off(0u, i)];
    }
}
