//! The MongoDB writer: a batch's pending records as the statements of one `update`
//! (or `insert`) command, `ordered: false`, split only where a command would pass the
//! server's size limits.

use super::client::{connect, create_indexes, redact};
use super::{Mode, MongoConfig, WriteConcern};
use crate::record::Record;
use crate::record::PARTITION_HEADER;
use crate::sinks::{Delivery, SinkContext, SinkError};
use mongodb::bson::{Bson, Document, RawArrayBuf, RawDocumentBuf};
use mongodb::error::ErrorKind;
use mongodb::Database;
use std::collections::HashSet;

/// Statements' bytes per command: under the 16 MiB a command document may have
/// (`maxBsonObjectSize`), with room for the rest of the command.
const MAX_COMMAND_BYTES: usize = 12 * 1024 * 1024;
/// `maxWriteBatchSize`.
const MAX_STATEMENTS: usize = 100_000;
/// The largest document a server stores.
const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// Server error codes worth retrying: not primary, shutting down, network errors,
/// timeouts, write concern failures (the retryable-writes specification's list, plus
/// WriteConcernFailed and WriteConflict).
const RETRYABLE_CODES: [i32; 16] = [
    6, 7, 50, 64, 89, 91, 112, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
];
const DUPLICATE_KEY: i32 = 11000;

pub struct MongoSink {
    name: String,
    partials: bool,
    db: Database,
    collection: String,
    mode: Mode,
    id_field: String,
    write_concern: Document,
    timeout: std::time::Duration,
}

/// Why a command's statements are not settled.
enum Unsettled {
    Retry(String),
    Fatal(String),
}

impl MongoSink {
    pub async fn open(config: &MongoConfig, ctx: &SinkContext) -> Result<Self, SinkError> {
        let fatal = |m: String| SinkError::fatal(&ctx.name, m);
        let client = connect(&config.uri, *config.timeout).await.map_err(fatal)?;
        create_indexes(
            &client,
            &config.database,
            &config.collection,
            &config.indexes,
        )
        .await
        .map_err(fatal)?;
        let mut write_concern = match &config.write_concern {
            WriteConcern::Members(n) => mongodb::bson::doc! { "w": *n as i64 },
            WriteConcern::Tag(t) => mongodb::bson::doc! { "w": t.as_str() },
        };
        write_concern.insert("wtimeout", config.timeout.as_millis_i64());
        if let Some(j) = config.journal {
            write_concern.insert("j", j);
        }
        tracing::debug!(sink = ctx.name, "connected to {}", redact(&config.uri));
        Ok(MongoSink {
            name: ctx.name.clone(),
            partials: config.partials,
            db: client.database(&config.database),
            collection: config.collection.clone(),
            mode: config.mode,
            id_field: config.id_field(ctx.input).to_owned(),
            write_concern,
            timeout: *config.timeout,
        })
    }

    pub async fn write(
        &mut self,
        records: &[Record],
        delivery: &mut Delivery,
    ) -> Result<(), SinkError> {
        let mut outcome: Vec<Option<Result<(), String>>> = vec![None; records.len()];
        let mut built = Vec::with_capacity(delivery.pending().len());
        for &i in delivery.pending() {
            match self.statement(&records[i]) {
                Err(reason) => outcome[i] = Some(Err(reason)),
                Ok((statement, id)) => built.push((i, statement, id)),
            }
        }
        // Upserts replace whole documents, so of several records with one `_id` in a
        // batch only the last matters (and `ordered: false` would apply them in any
        // order): the earlier ones are settled by it.
        let mut seen = HashSet::new();
        let mut statements = Vec::with_capacity(built.len());
        for (i, statement, id) in built.into_iter().rev() {
            if id.is_some_and(|id| !seen.insert(id)) {
                outcome[i] = Some(Ok(()));
            } else {
                statements.push((i, statement));
            }
        }
        statements.reverse();

        // One command, unless the statements pass a command's limits.
        let mut chunks: Vec<Vec<(usize, RawDocumentBuf)>> = vec![Vec::new()];
        let mut bytes = 0;
        for statement in statements {
            let size = statement.1.as_bytes().len();
            let current = chunks.last_mut().expect("never empty");
            if !current.is_empty()
                && (bytes + size > MAX_COMMAND_BYTES || current.len() >= MAX_STATEMENTS)
            {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            chunks.last_mut().expect("never empty").push(statement);
        }
        let mut unsettled = None;
        for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
            match self.send(chunk, delivery.attempt(), &mut outcome).await {
                Ok(()) => {}
                Err(u @ Unsettled::Fatal(_)) => {
                    unsettled = Some(u);
                    break;
                }
                Err(u) => {
                    unsettled.get_or_insert(u);
                }
            }
        }

        let mut left = 0;
        delivery.settle(|i| {
            let settled = outcome[i].take();
            left += usize::from(settled.is_none());
            settled
        });
        match unsettled {
            None if left == 0 => Ok(()),
            None => Err(SinkError::retryable(
                &self.name,
                format!("{left} document(s) not written yet"),
            )),
            Some(Unsettled::Retry(m)) => Err(SinkError::retryable(
                &self.name,
                format!("{left} document(s) not written: {m}"),
            )),
            Some(Unsettled::Fatal(m)) => Err(SinkError::fatal(&self.name, m)),
        }
    }

