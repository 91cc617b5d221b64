//! The PostgreSQL writer: a batch's pending records as one `INSERT ... SELECT * FROM
//! UNNEST(...)` (split at `rows_per_statement`), and, when the server refuses a
//! statement for a row's sake, each of its rows alone to find the ones refused.

use super::row::Rows;
use super::table;
use super::{Mode, PostgresConfig};
use crate::postgres::{self as client, describe, pool_error, quoted};
use crate::record::Record;
use crate::sinks::{Delivery, SinkContext, SinkError};
use deadpool_postgres::Pool;
use futures_util::stream::{self, StreamExt};

pub struct PostgresSink {
    name: String,
    /// `schema.table`, for messages.
    table: String,
    pool: Pool,
    statement: String,
    layout: Vec<(String, super::PgType)>,
    key: Vec<usize>,
    mode: Mode,
    rows_per_statement: usize,
    concurrency: usize,
    timeout: std::time::Duration,
}

type Running<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Why a statement did not commit.
enum Failed {
    /// A row's own fault (a constraint, a value the server refuses): try them alone.
    /// `duplicate`: a unique key exists already (23505).
    Rows {
        message: String,
        duplicate: bool,
    },
    Retry(String),
    Fatal(String),
}

impl PostgresSink {
    pub async fn open(config: &PostgresConfig, ctx: &SinkContext) -> Result<Self, SinkError> {
        let fatal = |m: String| SinkError::fatal(&ctx.name, m);
        let pool = client::pool(
            &config.url,
            config.tls.as_ref(),
            &ctx.base_dir,
            config.concurrency,
            *config.timeout,
        )
        .await
        .map_err(fatal)?;
        let layout = config.layout();
        let (schema, table) = crate::postgres::schema_and_table(&config.table);
        let conn = pool.get().await.map_err(|e| fatal(pool_error(&e)))?;
        if config.create {
            for sql in table::create_statements(schema, table, &layout) {
                conn.batch_execute(&sql)
                    .await
                    .map_err(|e| fatal(format!("`{sql}` failed: {}", describe(&e))))?;
            }
        }
        table::check_columns(&conn, schema, table, &layout)
            .await
            .map_err(fatal)?;
        let statement = insert_statement(schema, table, &layout, config.mode);
        // Prepared now: a statement the server cannot plan fails before data flows.
        conn.prepare_cached(&statement)
            .await
            .map_err(|e| fatal(format!("preparing `{statement}`: {}", describe(&e))))?;
        drop(conn);
        let key = layout
            .key
            .iter()
            .map(|k| {
                layout
                    .columns
                    .iter()
                    .position(|(n, _)| n == k)
                    .expect("validated")
            })
            .collect();
        Ok(PostgresSink {
            name: ctx.name.clone(),
            table: format!("{schema}.{table}"),
            pool,
            statement,
            layout: layout.columns,
            key,
            mode: config.mode,
            rows_per_statement: config.rows_per_statement,
            concurrency: config.concurrency,
            timeout: *config.timeout,
        })
    }

