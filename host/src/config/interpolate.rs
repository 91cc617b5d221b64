//! `${VAR}` interpolation, so secrets stay out of pipeline files.
//!
//! Done on the text before parsing; a [`SourceMap`] maps positions in the result
//! back to the file, so errors still point at the right line and column. Forms:
//! `${VAR}`, `${VAR:-default}`, and `$${` for a literal `${`. Values are escaped for a
//! TOML basic string (`"..."`), the place a secret goes. Comments are left alone.
//! A variable that is unset, with no default, is an error; so is `${...}` inside a
//! single-quoted (literal) string, where TOML has no escapes: a value with a `'`
//! could end the string and write keys of its own, and a `"` or `\` would change
//! meaning. The text is read as TOML reads it ([`Scanner`]) to know where each `$` is.

/// Why the text cannot be interpolated, and where (byte offset into the text).
#[derive(Debug, PartialEq)]
pub struct Refused {
    pub offset: usize,
    pub message: String,
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

/// Where in TOML's syntax a byte is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Bare,
    Comment,
    /// `"..."` or `"""..."""`: escapes work, so a value can be escaped.
    Basic {
        multi: bool,
    },
    /// `'...'` or `'''...'''`: no escapes at all.
    Literal {
        multi: bool,
    },
}

/// Reads TOML's strings and comments forward through the text.
struct Scanner<'a> {
    text: &'a [u8],
    at: usize,
    place: Place,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner {
            text: text.as_bytes(),
            at: 0,
            place: Place::Bare,
        }
    }

    /// The place of the byte at `offset` (offsets asked for only grow).
    fn place_of(&mut self, offset: usize) -> Place {
        let t = self.text;
        let starts = |i: usize, s: &[u8]| t[i..].starts_with(s);
        while self.at < offset {
            let i = self.at;
            let (place, step) = match (self.place, t[i]) {
                (Place::Bare, b'#') => (Place::Comment, 1),
                (Place::Bare, b'"') if starts(i, b"\"\"\"") => (Place::Basic { multi: true }, 3),
                (Place::Bare, b'"') => (Place::Basic { multi: false }, 1),
                (Place::Bare, b'\'') if starts(i, b"'''") => (Place::Literal { multi: true }, 3),
                (Place::Bare, b'\'') => (Place::Literal { multi: false }, 1),
                (Place::Comment, b'\n') => (Place::Bare, 1),
                (Place::Basic { .. }, b'\\') => (self.place, 2),
                (Place::Basic { multi: false }, b'"' | b'\n') => (Place::Bare, 1),
                (Place::Basic { multi: true }, b'"') if starts(i, b"\"\"\"") => (Place::Bare, 3),
                (Place::Literal { multi: false }, b'\'' | b'\n') => (Place::Bare, 1),
                (Place::Literal { multi: true }, b'\'') if starts(i, b"'''") => (Place::Bare, 3),
                (place, _) => (place, 1),
            };
            self.place = place;
            self.at = (i + step).min(t.len());
        }
        self.place
    }
}

pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, SourceMap), Refused> {
    let mut out = String::with_capacity(text.len());
    let mut map = SourceMap::default();
    let mut scanner = Scanner::new(text);
    let mut pos = 0; // input offset of `rest`
    map.spans.push((0, 0, false));
    while let Some(found) = text[pos..].find('$') {
        let at = pos + found;
        out.push_str(&text[pos..at]);
        let after = &text[at..];
        let place = scanner.place_of(at);
        if place == Place::Comment {
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
            if let Place::Literal { .. } = place {
                return Err(Refused {
                    offset: at,
                    message: format!(
                        "`${{{expr}}}` is inside a single-quoted string, where a value cannot be escaped: write the string in double quotes (\"...${{{name}}}...\")"
                    ),
                });
            }
            let value = lookup(name)
                .or_else(|| default.map(str::to_owned))
                .ok_or_else(|| Refused {
                    offset: at,
                    message: format!(
                        "environment variable `{name}` is not set (write `${{{name}:-default}}` to give a default)"
                    ),
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
        assert_eq!(err.offset, 11);
        assert!(
            err.message.contains("`MISSING` is not set"),
            "{}",
            err.message
        );
    }

    #[test]
    fn literal_strings_refuse_variables_and_comments_keep_them() {
        // A value could end a single-quoted string and write keys of its own.
        for text in [
            "a = '${USER}'",
            "a = '''\n x ${USER}'''",
            "a = { b = '1s${USER}' }",
        ] {
            let err = interpolate(text, env).unwrap_err();
            assert_eq!(err.offset, text.find("${").unwrap(), "{text}");
            assert!(err.message.contains("single-quoted"), "{}", err.message);
        }
        // Quotes of the other kind, escapes and comments do not confuse the reading.
        assert_eq!(text("a = \"it's ${USER}\""), "a = \"it's ada\"");
        assert_eq!(text("a = \"\\\" '${USER}\""), "a = \"\\\" 'ada\"");
        assert_eq!(
            text("a = 'x' # it's ${MISSING}\nb = \"${USER}\""),
            "a = 'x' # it's ${MISSING}\nb = \"ada\""
        );
        assert_eq!(
            text("a = \"\"\"\n'${USER}'\"\"\""),
            "a = \"\"\"\n'ada'\"\"\""
        );
        assert_eq!(text("a = '$${USER}'"), "a = '${USER}'");
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