    /// The statement for one record, and (upserts) its `_id` as raw bytes; or why the
    /// record cannot be a document.
    fn statement(&self, record: &Record) -> Result<(RawDocumentBuf, Option<Vec<u8>>), String> {
        let json: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&record.value)
                .map_err(|e| format!("the record is not a JSON object: {e}"))?;
        if let Some(k) = json.keys().find(|k| k.starts_with('$')) {
            return Err(format!(
                "field `{k}`: a top-level field name may not start with $"
            ));
        }
        let doc = Document::try_from(json)
            .map_err(|e| format!("the record is not valid Extended JSON: {e}"))?;
        let (statement, id) = match self.mode {
            Mode::Insert => (doc, None),
            Mode::Upsert => {
                let id = match doc.get(&self.id_field) {
                    None | Some(Bson::Null) => {
                        return Err(format!(
                            "field `{}` is missing or null (mode = \"upsert\" takes the document's _id from it)",
                            self.id_field
                        ))
                    }
                    Some(id) => id.clone(),
                };
                let partition = match self.partials {
                    false => None,
                    true => Some(partial_label(record)?),
                };
                let key = mongodb::bson::to_vec(
                    &mongodb::bson::doc! { "k": id.clone(), "p": partition.clone() },
                )
                .map_err(|e| e.to_string())?;
                let update = match partition {
                    None => {
                        let mut replacement = Document::new();
                        replacement.insert("_id", id.clone());
                        for (k, v) in doc {
                            if k != "_id" {
                                replacement.insert(k, v);
                            }
                        }
                        replacement.into()
                    }
                    Some(label) => Bson::Array(partial_update(&label, doc)?),
                };
                let update = mongodb::bson::doc! {
                    "q": { "_id": id },
                    "u": update,
                    "upsert": true,
                };
                (update, Some(key))
            }
        };
        let raw = RawDocumentBuf::from_document(&statement).map_err(|e| e.to_string())?;
        if raw.as_bytes().len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "the document is {} bytes, over MongoDB's limit of 16 MiB",
                raw.as_bytes().len()
            ));
        }
        Ok((raw, id))
    }

    /// One command for `chunk`; its statements' outcomes go into `outcome`.
    async fn send(
        &self,
        chunk: Vec<(usize, RawDocumentBuf)>,
        attempt: u32,
        outcome: &mut [Option<Result<(), String>>],
    ) -> Result<(), Unsettled> {
        let (verb, list) = match self.mode {
            Mode::Upsert => ("update", "updates"),
            Mode::Insert => ("insert", "documents"),
        };
        let mut statements = RawArrayBuf::new();
        let mut indices = Vec::with_capacity(chunk.len());
        for (i, statement) in chunk {
            indices.push(i);
            statements.push(statement);
        }
        let mut command = RawDocumentBuf::new();
        command.append(verb, self.collection.as_str());
        command.append(list, statements);
        command.append("ordered", false);
        let write_concern = RawDocumentBuf::from_document(&self.write_concern)
            .map_err(|e| Unsettled::Fatal(e.to_string()))?;
        command.append("writeConcern", write_concern);

        let ran = tokio::time::timeout(self.timeout, self.db.run_raw_command(command)).await;
        let reply = match ran {
            Err(_) => {
                return Err(Unsettled::Retry(format!(
                    "no answer within {:?}",
                    self.timeout
                )))
            }
            Ok(Err(e)) => return Err(classify(&e)),
            Ok(Ok(reply)) => reply,
        };

        let mut errored = vec![false; indices.len()];
        let mut retry = None;
        if let Ok(errors) = reply.get_array("writeErrors") {
            for error in errors.iter().filter_map(Bson::as_document) {
                let Some(n) = error
                    .get("index")
                    .and_then(as_i64)
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|&n| n < indices.len())
                else {
                    continue;
                };
                let code = error.get("code").and_then(as_i64).unwrap_or(0) as i32;
                let message = error.get_str("errmsg").unwrap_or("no message");
                errored[n] = true;
                let i = indices[n];
                if RETRYABLE_CODES.contains(&code) {
                    retry.get_or_insert_with(|| format!("code {code}: {message}"));
                } else if code == DUPLICATE_KEY && self.mode == Mode::Upsert && on_id(error) {
                    // Two upserts of one new _id at once (another host, another
                    // batch): the one that lost finds the document there next time.
                    retry.get_or_insert_with(|| format!("code {code}: {message}"));
                } else if code == DUPLICATE_KEY && self.mode == Mode::Insert && attempt > 0 {
                    // Written by the attempt before, whose answer was lost.
                    outcome[i] = Some(Ok(()));
                } else {
                    outcome[i] = Some(Err(format!(
                        "MongoDB refused the document (code {code}): {message}"
                    )));
                }
            }
        }
        let concern = reply.get_document("writeConcernError").ok().map(|e| {
            format!(
                "write concern not met (code {}): {}",
                e.get("code").and_then(as_i64).unwrap_or(0),
                e.get_str("errmsg").unwrap_or("no message")
            )
        });
        if concern.is_none() {
            for (n, &i) in indices.iter().enumerate() {
                if !errored[n] {
                    outcome[i] = Some(Ok(()));
                }
            }
        }
        match concern.or(retry) {
            Some(m) => Err(Unsettled::Retry(m)),
            None => Ok(()),
        }
    }
}

