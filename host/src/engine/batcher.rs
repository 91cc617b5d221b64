use crate::record::{Batch, Record};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Groups records from the source into batches of at most `size`, sending a partial
/// batch once its first record has waited `linger`. Ends (after sending what it has)
/// when the source side closes; stops early if the downstream side is gone.
pub async fn run(
    mut input: mpsc::Receiver<(Record, u64)>,
    output: mpsc::Sender<Batch>,
    size: usize,
    linger: Duration,
) {
    let mut pending: Vec<(Record, u64)> = Vec::with_capacity(size);
    loop {
        let Some(first) = input.recv().await else {
            return;
        };
        let mut batch = Batch::with_capacity(size);
        batch.push(first.0, first.1);
        let deadline = Instant::now() + linger;
        let mut closed = false;
        while batch.len() < size {
            match tokio::time::timeout_at(
                deadline,
                input.recv_many(&mut pending, size - batch.len()),
            )
            .await
            {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => pending.drain(..).for_each(|(r, o)| batch.push(r, o)),
                Err(_) => break,
            }
        }
        if output.send(batch).await.is_err() || closed {
            return;
        }
    }
}
