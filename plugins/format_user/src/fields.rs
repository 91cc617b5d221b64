//! Field extraction, with errors that name the field (dotted path) and, inside a whole
//! API response, the user's index.

use crate::shape::{Leaf, List, Node, Object};
use serde_json::Value;
use sluice_plugin_sdk::json::find_string_special;
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
    collect_rows(|emit| format_each(value, emit))
}

/// [`format`], each row handed to `emit` as it is made instead of gathered in a list
/// (the plugin puts them straight into its output records: one allocation a user
/// fewer). After an error, the rows handed over before it are to be thrown away.
pub fn format_each(value: &[u8], emit: &mut dyn FnMut(Row)) -> Result<(), FormatError> {
    match crate::fast::parse(value) {
        Some(top) => {
            let done = format_object(&top, value, emit);
            forget_borrowed(top);
            done
        }
        None => format_with_serde(value, emit),
    }
}

/// The rows `format` hands to its `emit`, in a list.
pub(crate) fn collect_rows(
    format: impl FnOnce(&mut dyn FnMut(Row)) -> Result<(), FormatError>,
) -> Result<Vec<Row>, FormatError> {
    let mut rows = Vec::new();
    format(&mut |row| rows.push(row))?;
    Ok(rows)
}

/// Let go of what the fast path parsed without walking it: it borrows every string
/// from the record (no `Cow::Owned` anywhere) and allocates only a response's list
/// of users, so that list's buffer is all there is to free. Dropping the tree
/// field by field cost the job 2% of its instructions.
fn forget_borrowed(mut top: Object) {
    if let Some(List::Arr(users)) = top.results.take() {
        users.into_iter().for_each(std::mem::forget);
    }
    std::mem::forget(top);
}

/// [`format`] by way of serde: every record the fast path gives up on, and all the
/// errors, worded by serde_json where the JSON is at fault.
pub(crate) fn format_with_serde(
    value: &[u8],
    emit: &mut dyn FnMut(Row),
) -> Result<(), FormatError> {
    let first = value.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Not an object: let a full parse say whether it is JSON at all, and what.
        let parsed: Value =
            serde_json::from_slice(value).map_err(|e| FormatError::NotJson(e.to_string()))?;
        return Err(FormatError::WrongType {
            user: None,
            field: "(record)".into(),
            expected: "a JSON object",
            found: kind(&parsed),
        });
    }
    // Checked as UTF-8 once, as a whole, rather than string by string.
    let parsed = match std::str::from_utf8(value) {
        Ok(text) => serde_json::from_str::<Object>(text),
        Err(_) => serde_json::from_slice::<Object>(value),
    };
    match parsed {
        Ok(top) => format_object(&top, value, emit),
        Err(e) => {
            // Valid JSON the fast path refuses (a key given twice): normalise it the
            // way a full parse does, keeping the last copy, and go again.
            let parsed: Value =
                serde_json::from_slice(value).map_err(|_| FormatError::NotJson(e.to_string()))?;
            let normalised = serde_json::to_vec(&parsed).expect("a Value always serializes");
            let top: Object = serde_json::from_slice(&normalised)
                .map_err(|e| FormatError::NotJson(e.to_string()))?;
            format_object(&top, &normalised, emit)
        }
    }
}

pub(crate) fn format_object(
    top: &Object,
    value: &[u8],
    emit: &mut dyn FnMut(Row),
) -> Result<(), FormatError> {
    // Parsed in full only if some user needs an id derived from its content.
    let mut canonical = Canonical::new(value);
    if let Some(err) = &top.error {
        let text = match err {
            Leaf::Str(s) => s.to_string(),
            Leaf::Num(n) => n.to_string(),
            Leaf::Null => "null".into(),
            Leaf::Other(kind) => format!("({kind})"),
        };
        return Err(FormatError::ApiError(text));
    }
    match &top.results {
        None => emit(format_user(top, None, &mut canonical)?),
        Some(List::Arr(users)) => {
            for (i, user) in users.iter().enumerate() {
                let found = match user {
                    Node::Obj(user) => {
                        emit(format_user(user, Some(i), &mut canonical)?);
                        continue;
                    }
                    Node::Null => "null",
                    Node::Other(found) => found,
                };
                return Err(FormatError::WrongType {
                    user: Some(i),
                    field: "(user)".into(),
                    expected: "a JSON object",
                    found,
                });
            }
        }
        Some(List::Null) => return Err(wrong(None, "results", "an array", "null")),
        Some(List::Other(found)) => return Err(wrong(None, "results", "an array", found)),
    }
    Ok(())
}

