//! Avro's binary encoding to and from JSON text, walked along a schema: what the Kafka
//! source hands plugins (JSON) and what the Kafka sink writes (Avro). apache-avro
//! parses the schema; the walk is ours, so that a value that does not fit names the
//! field (a JSON pointer) and no intermediate value tree is built per record.
//!
//! The mappings, both ways (docs/reference.md has the table):
//! - null, boolean, int, long, float, double, string: as in JSON; a float or double
//!   that is NaN or infinite is the string `"NaN"`, `"Infinity"` or `"-Infinity"`;
//! - bytes and fixed: a base64 string (standard alphabet, padded);
//! - enum: its symbol; array, map and record: a JSON array or object;
//! - union: the branch's value as it is (`["null","string"]` gives `null` or
//!   `"text"`), not Avro JSON's `{"string": "text"}`; writing picks the first branch
//!   the value fits;
//! - decimal: a string of the exact number (`"12.30"`); writing also takes a number;
//! - uuid: its string; date: `"2024-03-01"`; time-millis/-micros: `"12:34:56.789"`;
//!   timestamp-millis/-micros/-nanos: RFC 3339 in UTC (`"2024-03-01T12:34:56.789Z"`),
//!   local-timestamp-*: the same without the `Z`; writing also takes the number of
//!   days, or of the unit since the epoch;
//! - duration: `{"months": m, "days": d, "millis": n}`.
//!
//! Writing is strict: a field the schema does not have is refused (it would be
//! dropped without a word), a missing one takes the schema's default or is refused.

use apache_avro::schema::{Name, Schema};
use base64::Engine as _;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;

/// Nesting deeper than this is refused (a recursive schema, hostile bytes).
const MAX_DEPTH: usize = 64;

/// The largest decimal scale taken.
const MAX_SCALE: u32 = 255;

/// A parsed Avro schema, ready to read and write values.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    root: Node,
    records: Arc<[RecordDef]>,
    /// The schema as written, without its spacing: what is registered (Avro's
    /// canonical form would drop the fields' defaults and the logical types, which
    /// the registry's compatibility check and other readers need).
    text: String,
    /// The root record's full name (the record subject name strategies' name).
    record_name: Option<String>,
}

#[derive(Debug, Clone)]
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(Box<Node>),
    Map(Box<Node>),
    Union(Vec<Node>),
    Record(usize),
    Enum(Arc<[String]>),
    Fixed(usize),
    Decimal { scale: u32, fixed: Option<usize> },
    Uuid,
    Date,
    TimeMillis,
    TimeMicros,
    Timestamp { unit: Unit, local: bool },
    Duration,
}

#[derive(Debug, Clone, Copy)]
enum Unit {
    Millis,
    Micros,
    Nanos,
}

#[derive(Debug, Clone)]
struct RecordDef {
    fields: Vec<Field>,
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    node: Node,
    /// The schema's default as JSON (Avro's own JSON encoding), until encoded.
    default: Option<Value>,
    /// The default, encoded (written for a field the value lacks).
    default_bytes: Option<Vec<u8>>,
}

/// A value that does not fit the schema: where (a JSON pointer) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    pub pointer: String,
    pub reason: String,
}

impl std::fmt::Display for Misfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "the value"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.reason)
    }
}

fn misfit(reason: impl Into<String>) -> Misfit {
    Misfit {
        pointer: String::new(),
        reason: reason.into(),
    }
}

impl Misfit {
    /// The same misfit, one level further out (`segment` is a field, key or index).
    fn under(mut self, segment: &str) -> Misfit {
        let escaped = segment.replace('~', "~0").replace('/', "~1");
        self.pointer = format!("/{escaped}{}", self.pointer);
        self
    }
}

impl AvroSchema {
    /// Parse a schema's text; an error says what is wrong, with the line and column
    /// of a JSON syntax error.
    pub fn parse(text: &str) -> Result<AvroSchema, String> {
        let json: Value = serde_json::from_str(text)
            .map_err(|e| format!("not JSON (line {}, column {}): {e}", e.line(), e.column()))?;
        let schema = Schema::parse(&json).map_err(|e| format!("not an Avro schema: {e}"))?;
        let mut names = HashMap::new();
        let mut records = Vec::new();
        let root = build(&schema, &mut names, &mut records)?;
        encode_defaults(&mut records)?;
        let record_name = match &schema {
            Schema::Record(r) => Some(r.name.fullname(None)),
            _ => None,
        };
        Ok(AvroSchema {
            root,
            records: records.into(),
            text: json.to_string(),
            record_name,
        })
    }

