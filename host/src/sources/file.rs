//! `type = "file"`: JSON lines from a file, or from every file in a folder (in name
//! order), one record per line. A record's position is the byte offset where its line
//! starts; once the engine acknowledges a line as durable, the offset after it is
//! saved (atomically: temp file, fsync, rename) under the pipeline's state folder, so
//! a restart resumes where it left off. `follow = true` keeps reading lines appended
//! later (and new files in the folder), like `tail -f`: a file that is replaced
//! (another inode, as after a rotation) is read again from its start at the next
//! run; while running, a followed file is read by the handle first opened.
//!
//! A last line with no newline yet is left for later when following (it may still be
//! being written), and read as a whole record otherwise.
//!
//! A file truncated or rewritten in place (`copytruncate` rotation: `cp app.log
//! app.log.1 && : > app.log`) is read again from its start, with a warning, whatever
//! the timing: it is shorter than what was read of it, or its first bytes (up to
//! [`HEAD`], kept as a digest, as Vector's file source keeps a checksum) are not the
//! ones read, even when it has grown past the old offset again by the next poll. The
//! same test is made at a restart against the saved digest. Positions keep growing
//! across such a restart from the start (each content of a file starts at the offset
//! after the last one's), so the engine never takes new lines for replays.
//!
//! Only regular files are read: a FIFO or a device (`/dev/urandom`) is refused at
//! start, never opened (opening a FIFO blocks until a writer comes, and a device never
//! ends). A UTF-8 byte order mark at the start of a file is not part of its first line.

use super::event_time::EventTime;
use super::{Closed, SourceContext, SourceError, SourceEvent, CHUNK};
use crate::dead_letter::DeadLetter;
use crate::duration::Duration;
use crate::field_error::FieldError;
use crate::position::{Ack, Origin, PartitionId, Position};
use crate::record::{now_ms, record};
use serde::Deserialize;
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// A file, or a folder whose files are read in name order (relative to the
    /// pipeline file).
    pub path: PathBuf,
    /// Keep reading appended lines and new files until stopped.
    #[serde(default)]
    pub follow: bool,
    /// How often to look for more when following.
    #[serde(default = "default_poll")]
    pub poll_interval: Duration,
    /// `"message"` (default) is the time the line is read.
    #[serde(default)]
    pub event_time: EventTime,
    /// A longer line is not read into memory: it is skipped, and a dead letter with
    /// its start and size says so.
    #[serde(default = "default_max_line_mb")]
    pub max_line_mb: u64,
}

fn default_max_line_mb() -> u64 {
    16
}

/// How much of a line over `max_line_mb` its dead letter keeps.
const TOO_LONG_PREFIX: usize = 4096;

/// How many lines are read between two looks for a stop (a few hundred µs of work).
const STOP_CHECK: u32 = 256;

fn default_poll() -> Duration {
    Duration::from_millis(250)
}

const POSITIONS_FILE: &str = "file-source-positions.json";

impl FileSourceConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.path.as_os_str().is_empty() {
            return Err(FieldError::new("path", "must not be empty"));
        }
        if self.poll_interval.is_zero() {
            return Err(FieldError::new("poll_interval", "must be more than 0"));
        }
        if !(1..=1024).contains(&self.max_line_mb) {
            return Err(FieldError::new("max_line_mb", "must be between 1 and 1024"));
        }
        Ok(())
    }
}

/// How many of a file's first bytes tell whether it is still the content read.
pub const HEAD: u64 = 256;

/// A UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where to resume a file, and which file it was (its inode, and a digest of its first
/// bytes): a different file, or other content, under the same name is read from its
/// start.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
struct Resume {
    /// Bytes of the file read and acknowledged.
    offset: u64,
    inode: u64,
    /// The position of the file's byte 0 (grows each time it is read from its start
    /// again, so positions never go back).
    #[serde(default)]
    base: u64,
    /// The digest of the file's first bytes, as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    head: Option<Head>,
    /// No position at or past this was handed on (saved before one is): a content
    /// read from its start after a restart starts here, past anything a sink or the
    /// window state may hold, though acknowledgements lag.
    #[serde(default)]
    reserved: u64,
}