/// As [`format`], on already-parsed JSON.
pub fn format_value(parsed: &Value) -> Result<Vec<Row>, FormatError> {
    format(parsed.to_string().as_bytes())
}

#[cold]
#[inline(never)]
fn wrong(
    user: Option<usize>,
    field: &str,
    expected: &'static str,
    found: &'static str,
) -> FormatError {
    FormatError::WrongType {
        user,
        field: field.into(),
        expected,
        found,
    }
}

/// The record parsed in full, on demand: ids derived from content need it, and a
/// response with many such users must not be parsed once per user.
struct Canonical<'v> {
    input: &'v [u8],
    parsed: Option<Value>,
}

impl<'v> Canonical<'v> {
    fn new(input: &'v [u8]) -> Self {
        Canonical {
            input,
            parsed: None,
        }
    }

    /// The id when `login.uuid` is missing or invalid: a UUIDv5 of the user object's
    /// canonical (key-sorted) JSON, so the same user always maps to the same id
    /// whatever whitespace or key order it arrived with.
    fn derived_id(&mut self, index: Option<usize>) -> Result<Uuid, FormatError> {
        if self.parsed.is_none() {
            let parsed = serde_json::from_slice(self.input).map_err(|e| {
                FormatError::NotJson(format!("cannot derive an id from the record: {e}"))
            })?;
            self.parsed = Some(parsed);
        }
        let root = self.parsed.as_ref().expect("parsed above");
        let user = match index {
            Some(i) => &root["results"][i],
            None => root,
        };
        Ok(Uuid::new_v5(&id_namespace(), user.to_string().as_bytes()))
    }
}

fn format_user(
    user: &Object,
    index: Option<usize>,
    canonical: &mut Canonical,
) -> Result<Row, FormatError> {
    let get = Getter { user: index };
    let login = get.node(&user.login, "login.uuid").ok();
    let given = match login.and_then(|l| l.uuid.as_ref()) {
        Some(Leaf::Str(text)) => Some(text.as_ref()),
        _ => None,
    };
    let id = match given {
        // What randomuser.me sends: already the id, as it is written.
        Some(text) if is_lower_hyphenated(text) => text.to_owned(),
        _ => {
            let uuid = match given.and_then(|text| Uuid::parse_str(text).ok()) {
                Some(uuid) => uuid,
                None => canonical.derived_id(index)?,
            };
            let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
            uuid.hyphenated().encode_lower(&mut text).to_owned()
        }
    };

    // Each object looked up once, where its first field is read (so an error names
    // the same field as before): a lookup is a call in WebAssembly.
    let location = get.node(&user.location, "location.street.number")?;
    let street = get.node(&location.street, "location.street.number")?;
    // Joined by hand: `format!` costs a formatting call per part.
    let parts = [
        get.scalar(&street.number, "location.street.number")?,
        get.str(&street.name, "location.street.name")?,
        get.str(&location.city, "location.city")?,
        get.scalar(&location.state, "location.state")?,
        get.str(&location.country, "location.country")?,
    ];
    let name = get.node(&user.name, "name.first")?;
    let values: [(&str, &str); 12] = [
        ("id", id.as_str()),
        ("first_name", get.str(&name.first, "name.first")?),
        ("last_name", get.str(&name.last, "name.last")?),
        ("gender", get.str(&user.gender, "gender")?),
        // Written from `parts` in place, below (a String of its own cost the job
        // 0.8% more instructions).
        ("address", ""),
        (
            "post_code",
            get.scalar(&location.postcode, "location.postcode")?,
        ),
        ("email", get.str(&user.email, "email")?),
        (
            "username",
            get.str(
                &get.node(&user.login, "login.username")?.username,
                "login.username",
            )?,
        ),
        (
            "dob",
            get.str(&get.node(&user.dob, "dob.date")?.date, "dob.date")?,
        ),
        (
            "registered_date",
            get.str(
                &get.node(&user.registered, "registered.date")?.date,
                "registered.date",
            )?,
        ),
        ("phone", get.str(&user.phone, "phone")?),
        (
            "picture",
            get.str(
                &get.node(&user.picture, "picture.medium")?.medium,
                "picture.medium",
            )?,
        ),
    ];

    // Written by hand to keep the declared column order and skip building a map. A
    // string borrowed from the input as it was had no escapes there, so it needs
    // none here (JSON has no raw quotes, backslashes or control characters in
    // strings): only the others are looked through.
    let input = canonical.input.as_ptr_range();
    let mut json = String::with_capacity(512);
    // Two copies a column (what goes before the value, the value), written out one
    // after the other: each copy is a call in WebAssembly unless inlined, so the
    // punctuation around the names is copied with them, and a loop over the columns
    // checked the CPU deadline at its head for each.
    #[inline(always)]
    fn push(json: &mut String, input: &std::ops::Range<*const u8>, value: &str) {
        if input.contains(&value.as_ptr()) || value.is_empty() {
            append(json, value);
        } else {
            push_escaped(json, value);
        }
    }
    // Column `i`: what goes before it, then `value`.
    let column = |json: &mut String, i: usize, value: &str| {
        append(json, OPENERS[i]);
        push(json, &input, value);
    };
    let [_, (_, first), (_, last), (_, gender), _, (_, post_code), (_, email), (_, username), (_, dob), (_, registered), (_, phone), (_, picture)] =
        values;
    debug_assert!(values
        .iter()
        .zip(USER_FIELDS)
        .all(|((name, _), want)| *name == want));
    append(&mut json, OPENERS[0]);
    append(&mut json, &id);
    column(&mut json, 1, first);
    column(&mut json, 2, last);
    column(&mut json, 3, gender);
    // "number name, city, state, country"
    column(&mut json, ADDRESS, parts[0]);
    append(&mut json, " ");
    push(&mut json, &input, parts[1]);
    for part in &parts[2..] {
        append(&mut json, ", ");
        push(&mut json, &input, part);
    }
    column(&mut json, 5, post_code);
    column(&mut json, 6, email);
    column(&mut json, 7, username);
    column(&mut json, 8, dob);
    column(&mut json, 9, registered);
    column(&mut json, 10, phone);
    column(&mut json, 11, picture);
    json.push_str("\"}");
    Ok(Row { id, json })
}