    /// The text to register.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn record_name(&self) -> Option<&str> {
        self.record_name.as_deref()
    }

    /// Decode one Avro datum (all of `bytes`) and append it to `out` as JSON text.
    pub fn to_json(&self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut r = Reader {
            buf: bytes,
            at: 0,
            // Every value read costs a step: zero-sized items (nulls, empty records)
            // cannot make a few bytes claim billions of them.
            steps: 16 * bytes.len() + 1024,
            // Zero-byte values with long field names could still make a few bytes
            // into gigabytes of text.
            max_out: out.len() + 32 * bytes.len() + (1 << 20),
        };
        self.read(&self.root, &mut r, out, 0)?;
        if r.at != bytes.len() {
            return Err(format!(
                "{} byte(s) left over after the value (at byte {} of {}): not written with this schema",
                bytes.len() - r.at,
                r.at,
                bytes.len()
            ));
        }
        Ok(())
    }

    /// Encode a JSON value as an Avro datum appended to `out`.
    pub fn from_json(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), Misfit> {
        Writer {
            records: &self.records,
        }
        .write(&self.root, value, out, 0)
    }

    fn read(
        &self,
        node: &Node,
        r: &mut Reader<'_>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        r.step()?;
        if out.len() > r.max_out {
            return Err(format!(
                "decodes to more than {} bytes of JSON: refused",
                r.max_out
            ));
        }
        match node {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Boolean => match r.byte()? {
                0 => out.extend_from_slice(b"false"),
                1 => out.extend_from_slice(b"true"),
                b => return Err(format!("a boolean byte is {b}, not 0 or 1")),
            },
            Node::Int => {
                let n = r.long()?;
                if i32::try_from(n).is_err() {
                    return Err(format!("int {n} is out of range"));
                }
                write_num(out, n);
            }
            Node::Long => write_num(out, r.long()?),
            Node::Float => {
                let b = r.take(4)?;
                let f = f32::from_le_bytes(b.try_into().expect("4 bytes"));
                if f.is_finite() {
                    // The f32's own shortest text: 0.1, not 0.10000000149011612.
                    let _ = serde_json::to_writer(&mut *out, &f);
                } else {
                    write_float(out, f64::from(f));
                }
            }
            Node::Double => {
                let b = r.take(8)?;
                write_float(out, f64::from_le_bytes(b.try_into().expect("8 bytes")));
            }
            Node::Bytes => {
                let b = r.bytes()?;
                write_base64(out, b);
            }
            Node::Fixed(n) => {
                let b = r.take(*n)?;
                write_base64(out, b);
            }
            Node::String | Node::Uuid => {
                let s = r.str()?;
                write_str(out, s);
            }
            Node::Enum(symbols) => {
                let i = r.long()?;
                let s = usize::try_from(i)
                    .ok()
                    .and_then(|i| symbols.get(i))
                    .ok_or_else(|| {
                        format!("enum index {i} is not one of its {} symbols", symbols.len())
                    })?;
                write_str(out, s);
            }
            Node::Array(items) => {
                out.push(b'[');
                let mut first = true;
                while let Some(count) = r.block()? {
                    for _ in 0..count {
                        if !std::mem::take(&mut first) {
                            out.push(b',');
                        }
                        self.read(items, r, out, depth + 1)?;
                    }
                }
                out.push(b']');
            }
            Node::Map(values) => {
                out.push(b'{');
                let mut first = true;
                while let Some(count) = r.block()? {
                    for _ in 0..count {
                        if !std::mem::take(&mut first) {
                            out.push(b',');
                        }
                        let key = r.str()?;
                        write_str(out, key);
                        out.push(b':');
                        self.read(values, r, out, depth + 1)?;
                    }
                }
                out.push(b'}');
            }
            Node::Union(branches) => {
                let i = r.long()?;
                let branch = usize::try_from(i)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| {
                        format!("union branch {i} is not one of its {}", branches.len())
                    })?;
                self.read(branch, r, out, depth + 1)?;
            }
            Node::Record(i) => {
                out.push(b'{');
                for (n, field) in self.records[*i].fields.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    write_str(out, &field.name);
                    out.push(b':');
                    self.read(&field.node, r, out, depth + 1)
                        .map_err(|e| format!("field `{}`: {e}", field.name))?;
                }
                out.push(b'}');
            }
            Node::Decimal { scale, fixed } => {
                let b = match fixed {
                    Some(n) => r.take(*n)?,
                    None => r.bytes()?,
                };
                let unscaled = unscaled_of(b)?;
                write_str(out, &decimal_text(unscaled, *scale));
            }
            Node::Date => {
                let days = r.long()?;
                let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                    .and_then(|e| e.checked_add_signed(chrono::TimeDelta::try_days(days)?))
                    .ok_or_else(|| format!("date {days} days from 1970 is out of range"))?;
                write_str(out, &date.format("%Y-%m-%d").to_string());
            }
            Node::TimeMillis | Node::TimeMicros => {
                let n = r.long()?;
                let micros = if matches!(node, Node::TimeMillis) {
                    n.saturating_mul(1000)
                } else {
                    n
                };
                let time = u32::try_from(micros.div_euclid(1_000_000))
                    .ok()
                    .and_then(|s| {
                        chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                            s,
                            (micros.rem_euclid(1_000_000) * 1000) as u32,
                        )
                    })
                    .ok_or_else(|| format!("time {n} is not within a day"))?;
                let shown = if matches!(node, Node::TimeMillis) {
                    "%H:%M:%S%.3f"
                } else {
                    "%H:%M:%S%.6f"
                };
                write_str(out, &time.format(shown).to_string());
            }
            Node::Timestamp { unit, local } => {
                let n = r.long()?;
                let (secs, nanos) = match unit {
                    Unit::Millis => (n.div_euclid(1000), n.rem_euclid(1000) * 1_000_000),
                    Unit::Micros => (n.div_euclid(1_000_000), n.rem_euclid(1_000_000) * 1000),
                    Unit::Nanos => (n.div_euclid(1_000_000_000), n.rem_euclid(1_000_000_000)),
                };
                let t = chrono::DateTime::from_timestamp(secs, nanos as u32)
                    .ok_or_else(|| format!("timestamp {n} is out of range"))?;
                let digits = match unit {
                    Unit::Millis => "%.3f",
                    Unit::Micros => "%.6f",
                    Unit::Nanos => "%.9f",
                };
                let zone = if *local { "" } else { "Z" };
                let shown = format!("%Y-%m-%dT%H:%M:%S{digits}{zone}");
                write_str(out, &t.naive_utc().format(&shown).to_string());
            }
            Node::Duration => {
                let b = r.take(12)?;
                let part = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
                let _ = write!(
                    out,
                    r#"{{"months":{},"days":{},"millis":{}}}"#,
                    part(0),
                    part(4),
                    part(8)
                );
            }
        }
        Ok(())
    }
}

/// Writes JSON values as Avro along a schema's nodes (its records by index).
struct Writer<'a> {
    records: &'a [RecordDef],
}

