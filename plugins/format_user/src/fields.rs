//! Field extraction, with errors that name the field (dotted path) and, inside a whole
//! API response, the user's index.

use serde_json::Value;
use std::fmt;
use uuid::Uuid;

/// The output columns, in order.
pub const USER_FIELDS: [&str; 12] = [
    "id",
    "first_name",
    "last_name",
    "gender",
    "address",
    "post_code",
    "email",
    "username",
    "dob",
    "registered_date",
    "phone",
    "picture",
];

/// Namespace for ids derived from the input when `login.uuid` is missing or invalid:
/// UUIDv5 of a fixed name, so the same input always gets the same id.
fn id_namespace() -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        b"https://github.com/sluice/format_user",
    )
}

/// One formatted user: its id (also used as the record key) and the JSON row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub json: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FormatError {
    /// The record value is not JSON at all.
    NotJson(String),
    /// randomuser.me answered `{"error": "..."}`.
    ApiError(String),
    /// A required field is absent or null.
    Missing { user: Option<usize>, field: String },
    /// A field has the wrong JSON type.
    WrongType {
        user: Option<usize>,
        field: String,
        expected: &'static str,
        found: &'static str,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |user: &Option<usize>| match user {
            Some(i) => format!("results[{i}]."),
            None => String::new(),
        };
        match self {
            FormatError::NotJson(e) => write!(f, "value is not valid JSON: {e}"),
            FormatError::ApiError(e) => write!(f, "randomuser.me answered with an error: {e}"),
            FormatError::Missing { user, field } => {
                write!(f, "missing required field `{}{field}`", at(user))
            }
            FormatError::WrongType {
                user,
                field,
                expected,
                found,
            } => write!(
                f,
                "field `{}{field}`: expected {expected}, found {found}",
                at(user)
            ),
        }
    }
}

impl std::error::Error for FormatError {}

/// Format a record value: a whole API response (one row per user) or one user object.
pub fn format(value: &[u8]) -> Result<Vec<Row>, FormatError> {
    let parsed: Value =
        serde_json::from_slice(value).map_err(|e| FormatError::NotJson(e.to_string()))?;
    format_value(&parsed)
}

/// As [`format`], on already-parsed JSON.
pub fn format_value(parsed: &Value) -> Result<Vec<Row>, FormatError> {
    let obj = parsed.as_object().ok_or(FormatError::WrongType {
        user: None,
        field: "(record)".into(),
        expected: "a JSON object",
        found: kind(parsed),
    })?;
    if let Some(err) = obj.get("error") {
        let text = err
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| err.to_string());
        return Err(FormatError::ApiError(text));
    }
    match obj.get("results") {
        Some(Value::Array(users)) => users
            .iter()
            .enumerate()
            .map(|(i, u)| format_user(u, Some(i)))
            .collect(),
        Some(other) => Err(FormatError::WrongType {
            user: None,
            field: "results".into(),
            expected: "an array",
            found: kind(other),
        }),
        None => Ok(vec![format_user(parsed, None)?]),
    }
}

fn format_user(user: &Value, index: Option<usize>) -> Result<Row, FormatError> {
    let get = Getter {
        root: user,
        user: index,
    };
    let id = match user
        .pointer("/login/uuid")
        .and_then(Value::as_str)
        .map(Uuid::parse_str)
    {
        Some(Ok(uuid)) => uuid,
        // Canonical (key-sorted) bytes of the user object: the same user always maps
        // to the same id, whatever whitespace or key order it arrived with.
        _ => Uuid::new_v5(&id_namespace(), user.to_string().as_bytes()),
    }
    .hyphenated()
    .to_string();

    let address = format!(
        "{} {}, {}, {}, {}",
        get.scalar("location.street.number")?,
        get.str("location.street.name")?,
        get.str("location.city")?,
        get.scalar("location.state")?,
        get.str("location.country")?,
    );
    let values: [(&str, String); 12] = [
        ("id", id.clone()),
        ("first_name", get.str("name.first")?.to_owned()),
        ("last_name", get.str("name.last")?.to_owned()),
        ("gender", get.str("gender")?.to_owned()),
        ("address", address),
        ("post_code", get.scalar("location.postcode")?),
        ("email", get.str("email")?.to_owned()),
        ("username", get.str("login.username")?.to_owned()),
        ("dob", get.str("dob.date")?.to_owned()),
        ("registered_date", get.str("registered.date")?.to_owned()),
        ("phone", get.str("phone")?.to_owned()),
        ("picture", get.str("picture.medium")?.to_owned()),
    ];

    // Written by hand to keep the declared column order (serde_json's map sorts keys).
    let mut json = String::with_capacity(512);
    json.push('{');
    for (i, (name, value)) in values.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push('"');
        json.push_str(name);
        json.push_str("\":");
        json.push_str(&Value::String(value.clone()).to_string());
    }
    json.push('}');
    Ok(Row { id, json })
}

/// Looks up dotted paths in one user object and reports errors against that path.
struct Getter<'a> {
    root: &'a Value,
    user: Option<usize>,
}

impl<'a> Getter<'a> {
    fn lookup(&self, path: &str) -> Result<&'a Value, FormatError> {
        let mut node = self.root;
        for part in path.split('.') {
            node = match node {
                Value::Object(map) => match map.get(part) {
                    Some(Value::Null) | None => return Err(self.missing(path)),
                    Some(v) => v,
                },
                other => {
                    return Err(FormatError::WrongType {
                        user: self.user,
                        field: path.into(),
                        expected: "an object on the way",
                        found: kind(other),
                    })
                }
            };
        }
        Ok(node)
    }

    fn missing(&self, path: &str) -> FormatError {
        FormatError::Missing {
            user: self.user,
            field: path.into(),
        }
    }

    /// A required string.
    fn str(&self, path: &str) -> Result<&'a str, FormatError> {
        match self.lookup(path)? {
            Value::String(s) => Ok(s),
            other => Err(FormatError::WrongType {
                user: self.user,
                field: path.into(),
                expected: "a string",
                found: kind(other),
            }),
        }
    }

    /// A required string or number, as text: the API sends postcodes (and some street
    /// numbers and states) as either.
    fn scalar(&self, path: &str) -> Result<String, FormatError> {
        match self.lookup(path)? {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(FormatError::WrongType {
                user: self.user,
                field: path.into(),
                expected: "a string or a number",
                found: kind(other),
            }),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
