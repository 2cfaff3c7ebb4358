//! Recognising an `--args-file` line that is already the compact JSON text it would be
//! re-encoded to, so that it is sent as it is, without building a `serde_json::Value`.
//!
//! Used by `spec::args_file` for each line; a line this does not vouch for goes the old way
//! (`Value`, then `to_string`), which also words every error. A line is kept only when
//! re-encoding could not change a byte of it: the parse is serde_json's own (`deserialize_any`,
//! as `Value` does, so the same lines parse), and it holds only arrays, whole numbers that fit
//! 64 bits (not `-0`), strings without escapes, `true`, `false` and `null`, with no whitespace
//! outside its strings. Objects (which `Value` re-encodes with its keys sorted and a repeated
//! key dropped), fractions and exponents (`1.50` becomes `1.5`) and escapes (`"\u0041"` becomes
//! `"A"`) go the old way.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Whether `line` is a JSON array that `Value`'s parse and `to_string` would give back
/// byte for byte; `false` says only "not sure", never "invalid".
pub fn is_compact_array(line: &str) -> bool {
    if !line.starts_with('[') {
        return false;
    }
    let mut parser = serde_json::Deserializer::from_str(line);
    let Ok(Plain(Some(spaces_in_strings))) = (&mut parser).deserialize_any(PlainVisitor) else {
        return false;
    };
    parser.end().is_ok() && spaces(line) == spaces_in_strings
}

/// The bytes of `text` that JSON counts as whitespace (which `to_string` writes none of outside
/// strings).
fn spaces(text: &str) -> usize {
    text.bytes()
        .filter(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count()
}

/// One parsed value: `Some(whitespace bytes inside its strings)` when it re-encodes to its own
/// text (apart from whitespace between tokens), `None` when it may not.
struct Plain(Option<usize>);

impl<'de> de::Deserialize<'de> for Plain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Plain, D::Error> {
        deserializer.deserialize_any(PlainVisitor)
    }
}

/// Visits each value as `Value`'s visitor would be visited (numbers parsed and range-checked,
/// strings unescaped), without keeping it.
struct PlainVisitor;

impl<'de> Visitor<'de> for PlainVisitor {
    type Value = Plain;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Plain, E> {
        Ok(Plain(Some(0)))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Plain, E> {
        Ok(Plain(Some(0)))
    }

    /// serde_json gives non-negative whole numbers as `u64`, printed back digit for digit.
    fn visit_u64<E>(self, _: u64) -> Result<Plain, E> {
        Ok(Plain(Some(0)))
    }

    /// Negative whole numbers (`-0` comes as a float).
    fn visit_i64<E>(self, _: i64) -> Result<Plain, E> {
        Ok(Plain(Some(0)))
    }

    /// Fractions, exponents, `-0` and whole numbers beyond 64 bits, which `to_string` may
    /// write differently.
    fn visit_f64<E>(self, _: f64) -> Result<Plain, E> {
        Ok(Plain(None))
    }

    /// A string borrowed from the line has no escape, and `to_string` escapes only quotes,
    /// backslashes and control characters, none of which such a string holds.
    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Plain, E> {
        Ok(Plain(Some(spaces(text))))
    }

    /// A string that had escapes, which `to_string` may write differently.
    fn visit_str<E>(self, _: &str) -> Result<Plain, E> {
        Ok(Plain(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Plain, A::Error> {
        let mut spaces = Some(0);
        while let Some(Plain(item)) = seq.next_element()? {
            spaces = spaces.zip(item).map(|(a, b)| a + b);
        }
        Ok(Plain(spaces))
    }

    /// An object: `Value` may write its keys in another order, so it goes the old way whatever
    /// it holds.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Plain, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Plain(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What `Value` makes of a line: its compact text, or `None` if it is no array.
    fn reencoded(line: &str) -> Option<String> {
        match serde_json::from_str::<Value>(line) {
            Ok(value @ Value::Array(_)) => Some(value.to_string()),
            _ => None,
        }
    }

    /// Every line vouched for is a JSON array that re-encodes to itself; lines that would change
    /// or fail are not vouched for.
    #[test]
    fn vouches_only_for_lines_that_reencode_to_themselves() {
        let kept = [
            "[]",
            "[0]",
            "[1,-2,\"a\",true,false,null]",
            "[[],[[1]],[\"x\"]]",
            "[\"a b\",\" two  spaces \"]",
            "[\"é\u{7f}€\"]",
            "[18446744073709551615,-9223372036854775808]",
        ];
        for line in kept {
            assert!(is_compact_array(line), "{line}");
            assert_eq!(reencoded(line).as_deref(), Some(line), "{line}");
        }
        let not_kept = [
            "[ 1]",
            "[1] ",
            " [1]",
            "[1,\t2]",
            "[1.0]",
            "[1.50]",
            "[1e2]",
            "[-0]",
            "[18446744073709551616]",
            "[-9223372036854775809]",
            "[\"\\u0041\"]",
            "[\"\\/\"]",
            "[{\"b\":1,\"a\":2}]",
            "[{}]",
            "[1e400]",
            "[\"\\ud800\"]",
            "[1]x",
            "[1",
            "{}",
            "1",
            "\"[1]\"",
            "",
        ];
        for line in not_kept {
            assert!(!is_compact_array(line), "{line}");
        }
    }

    /// Over many generated lines, "kept" always means the text `Value` would have sent.
    #[test]
    fn agrees_with_value_on_generated_lines() {
        let atoms = [
            "0",
            "-1",
            "7",
            "1.5",
            "-0",
            "2e3",
            "\"\"",
            "\"a b\"",
            "\"\\n\"",
            "\"ü\"",
            "true",
            "null",
            "[]",
            "{}",
            "{\"k\":[1]}",
            " ",
            "[1, 2]",
            "1e999",
        ];
        let mut checked = 0;
        for a in atoms {
            for b in atoms {
                for line in [
                    format!("[{a}]"),
                    format!("[{a},{b}]"),
                    format!("[[{a}],{b}]"),
                    format!("[{a} ,{b}]"),
                ] {
                    if is_compact_array(&line) {
                        assert_eq!(reencoded(&line).as_deref(), Some(line.as_str()));
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 100, "{checked}");
    }
}