impl Writer<'_> {
    fn write(&self, node: &Node, v: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), Misfit> {
        if depth > MAX_DEPTH {
            return Err(misfit(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        match node {
            Node::Null if v.is_null() => {}
            Node::Boolean => out.push(u8::from(
                v.as_bool().ok_or_else(|| expected("a boolean", v))?,
            )),
            Node::Int => {
                let n = v
                    .as_i64()
                    .ok_or_else(|| expected("an integer (Avro int)", v))?;
                i32::try_from(n)
                    .map_err(|_| misfit(format!("{n} does not fit an Avro int (32 bits)")))?;
                write_long(out, n);
            }
            Node::Long => write_long(
                out,
                v.as_i64()
                    .ok_or_else(|| expected("an integer (Avro long)", v))?,
            ),
            Node::Float => {
                let f = float_of(v)?;
                if f.is_finite() && f.abs() > f64::from(f32::MAX) {
                    return Err(misfit(format!("{f} is beyond an Avro float's range")));
                }
                out.extend_from_slice(&(f as f32).to_le_bytes());
            }
            Node::Double => out.extend_from_slice(&float_of(v)?.to_le_bytes()),
            Node::Bytes => {
                let b = base64_of(v)?;
                write_long(out, b.len() as i64);
                out.extend_from_slice(&b);
            }
            Node::Fixed(n) => {
                let b = base64_of(v)?;
                if b.len() != *n {
                    return Err(misfit(format!(
                        "is {} byte(s); the fixed type holds {n}",
                        b.len()
                    )));
                }
                out.extend_from_slice(&b);
            }
            Node::String => write_bytes(
                out,
                v.as_str()
                    .ok_or_else(|| expected("a string", v))?
                    .as_bytes(),
            ),
            Node::Uuid => {
                let s = v.as_str().ok_or_else(|| expected("a UUID string", v))?;
                uuid::Uuid::parse_str(s)
                    .map_err(|e| misfit(format!("`{s}` is not a UUID: {e}")))?;
                write_bytes(out, s.as_bytes());
            }
            Node::Enum(symbols) => {
                let s = v
                    .as_str()
                    .ok_or_else(|| expected("an enum symbol (a string)", v))?;
                let i = symbols.iter().position(|x| x == s).ok_or_else(|| {
                    misfit(format!(
                        "`{s}` is not one of the enum's symbols ({})",
                        symbols.join(", ")
                    ))
                })?;
                write_long(out, i as i64);
            }
            Node::Array(items) => {
                let a = v.as_array().ok_or_else(|| expected("an array", v))?;
                if !a.is_empty() {
                    write_long(out, a.len() as i64);
                    for (i, item) in a.iter().enumerate() {
                        self.write(items, item, out, depth + 1)
                            .map_err(|m| m.under(&i.to_string()))?;
                    }
                }
                out.push(0);
            }
            Node::Map(values) => {
                let m = v
                    .as_object()
                    .ok_or_else(|| expected("an object (Avro map)", v))?;
                if !m.is_empty() {
                    write_long(out, m.len() as i64);
                    for (k, item) in m {
                        write_bytes(out, k.as_bytes());
                        self.write(values, item, out, depth + 1)
                            .map_err(|e| e.under(k))?;
                    }
                }
                out.push(0);
            }
            Node::Union(branches) => return self.write_union(branches, v, out, depth),
            Node::Record(i) => {
                let m = v
                    .as_object()
                    .ok_or_else(|| expected("an object (Avro record)", v))?;
                self.write_record(&self.records[*i], m, out, depth)?;
            }
            Node::Decimal { scale, fixed } => {
                let unscaled = unscaled_from(v, *scale)?;
                let bytes = twos_complement(unscaled, *fixed).ok_or_else(|| {
                    misfit(format!(
                        "{v} does not fit the decimal's {} byte(s)",
                        fixed.unwrap_or(16)
                    ))
                })?;
                if fixed.is_none() {
                    write_long(out, bytes.len() as i64);
                }
                out.extend_from_slice(&bytes);
            }
            Node::Date => {
                let days = date_of(v)?;
                i32::try_from(days)
                    .map_err(|_| misfit(format!("{days} days from 1970 do not fit an Avro int")))?;
                write_long(out, days);
            }
            Node::TimeMillis => write_long(out, time_of(v, 1_000)?),
            Node::TimeMicros => write_long(out, time_of(v, 1_000_000)?),
            Node::Timestamp { unit, local } => write_long(out, timestamp_of(v, *unit, *local)?),
            Node::Duration => {
                let m = v
                    .as_object()
                    .ok_or_else(|| expected(r#"{"months", "days", "millis"}"#, v))?;
                for part in ["months", "days", "millis"] {
                    let n = m
                        .get(part)
                        .and_then(Value::as_u64)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| {
                            misfit("must be a whole number from 0 to 4294967295").under(part)
                        })?;
                    out.extend_from_slice(&n.to_le_bytes());
                }
            }
            Node::Null => return Err(expected("null", v)),
        }
        Ok(())
    }

    fn write_record(
        &self,
        def: &RecordDef,
        m: &Map<String, Value>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), Misfit> {
        let mut found = 0;
        for field in &def.fields {
            match (m.get(&field.name), &field.default_bytes) {
                (Some(value), _) => {
                    found += 1;
                    self.write(&field.node, value, out, depth + 1)
                        .map_err(|e| e.under(&field.name))?;
                }
                (None, Some(default)) => out.extend_from_slice(default),
                (None, None) => {
                    return Err(
                        misfit("is missing, and the schema gives it no default").under(&field.name)
                    )
                }
            }
        }
        if found < m.len() {
            let extra = m
                .keys()
                .find(|k| !def.fields.iter().any(|f| &f.name == *k))
                .map_or("", String::as_str);
            return Err(misfit("is not a field of the schema (it would be dropped)").under(extra));
        }
        Ok(())
    }

    fn write_union(
        &self,
        branches: &[Node],
        v: &Value,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), Misfit> {
        let mark = out.len();
        let mut first = None;
        for (i, b) in branches.iter().enumerate() {
            if !b.may_take(v) {
                continue;
            }
            write_long(out, i as i64);
            match self.write(b, v, out, depth + 1) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    out.truncate(mark);
                    first.get_or_insert(e);
                }
            }
        }
        Err(first.unwrap_or_else(|| {
            let kinds: Vec<&str> = branches.iter().map(Node::kind).collect();
            expected(
                &format!("one of the union's types ({})", kinds.join(", ")),
                v,
            )
        }))
    }
}

impl Node {
    /// Whether a JSON value of this kind could be this type (a cheap first look
    /// before a union tries a branch).
    fn may_take(&self, v: &Value) -> bool {
        match v {
            Value::Null => matches!(self, Node::Null),
            Value::Bool(_) => matches!(self, Node::Boolean),
            Value::Number(_) => matches!(
                self,
                Node::Int
                    | Node::Long
                    | Node::Float
                    | Node::Double
                    | Node::Decimal { .. }
                    | Node::Date
                    | Node::TimeMillis
                    | Node::TimeMicros
                    | Node::Timestamp { .. }
            ),
            Value::String(_) => matches!(
                self,
                Node::String
                    | Node::Bytes
                    | Node::Fixed(_)
                    | Node::Enum(_)
                    | Node::Uuid
                    | Node::Decimal { .. }
                    | Node::Date
                    | Node::TimeMillis
                    | Node::TimeMicros
                    | Node::Timestamp { .. }
                    | Node::Float
                    | Node::Double
            ),
            Value::Array(_) => matches!(self, Node::Array(_)),
            Value::Object(_) => matches!(self, Node::Record(_) | Node::Map(_) | Node::Duration),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Boolean => "boolean",
            Node::Int => "int",
            Node::Long => "long",
            Node::Float => "float",
            Node::Double => "double",
            Node::Bytes => "bytes",
            Node::String => "string",
            Node::Array(_) => "array",
            Node::Map(_) => "map",
            Node::Union(_) => "union",
            Node::Record(_) => "record",
            Node::Enum(_) => "enum",
            Node::Fixed(_) => "fixed",
            Node::Decimal { .. } => "decimal",
            Node::Uuid => "uuid",
            Node::Date => "date",
            Node::TimeMillis | Node::TimeMicros => "time",
            Node::Timestamp { .. } => "timestamp",
            Node::Duration => "duration",
        }
    }
}

/// apache-avro's schema as our tree; named types referred to again are looked up
/// (records by index, so a recursive record is a loop, not an endless tree).
fn build(
    schema: &Schema,
    names: &mut HashMap<Name, Node>,
    records: &mut Vec<RecordDef>,
) -> Result<Node, String> {
    Ok(match schema {
        Schema::Null => Node::Null,
        Schema::Boolean => Node::Boolean,
        Schema::Int => Node::Int,
        Schema::Long => Node::Long,
        Schema::Float => Node::Float,
        Schema::Double => Node::Double,
        Schema::Bytes => Node::Bytes,
        Schema::String => Node::String,
        Schema::Array(a) => Node::Array(Box::new(build(&a.items, names, records)?)),
        Schema::Map(m) => Node::Map(Box::new(build(&m.types, names, records)?)),
        Schema::Union(u) => Node::Union(
            u.variants()
                .iter()
                .map(|s| build(s, names, records))
                .collect::<Result<_, _>>()?,
        ),
        Schema::Record(r) => {
            let index = records.len();
            records.push(RecordDef { fields: Vec::new() });
            names.insert(r.name.clone(), Node::Record(index));
            let mut fields = Vec::with_capacity(r.fields.len());
            for f in &r.fields {
                fields.push(Field {
                    name: f.name.clone(),
                    node: build(&f.schema, names, records)?,
                    default: f.default.clone(),
                    default_bytes: None,
                });
            }
            records[index].fields = fields;
            Node::Record(index)
        }
        Schema::Enum(e) => {
            let node = Node::Enum(e.symbols.clone().into());
            names.insert(e.name.clone(), node.clone());
            node
        }
        Schema::Fixed(f) => {
            let node = Node::Fixed(f.size);
            names.insert(f.name.clone(), node.clone());
            node
        }
        Schema::Decimal(d) => {
            // Scale sizes the text of each value: bounded, as no real decimal needs more.
            let scale = u32::try_from(d.scale)
                .ok()
                .filter(|&s| s <= MAX_SCALE)
                .ok_or_else(|| format!("a decimal's scale of {} is over {MAX_SCALE}", d.scale))?;
            match &*d.inner {
                Schema::Fixed(f) => {
                    let node = Node::Decimal {
                        scale,
                        fixed: Some(f.size),
                    };
                    // The name refers to the decimal fixed type, logical type and all.
                    names.insert(f.name.clone(), node.clone());
                    node
                }
                _ => Node::Decimal { scale, fixed: None },
            }
        }
        Schema::Uuid => Node::Uuid,
        Schema::Date => Node::Date,
        Schema::TimeMillis => Node::TimeMillis,
        Schema::TimeMicros => Node::TimeMicros,
        Schema::TimestampMillis => Node::Timestamp {
            unit: Unit::Millis,
            local: false,
        },
        Schema::TimestampMicros => Node::Timestamp {
            unit: Unit::Micros,
            local: false,
        },
        Schema::TimestampNanos => Node::Timestamp {
            unit: Unit::Nanos,
            local: false,
        },
        Schema::LocalTimestampMillis => Node::Timestamp {
            unit: Unit::Millis,
            local: true,
        },
        Schema::LocalTimestampMicros => Node::Timestamp {
            unit: Unit::Micros,
            local: true,
        },
        Schema::LocalTimestampNanos => Node::Timestamp {
            unit: Unit::Nanos,
            local: true,
        },
        Schema::Duration => Node::Duration,
        Schema::BigDecimal => {
            return Err("the big-decimal logical type is not supported; use decimal".into())
        }
        Schema::Ref { name } => names
            .get(name)
            .cloned()
            .ok_or_else(|| format!("`{}` names no type defined before it", name.fullname(None)))?,
    })
}

/// Each field's default, encoded once. A default is in Avro's own JSON encoding
/// (bytes and fixed as strings of code points 0-255, a union's for its first
/// branch), not in Sluice's mapping; one that does not fit its field refuses the
/// schema.
fn encode_defaults(records: &mut [RecordDef]) -> Result<(), String> {
    for i in 0..records.len() {
        for f in 0..records[i].fields.len() {
            let field = &records[i].fields[f];
            let Some(default) = &field.default else {
                continue;
            };
            let mut bytes = Vec::new();
            write_default(records, &field.node, default, &mut bytes, 0).map_err(|m| {
                format!(
                    "the default of field `{}` does not fit its type: {m}",
                    field.name
                )
            })?;
            records[i].fields[f].default_bytes = Some(bytes);
        }
    }
    Ok(())
}

/// Avro's JSON encoding of bytes and fixed: a string of code points 0-255.
fn latin1(v: &Value) -> Result<Vec<u8>, Misfit> {
    let s = v
        .as_str()
        .ok_or_else(|| expected("a string of code points 0-255", v))?;
    s.chars()
        .map(|c| {
            u8::try_from(u32::from(c))
                .map_err(|_| misfit(format!("`{c}` is not a code point from 0 to 255")))
        })
        .collect()
}

/// A default value (Avro's JSON encoding) as Avro binary.
fn write_default(
    records: &[RecordDef],
    node: &Node,
    v: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), Misfit> {
    if depth > MAX_DEPTH {
        return Err(misfit(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    let number = |v: &Value| v.as_i64().ok_or_else(|| expected("an integer", v));
    match node {
        Node::Union(branches) => {
            // The first branch's, as the specification has it.
            let first = branches
                .first()
                .ok_or_else(|| misfit("the union is empty"))?;
            write_long(out, 0);
            write_default(records, first, v, out, depth + 1)?;
        }
        Node::Bytes | Node::Decimal { fixed: None, .. } => write_bytes(out, &latin1(v)?),
        Node::Fixed(n) | Node::Decimal { fixed: Some(n), .. } => {
            let b = latin1(v)?;
            if b.len() != *n {
                return Err(misfit(format!(
                    "is {} byte(s); the fixed type holds {n}",
                    b.len()
                )));
            }
            out.extend_from_slice(&b);
        }
        Node::Duration => {
            let b = latin1(v)?;
            if b.len() != 12 {
                return Err(misfit("a duration is 12 bytes"));
            }
            out.extend_from_slice(&b);
        }
        Node::Date | Node::TimeMillis => {
            let n = number(v)?;
            i32::try_from(n).map_err(|_| misfit(format!("{n} does not fit an Avro int")))?;
            write_long(out, n);
        }
        Node::TimeMicros | Node::Timestamp { .. } => write_long(out, number(v)?),
        Node::Array(items) => {
            let a = v.as_array().ok_or_else(|| expected("an array", v))?;
            if !a.is_empty() {
                write_long(out, a.len() as i64);
                for item in a {
                    write_default(records, items, item, out, depth + 1)?;
                }
            }
            out.push(0);
        }
        Node::Map(values) => {
            let m = v.as_object().ok_or_else(|| expected("an object", v))?;
            if !m.is_empty() {
                write_long(out, m.len() as i64);
                for (k, item) in m {
                    write_bytes(out, k.as_bytes());
                    write_default(records, values, item, out, depth + 1).map_err(|e| e.under(k))?;
                }
            }
            out.push(0);
        }
        Node::Record(i) => {
            let m = v.as_object().ok_or_else(|| expected("an object", v))?;
            for field in &records[*i].fields {
                match (m.get(&field.name), &field.default) {
                    (Some(x), _) | (None, Some(x)) => {
                        write_default(records, &field.node, x, out, depth + 1)
                            .map_err(|e| e.under(&field.name))?
                    }
                    (None, None) => return Err(misfit("is missing").under(&field.name)),
                }
            }
        }
        // The rest (null, boolean, numbers, strings, enums, uuid) read the same in
        // both encodings.
        other => {
            Writer { records }.write(other, v, out, depth)?;
        }
    }
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    steps: usize,
    max_out: usize,
}

impl<'a> Reader<'a> {
    fn step(&mut self) -> Result<(), String> {
        self.steps = self
            .steps
            .checked_sub(1)
            .ok_or("claims more values than its bytes can hold")?;
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.buf.get(self.at).ok_or_else(|| self.short())?;
        self.at += 1;
        Ok(b)
    }

    fn short(&self) -> String {
        format!("ends early (at byte {} of {})", self.at, self.buf.len())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.short())?;
        let b = &self.buf[self.at..end];
        self.at = end;
        Ok(b)
    }

    /// A zig-zag varint (at most 10 bytes).
    fn long(&mut self) -> Result<i64, String> {
        let mut n: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((n >> 1) as i64 ^ -((n & 1) as i64));
            }
        }
        Err(format!("a varint longer than 10 bytes at byte {}", self.at))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.long()?;
        let n = usize::try_from(n)
            .map_err(|_| format!("a negative length ({n}) at byte {}", self.at))?;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'a str, String> {
        let at = self.at;
        std::str::from_utf8(self.bytes()?)
            .map_err(|e| format!("a string at byte {at} is not UTF-8: {e}"))
    }

    /// The next block's item count; `None` at the end of the array or map.
    fn block(&mut self) -> Result<Option<u64>, String> {
        let n = self.long()?;
        if n == 0 {
            return Ok(None);
        }
        if n < 0 {
            self.long()?; // the block's size in bytes, for skipping: not needed here
        }
        Ok(Some(n.unsigned_abs()))
    }
}

fn write_num(out: &mut Vec<u8>, n: i64) {
    let _ = write!(out, "{n}");
}

fn write_float(out: &mut Vec<u8>, f: f64) {
    if f.is_nan() {
        out.extend_from_slice(br#""NaN""#);
    } else if f.is_infinite() {
        out.extend_from_slice(if f > 0.0 {
            br#""Infinity""#
        } else {
            br#""-Infinity""#
        });
    } else {
        let _ = serde_json::to_writer(&mut *out, &f);
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Most strings need no escape: copied as they are (serde_json's escaper for the rest).
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

fn write_base64(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(b)
            .as_bytes(),
    );
    out.push(b'"');
}

fn write_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

fn expected(what: &str, v: &Value) -> Misfit {
    let found = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    misfit(format!("expected {what}, found {found}"))
}

fn float_of(v: &Value) -> Result<f64, Misfit> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| expected("a number", v)),
        Value::String(s) if s == "NaN" => Ok(f64::NAN),
        Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => Err(expected("a number", v)),
    }
}

fn base64_of(v: &Value) -> Result<Vec<u8>, Misfit> {
    let s = v.as_str().ok_or_else(|| expected("a base64 string", v))?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| misfit(format!("is not base64: {e}")))
}