/// Append `s` to `out`. In WebAssembly a `push_str` is a `memory.copy`, which
/// wasmtime runs as a call out of the guest into the host, some 37 times a user for
/// strings of a few bytes: those of 4 to 32 go by two loads and two stores that may
/// overlap (the way a C library copies short runs), inside the plugin (2.4% fewer
/// instructions for the seeds' job; the shorter ones too, by 2-byte pairs and single
/// bytes: 0.9% more, as cranelift compiled the bigger function). Always inlined,
/// with the columns written out one by one: 5% fewer instructions for the job; then
/// inlined, 1 to 3 bytes (the address's separators) and 33 to 64 (ids, picture
/// links) by hand as well: 1.3% fewer.
#[inline(always)]
fn append(out: &mut String, s: &str) {
    let n = s.len();
    if n == 0 || n > 64 {
        out.push_str(s);
        return;
    }
    out.reserve(n);
    // SAFETY: `n` bytes are reserved past the end, and every load and store below
    // stays inside `s` and those `n` (the first and last 32, 16, 8 or 4 of them, or
    // bytes 0, n/2 and n-1). What is appended is `s` whole, valid UTF-8, so `out`
    // stays valid UTF-8.
    unsafe {
        let v = out.as_mut_vec();
        let len = v.len();
        let dst = v.as_mut_ptr().add(len);
        let src = s.as_ptr();
        #[inline(always)]
        fn pair<const K: usize>(src: *const u8, dst: *mut u8, n: usize) {
            // SAFETY: as above, K <= n.
            unsafe {
                let head = src.cast::<[u8; K]>().read_unaligned();
                let tail = src.add(n - K).cast::<[u8; K]>().read_unaligned();
                dst.cast::<[u8; K]>().write_unaligned(head);
                dst.add(n - K).cast::<[u8; K]>().write_unaligned(tail);
            }
        }
        match n {
            32.. => pair::<32>(src, dst, n),
            16.. => pair::<16>(src, dst, n),
            8.. => pair::<8>(src, dst, n),
            4.. => pair::<4>(src, dst, n),
            _ => {
                let (first, mid, last) = (*src, *src.add(n / 2), *src.add(n - 1));
                *dst = first;
                *dst.add(n / 2) = mid;
                *dst.add(n - 1) = last;
            }
        }
        v.set_len(len + n);
    }
}