    pub async fn write(
        &mut self,
        records: &[Record],
        delivery: &mut Delivery,
    ) -> Result<(), SinkError> {
        let mut outcome: Vec<Option<Result<(), String>>> = vec![None; records.len()];
        // Every pending record converted once, in order; one that does not convert
        // is refused here, naming the column.
        let mut all = Rows::new(&self.layout, &self.key, delivery.pending().len());
        let mut chosen: Vec<(usize, String)> = Vec::with_capacity(delivery.pending().len());
        let mut identities = Vec::with_capacity(delivery.pending().len());
        for &i in delivery.pending() {
            match all.push(&records[i].value) {
                Ok(row) => {
                    chosen.push((i, row.key));
                    identities.push(row.identity);
                }
                Err(reason) => outcome[i] = Some(Err(format!("{}: {reason}", self.table))),
            }
        }
        // Of several records with one key, the last wins (an upsert cannot touch a
        // row twice in one statement): an earlier one counts as written once the
        // last is; if the last is refused, the earlier ones are written next attempt.
        let mut parts = Vec::new();
        let mut replaced: Vec<(usize, usize)> = Vec::new(); // (record, its survivor)
        let mut last = std::collections::HashMap::new();
        if self.mode == Mode::Upsert {
            for (n, identity) in identities.iter().enumerate() {
                last.insert(identity.as_str(), n);
            }
        }
        if last.len() < chosen.len() && self.mode == Mode::Upsert {
            let kept: Vec<(usize, String)> = chosen
                .iter()
                .enumerate()
                .filter_map(|(n, (i, key))| {
                    let survivor = last[identities[n].as_str()];
                    if survivor == n {
                        Some((*i, key.clone()))
                    } else {
                        replaced.push((*i, chosen[survivor].0));
                        None
                    }
                })
                .collect();
            chosen = kept;
        } else if chosen.len() <= self.rows_per_statement {
            // The common case: one statement, the rows as converted above.
            parts.push((chosen.clone(), all));
        }
        if parts.is_empty() {
            for part in chosen.chunks(self.rows_per_statement) {
                parts.push((part.to_vec(), self.rows_of(records, part)));
            }
        }

        // In insert mode, a retry may find a row its earlier attempt wrote (that
        // statement committed, its answer was lost): "exists" is then our own write.
        let rewritten = self.mode == Mode::Insert && delivery.attempt() > 0;
        let this = &*self;
        // Boxed as `dyn Future + Send`: the futures borrow the batch, and without the
        // box the compiler cannot show them Send for every lifetime.
        let running: Vec<Running<'_, _>> = parts
            .into_iter()
            .map(|(part, rows)| -> Running<'_, _> {
                Box::pin(async move { (this.execute(rows, &part).await, part) })
            })
            .collect();
        let mut finished = stream::iter(running).buffer_unordered(self.concurrency);
        let mut tally = Tally::default();
        let mut alone = Vec::new();
        while let Some((result, part)) = finished.next().await {
            match result {
                Ok(()) => part.iter().for_each(|(i, _)| outcome[*i] = Some(Ok(()))),
                Err(Failed::Rows { .. }) if part.len() > 1 => alone.extend(part),
                result => settle_one(result, rewritten, &mut outcome[part[0].0], &mut tally),
            }
        }
        drop(finished);
        // A part the server refused for a row's sake: each row alone, so that only
        // the refused ones are dead letters.
        let singles: Vec<Running<'_, _>> = alone
            .into_iter()
            .map(|row| -> Running<'_, _> {
                Box::pin(async move {
                    let rows = this.rows_of(records, std::slice::from_ref(&row));
                    (row.0, this.execute(rows, std::slice::from_ref(&row)).await)
                })
            })
            .collect();
        let mut finished = stream::iter(singles).buffer_unordered(self.concurrency);
        while let Some((i, result)) = finished.next().await {
            settle_one(result, rewritten, &mut outcome[i], &mut tally);
        }
        drop(finished);
        for (i, survivor) in replaced {
            match &outcome[survivor] {
                Some(Ok(())) => outcome[i] = Some(Ok(())),
                Some(Err(_)) => {
                    tally.retry.get_or_insert_with(|| {
                        "a record whose key a later one in the batch had (now refused) is still to write".into()
                    });
                }
                None => {}
            }
        }

        let mut left = 0;
        delivery.settle(|i| {
            let settled = outcome[i].take();
            left += usize::from(settled.is_none());
            settled
        });
        if let Some(m) = tally.fatal {
            return Err(SinkError::fatal(&self.name, m));
        }
        match tally.retry {
            Some(m) => Err(SinkError::retryable(
                &self.name,
                format!("{left} row(s) not written: {m}"),
            )),
            None => Ok(()),
        }
    }

    /// The rows of `part` (records that converted before).
    fn rows_of(&self, records: &[Record], part: &[(usize, String)]) -> Rows<'_> {
        let mut rows = Rows::new(&self.layout, &self.key, part.len());
        for (i, _) in part {
            let _ = rows.push(&records[*i].value);
        }
        rows
    }

    /// One statement: `rows`, the records `part` names (index and key).
    async fn execute(&self, rows: Rows<'_>, part: &[(usize, String)]) -> Result<(), Failed> {
        let keys: Vec<&str> = part.iter().map(|(_, k)| k.as_str()).collect();
        let conn = self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => classify(&e, &self.table, &keys),
            other => Failed::Retry(format!("no connection: {other}")),
        })?;
        let run = async {
            let statement = conn.prepare_cached(&self.statement).await?;
            conn.execute(&statement, &rows.params()).await
        };
        // The server cancels a statement past `timeout` (statement_timeout, 57014:
        // retried); this one is a backstop for a server that does not answer.
        let backstop = self.timeout + std::time::Duration::from_secs(5);
        match tokio::time::timeout(backstop, run).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e, &self.table, &keys)),
            Err(_) => Err(Failed::Retry(format!(
                "no answer to the statement within {:?}",
                backstop
            ))),
        }
    }
}