/// A two's-complement big-endian integer of at most 16 bytes.
fn unscaled_of(b: &[u8]) -> Result<i128, String> {
    // A wide fixed pads small values with sign bytes: those hold no digits.
    let mut b = b;
    while b.len() > 16 && (b[0] == 0 || b[0] == 0xff) && (b[1] & 0x80) == (b[0] & 0x80) {
        b = &b[1..];
    }
    if b.len() > 16 {
        return Err(format!("a decimal of {} bytes is beyond 128 bits", b.len()));
    }
    if b.is_empty() {
        return Ok(0);
    }
    let fill = if b[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut full = [fill; 16];
    full[16 - b.len()..].copy_from_slice(b);
    Ok(i128::from_be_bytes(full))
}

fn decimal_text(unscaled: i128, scale: u32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    let scale = scale as usize;
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// `"12.3"` (or 12.3) at scale 2 as 1230.
fn unscaled_from(v: &Value, scale: u32) -> Result<i128, Misfit> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(expected("a decimal (a string or a number)", v)),
    };
    let bad = || {
        misfit(format!(
            "`{text}` is not a decimal number with at most {scale} decimal place(s)"
        ))
    };
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > scale as usize
    {
        return Err(bad());
    }
    let digits = format!("{int}{frac:0<width$}", width = scale as usize);
    let n: i128 = digits.parse().map_err(|_| bad())?;
    Ok(if neg { -n } else { n })
}