/// How far ahead of what is read [`Resume::reserved`] is moved each time it is reached
/// (one saved write per this much read).
const RESERVE: u64 = 64 << 20;

/// A digest of a file's first bytes, as read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
struct Head {
    len: u64,
    sha256: String,
}

impl Head {
    fn of(bytes: &[u8]) -> Head {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(bytes);
        Head {
            len: bytes.len() as u64,
            sha256: d.iter().take(16).map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// The first `len` bytes of `file`, or `None` if it is shorter.
fn read_head(file: &std::fs::File, len: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0; len as usize];
    let mut got = 0;
    while got < bytes.len() {
        match file.read_at(&mut bytes[got..], got as u64)? {
            0 => return Ok(None),
            n => got += n,
        }
    }
    Ok(Some(bytes))
}

/// The saved resume offsets, by file.
struct Saved {
    path: PathBuf,
    offsets: BTreeMap<PathBuf, Resume>,
    dirty: bool,
}

impl Saved {
    fn load(state_dir: &Path) -> Result<Self, String> {
        let path = state_dir.join(POSITIONS_FILE);
        let offsets = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{} is damaged ({e}); delete it to read every file from the start",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(Saved {
            path,
            offsets,
            dirty: false,
        })
    }

    fn store(&mut self) -> Result<(), String> {
        if !self.dirty {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&self.offsets).expect("offsets serialize");
        crate::durable::write_atomically(&self.path, &bytes)
            .map_err(|e| format!("cannot save read positions to {}: {e}", self.path.display()))?;
        self.dirty = false;
        Ok(())
    }
}

/// One file being read.
struct Reader {
    id: PartitionId,
    inode: u64,
    path: PathBuf,
    reader: BufReader<std::fs::File>,
    /// Offset of the next byte to read.
    at: u64,
    /// The position of byte 0 of the content being read.
    base: u64,
    /// The file's first bytes as read (up to [`HEAD`]): if the file no longer starts
    /// with them, it was rewritten in place.
    head: Vec<u8>,
    /// See [`Resume::reserved`].
    reserved: u64,
    /// Lines handed to the engine and not yet acknowledged: (start, end), as byte
    /// offsets (positions are these plus `base`).
    pending: VecDeque<(u64, u64)>,
    /// A line over the cap being skipped: where it starts, and its first bytes.
    too_long: Option<(u64, Vec<u8>)>,
}

impl Reader {
    /// Where to resume this file: after `offset` bytes of the content being read.
    fn resume(&self, offset: u64) -> Resume {
        Resume {
            offset,
            inode: self.inode,
            base: self.base,
            head: Some(Head::of(&self.head)).filter(|h| h.len > 0),
            reserved: self.reserved,
        }
    }
}

struct FileSource {
    ctx: SourceContext,
    config: FileSourceConfig,
    root: PathBuf,
    saved: Saved,
    readers: Vec<Reader>,
    line: Vec<u8>,
    /// Read and not yet handed to the engine (sent in chunks: one wake-up each).
    chunk: Vec<SourceEvent>,
}

impl FileSource {
    fn err(&self, m: String) -> SourceError {
        SourceError::fatal(&self.ctx.name, m)
    }

