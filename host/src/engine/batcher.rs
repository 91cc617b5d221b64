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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::record;

    fn spawn(size: usize, linger_ms: u64) -> (mpsc::Sender<(Record, u64)>, mpsc::Receiver<Batch>) {
        let (in_tx, in_rx) = mpsc::channel(100);
        let (out_tx, out_rx) = mpsc::channel(100);
        tokio::spawn(run(in_rx, out_tx, size, Duration::from_millis(linger_ms)));
        (in_tx, out_rx)
    }

    #[tokio::test]
    async fn full_batches_go_at_once_and_the_rest_when_the_source_ends() {
        let (tx, mut rx) = spawn(4, 60_000);
        for i in 0..10 {
            tx.send((record(vec![i as u8], 0), i)).await.unwrap();
        }
        drop(tx);
        let mut sizes = Vec::new();
        let mut offsets = Vec::new();
        while let Some(b) = rx.recv().await {
            sizes.push(b.len());
            offsets.extend(b.offsets);
        }
        assert_eq!(sizes, [4, 4, 2]);
        assert_eq!(offsets, (0..10).collect::<Vec<u64>>());
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_goes_after_the_linger() {
        let (tx, mut rx) = spawn(100, 50);
        tx.send((record("a", 0), 0)).await.unwrap();
        tx.send((record("b", 0), 1)).await.unwrap();
        // The clock is paused: it only moves when every task waits, so this is exact.
        let started = tokio::time::Instant::now();
        let batch = rx.recv().await.unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        assert!(!tx.is_closed(), "the batcher keeps running");
    }
}
