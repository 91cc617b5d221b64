//! `${VAR}` interpolation, so secrets stay out of pipeline files.
//!
//! Done on the text before parsing; a [`SourceMap`] maps positions in the result
//! back to the file, so errors still point at the right line and column. Forms:
//! `${VAR}`, `${VAR:-default}`, and `$${` for a literal `${`. Values are escaped for a
//! TOML basic string (`"..."`), the place a secret goes. Comment lines are left alone.
//! A variable that is unset, with no default, is an error.

/// Where an unset variable was used (byte offset into the text) and its name.
#[derive(Debug, PartialEq)]
pub struct Unset {
    pub offset: usize,
    pub name: String,
}

/// Positions in the interpolated text -> positions in the original.
#[derive(Debug, Default)]
pub struct SourceMap {
    /// `(output offset, input offset, is a substituted value)`, in order.
    spans: Vec<(usize, usize, bool)>,
}

impl SourceMap {
    pub fn original(&self, offset: usize) -> usize {
        let i = self.spans.partition_point(|&(out, _, _)| out <= offset);
        match i.checked_sub(1).map(|i| self.spans[i]) {
            None => offset,
            // Inside a substituted value: point at its `${`.
            Some((_, input, true)) => input,
            Some((out, input, false)) => input + (offset - out),
        }
    }
}

pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, SourceMap), Unset> {
    let mut out = String::with_capacity(text.len());
    let mut map = SourceMap::default();
    let mut pos = 0; // input offset of `rest`
    map.spans.push((0, 0, false));
    while let Some(found) = text[pos..].find('$') {
        let at = pos + found;
        out.push_str(&text[pos..at]);
        let after = &text[at..];
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let in_comment = text[line_start..at].trim_start().starts_with('#');
        if in_comment {
            out.push('$');
            pos = at + 1;
        } else if after.starts_with("$${") {
            out.push_str("${");
            pos = at + 3;
            map.spans.push((out.len(), pos, false));
        } else if let Some(end) = after.strip_prefix("${").and_then(|t| t.find('}')) {
            let expr = &after[2..2 + end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let value = lookup(name)
                .or_else(|| default.map(str::to_owned))
                .ok_or(Unset {
                    offset: at,
                    name: name.to_owned(),
                })?;
            map.spans.push((out.len(), at, true));
            escape_into(&value, &mut out);
            pos = at + 2 + end + 1;
            map.spans.push((out.len(), pos, false));
        } else {
            out.push('$');
            pos = at + 1;
        }
    }
    out.push_str(&text[pos..]);
    Ok((out, map))
}

/// Escape for a TOML basic string: quotes, backslashes and every control character.
fn escape_into(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "USER" => Some("ada".into()),
            "QUOTE" => Some("a\"b\\c\r\n".into()),
            "LONG" => Some("x".repeat(40)),
            _ => None,
        }
    }

    fn text(s: &str) -> String {
        interpolate(s, env).unwrap().0
    }

    #[test]
    fn substitutes_defaults_and_escapes() {
        assert_eq!(text("u = \"${USER}\""), "u = \"ada\"");
        assert_eq!(text("${NOPE:-x y}"), "x y");
        assert_eq!(text("${QUOTE}"), "a\\\"b\\\\c\\u000D\\u000A");
        assert_eq!(text("$${USER} $5 ${"), "${USER} $5 ${");
    }

    #[test]
    fn comments_are_left_alone() {
        assert_eq!(
            text("  # uses ${MISSING}\nu = \"${USER}\""),
            "  # uses ${MISSING}\nu = \"ada\""
        );
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

    #[test]
    fn positions_map_back_to_the_original() {
        let original = "a = \"${LONG}\" b = 1";
        let (out, map) = interpolate(original, env).unwrap();
        let b = out.find("b =").unwrap();
        assert_eq!(map.original(b), original.find("b =").unwrap());
        assert_eq!(
            map.original(out.find('x').unwrap() + 5),
            original.find("${").unwrap()
        );
        assert_eq!(map.original(1), 1);
    }
}
