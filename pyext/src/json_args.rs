//! A call's arguments as JSON text, written here for plain values: what `submit` and
//! `submit_many` send for each task, without a call into Python's `json` per task.
//!
//! The text is the one `tatzelwurm.serialize` writes (Python's `json` with `ensure_ascii=False`,
//! `allow_nan=False` and the separators `,` and `:`), so a task is the same task whichever
//! encoder wrote it: `tests/pytest/test_client_bulk.py` compares the two. Only exact `int` (in
//! i64), `float` (finite, written by Python's own `repr`, as `json` does), `str`, `bool`, `None`,
//! `list`, `tuple` and `dict` with `str` keys are written here; anything else (a subclass, a
//! large integer, a NaN, a key of another type, nesting deeper than `MAX_DEPTH`, text that is
//! not UTF-8) gives `None`, and the caller lets Python's encoder write it, or name what is not
//! JSON in its `SerializationError`.
//!
//! `plain_item` walks a value the same way without writing (the `Out` that `Check` is), so that
//! `submit_many` knows that every item of a long list will be written here, and refused by
//! nothing, before it queues the first: it then writes and sends the list a part at a time.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use std::fmt::Write as _;

/// Nesting deeper than this is left to Python's encoder (which also finds cycles).
const MAX_DEPTH: usize = 32;

/// The JSON of positional arguments `args` and keyword arguments `kwargs` (None or empty: `{}`),
/// or None when a value is not plain (see the module).
pub fn call(
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyAny>>,
) -> Option<(String, String)> {
    let mut args_json = String::with_capacity(16);
    array(&mut args_json, args.iter(), 0)?;
    Some((args_json, keywords(kwargs)?))
}

/// The JSON of one `submit_many` item: a tuple is the positional arguments, anything else the
/// one argument (as `tatzelwurm.serialize.encode_item` reads it).
pub fn item(
    item: &Bound<'_, PyAny>,
    kwargs: Option<&Bound<'_, PyAny>>,
) -> Option<(String, String)> {
    let mut args_json = String::with_capacity(16);
    item_args(&mut args_json, item)?;
    Some((args_json, keywords(kwargs)?))
}

/// Whether `item` would be written by `item` (every value in it plain), found without writing.
pub fn plain_item(item: &Bound<'_, PyAny>, kwargs: Option<&Bound<'_, PyAny>>) -> bool {
    item_args(&mut Check, item).is_some() && keywords_into(&mut Check, kwargs).is_some()
}

/// Writes the positional arguments of one `submit_many` item (see `item`).
fn item_args<O: Out>(out: &mut O, item: &Bound<'_, PyAny>) -> Option<()> {
    if let Ok(args) = item.cast_exact::<PyTuple>() {
        return array(out, args.iter(), 0);
    }
    out.text("[");
    value(out, item, 0)?;
    out.text("]");
    Some(())
}

/// The JSON of keyword arguments: a dict, or `{}` for None.
fn keywords(kwargs: Option<&Bound<'_, PyAny>>) -> Option<String> {
    let mut out = String::with_capacity(16);
    keywords_into(&mut out, kwargs)?;
    Some(out)
}

/// Writes keyword arguments (see `keywords`).
fn keywords_into<O: Out>(out: &mut O, kwargs: Option<&Bound<'_, PyAny>>) -> Option<()> {
    match kwargs {
        Some(kw) if !kw.is_none() => object(out, kw.cast_exact::<PyDict>().ok()?, 0),
        _ => {
            out.text("{}");
            Some(())
        }
    }
}

/// Where a walk of values writes: the JSON text (`String`), or nowhere (`Check`), so that one
/// walk decides both what is plain and what its text is.
trait Out {
    /// Appends text that needs no escaping.
    fn text(&mut self, text: &str);
    /// Appends an integer.
    fn int(&mut self, n: i64);
    /// Appends a finite float, `v` being the Python float (its repr is what `json` writes).
    fn float(&mut self, v: &Bound<'_, PyAny>) -> Option<()>;
    /// Appends a string, quoted and escaped.
    fn string(&mut self, s: &str);
}

impl Out for String {
    fn text(&mut self, text: &str) {
        self.push_str(text);
    }

