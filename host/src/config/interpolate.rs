//! `${VAR}` interpolation, so secrets stay out of pipeline files.
//!
//! Done on the text before parsing, which keeps every line and column of the file
//! where it was for error messages. Forms: `${VAR}`, `${VAR:-default}`, and `$${` for
//! a literal `${`. Values are escaped for a TOML basic string (`"..."`), the place a
//! secret goes; a variable naming something that is unset, with no default, is an error.

/// Where an unset variable was used (byte offset into the text) and its name.
#[derive(Debug, PartialEq)]
pub struct Unset {
    pub offset: usize,
    pub name: String,
}

pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, Unset> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                out.push_str("${");
                rest = tail;
                continue;
            };
            let expr = &tail[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let value = lookup(name)
                .or_else(|| default.map(str::to_owned))
                .ok_or(Unset {
                    offset: text.len() - after.len(),
                    name: name.to_owned(),
                })?;
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "USER" => Some("ada".into()),
            "QUOTE" => Some("a\"b\\c".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_defaults_and_escapes() {
        assert_eq!(interpolate("u = \"${USER}\"", env).unwrap(), "u = \"ada\"");
        assert_eq!(interpolate("${NOPE:-x y}", env).unwrap(), "x y");
        assert_eq!(interpolate("${QUOTE}", env).unwrap(), "a\\\"b\\\\c");
        assert_eq!(interpolate("$${USER} $5 ${", env).unwrap(), "${USER} $5 ${");
    }

    #[test]
    fn unset_variable_is_located() {
        let err = interpolate("a = 1\nb = \"${MISSING}\"", env).unwrap_err();
        assert_eq!(
            err,
            Unset {
                offset: 11,
                name: "MISSING".into()
            }
        );
    }
}