/// The fewest bytes holding `n` (or exactly `fixed`), big-endian two's complement.
fn twos_complement(n: i128, fixed: Option<usize>) -> Option<Vec<u8>> {
    let full = n.to_be_bytes();
    let fill = if n < 0 { 0xff } else { 0 };
    // Drop leading fill bytes while the sign bit stays right.
    let mut start = 0;
    while start < 15 && full[start] == fill && (full[start + 1] & 0x80) == (fill & 0x80) {
        start += 1;
    }
    let minimal = &full[start..];
    match fixed {
        None => Some(minimal.to_vec()),
        Some(size) if size >= minimal.len() => {
            let mut out = vec![fill; size - minimal.len()];
            out.extend_from_slice(minimal);
            Some(out)
        }
        Some(_) => None,
    }
}

fn date_of(v: &Value) -> Result<i64, Misfit> {
    if let Some(n) = v.as_i64() {
        return Ok(n);
    }
    let s = v
        .as_str()
        .ok_or_else(|| expected("a date (\"2024-03-01\" or days since 1970)", v))?;
    let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| misfit(format!("`{s}` is not a date like 2024-03-01: {e}")))?;
    Ok(date
        .signed_duration_since(chrono::NaiveDate::default())
        .num_days())
}

fn time_of(v: &Value, per_second: i64) -> Result<i64, Misfit> {
    if let Some(n) = v.as_i64() {
        let day = 86_400 * per_second;
        return if (0..day).contains(&n) {
            Ok(n)
        } else {
            Err(misfit(format!(
                "{n} is not a time of day (0 to {day} exclusive)"
            )))
        };
    }
    let s = v
        .as_str()
        .ok_or_else(|| expected("a time (\"12:34:56.789\" or a number)", v))?;
    let t = chrono::NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
        .map_err(|e| misfit(format!("`{s}` is not a time like 12:34:56.789: {e}")))?;
    use chrono::Timelike as _;
    Ok(i64::from(t.num_seconds_from_midnight()) * per_second
        + i64::from(t.nanosecond()) / (1_000_000_000 / per_second))
}