    fn int(&mut self, n: i64) {
        let _ = write!(self, "{n}");
    }

    fn float(&mut self, v: &Bound<'_, PyAny>) -> Option<()> {
        // Python's repr (shortest round trip, `1e+100`, `1.0`) is what `json` writes.
        self.push_str(&v.repr().ok()?.to_cow().ok()?);
        Some(())
    }

    fn string(&mut self, s: &str) {
        string(self, s);
    }
}

/// Writes nothing: a walk with it only finds whether every value is plain.
struct Check;

impl Out for Check {
    fn text(&mut self, _: &str) {}

    fn int(&mut self, _: i64) {}

    fn float(&mut self, _: &Bound<'_, PyAny>) -> Option<()> {
        Some(())
    }

    fn string(&mut self, _: &str) {}
}

/// Appends the JSON of `v`; None when it is not plain (`out` is then left part written).
fn value<O: Out>(out: &mut O, v: &Bound<'_, PyAny>, depth: usize) -> Option<()> {
    if v.is_none() {
        out.text("null");
    } else if v.is_exact_instance_of::<PyBool>() {
        out.text(if v.is_truthy().ok()? { "true" } else { "false" });
    } else if v.is_exact_instance_of::<PyInt>() {
        out.int(v.extract().ok()?);
    } else if let Ok(s) = v.cast_exact::<PyString>() {
        out.string(&s.to_cow().ok()?);
    } else if v.is_exact_instance_of::<PyFloat>() {
        let f: f64 = v.extract().ok()?;
        if !f.is_finite() {
            return None;
        }
        out.float(v)?;
    } else if depth >= MAX_DEPTH {
        return None;
    } else if let Ok(list) = v.cast_exact::<PyList>() {
        array(out, list.iter(), depth + 1)?;
    } else if let Ok(tuple) = v.cast_exact::<PyTuple>() {
        array(out, tuple.iter(), depth + 1)?;
    } else if let Ok(dict) = v.cast_exact::<PyDict>() {
        object(out, dict, depth + 1)?;
    } else {
        return None;
    }
    Some(())
}

/// Appends `[a,b,...]`.
fn array<'py, O: Out>(
    out: &mut O,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    depth: usize,
) -> Option<()> {
    out.text("[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.text(",");
        }
        value(out, &item, depth)?;
    }
    out.text("]");
    Some(())
}

/// Appends `{"k":v,...}` in the dict's order; None for a key that is not an exact `str`
/// (`json` would write a number's or a bool's text as the key: Python's encoder does that).
fn object<O: Out>(out: &mut O, dict: &Bound<'_, PyDict>, depth: usize) -> Option<()> {
    out.text("{");
    for (i, (key, item)) in dict.iter().enumerate() {
        if i > 0 {
            out.text(",");
        }
        let key = key.cast_exact::<PyString>().ok()?;
        out.string(&key.to_cow().ok()?);
        out.text(":");
        value(out, &item, depth)?;
    }
    out.text("}");
    Some(())
}

/// Appends `s` quoted, escaped as `json` escapes with `ensure_ascii=False`: `"` and `\`, the
/// short escapes `\b \f \n \r \t`, other control characters as `\u00XX`; the rest as it is.
fn string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// The JSON texts `(args, kwargs)` of a call with these positional arguments (a tuple) and
/// keyword arguments (a dict or None), or None when some value is not plain and Python's
/// encoder must write (or refuse) it. `tatzelwurm.serialize.dumps_arguments` tries this first.
#[pyfunction]
pub fn encode_call(
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyAny>>,
) -> Option<(String, String)> {
    call(args, kwargs)
}
