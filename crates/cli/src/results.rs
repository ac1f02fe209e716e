//! Verified results, written for people and tools: the check of a result object
//! against the receipt it answers, and its outputs as safetensors, NumPy `.npy` or
//! JSON (`compute result`, `compute submit --wait`, `job run --result-out`).

use crate::{CliError, Outcome};
use blocktorch::{DType, HostData};
use serde_json::{json, Value};
use std::collections::HashMap;
use tb_job::{ResultObject, ResultTensor};

/// How `--format` writes a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One safetensors file holding every output by name; the output digest in its
    /// metadata.
    Safetensors,
    /// One NumPy `.npy` file per output (`FILE` itself for one output, else
    /// `STEM.NAME.npy` beside it).
    Npy,
    /// One JSON document: each output's name, dtype, shape, digest and elements.
    Json,
}

impl Format {
    /// Parses `--format` (default: from the file's extension, else safetensors).
    pub fn parse(given: Option<&str>, path: Option<&str>) -> Result<Format, CliError> {
        let by_ext = path.and_then(|p| {
            let p = p.to_ascii_lowercase();
            if p.ends_with(".npy") {
                Some(Format::Npy)
            } else if p.ends_with(".json") {
                Some(Format::Json)
            } else {
                None
            }
        });
        match given {
            None => Ok(by_ext.unwrap_or(Format::Safetensors)),
            Some("safetensors") => Ok(Format::Safetensors),
            Some("npy") => Ok(Format::Npy),
            Some("json") => Ok(Format::Json),
            Some(other) => Err(CliError::usage(format!(
                "--format {other:?}: expected safetensors, npy or json"
            ))),
        }
    }
}

/// Decodes a result object and checks it against the receipt it answers: every
/// output's digest is recomputed, the outputs must give `output_digest` (the
/// receipt's `output_digest_sha256`), and there must be `outputs` of them. `what`
/// names the object in errors.
pub fn verify(
    bytes: &[u8],
    output_digest: &[u8; 32],
    outputs: Option<usize>,
    what: &str,
) -> Result<ResultObject, CliError> {
    let r = ResultObject::decode(bytes)
        .map_err(|e| CliError::fail(format!("{what} is not a valid result object: {e}")))?;
    if let Some(n) = outputs {
        if r.outputs.len() != n {
            return Err(CliError::fail(format!(
                "{what} holds {} outputs; the job declares {n}: refused",
                r.outputs.len()
            )));
        }
    }
    let got = r.output_digest();
    if &got != output_digest {
        return Err(CliError::fail(format!(
            "{what} does not match the accepted receipt: its outputs give output digest {}, \
             the receipt commits to {}: refused",
            hex::encode(got),
            hex::encode(output_digest)
        )));
    }
    Ok(r)
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::U8 => "u8",
        DType::I32 => "i32",
        DType::U32 => "u32",
    }
}

/// The output's elements as little-endian bytes (NaNs already canonical).
fn le_bytes(d: &HostData) -> Vec<u8> {
    d.to_le_bytes_canonical()
}

/// The names outputs are written under: the program's names (which the digests do not
/// cover: they are the provider's word), made file- and key-safe and unique — an empty
/// or repeated name becomes `output.I` (its index).
pub fn unique_names(r: &ResultObject) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    r.outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let clean: String = o
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let name = if clean.is_empty() || seen.contains(&clean) {
                format!("output.{i}")
            } else {
                clean
            };
            seen.insert(name.clone());
            name
        })
        .collect()
}

/// The result as safetensors bytes: every output by name (in the safetensors order),
/// and `output_digest_sha256` in the metadata. The same outputs give the same bytes.
pub fn safetensors(r: &ResultObject, output_digest: &[u8; 32]) -> Result<Vec<u8>, CliError> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<Vec<u8>> = r.outputs.iter().map(|o| le_bytes(&o.data)).collect();
    let names = unique_names(r);
    let mut views = Vec::with_capacity(r.outputs.len());
    for ((o, b), name) in r.outputs.iter().zip(&bytes).zip(names) {
        let dtype = match o.data.dtype() {
            DType::F32 => Dtype::F32,
            DType::U8 => Dtype::U8,
            DType::I32 => Dtype::I32,
            DType::U32 => Dtype::U32,
        };
        let v = TensorView::new(dtype, o.shape.clone(), b)
            .map_err(|e| CliError::fail(format!("output {name:?}: {e}")))?;
        views.push((name, v));
    }
    let meta = HashMap::from([(
        "output_digest_sha256".to_string(),
        hex::encode(output_digest),
    )]);
    safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| CliError::fail(format!("safetensors: {e}")))
}

