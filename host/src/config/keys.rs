//! Which key a place in a pipeline file is, and where a key is: so that every config
//! error names both its key (`pipeline.linger`, `sinks[1].partials`) and its line,
//! whether it came from parsing (which knows the place) or from validation (which
//! knows the key).
//!
//! A line-by-line reading of TOML's table headers and `key = value` lines, enough for
//! messages: it does not need to be a parser, only to agree with one on files that
//! parse.

/// A line's table (with array-of-tables indices: `sinks[1]`) and its key, if it is a
/// `key = value` line.
struct Line<'a> {
    number: usize,
    start: usize,
    table: String,
    key: Option<&'a str>,
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut table = String::new();
    let mut arrays: std::collections::HashMap<String, usize> = Default::default();
    let mut start = 0;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let line = raw.trim();
        let mut key = None;
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            let name = name.trim().to_owned();
            let n = arrays.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            let name = name.trim();
            // `[sinks.create]` after `[[sinks]]`: a table in the newest element.
            let (first, rest) = name.split_once('.').unwrap_or((name, ""));
            table = match arrays.get(first) {
                Some(n) if !rest.is_empty() => format!("{first}[{}].{rest}", n - 1),
                _ => name.to_owned(),
            };
        } else if !line.starts_with('#') {
            key = line
                .split_once('=')
                .map(|(k, _)| k.trim())
                .filter(|k| !k.is_empty());
        }
        out.push(Line {
            number: i + 1,
            start,
            table: table.clone(),
            key,
        });
        start += raw.len();
    }
    out
}

fn join(table: &str, key: &str) -> String {
    let key = key.trim_matches('"');
    if table.is_empty() {
        key.to_owned()
    } else {
        format!("{table}.{key}")
    }
}

/// The key at byte `offset`: the line's `table.key`, or its table's name for a header
/// (or a line with no key of its own).
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    let all = lines(text);
    let line = all.iter().rev().find(|l| l.start <= offset)?;
    match line.key {
        Some(key) => Some(join(&line.table, key)),
        None if !line.table.is_empty() => Some(line.table.clone()),
        None => None,
    }
}

/// The line `field` (a validation error's key, like `sinks[1].partials`) is written
/// on; for a key not written (a missing setting), the line of the nearest table or
/// key it belongs in.
pub fn line_of(text: &str, field: &str) -> Option<usize> {
    let within = |path: &str| {
        field == path
            || field
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    };
    let mut best: Option<(usize, usize)> = None; // (length matched, line)
    let mut headers = std::collections::HashSet::new();
    for line in lines(text) {
        let (path, number) = match line.key {
            Some(key) => (join(&line.table, key), line.number),
            // A header: the first line of its table.
            None if !line.table.is_empty() && headers.insert(line.table.clone()) => {
                (line.table.clone(), line.number)
            }
            None => continue,
        };
        if within(&path) && best.is_none_or(|(len, _)| path.len() > len) {
            best = Some((path.len(), number));
        }
    }
    best.map(|(_, line)| line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# a pipeline\n[pipeline]\nlinger = \"400000000000y\"\n\n[source]\ntype = \"kafka\"\n\n[[sinks]]\ntype = \"file\"\n\n[[sinks]]\ntype = \"mongodb\"\ninput = \"windows\"\nswap = { a = 1 }\n";

    #[test]
    fn a_place_is_named_by_its_table_and_key() {
        let at = |needle: &str| key_at(TEXT, TEXT.find(needle).unwrap());
        assert_eq!(at("400000"), Some("pipeline.linger".into()));
        assert_eq!(at("\"kafka\""), Some("source.type".into()));
        assert_eq!(at("\"mongodb\""), Some("sinks[1].type".into()));
        assert_eq!(at("[source]"), Some("source".into()));
        assert_eq!(key_at(TEXT, 0), None);
    }

    #[test]
    fn a_key_is_found_or_its_table_is() {
        assert_eq!(line_of(TEXT, "pipeline.linger"), Some(3));
        assert_eq!(line_of(TEXT, "sinks[1].input"), Some(13));
        assert_eq!(
            line_of(TEXT, "sinks[1].partials"),
            Some(11),
            "missing: its table"
        );
        assert_eq!(
            line_of(TEXT, "sinks[1].swap.b"),
            Some(14),
            "in an inline table"
        );
        assert_eq!(line_of(TEXT, "sinks[0].path"), Some(8));
        assert_eq!(line_of(TEXT, "window.size"), None);
    }
}
