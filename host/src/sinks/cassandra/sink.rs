//! The Cassandra writer: each pending record of a batch converted and written as one
//! prepared INSERT, at most `concurrency` at a time.

use super::client::{self, connect, prepare_insert};
use super::row::RowShape;
use super::CassandraConfig;
use crate::record::Record;
use crate::record::PARTITION_HEADER;
use crate::sinks::{Delivery, SinkContext, SinkError};
use futures_util::stream::{self, StreamExt};
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::statement::prepared::PreparedStatement;

pub struct CassandraSink {
    name: String,
    session: Session,
    insert: PreparedStatement,
    shape: RowShape,
    concurrency: usize,
}

/// What one row's write came to.
enum Outcome {
    Written,
    /// The row itself is at fault (a value that does not convert, or that the server
    /// refuses): a dead letter.
    Refused(String),
    /// Worth another try (a timeout, a node down or overloaded).
    Retry(String),
    /// Retrying cannot help any row (no permission, a broken schema).
    Fatal(String),
}

impl CassandraSink {
    pub async fn open(config: &CassandraConfig, ctx: &SinkContext) -> Result<Self, SinkError> {
        let fatal = |m: String| SinkError::fatal(&ctx.name, m);
        let session = connect(&config.connection(), &ctx.base_dir)
            .await
            .map_err(fatal)?;
        let layout = config.layout();
        if let Some(create) = &config.create {
            for cql in client::create_statements(&config.keyspace, &config.table, create, &layout) {
                session
                    .query_unpaged(cql.as_str(), ())
                    .await
                    .map_err(|e| fatal(format!("`{cql}` failed: {e}")))?;
            }
        }
        let columns: Vec<_> = layout
            .columns
            .iter()
            .map(|(n, t)| (n.clone(), *t))
            .collect();
        let insert = prepare_insert(&session, &config.keyspace, &config.table, &columns)
            .await
            .map_err(fatal)?;
        let mut shape = RowShape::new(columns.into_iter().map(|(n, t)| {
            let key = layout.is_key(&n);
            (n, t, key)
        }));
        if let Some(column) = &config.partition_column {
            shape = shape.with_partition_column(column);
        }
        Ok(CassandraSink {
            name: ctx.name.clone(),
            session,
            insert,
            shape,
            concurrency: config.concurrency,
        })
    }

    /// Write every pending record; those that fail for a reason of their own are
    /// rejected, those that may succeed later stay pending (a retryable error).
    pub async fn write(
        &mut self,
        records: &[Record],
        delivery: &mut Delivery,
    ) -> Result<(), SinkError> {
        let (session, insert, shape) = (&self.session, &self.insert, &self.shape);
        // Owned indices: a closure over borrowed ones trips the compiler's higher-ranked
        // lifetime check once the future is spawned.
        let pending: Vec<usize> = delivery.pending().to_vec();
        let writes = pending.into_iter().map(|i| async move {
            let record = &records[i];
            let partition = record
                .headers
                .iter()
                .find(|h| h.name == PARTITION_HEADER)
                .and_then(|h| std::str::from_utf8(&h.value).ok());
            let values = match shape.values(&record.value, partition) {
                Ok(v) => v,
                Err(reason) => return (i, Outcome::Refused(reason)),
            };
            let outcome = match session.execute_unpaged(insert, &values).await {
                Ok(_) => Outcome::Written,
                Err(e) => classify(e),
            };
            (i, outcome)
        });
        let mut outcomes: Vec<Option<Outcome>> = Vec::new();
        outcomes.resize_with(records.len(), || None);
        let mut finished = stream::iter(writes).buffer_unordered(self.concurrency);
        while let Some((i, outcome)) = finished.next().await {
            outcomes[i] = Some(outcome);
        }
        drop(finished);

        let (mut retry, mut fatal) = (None, None);
        let mut retries = 0;
        delivery.settle(|i| match outcomes[i].take() {
            Some(Outcome::Written) => Some(Ok(())),
            Some(Outcome::Refused(reason)) => Some(Err(reason)),
            Some(Outcome::Retry(m)) => {
                retries += 1;
                retry.get_or_insert(m);
                None
            }
            Some(Outcome::Fatal(m)) => {
                fatal.get_or_insert(m);
                None
            }
            None => None,
        });
        if let Some(m) = fatal {
            return Err(SinkError::fatal(&self.name, m));
        }
        match retry {
            Some(m) => Err(SinkError::retryable(
                &self.name,
                format!("{retries} row(s) not written: {m}"),
            )),
            None => Ok(()),
        }
    }
}

/// Sort a failed write: the row's own fault, worth a retry, or hopeless.
fn classify(e: ExecutionError) -> Outcome {
    match &e {
        // Values the driver could not serialize for the prepared types.
        ExecutionError::BadQuery(_) => Outcome::Refused(format!("the driver refused the row: {e}")),
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, message)) => match db {
            DbError::Invalid => Outcome::Refused(format!("Cassandra refused the row: {message}")),
            DbError::SyntaxError
            | DbError::Unauthorized
            | DbError::AuthenticationError
            | DbError::ConfigError
            | DbError::ProtocolError => Outcome::Fatal(format!("Cassandra: {e}")),
            // Unavailable, timeouts, overloaded, bootstrapping, server errors...
            _ => Outcome::Retry(e.to_string()),
        },
        // Broken connections, no connection to any node, client timeouts.
        _ => Outcome::Retry(e.to_string()),
    }
}

impl crate::sinks::Sink for CassandraSink {
    fn write<'a>(
        &'a mut self,
        batch: &'a crate::record::Batch,
        delivery: &'a mut crate::sinks::Delivery,
    ) -> futures_util::future::BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(CassandraSink::write(self, &batch.records, delivery))
    }
}
