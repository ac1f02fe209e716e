// Gather and IndexAdd (semantics §3.7, §3.8). The indices are checked on the host and
// arrive as u32 rows.

// Gather: A the rows (one per index position), B the contiguous table; aux 0 the row
// length, aux 1 the table's offset. Output element g is table row A[g / row], column
// g % row.
@compute @workgroup_size(64)
fn k_gather(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let n = P[0];
    let row = aux(0u);
    let off = aux(1u);
    for (var g = id.x; g < n; g = g + nw.x * WG) {
        O[g] = B[off + A[g / row] * row + g % row];
    }
}

// IndexAdd: A the CSR starts of each target row (rows + 1 words), B the index positions
// sorted by target row and, within a row, increasing; C the contiguous source; aux 0
// the row length, aux 1 the source's offset. Each output element starts at +0 and adds
// its sources in increasing position order.
@compute @workgroup_size(64)
fn k_index_add(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let n = P[0];
    let row = aux(0u);
    let off = aux(1u);
    for (var g = id.x; g < n; g = g + nw.x * WG) {
        let r = g / row;
        let e = g % row;
        var acc = 0u;
        for (var q = A[r]; q < A[r + 1u]; q = q + 1u) {
            acc = f_add(acc, C[off + B[q] * row + e]);
        }
        O[g] = acc;
    }
}