/// One output as a NumPy `.npy` file (format version 1.0): the magic, the header
/// dictionary (`descr`, `fortran_order`, `shape`) padded with spaces to a multiple of 64
/// bytes and ended by a newline, then the elements little-endian in C order. (A writer
/// of this one fixed header; NumPy's own format description is the spec.)
pub fn npy(o: &ResultTensor) -> Vec<u8> {
    let descr = match o.data.dtype() {
        DType::F32 => "<f4",
        DType::U8 => "|u1",
        DType::I32 => "<i4",
        DType::U32 => "<u4",
    };
    let shape = match o.shape.as_slice() {
        [] => "()".to_string(),
        [one] => format!("({one},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // magic (6) + version (2) + header length (2) + header + '\n' ≡ 0 mod 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + o.data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&le_bytes(&o.data));
    out
}

fn json_elements(d: &HostData) -> Vec<Value> {
    match d {
        HostData::F32(v) => v
            .iter()
            .map(|x| {
                if x.is_finite() {
                    json!(*x as f64)
                } else if x.is_nan() {
                    json!("NaN")
                } else if *x > 0.0 {
                    json!("Infinity")
                } else {
                    json!("-Infinity")
                }
            })
            .collect(),
        HostData::U8(v) => v.iter().map(|x| json!(x)).collect(),
        HostData::I32(v) => v.iter().map(|x| json!(x)).collect(),
        HostData::U32(v) => v.iter().map(|x| json!(x)).collect(),
    }
}

/// The result as JSON: the output digest, then each output's name, dtype, shape,
/// digest and elements (f32 as the exact decimal of their value; NaN and infinities
/// as strings), with `extra` fields first (task, status, provider…).
pub fn json_doc(r: &ResultObject, output_digest: &[u8; 32], extra: Value) -> Value {
    let mut v = if extra.is_object() { extra } else { json!({}) };
    v["output_digest_sha256"] = json!(hex::encode(output_digest));
    v["outputs"] = r
        .outputs
        .iter()
        .zip(r.digests())
        .map(|(o, d)| {
            json!({"name": o.name, "dtype": dtype_name(o.data.dtype()), "shape": o.shape,
                   "digest": hex::encode(d), "data": json_elements(&o.data)})
        })
        .collect();
    v
}

/// Writes `r` to `path` in `format`; returns the files written.
pub fn write(
    r: &ResultObject,
    output_digest: &[u8; 32],
    format: Format,
    path: &str,
    extra: Value,
) -> Result<Vec<String>, CliError> {
    let put = |p: &str, b: &[u8]| {
        std::fs::write(p, b).map_err(|e| CliError::fail(format!("cannot write {p}: {e}")))
    };
    match format {
        Format::Safetensors => {
            put(path, &safetensors(r, output_digest)?)?;
            Ok(vec![path.to_string()])
        }
        Format::Json => {
            let doc = json_doc(r, output_digest, extra);
            put(path, format!("{doc}\n").as_bytes())?;
            Ok(vec![path.to_string()])
        }
        Format::Npy => {
            if let [one] = r.outputs.as_slice() {
                put(path, &npy(one))?;
                return Ok(vec![path.to_string()]);
            }
            let stem = path.strip_suffix(".npy").unwrap_or(path);
            let mut written = Vec::new();
            for (o, name) in r.outputs.iter().zip(unique_names(r)) {
                let p = format!("{stem}.{name}.npy");
                put(&p, &npy(o))?;
                written.push(p);
            }
            Ok(written)
        }
    }
}

/// A short preview of an output's first elements.
pub fn preview(o: &ResultTensor) -> String {
    const N: usize = 6;
    let more = if o.data.len() > N { ", …" } else { "" };
    let items: Vec<String> = match &o.data {
        HostData::F32(v) => v.iter().take(N).map(|x| format!("{x}")).collect(),
        HostData::U8(v) => v.iter().take(N).map(|x| x.to_string()).collect(),
        HostData::I32(v) => v.iter().take(N).map(|x| x.to_string()).collect(),
        HostData::U32(v) => v.iter().take(N).map(|x| x.to_string()).collect(),
    };
    format!("[{}{more}]", items.join(", "))
}

/// Lines describing each output: name, dtype, shape, digest, a preview.
pub fn describe(r: &ResultObject, indent: &str) -> String {
    let rows: Vec<Vec<String>> = r
        .outputs
        .iter()
        .zip(r.digests())
        .map(|(o, d)| {
            vec![
                o.name.clone(),
                dtype_name(o.data.dtype()).to_string(),
                crate::job::shape(&o.shape),
                hex::encode(d),
                preview(o),
            ]
        })
        .collect();
    crate::job::table(&rows, &[], indent)
}

/// What a command that ends with a result prints: the files written, or (without
/// `-o`) the outputs described, or the JSON document.
pub fn emit(
    r: &ResultObject,
    output_digest: &[u8; 32],
    out: Option<&str>,
    format: Format,
    json_mode: bool,
    header: String,
    extra: Value,
) -> Result<Outcome, CliError> {
    if let Some(path) = out {
        let files = write(r, output_digest, format, path, extra.clone())?;
        if json_mode {
            let mut v = extra;
            v["output_digest_sha256"] = json!(hex::encode(output_digest));
            v["files"] = json!(files);
            return Ok(Outcome::ok(format!("{v}\n")));
        }
        return Ok(Outcome::ok(format!(
            "{header}outputs:\n{}wrote {}\n",
            describe(r, "  "),
            files.join(", ")
        )));
    }
    if json_mode {
        return Ok(Outcome::ok(format!(
            "{}\n",
            json_doc(r, output_digest, extra)
        )));
    }
    Ok(Outcome::ok(format!(
        "{header}outputs:\n{}",
        describe(r, "  ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, shape: &[usize], data: HostData) -> ResultTensor {
        ResultTensor {
            name: name.into(),
            shape: shape.to_vec(),
            data,
        }
    }

    #[test]
    fn npy_header_is_numpy_format_1_0() {
        let b = npy(&t("y", &[2, 3], HostData::F32(vec![0.0; 6])));
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hl) % 64, 0, "data starts 64-byte aligned");
        let header = std::str::from_utf8(&b[10..10 + hl]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(b.len(), 10 + hl + 24);
        let one = npy(&t("v", &[4], HostData::U8(vec![1, 2, 3, 4])));
        let hl = u16::from_le_bytes([one[8], one[9]]) as usize;
        assert!(std::str::from_utf8(&one[10..10 + hl])
            .unwrap()
            .contains("'descr': '|u1', 'fortran_order': False, 'shape': (4,), }"));
        assert_eq!(&one[10 + hl..], &[1, 2, 3, 4]);
        let scalar = npy(&t("s", &[], HostData::I32(vec![-1])));
        let hl = u16::from_le_bytes([scalar[8], scalar[9]]) as usize;
        assert!(std::str::from_utf8(&scalar[10..10 + hl])
            .unwrap()
            .contains("'shape': (), }"));
    }

    #[test]
    fn safetensors_round_trip_and_are_deterministic() {
        let r = ResultObject {
            outputs: vec![
                t("b", &[2], HostData::I32(vec![1, -1])),
                t("a", &[1, 2], HostData::F32(vec![0.5, 2.0])),
            ],
        };
        let d = r.output_digest();
        let bytes = safetensors(&r, &d).unwrap();
        assert_eq!(bytes, safetensors(&r, &d).unwrap());
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let a = st.tensor("a").unwrap();
        assert_eq!(a.shape(), &[1, 2]);
        assert_eq!(a.data(), &[0, 0, 0, 0x3f, 0, 0, 0, 0x40]);
        assert_eq!(st.tensor("b").unwrap().dtype(), safetensors::Dtype::I32);
    }

    #[test]
    fn a_result_that_is_not_the_receipts_is_refused() {
        let r = ResultObject {
            outputs: vec![t("y", &[2], HostData::F32(vec![1.0, 2.0]))],
        };
        let bytes = r.encode().unwrap();
        let d = r.output_digest();
        assert!(verify(&bytes, &d, Some(1), "the result").is_ok());
        let mut other = d;
        other[0] ^= 1;
        let e = verify(&bytes, &other, Some(1), "the result").unwrap_err();
        assert!(
            e.message.contains("does not match the accepted receipt"),
            "{}",
            e.message
        );
        assert!(verify(&bytes, &d, Some(2), "the result").is_err());
        assert!(verify(b"BTRS", &d, None, "the result").is_err());
    }

    #[test]
    fn repeated_or_empty_names_are_written_apart() {
        let r = ResultObject {
            outputs: vec![
                t("y", &[1], HostData::U8(vec![1])),
                t("y", &[1], HostData::U8(vec![2])),
                t("", &[1], HostData::U8(vec![3])),
                t("a/b", &[1], HostData::U8(vec![4])),
            ],
        };
        assert_eq!(unique_names(&r), ["y", "output.1", "output.2", "a_b"]);
        let st = safetensors(&r, &r.output_digest()).unwrap();
        let st = safetensors::SafeTensors::deserialize(&st).unwrap();
        assert_eq!(st.len(), 4);
        assert_eq!(st.tensor("output.1").unwrap().data(), &[2]);
    }

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse(None, Some("x.npy")).unwrap(), Format::Npy);
        assert_eq!(Format::parse(None, None).unwrap(), Format::Safetensors);
        assert_eq!(
            Format::parse(Some("json"), Some("x.npy")).unwrap(),
            Format::Json
        );
        assert!(Format::parse(Some("csv"), None).is_err());
    }
}