/// The source partition a partial window result is for (`users_created-3`), as a
/// field name: `.` and `$` would make it a path or an operator.
fn partial_label(record: &Record) -> Result<String, String> {
    let header = record
        .headers
        .iter()
        .find(|h| h.name == PARTITION_HEADER)
        .ok_or_else(|| {
            format!(
                "partials = true takes window results with a {PARTITION_HEADER} header ([window] output = \"partials\"); this record has none"
            )
        })?;
    Ok(String::from_utf8_lossy(&header.value).replace(['.', '$'], "_"))
}

/// The update pipeline that stores one partition's partial result under
/// `partials.<label>` and sets each of its number fields to the sum over every
/// partition's partial (the others as they are): a replay rewrites the same partial,
/// and a total never counts a partition twice, whichever host wrote it.
fn partial_update(label: &str, partial: Document) -> Result<Vec<Bson>, String> {
    use mongodb::bson::doc;
    let mut totals = Document::new();
    for (k, v) in &partial {
        if k == "_id" {
            continue;
        }
        if k.contains('.') {
            return Err(format!(
                "field `{k}`: a partial result's field name may not contain ."
            ));
        }
        let total: Document = match v {
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) => doc! {
                "$sum": { "$map": { "input": { "$objectToArray": "$partials" }, "in": format!("$$this.v.{k}") } }
            },
            other => doc! { "$literal": other.clone() },
        };
        totals.insert(k.clone(), total);
    }
    let mut partial = partial;
    partial.remove("_id");
    Ok(vec![
        doc! { "$set": { format!("partials.{label}"): { "$literal": partial } } }.into(),
        doc! { "$set": totals }.into(),
    ])
}

/// Whether a duplicate-key write error is on `_id` (not on a unique index of the
/// user's): `keyPattern` where the server sends it, else its message.
fn on_id(error: &Document) -> bool {
    match error.get_document("keyPattern") {
        Ok(pattern) => pattern.keys().eq(["_id"]),
        Err(_) => error
            .get_str("errmsg")
            .is_ok_and(|m| m.contains("index: _id_ ")),
    }
}

fn as_i64(b: &Bson) -> Option<i64> {
    match b {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        Bson::Double(f) => Some(*f as i64),
        _ => None,
    }
}

/// A failed command: worth a retry (network, no server, not primary, ...) or not.
fn classify(e: &mongodb::error::Error) -> Unsettled {
    let retryable = match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. } => true,
        ErrorKind::Command(c) => RETRYABLE_CODES.contains(&c.code),
        _ => false,
    } || e.contains_label(mongodb::error::RETRYABLE_WRITE_ERROR);
    if retryable {
        Unsettled::Retry(e.to_string())
    } else {
        Unsettled::Fatal(format!("MongoDB: {e}"))
    }
}

impl crate::sinks::Sink for MongoSink {
    fn write<'a>(
        &'a mut self,
        batch: &'a crate::record::Batch,
        delivery: &'a mut crate::sinks::Delivery,
    ) -> futures_util::future::BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(MongoSink::write(self, &batch.records, delivery))
    }
}