/// `INSERT INTO "s"."t" ("a", "b") SELECT * FROM UNNEST($1::uuid[], $2::text[])` and,
/// for upserts, `ON CONFLICT (key) DO UPDATE SET` every other column.
fn insert_statement(schema: &str, table: &str, layout: &super::Layout, mode: Mode) -> String {
    let names: Vec<String> = layout.columns.iter().map(|(n, _)| quoted(n)).collect();
    let arrays: Vec<String> = layout
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, t))| format!("${}::{}[]", i + 1, t.sql()))
        .collect();
    let mut sql = format!(
        "INSERT INTO {}.{} ({}) SELECT * FROM UNNEST({})",
        quoted(schema),
        quoted(table),
        names.join(", "),
        arrays.join(", ")
    );
    if mode == Mode::Upsert {
        let key: Vec<String> = layout.key.iter().map(|k| quoted(k)).collect();
        let set: Vec<String> = layout
            .columns
            .iter()
            .filter(|(n, _)| !layout.key.contains(n))
            .map(|(n, _)| format!("{0} = EXCLUDED.{0}", quoted(n)))
            .collect();
        sql.push_str(&format!(" ON CONFLICT ({})", key.join(", ")));
        if set.is_empty() {
            sql.push_str(" DO NOTHING");
        } else {
            sql.push_str(&format!(" DO UPDATE SET {}", set.join(", ")));
        }
    }
    sql
}

/// The first reasons met to retry the batch, and to give up on it.
#[derive(Default)]
struct Tally {
    retry: Option<String>,
    fatal: Option<String>,
}

/// What a statement for one row means for it (`slot`) or for the batch (`tally`).
/// `rewritten`: an insert retried, where "exists" is the earlier attempt's own write.
fn settle_one(
    result: Result<(), Failed>,
    rewritten: bool,
    slot: &mut Option<Result<(), String>>,
    tally: &mut Tally,
) {
    match result {
        Ok(()) => *slot = Some(Ok(())),
        Err(Failed::Rows {
            duplicate: true, ..
        }) if rewritten => *slot = Some(Ok(())),
        Err(Failed::Rows { message, .. }) => *slot = Some(Err(message)),
        Err(Failed::Retry(m)) => {
            tally.retry.get_or_insert(m);
        }
        Err(Failed::Fatal(m)) => {
            tally.fatal.get_or_insert(m);
        }
    }
}

/// Sort a failed statement: the rows' fault, worth a retry, or hopeless.
fn classify(e: &tokio_postgres::Error, table: &str, keys: &[&str]) -> Failed {
    let Some(db) = e.as_db_error() else {
        // No answer from the server: a connection lost or refused.
        return Failed::Retry(e.to_string());
    };
    let code = db.code().code();
    let rows = match keys {
        [one] => format!("row {one}"),
        many => format!("{} rows", many.len()),
    };
    match &code[..2] {
        // Data exceptions, integrity constraints: a row's own fault.
        // 21000: one statement touched a row twice (keys the same to the server).
        "21" | "22" | "23" => Failed::Rows {
            message: format!("{table}: PostgreSQL refused {rows}: {}", describe(e)),
            duplicate: code == "23505",
        },
        _ if client::is_transient(e) => Failed::Retry(describe(e)),
        _ => Failed::Fatal(format!("{table}: PostgreSQL: {}", describe(e))),
    }
}

impl crate::sinks::Sink for PostgresSink {
    fn write<'a>(
        &'a mut self,
        batch: &'a crate::record::Batch,
        delivery: &'a mut crate::sinks::Delivery,
    ) -> futures_util::future::BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(PostgresSink::write(self, &batch.records, delivery))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_upserts_every_column_but_the_key() {
        let layout = super::super::Layout {
            columns: vec![
                ("id".into(), super::super::PgType::Uuid),
                ("name".into(), super::super::PgType::Text),
            ],
            key: vec!["id".into()],
        };
        assert_eq!(
            insert_statement("public", "u", &layout, Mode::Upsert),
            "INSERT INTO \"public\".\"u\" (\"id\", \"name\") SELECT * FROM UNNEST($1::uuid[], $2::text[]) ON CONFLICT (\"id\") DO UPDATE SET \"name\" = EXCLUDED.\"name\""
        );
        assert!(!insert_statement("public", "u", &layout, Mode::Insert).contains("CONFLICT"));
    }
}