fn timestamp_of(v: &Value, unit: Unit, local: bool) -> Result<i64, Misfit> {
    if let Some(n) = v.as_i64() {
        return Ok(n);
    }
    let s = v
        .as_str()
        .ok_or_else(|| expected("a timestamp (RFC 3339 text or a number)", v))?;
    let naive = if local {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").map_err(|e| {
            misfit(format!(
                "`{s}` is not a local timestamp like 2024-03-01T12:34:56.789: {e}"
            ))
        })?
    } else {
        chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|e| {
                misfit(format!(
                    "`{s}` is not an RFC 3339 timestamp like 2024-03-01T12:34:56.789Z: {e}"
                ))
            })?
            .naive_utc()
    };
    let t = naive.and_utc();
    let n = match unit {
        Unit::Millis => Some(t.timestamp_millis()),
        Unit::Micros => Some(t.timestamp_micros()),
        Unit::Nanos => t.timestamp_nanos_opt(),
    };
    n.ok_or_else(|| misfit(format!("`{s}` is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const USER: &str = r#"{"type":"record","name":"User","namespace":"sluice","fields":[
        {"name":"id","type":{"type":"string","logicalType":"uuid"}},
        {"name":"name","type":"string"},
        {"name":"age","type":["null","int"],"default":null},
        {"name":"postcode","type":["int","string"]},
        {"name":"tags","type":{"type":"array","items":"string"}},
        {"name":"scores","type":{"type":"map","values":"double"}},
        {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}},
        {"name":"raw","type":"bytes"},
        {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
        {"name":"born","type":{"type":"int","logicalType":"date"}},
        {"name":"seen","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"next","type":["null","User"],"default":null}
    ]}"#;

    fn sample() -> Value {
        json!({"id":"6f1c2a4e-8b1d-4c55-9a77-0d6a3f1e2b3c","name":"Ann","age":31,"postcode":"AB1 2CD",
            "tags":["x","y"],"scores":{"m":1.5},"kind":"B","raw":"AAEC","price":"-12.30",
            "born":"1990-05-17","seen":"2024-03-01T12:34:56.789Z",
            "next":{"id":"6f1c2a4e-8b1d-4c55-9a77-0d6a3f1e2b3d","name":"Bo","age":null,"postcode":12345,
                "tags":[],"scores":{},"kind":"A","raw":"","price":"0.05","born":"1970-01-01",
                "seen":"1969-12-31T23:59:59.999Z","next":null}})
    }

    #[test]
    fn json_to_avro_and_back_is_the_same_value_and_apache_avro_reads_it() {
        let s = AvroSchema::parse(USER).unwrap();
        let mut bytes = Vec::new();
        s.from_json(&sample(), &mut bytes).unwrap();
        let mut text = Vec::new();
        s.to_json(&bytes, &mut text).unwrap();
        let back: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(back, sample());
        // The reference implementation decodes our bytes to the same values.
        let reference = Schema::parse_str(USER).unwrap();
        let v = apache_avro::from_avro_datum(&reference, &mut &bytes[..], None).unwrap();
        let apache_avro::types::Value::Record(fields) = v else {
            panic!("{v:?}")
        };
        assert_eq!(
            fields[1],
            (
                "name".into(),
                apache_avro::types::Value::String("Ann".into())
            )
        );
        assert_eq!(
            fields[3].1,
            apache_avro::types::Value::Union(
                1,
                Box::new(apache_avro::types::Value::String("AB1 2CD".into()))
            )
        );
        assert_eq!(fields[9].1, apache_avro::types::Value::Date(7441));
        assert_eq!(
            fields[10].1,
            apache_avro::types::Value::TimestampMillis(1_709_296_496_789)
        );
    }

    #[test]
    fn what_apache_avro_writes_we_read() {
        let reference = Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":["null","string"]},{"name":"c","type":{"type":"array","items":"int"}}]}"#).unwrap();
        let value = apache_avro::types::Value::Record(vec![
            ("a".into(), apache_avro::types::Value::Long(-5_000_000_000)),
            (
                "b".into(),
                apache_avro::types::Value::Union(
                    1,
                    Box::new(apache_avro::types::Value::String("é\"".into())),
                ),
            ),
            (
                "c".into(),
                apache_avro::types::Value::Array(vec![
                    apache_avro::types::Value::Int(1),
                    apache_avro::types::Value::Int(-2),
                ]),
            ),
        ]);
        let bytes = apache_avro::to_avro_datum(&reference, value).unwrap();
        let ours = AvroSchema::parse(&reference.canonical_form()).unwrap();
        assert!(!ours.text().is_empty());
        let mut text = Vec::new();
        ours.to_json(&bytes, &mut text).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&text).unwrap(),
            json!({"a":-5_000_000_000i64,"b":"é\"","c":[1,-2]})
        );
    }

    #[test]
    fn a_value_that_does_not_fit_names_the_field() {
        let s = AvroSchema::parse(USER).unwrap();
        let mut v = sample();
        v["next"]["kind"] = json!("C");
        let e = s.from_json(&v, &mut Vec::new()).unwrap_err();
        assert_eq!(e.pointer, "/next/kind");
        assert!(
            e.reason.contains("not one of the enum's symbols (A, B)"),
            "{e}"
        );
        let mut v = sample();
        v.as_object_mut().unwrap().remove("name");
        assert_eq!(
            s.from_json(&v, &mut Vec::new()).unwrap_err().to_string(),
            "/name: is missing, and the schema gives it no default"
        );
        let mut v = sample();
        v["extra"] = json!(1);
        assert_eq!(
            s.from_json(&v, &mut Vec::new()).unwrap_err().pointer,
            "/extra"
        );
        let mut v = sample();
        v["age"] = json!("31");
        assert_eq!(
            s.from_json(&v, &mut Vec::new()).unwrap_err().pointer,
            "/age"
        );
        let mut v = sample();
        v["price"] = json!("1.234");
        assert!(s
            .from_json(&v, &mut Vec::new())
            .unwrap_err()
            .reason
            .contains("at most 2 decimal place"));
        // A missing field with a default takes it.
        let mut v = sample();
        v.as_object_mut().unwrap().remove("age");
        assert!(s.from_json(&v, &mut Vec::new()).is_ok());
    }

    #[test]
    fn hostile_bytes_are_errors_not_hangs_or_crashes() {
        let s = AvroSchema::parse(r#"{"type":"array","items":"null"}"#).unwrap();
        // Claims 2^62 nulls in three bytes.
        let mut claim = Vec::new();
        write_long(&mut claim, 1 << 62);
        let e = s.to_json(&claim, &mut Vec::new()).unwrap_err();
        assert!(e.contains("more values than its bytes"), "{e}");
        let s = AvroSchema::parse(USER).unwrap();
        for bytes in [&b""[..], &[0xff; 20][..], &[0x02, 0x80][..]] {
            assert!(s.to_json(bytes, &mut Vec::new()).is_err());
        }
        // A deep chain of `next` records is cut off, not a stack overflow.
        let linked = AvroSchema::parse(
            r#"{"type":"record","name":"L","fields":[{"name":"n","type":["null","L"]}]}"#,
        )
        .unwrap();
        let e = linked
            .to_json(&vec![2u8; 100_000], &mut Vec::new())
            .unwrap_err();
        assert!(e.contains("deeper than"), "{e}");
        // Every truncation of a good value is an error.
        let mut good = Vec::new();
        s.from_json(&sample(), &mut good).unwrap();
        for cut in 0..good.len() {
            assert!(
                s.to_json(&good[..cut], &mut Vec::new()).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn mappings_of_floats_decimals_and_times() {
        let s = AvroSchema::parse(r#"{"type":"record","name":"T","fields":[
            {"name":"d","type":"double"},
            {"name":"m","type":{"type":"fixed","name":"F","size":4,"logicalType":"decimal","precision":8,"scale":3}},
            {"name":"t","type":{"type":"int","logicalType":"time-millis"}},
            {"name":"u","type":{"type":"long","logicalType":"local-timestamp-micros"}}]}"#).unwrap();
        let v = json!({"d":"NaN","m":"-0.005","t":"01:02:03.004","u":"2024-03-01T00:00:00.000001"});
        let mut bytes = Vec::new();
        s.from_json(&v, &mut bytes).unwrap();
        let mut text = Vec::new();
        s.to_json(&bytes, &mut text).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&text).unwrap(), v);
        assert_eq!(decimal_text(5, 3), "0.005");
        assert_eq!(decimal_text(-123_456, 2), "-1234.56");
        assert!(AvroSchema::parse(
            r#"{"type":"record","name":"X","fields":[{"name":"a","type":"Nope"}]}"#
        )
        .is_err());
        assert!(AvroSchema::parse("{\n  \"type\": \"record\",\n}")
            .unwrap_err()
            .contains("line 3"));
    }

    #[test]
    fn the_shipped_randomuser_schema_takes_every_fixture_user_and_gives_it_back() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let read = |p: &str| std::fs::read_to_string(repo.join(p)).unwrap();
        let schema = AvroSchema::parse(&read("schemas/randomuser_user.avsc")).unwrap();
        assert!(AvroSchema::parse(&read("schemas/user.avsc")).is_ok());
        // Genuine API answers (users.jsonl beside them is made to miss fields).
        let mut users: Vec<Value> = Vec::new();
        for page in ["response_results1.json", "response_results5.json"] {
            let page: Value =
                serde_json::from_str(&read(&format!("tests/fixtures/randomuser/{page}"))).unwrap();
            users.extend(page["results"].as_array().unwrap().iter().cloned());
        }
        assert_eq!(users.len(), 6);
        for user in users {
            let mut bytes = Vec::new();
            schema
                .from_json(&user, &mut bytes)
                .unwrap_or_else(|e| panic!("{e}: {user}"));
            let mut text = Vec::new();
            schema.to_json(&bytes, &mut text).unwrap();
            let back: Value = serde_json::from_slice(&text)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&text)));
            assert_eq!(back, user);
        }
    }

    #[test]
    fn defaults_are_read_as_avro_json_has_them() {
        let s = AvroSchema::parse(
            r#"{"type":"record","name":"D","fields":[
            {"name":"a","type":"int"},
            {"name":"b","type":"bytes","default":"\u00ff\u0000"},
            {"name":"c","type":["string","null"],"default":"x"},
            {"name":"f","type":"float","default":0.1}]}"#,
        )
        .unwrap();
        let mut bytes = Vec::new();
        s.from_json(&json!({"a": 1}), &mut bytes).unwrap();
        let mut text = Vec::new();
        s.to_json(&bytes, &mut text).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&text).unwrap(),
            json!({"a": 1, "b": "/wA=", "c": "x", "f": 0.1})
        );
        // A union's default is its first branch's: one that is not is refused.
        let e = AvroSchema::parse(
            r#"{"type":"record","name":"E","fields":[{"name":"c","type":["null","string"],"default":"x"}]}"#,
        )
        .unwrap_err();
        assert!(e.contains("default of field `c`"), "{e}");
    }

    #[test]
    fn wide_fixed_decimals_small_values_and_time_ranges() {
        let s = AvroSchema::parse(
            r#"{"type":"fixed","name":"W","size":20,"logicalType":"decimal","precision":40,"scale":2}"#,
        )
        .unwrap();
        for v in ["-1.50", "123.45"] {
            let mut bytes = Vec::new();
            s.from_json(&json!(v), &mut bytes).unwrap();
            assert_eq!(bytes.len(), 20);
            let mut text = Vec::new();
            s.to_json(&bytes, &mut text).unwrap();
            assert_eq!(text, format!("\"{v}\"").into_bytes());
        }
        let t = AvroSchema::parse(r#"{"type":"int","logicalType":"time-millis"}"#).unwrap();
        assert!(t.from_json(&json!(86_400_000), &mut Vec::new()).is_err());
        let d = AvroSchema::parse(r#"{"type":"int","logicalType":"date"}"#).unwrap();
        assert!(d.from_json(&json!(1i64 << 40), &mut Vec::new()).is_err());
        let f = AvroSchema::parse(r#""float""#).unwrap();
        assert!(f.from_json(&json!(1e300), &mut Vec::new()).is_err());
    }
}
