// Bindings and the element walk shared by every kernel (src/params.rs builds P).
//
// Every tensor is an array of u32 words: an f32 as its bits, an i32 as its bits, a u32
// as itself, a u8 widened to one word. P, the parameter block of one dispatch:
//   P[0]        element count (or rows, or outputs)
//   P[1]        rank of the walk
//   P[2]        bit v set: view v is contiguous (element i at offset off[v] + i)
//   P[3..11]    kernel arguments (aux)
//   P[11..19]   the walk's shape
//   P[19..23]   off[v], the offset of view v
//   P[23..55]   stride[v][d], the stride of view v along dimension d

@group(0) @binding(0) var<storage, read> P: array<u32>;
@group(0) @binding(1) var<storage, read> A: array<u32>;
@group(0) @binding(2) var<storage, read> B: array<u32>;
@group(0) @binding(3) var<storage, read> C: array<u32>;
@group(0) @binding(4) var<storage, read_write> O: array<u32>;

// The operation of a pipeline, a pipeline-creation constant: each pipeline holds one
// operation and the compiler drops the others.
override OP: u32 = 0u;

const WG: u32 = 64u;
const P_AUX: u32 = 3u;
const P_SHAPE: u32 = 11u;
const P_OFF: u32 = 19u;
const P_STRIDE: u32 = 23u;

fn aux(k: u32) -> u32 {
    return P[P_AUX + k];
}

// The storage offset of logical element i (row-major over the walk's shape) in view v.
fn view_off(v: u32, i: u32) -> u32 {
    let off = P[P_OFF + v];
    if (((P[2] >> v) & 1u) == 1u) {
        return off + i;
    }
    var rem = i;
    var o = off;
    var d = P[1];
    loop {
        if (d == 0u) {
            break;
        }
        d = d - 1u;
        let size = P[P_SHAPE + d];
        o = o + (rem % size) * P[P_STRIDE + v * 8u + d];
        rem = rem / size;
    }
    return o;
}
