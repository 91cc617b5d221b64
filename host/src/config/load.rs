use super::error::ConfigError;
use super::interpolate::interpolate;
use super::keys::{key_at, line_of};
use super::PipelineConfig;
use std::path::Path;

/// Read, interpolate, parse and validate a pipeline file.
pub fn load(path: &Path) -> Result<PipelineConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text, |name| std::env::var(name).ok())
}

/// As [`load`], on text already read (`path` is used for messages and relative paths).
pub fn parse(
    path: &Path,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<PipelineConfig, ConfigError> {
    let original = text;
    let (text, source_map) = interpolate(original, env).map_err(|refused| {
        let (line, column) = line_column(original, refused.offset);
        ConfigError::Parse {
            path: path.to_owned(),
            line,
            column,
            message: name_the_key(&refused.message, key_at(original, refused.offset)),
        }
    })?;
    let mut config: PipelineConfig = toml::from_str(&text).map_err(|e| {
        let offset = source_map.original(locate(&text, &e));
        let (line, column) = line_column(original, offset);
        ConfigError::Parse {
            path: path.to_owned(),
            line,
            column,
            message: name_the_key(e.message().trim_end(), key_at(original, offset)),
        }
    })?;
    config.file = path.to_owned();
    config.validate().map_err(|e| match e {
        ConfigError::Invalid {
            path,
            line: None,
            field,
            message,
        } => ConfigError::Invalid {
            line: line_of(original, &field),
            path,
            field,
            message,
        },
        other => other,
    })?;
    Ok(config)
}

/// `message`, led by the key it is about unless it names it already (toml's own
/// messages name the key only sometimes: `unknown field `x`` does, a refused value
/// does not).
fn name_the_key(message: &str, key: Option<String>) -> String {
    match key {
        Some(key) => {
            let last = key.rsplit('.').next().unwrap_or(&key);
            let last = last.split('[').next().unwrap_or(last);
            if message.contains(&format!("`{last}`")) {
                message.to_owned()
            } else {
                format!("`{key}`: {message}")
            }
        }
        None => message.to_owned(),
    }
}

/// Where an error is. toml gives a span; for an error inside a tagged table
/// (`[source]`, `[[sinks]]`) the span is the table's header, so look for the place
/// itself, from the span to the next table header: the key of an unknown field, or
/// the one line whose value is the one refused (`invalid value: integer `-1`, ...`).
fn locate(text: &str, e: &toml::de::Error) -> usize {
    let Some(span) = e.span() else { return 0 };
    let unknown = e
        .message()
        .strip_prefix("unknown field `")
        .and_then(|m| m.split('`').next());
    if unknown.is_none() {
        if let Some(at) = refused_value(text, span.clone(), e.message()) {
            return at;
        }
    }
    if let Some(key) = unknown {
        let mut offset = span.start;
        for (i, line) in text[span.start..].split_inclusive('\n').enumerate() {
            let trimmed = line.trim_start();
            if i > 0 && offset >= span.end && trimmed.starts_with('[') {
                break;
            }
            if let Some(after) = trimmed.strip_prefix(key) {
                let after = after.trim_start();
                if after.starts_with('=') || after.starts_with('.') {
                    return offset + (line.len() - trimmed.len());
                }
            }
            offset += line.len();
        }
    }
    span.start
}

/// The start of the one line in the table at `span` whose value is the one an
/// `invalid value: integer `-1`` / `invalid type: ...` message names.
fn refused_value(text: &str, span: std::ops::Range<usize>, message: &str) -> Option<usize> {
    // serde's `invalid value: integer `-1`` or `unknown variant `x``, or our own
    // `invalid duration "soon"`.
    let shown = if ["invalid value", "invalid type", "unknown variant"]
        .iter()
        .any(|m| message.starts_with(m))
    {
        message.split('`').nth(1)?.trim_matches('"')
    } else if message.contains("duration \"") {
        message.split('"').nth(1)?
    } else {
        return None;
    };
    let mut offset = span.start;
    let mut found = None;
    for (i, line) in text[span.start..].split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if i > 0 && offset >= span.end && trimmed.starts_with('[') {
            break;
        }
        let value = trimmed
            .split_once('=')
            .map(|(_, v)| v.trim().trim_matches('"'));
        if value.is_some_and(|v| v == shown || v.split('#').next().map(str::trim) == Some(shown)) {
            if found.is_some() {
                return None; // two candidates: keep the table's header
            }
            found = Some(offset + (line.len() - trimmed.len()));
        }
        offset += line.len();
    }
    found
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}
