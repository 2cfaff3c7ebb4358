//! The one rule for naming a task's function, shared by every program that checks it: the
//! command line and the Python client before they send, the coordinator before it stores.
//! (The slot's Python only splits the name it is handed.) Not on the wire itself.

/// Checks that `name` is `package.module:function` or `path/to/file.py:function`; the error is
/// one sentence that says how to write it.
pub fn check_function(name: &str) -> Result<(), String> {
    let well_formed = match name.rsplit_once(':') {
        Some((module, function)) => is_identifier(function) && is_module(module),
        None => false,
    };
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a function a worker can import; write `package.module:function` or `path/to/file.py:function`"
        ))
    }
}

/// A dotted module path, or any non-empty path of a `.py` file.
fn is_module(module: &str) -> bool {
    if module.ends_with(".py") {
        return module.len() > ".py".len();
    }
    module.split('.').all(is_identifier)
}

/// A Python identifier (letters, digits and underscores, not starting with a digit).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first == '_' || first.is_alphabetic() => {
            chars.all(|c| c == '_' || c.is_alphanumeric())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Module paths and file paths pass; anything a worker could not import is refused with a
    /// sentence that shows both ways of writing it.
    #[test]
    fn function_shapes() {
        for good in [
            "examples.words:count",
            "m:f",
            "path/to/file.py:main",
            "./t.py:_run",
            "pkg.sub:f2",
            "/abs/dir/script.py:fn",
        ] {
            assert!(check_function(good).is_ok(), "{good}");
        }
        for bad in [
            "count", "m:", ":f", "m:2f", "a..b:f", "m:f-g", ".py:f", "m.f", "",
        ] {
            let err = check_function(bad).unwrap_err();
            assert!(err.contains("package.module:function"), "{bad}: {err}");
            assert!(err.contains("path/to/file.py:function"), "{bad}: {err}");
        }
    }
}