/// Whether `text` is a UUID as the row writes it (36 characters, lower-case hex
/// digits, hyphens at 8, 13, 18 and 23), so it is the id as it stands: parsing it
/// and writing it back, through `fmt`, cost the job 1.2% of its instructions. Each
/// byte's class is looked up and compared with the one expected there, all 36
/// folded into one test (a short loop LLVM unrolls: no branch per byte, and no loop
/// head for WebAssembly to check the CPU deadline at).
fn is_lower_hyphenated(text: &str) -> bool {
    const HEX: u8 = 1;
    const HYPHEN: u8 = 2;
    const CLASS: [u8; 256] = {
        let mut class = [0; 256];
        let mut b = 0;
        while b < 256 {
            class[b] = match b as u8 {
                b'0'..=b'9' | b'a'..=b'f' => HEX,
                b'-' => HYPHEN,
                _ => 0,
            };
            b += 1;
        }
        class
    };
    const EXPECTED: [u8; 36] = {
        let mut expected = [HEX; 36];
        expected[8] = HYPHEN;
        expected[13] = HYPHEN;
        expected[18] = HYPHEN;
        expected[23] = HYPHEN;
        expected
    };
    let Ok(bytes) = <&[u8; 36]>::try_from(text.as_bytes()) else {
        return false;
    };
    let mut off = 0;
    for i in 0..36 {
        off |= CLASS[bytes[i] as usize] ^ EXPECTED[i];
    }
    off == 0
}

/// Where `address` is among the columns.
const ADDRESS: usize = 4;

/// What goes before each column's value: `{"id":"`, then `","first_name":"`, ...
/// (in [`USER_FIELDS`]' order; a test checks they agree).
const OPENERS: [&str; 12] = [
    "{\"id\":\"",
    "\",\"first_name\":\"",
    "\",\"last_name\":\"",
    "\",\"gender\":\"",
    "\",\"address\":\"",
    "\",\"post_code\":\"",
    "\",\"email\":\"",
    "\",\"username\":\"",
    "\",\"dob\":\"",
    "\",\"registered_date\":\"",
    "\",\"phone\":\"",
    "\",\"picture\":\"",
];

/// Append `s` escaped for the inside of a JSON string literal: the runs between
/// characters that need an escape (found with the SDK's 16-byte finder) are copied
/// whole, one copy each, not a loop per character: what makes it cheap in WebAssembly
/// too.
fn push_escaped(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(i) = find_string_special(rest.as_bytes()) {
        // Specials are ASCII, so `i` and `i + 1` are character boundaries.
        out.push_str(&rest[..i]);
        match rest.as_bytes()[i] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            control => out.push_str(&format!("\\u{control:04x}")),
        }
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// Reads required fields and reports errors against their dotted paths.
struct Getter {
    user: Option<usize>,
}

// The getters are inlined into `format_user`, their errors made out of line: a
// `Result` holding a `FormatError` comes back from a WebAssembly function through
// linear memory, a dozen times a user. Always: left to LLVM, `node` stayed a call
// for some types (2.1% more instructions for the job).
impl Getter {
    #[cold]
    #[inline(never)]
    fn missing(&self, path: &str) -> FormatError {
        FormatError::Missing {
            user: self.user,
            field: path.into(),
        }
    }

    /// An object on the way to the field at `path`.
    #[inline(always)]
    fn node<'v, T>(&self, node: &'v Option<Node<T>>, path: &str) -> Result<&'v T, FormatError> {
        match node {
            Some(Node::Obj(t)) => Ok(t),
            None | Some(Node::Null) => Err(self.missing(path)),
            Some(Node::Other(found)) => Err(wrong(self.user, path, "an object on the way", found)),
        }
    }

    #[inline(always)]
    fn leaf<'v, 'a>(
        &self,
        leaf: &'v Option<Leaf<'a>>,
        path: &str,
    ) -> Result<&'v Leaf<'a>, FormatError> {
        match leaf {
            None | Some(Leaf::Null) => Err(self.missing(path)),
            Some(leaf) => Ok(leaf),
        }
    }

    /// A required string.
    #[inline(always)]
    fn str<'v>(&self, leaf: &'v Option<Leaf>, path: &str) -> Result<&'v str, FormatError> {
        match self.leaf(leaf, path)? {
            Leaf::Str(s) => Ok(s.as_ref()),
            Leaf::Num(_) => Err(wrong(self.user, path, "a string", "a number")),
            Leaf::Other(found) => Err(wrong(self.user, path, "a string", found)),
            Leaf::Null => unreachable!("handled by leaf()"),
        }
    }

    /// A required string or number, as text: the API sends postcodes (and some street
    /// numbers and states) as either.
    #[inline(always)]
    fn scalar<'v>(&self, leaf: &'v Option<Leaf>, path: &str) -> Result<&'v str, FormatError> {
        match self.leaf(leaf, path)? {
            Leaf::Str(s) => Ok(s.as_ref()),
            Leaf::Num(n) => Ok(n.as_ref()),
            Leaf::Other(found) => Err(wrong(self.user, path, "a string or a number", found)),
            Leaf::Null => unreachable!("handled by leaf()"),
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
