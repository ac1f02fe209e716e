//! A minimal JSON writer (no parser): enough for `--json` output, with strings escaped
//! per RFC 8259.

use std::fmt::Write as _;

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, already formatted (integers, or decimals from [`Json::decimal`]).
    Num(String),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, keys in the order given.
    Obj(Vec<(&'static str, Json)>),
}

impl Json {
    /// An integer.
    pub fn int(v: impl Into<u128>) -> Json {
        Json::Num(v.into().to_string())
    }

    /// A decimal with `places` digits after the point (finite values only; others
    /// become `null`).
    pub fn decimal(v: f64, places: usize) -> Json {
        if v.is_finite() {
            Json::Num(format!("{v:.places$}"))
        } else {
            Json::Null
        }
    }

    /// A string.
    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    /// Lowercase hex of `bytes`, as a string.
    pub fn hex(bytes: impl AsRef<[u8]>) -> Json {
        Json::Str(hex::encode(bytes))
    }

    /// An array of integers (a shape).
    pub fn shape(dims: &[usize]) -> Json {
        Json::Arr(dims.iter().map(|d| Json::int(*d as u64)).collect())
    }

    /// The compact text, no trailing newline.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => out.push_str(n),
            Json::Str(s) => escape(s, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    escape(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: Json, expected: &str) {
        assert_eq!(v.render(), expected);
    }

    #[test]
    fn renders() {
        check(Json::str("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\u0001é""#);
        check(Json::Null, "null");
        check(Json::decimal(1.23456, 3), "1.235");
        check(Json::decimal(f64::NAN, 3), "null");
        check(
            Json::Obj(vec![
                ("a", Json::int(1u64)),
                ("b", Json::Arr(vec![Json::Bool(true), Json::shape(&[2, 3])])),
                ("c", Json::hex([0xab, 0x01])),
            ]),
            r#"{"a":1,"b":[true,[2,3]],"c":"ab01"}"#,
        );
    }
}