    /// Files to read now, in name order.
    fn files(&self) -> Result<Vec<PathBuf>, SourceError> {
        let meta =
            std::fs::metadata(&self.root).map_err(|e| io_error(&self.ctx.name, &self.root, e))?;
        if !meta.is_dir() && !meta.is_file() {
            return Err(self.err(format!(
                "{} is not a regular file or a folder (a FIFO, device or socket): the file source reads files that end, so it is not opened",
                self.root.display()
            )));
        }
        if !meta.is_dir() {
            return Ok(vec![self.root.clone()]);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.root)
            .map_err(|e| io_error(&self.ctx.name, &self.root, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    /// Open files not open yet, at their saved offsets.
    fn open_new(&mut self) -> Result<(), SourceError> {
        for path in self.files()? {
            if self.readers.iter().any(|r| r.path == path) {
                continue;
            }
            let mut file =
                std::fs::File::open(&path).map_err(|e| io_error(&self.ctx.name, &path, e))?;
            let meta = file
                .metadata()
                .map_err(|e| io_error(&self.ctx.name, &path, e))?;
            let inode = std::os::unix::fs::MetadataExt::ino(&meta);
            let (mut at, mut base, mut head, mut reserved) = (0, 0, Vec::new(), 0);
            if let Some(saved) = self.saved.offsets.get(&path) {
                let io = |e| io_error(&self.ctx.name, &path, e);
                let read = match &saved.head {
                    None => Some(Vec::new()),
                    Some(h) => read_head(&file, h.len)
                        .map_err(io)?
                        .filter(|bytes| Head::of(bytes) == *h),
                };
                reserved = saved.reserved;
                match read {
                    Some(bytes) if saved.inode == inode && saved.offset <= meta.len() => {
                        (at, base, head) = (saved.offset, saved.base, bytes);
                    }
                    _ => {
                        tracing::warn!(source = %self.ctx.name, "{} is not the file read before (another inode, shorter than its saved offset {}, or other first bytes): reading it from the start", path.display(), saved.offset);
                        base = (saved.base + saved.offset.max(1)).max(saved.reserved);
                    }
                }
            }
            file.seek(SeekFrom::Start(at))
                .map_err(|e| io_error(&self.ctx.name, &path, e))?;
            if at > 0 {
                tracing::info!(source = %self.ctx.name, "resuming {} at byte {at}", path.display());
            }
            let id = self.ctx.partition(Origin::File { path: path.clone() });
            self.readers.push(Reader {
                id,
                inode,
                path,
                reader: BufReader::with_capacity(256 * 1024, file),
                at,
                base,
                head,
                reserved,
                pending: VecDeque::new(),
                too_long: None,
            });
        }
        Ok(())
    }

    /// Whether reader `i`'s file was truncated or rewritten in place since it was read:
    /// shorter than what was read, or other first bytes.
    fn rewritten(&self, i: usize) -> Result<bool, SourceError> {
        let r = &self.readers[i];
        let file = r.reader.get_ref();
        let io = |e| io_error(&self.ctx.name, &r.path, e);
        if file.metadata().map_err(io)?.len() < r.at {
            return Ok(true);
        }
        let now = read_head(file, r.head.len() as u64).map_err(io)?;
        Ok(now.as_deref() != Some(&r.head[..]))
    }

    /// Read reader `i`'s file again from its start, everything read of the old
    /// content made durable first (its positions stay below the new content's).
    fn restart(&mut self, i: usize) -> Result<(), SourceError> {
        self.flush(false)?;
        let r = &mut self.readers[i];
        tracing::warn!(source = %self.ctx.name, "{} was truncated or rewritten in place (a copytruncate rotation?) after {} bytes were read: reading it again from its start", r.path.display(), r.at);
        r.base += r.at.max(1);
        r.at = 0;
        r.head.clear();
        r.too_long = None;
        r.pending.clear();
        r.reader
            .seek(SeekFrom::Start(0))
            .map_err(|e| io_error(&self.ctx.name, &r.path, e))?;
        r.reserved = r.reserved.max(r.base);
        self.saved.offsets.insert(r.path.clone(), r.resume(0));
        self.saved.dirty = true;
        self.saved.store().map_err(|m| self.err(m))
    }

    /// Read what the files have now; `Ok(false)` when the engine stopped taking.
    fn read_available(&mut self) -> Result<bool, SourceError> {
        // A stop is looked for every STOP_CHECK lines, not every line: the check takes
        // a lock (0.5% of the seeds' job's CPU when done once a line).
        let mut lines = 0u32;
        for i in 0..self.readers.len() {
            if self.rewritten(i)? {
                self.restart(i)?;
            }
            loop {
                if lines.is_multiple_of(STOP_CHECK) && self.ctx.is_stopping() {
                    return Ok(true);
                }
                lines = lines.wrapping_add(1);
                self.line.clear();
                let max = self.config.max_line_mb * 1024 * 1024;
                let r = &mut self.readers[i];
                let n = read_line(&mut r.reader, max + 1, &mut self.line)
                    .map_err(|e| io_error(&self.ctx.name, &r.path, e))?;
                if n == 0 {
                    break;
                }
                let reach = r.base + r.at + n as u64;
                if reach > r.reserved {
                    // Saved before any position past the old mark is handed on.
                    r.reserved = reach + RESERVE;
                    let saved = self.saved.offsets.entry(r.path.clone());
                    saved.or_insert_with(|| r.resume(0)).reserved = r.reserved;
                    self.saved.dirty = true;
                    let stored = self.saved.store();
                    stored.map_err(|m| SourceError::fatal(&self.ctx.name, m))?;
                }
                let complete = self.line.last() == Some(&b'\n');
                if r.too_long.is_some() || (!complete && n as u64 > max) {
                    // A line over the cap: consumed piece by piece, never held whole.
                    let at = r.at;
                    let line = &self.line;
                    r.too_long.get_or_insert_with(|| {
                        (at, line[..line.len().min(TOO_LONG_PREFIX)].to_vec())
                    });
                    r.at += n as u64;
                    let at_eof = !complete && n as u64 <= max;
                    if !complete && (!at_eof || self.config.follow) {
                        if at_eof {
                            break; // the rest of it is still to be written
                        }
                        continue;
                    }
                    let (start, prefix) = r.too_long.take().expect("set above");
                    let (id, end) = (r.id, r.at);
                    r.pending.push_back((start, end));
                    let start_position = r.base + start;
                    let reason = format!(
                        "line of {} bytes is longer than max_line_mb ({} MiB); skipped",
                        end - start,
                        self.config.max_line_mb
                    );
                    self.chunk.push(SourceEvent::Dead(DeadLetter::now(
                        "source",
                        "file",
                        record(prefix, now_ms()),
                        Position::new(id, start_position),
                        reason,
                    )));
                    continue;
                }
                if !complete && self.config.follow {
                    // Still being written: read it again, whole, later.
                    r.reader
                        .seek(SeekFrom::Start(r.at))
                        .map_err(|e| io_error(&self.ctx.name, &r.path, e))?;
                    break;
                }
                let (start, end) = (r.at, r.at + n as u64);
                r.at = end;
                if r.head.len() as u64 == start && start < HEAD {
                    // The first bytes as read, not as the file has them now.
                    let more = (HEAD - start).min(n as u64) as usize;
                    r.head.extend_from_slice(&self.line[..more]);
                }
                let (id, position) = (r.id, r.base + start);
                let end_of_text = trim_line(&self.line).len();
                let bom = start == 0 && self.line[..end_of_text].starts_with(BOM);
                let text = &self.line[if bom { BOM.len() } else { 0 }..end_of_text];
                if text.iter().all(u8::is_ascii_whitespace) {
                    // Nothing to send, but the bytes are consumed all the same.
                    self.readers[i].pending.push_back((start, end));
                    continue;
                }
                self.readers[i].pending.push_back((start, end));
                let value = take_text(&mut self.line, bom, end_of_text);
                self.take_line(value, Position::new(id, position));
                if self.chunk.len() >= CHUNK {
                    if self.send().is_err() {
                        return Ok(false);
                    }
                    self.apply_acks()?;
                }
            }
        }
        Ok(self.send().is_ok())
    }

    /// Hand what was read to the engine.
    fn send(&mut self) -> Result<(), Closed> {
        self.ctx.blocking_emit_many(std::mem::take(&mut self.chunk))
    }

    /// Add a line to the chunk.
    fn take_line(&mut self, value: Vec<u8>, position: Position) {
        let event = match self.config.event_time.of_or_else(&value, now_ms) {
            Ok(ts) => SourceEvent::Record(record(value, ts), position),
            Err(reason) => SourceEvent::Dead(DeadLetter::now(
                "source",
                "file",
                record(value, now_ms()),
                position,
                reason,
            )),
        };
        self.chunk.push(event);
    }

    fn take(&mut self, ack: Ack) {
        for reader in &mut self.readers {
            let Some(&durable) = ack.durable.get(&reader.id) else {
                continue;
            };
            let mut resume = None;
            while let Some(&(start, end)) = reader.pending.front() {
                if reader.base + start > durable {
                    break;
                }
                // Every line at or before the durable one, blank ones included.
                resume = Some(end);
                reader.pending.pop_front();
            }
            if let Some(resume) = resume {
                self.saved
                    .offsets
                    .insert(reader.path.clone(), reader.resume(resume));
                self.saved.dirty = true;
            }
        }
    }

    fn apply_acks(&mut self) -> Result<(), SourceError> {
        let acks = self.ctx.try_acks();
        if acks.is_empty() {
            return Ok(());
        }
        acks.into_iter().for_each(|a| self.take(a));
        let stored = self.saved.store();
        stored.map_err(|m| self.err(m))
    }

    /// Barrier, wait for its ack, save.
    fn flush(&mut self, end_of_input: bool) -> Result<(), SourceError> {
        let chunk = std::mem::take(&mut self.chunk);
        for ack in self.ctx.blocking_flush(chunk, end_of_input) {
            self.take(ack);
        }
        let stored = self.saved.store();
        stored.map_err(|m| self.err(m))
    }
}

/// An I/O error of this source, naming the file.
fn io_error(source: &str, path: &Path, e: std::io::Error) -> SourceError {
    SourceError::fatal(source, format!("{}: {e}", path.display()))
}

/// `reader.take(limit).read_until(b'\n', line)`, the newline found with the memchr
/// crate's SIMD search: std's goes a word at a time (1.2% of the seeds' job's CPU).
fn read_line(reader: &mut impl BufRead, limit: u64, line: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut n = 0u64;
    while n < limit {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        let buf = &buf[..buf.len().min((limit - n) as usize)];
        let (used, ended) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.is_empty() {
            // Most lines are found whole in the buffer: then this is their one
            // allocation, of their size, and `take_text` hands it on as the record.
            line.reserve_exact(used);
        }
        line.extend_from_slice(&buf[..used]);
        reader.consume(used);
        n += used as u64;
        if ended {
            break;
        }
    }
    Ok(n as usize)
}

/// The line read into `line`, as a record's value: its bytes up to `end_of_text`,
/// after the BOM if `bom`. The buffer itself is handed on (a line is copied once, from
/// the reader's buffer; a copy of it here was 0.5% of the seeds' job's CPU) and
/// `line` starts the next line empty. A buffer much larger than its text (grown for
/// a longer line before) is shrunk, so no record holds memory it does not use.
fn take_text(line: &mut Vec<u8>, bom: bool, end_of_text: usize) -> Vec<u8> {
    let mut value = std::mem::take(line);
    value.truncate(end_of_text);
    if bom {
        value.drain(..BOM.len());
    }
    if value.capacity() > 2 * value.len() + 64 {
        value.shrink_to_fit();
    }
    value
}

/// The line without its `\n` or `\r\n`.
fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

pub fn run(config: FileSourceConfig, ctx: SourceContext) -> Result<(), SourceError> {
    let root = if config.path.is_absolute() {
        config.path.clone()
    } else {
        ctx.base_dir.join(&config.path)
    };
    let saved = Saved::load(&ctx.state_dir).map_err(|m| SourceError::fatal(&ctx.name, m))?;
    let mut source = FileSource {
        ctx,
        config,
        root,
        saved,
        readers: Vec::new(),
        line: Vec::new(),
        chunk: Vec::new(),
    };
    loop {
        source.open_new()?;
        if !source.read_available()? {
            return Ok(()); // the engine stopped
        }
        source.apply_acks()?;
        if source.ctx.is_stopping() {
            return source.flush(false);
        }
        if !source.config.follow {
            return source.flush(true);
        }
        let wait = *source.config.poll_interval;
        let stopped = source.ctx.sleep_unless_stopping(wait);
        if stopped {
            return source.flush(false);
        }
    }
}

impl super::SourceConnector for FileSourceConfig {
    fn type_name(&self) -> &'static str {
        "file"
    }

    fn kind(&self) -> super::SourceKind {
        super::SourceKind::Resumable
    }

    fn validate(&self) -> Result<(), FieldError> {
        FileSourceConfig::validate(self)
    }

    async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        // Nothing to connect to: a file that cannot be opened fails the source.
        ctx.metrics.set_connected();
        // File reads block: on a thread of its own.
        super::on_own_thread(ctx, move |ctx| run(self, ctx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::{read_line, take_text, trim_line, BOM};
    use std::io::{BufRead, BufReader, Cursor, Read};

    /// What std's `take(limit).read_until(b'\n')` reads, line by line.
    fn std_lines(input: &[u8], cap: usize, limit: u64) -> Vec<Vec<u8>> {
        let mut reader = BufReader::with_capacity(cap, Cursor::new(input.to_vec()));
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = (&mut reader)
                .take(limit)
                .read_until(b'\n', &mut line)
                .unwrap();
            if n == 0 {
                return out;
            }
            out.push(line);
        }
    }

    #[test]
    fn reads_lines_as_std_does_across_buffers_and_the_limit() {
        let input = b"ab\n\ncdefghij\nklmnopqrstuvwxyz\nno newline at the end";
        for cap in 1..12 {
            for limit in 1..30 {
                let mut reader = BufReader::with_capacity(cap, Cursor::new(input.to_vec()));
                let mut ours = Vec::new();
                loop {
                    let mut line = Vec::new();
                    let n = read_line(&mut reader, limit, &mut line).unwrap();
                    assert_eq!(n, line.len());
                    if n == 0 {
                        break;
                    }
                    ours.push(line);
                }
                assert_eq!(
                    ours,
                    std_lines(input, cap, limit),
                    "cap {cap} limit {limit}"
                );
                assert!(reader.fill_buf().unwrap().is_empty());
            }
        }
    }

    #[test]
    fn a_taken_line_is_its_text_alone_and_holds_no_more_than_it_needs() {
        let cases: [(&[u8], bool, &[u8]); 4] = [
            (b"{\"a\":1}\n", false, b"{\"a\":1}"),
            (b"{\"a\":1}\r\n", false, b"{\"a\":1}"),
            (b"\xEF\xBB\xBF{}\n", true, b"{}"),
            (b"no newline", false, b"no newline"),
        ];
        for (read, bom, text) in cases {
            let mut line = Vec::new();
            let mut reader = BufReader::with_capacity(64, Cursor::new(read.to_vec()));
            read_line(&mut reader, 1 << 20, &mut line).unwrap();
            assert_eq!(
                line.capacity(),
                read.len(),
                "one allocation, of the line's size"
            );
            assert_eq!(bom, line.starts_with(BOM));
            let end = trim_line(&line).len();
            assert_eq!(take_text(&mut line, bom, end), text);
            assert!(line.is_empty() && line.capacity() == 0);
        }
        // A buffer grown for a long line is not kept by a short one's record.
        let mut line = Vec::with_capacity(1 << 20);
        line.extend_from_slice(b"short\n");
        let value = take_text(&mut line, false, 5);
        assert_eq!(value, b"short");
        assert!(value.capacity() < 1024, "{}", value.capacity());
    }
}
