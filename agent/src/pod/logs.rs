//! Container logs for `kubectl logs`: reads the CRI-format files the shims write
//! (`<data-dir>/pods/<ns>_<pod>_<uid>/<container>/<restart>.log`), with `--tail`,
//! `--timestamps`, `--since`, `--limit-bytes`, `--previous`, and `-f` (following the file until
//! the container instance has exited and its directory is gone).
//!
//! A log is streamed, never read whole: `--tail` finds where its lines start by reading the
//! file backwards from the end ([`tail_offset`]), then records are read forward a chunk at a
//! time and sent as they are rendered, the channel's capacity bounding what waits for the
//! client. Bytes are kept as the container wrote them (kubectl prints bytes; invalid UTF-8
//! is not replaced). Each reader is an async task: file reads go through tokio's file API and
//! a follower waits for new lines on a timer ([`FOLLOW_POLL`]), so followers hold no thread of
//! the blocking pool.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;

/// How often a follower looks for new lines once it has read everything.
pub const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Rendered bytes gathered before they are sent.
const SEND_AT: usize = 64 * 1024;

/// Chunks waiting for the client, per reader (so at most this × [`SEND_AT`] in memory).
const QUEUED_CHUNKS: usize = 8;

/// Bytes read at a time when looking for `--tail`'s start from the end.
const BACKWARDS_CHUNK: usize = 64 * 1024;

use crate::runtime::Layout;

/// What to read.
#[derive(Clone, Debug, Default)]
pub struct LogRequest {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Pod uid.
    pub uid: String,
    /// Container name.
    pub container: String,
    /// Keep streaming.
    pub follow: bool,
    /// Last N lines only.
    pub tail_lines: Option<usize>,
    /// Prefix lines with their timestamps.
    pub timestamps: bool,
    /// The previous instance.
    pub previous: bool,
    /// Only newer than this many seconds.
    pub since_seconds: Option<i64>,
    /// At most this many bytes.
    pub limit_bytes: Option<usize>,
}

/// The log files of a container, oldest first, with their restart numbers.
fn log_files(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.strip_suffix(".log")
                        .and_then(|n| n.parse().ok())
                        .map(|n| (n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// One parsed CRI record.
struct Record<'a> {
    time: &'a [u8],
    partial: bool,
    text: &'a [u8],
}

fn parse(line: &[u8]) -> Option<Record<'_>> {
    let mut it = line.splitn(4, |&b| b == b' ');
    let time = it.next()?;
    let _stream = it.next()?;
    let flag = it.next()?;
    let text = it.next().unwrap_or(b"");
    Some(Record {
        time,
        partial: flag == b"P",
        text,
    })
}

/// Whether the record starting `head` is a partial (P) one: its third field, one letter.
fn is_partial(head: &[u8]) -> Option<bool> {
    let mut spaces = head.iter().enumerate().filter(|(_, &b)| b == b' ');
    spaces.next()?;
    let (second, _) = spaces.next()?;
    let flag = head.get(second + 1..second + 3)?;
    Some(flag == b"P " || flag == b"P\n")
}

fn render(r: &Record<'_>, timestamps: bool, out: &mut Vec<u8>, at_line_start: &mut bool) {
    if timestamps && *at_line_start {
        out.extend_from_slice(r.time);
        out.push(b' ');
    }
    out.extend_from_slice(r.text);
    if r.partial {
        *at_line_start = false;
    } else {
        out.push(b'\n');
        *at_line_start = true;
    }
}

/// Why a container's log cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// `--previous`, but the container has not been restarted.
    #[error("previous terminated container {container:?} in pod {pod:?} not found")]
    NoPrevious {
        /// The container.
        container: String,
        /// The pod.
        pod: String,
    },
    /// The container has not started yet.
    #[error("container {container:?} in pod {pod:?} is waiting to start")]
    NotStarted {
        /// The container.
        container: String,
        /// The pod.
        pod: String,
    },
}

/// Opens a container's log as a stream of chunks (an async task sends them; it must be called
/// within a tokio runtime).
pub fn stream(layout: &Layout, req: LogRequest) -> Result<mpsc::Receiver<bytes::Bytes>, LogError> {
    let dir = layout
        .pods()
        .join(format!("{}_{}_{}", req.namespace, req.pod, req.uid))
        .join(&req.container);
    let files = log_files(&dir);
    let chosen = if req.previous {
        files
            .iter()
            .rev()
            .nth(1)
            .cloned()
            .ok_or_else(|| LogError::NoPrevious {
                container: req.container.clone(),
                pod: req.pod.clone(),
            })?
    } else {
        files.last().cloned().ok_or_else(|| LogError::NotStarted {
            container: req.container.clone(),
            pod: req.pod.clone(),
        })?
    };
    let (n, path) = chosen;
    let instance_dir = layout.container(&crate::runtime::container_id(&req.uid, &req.container, n));
    let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
    let since = req
        .since_seconds
        .map(|s| jiff::Timestamp::now().as_second() - s)
        .and_then(|s| jiff::Timestamp::from_second(s).ok());
    tokio::spawn(async move { serve(path, instance_dir, req, since, tx).await });
    Ok(rx)
}

/// Where rendered records go: the stream, within `--limit-bytes`.
struct Output {
    tx: mpsc::Sender<bytes::Bytes>,
    out: Vec<u8>,
    budget: usize,
    at_line_start: bool,
    timestamps: bool,
    since: Option<jiff::Timestamp>,
}

impl Output {
    /// Renders a record (if it is recent enough for `--since`).
    fn push(&mut self, r: &Record<'_>) {
        if let Some(since) = self.since {
            let recent = std::str::from_utf8(r.time)
                .ok()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_some_and(|t| t >= since);
            if !recent {
                return;
            }
        }
        render(r, self.timestamps, &mut self.out, &mut self.at_line_start);
    }

    /// Sends what was rendered; false when the stream is done (closed, or the limit reached).
    async fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return self.budget > 0;
        }
        let n = self.out.len().min(self.budget);
        self.budget -= n;
        let chunk = bytes::Bytes::copy_from_slice(&self.out[..n]);
        self.out.clear();
        self.tx.send(chunk).await.is_ok() && self.budget > 0
    }
}

/// Sends the log file at `path` (records since `since`, the last `--tail` lines), then, when
/// following, what is written to it until the instance is gone.
async fn serve(
    path: PathBuf,
    instance_dir: PathBuf,
    req: LogRequest,
    since: Option<jiff::Timestamp>,
    tx: mpsc::Sender<bytes::Bytes>,
) {
    let Ok(file) = std::fs::File::open(&path) else {
        return;
    };
    let start = match req.tail_lines {
        None => 0,
        Some(lines) => {
            let Ok(file) = file.try_clone() else { return };
            match tokio::task::spawn_blocking(move || tail_offset(&file, lines)).await {
                Ok(Ok(at)) => at,
                _ => return,
            }
        }
    };
    let Ok(live) = file.try_clone() else { return };
    let mut file = tokio::fs::File::from_std(file);
    if file.seek(SeekFrom::Start(start)).await.is_err() {
        return;
    }
    let mut reader = BufReader::with_capacity(SEND_AT, file);
    let mut output = Output {
        tx,
        out: Vec::new(),
        budget: req.limit_bytes.unwrap_or(usize::MAX),
        at_line_start: true,
        timestamps: req.timestamps,
        since,
    };
    // What is written so far; a trailing line without its newline is not a record yet (a
    // follower finishes it once the shim has).
    let mut line = Vec::new();
    let mut read_to = start;
    loop {
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(n) => read_to += n as u64,
            Err(_) => return,
        }
        if !line.ends_with(b"\n") {
            break;
        }
        if let Some(r) = parse(&line[..line.len() - 1]) {
            output.push(&r);
        }
        line.clear();
        if output.out.len() >= SEND_AT && !output.flush().await {
            return;
        }
    }
    if !output.flush().await || !req.follow {
        return;
    }
    follow(
        reader,
        line,
        Source {
            path: &path,
            read_to,
            live,
        },
        &instance_dir,
        &mut output,
    )
    .await;
}

/// The live log file a follower reads: its path, how far it has read, and a handle to the
/// file it opened (for its inode: the shim rotates `N.log` by renaming it).
struct Source<'a> {
    path: &'a Path,
    read_to: u64,
    live: std::fs::File,
}

/// Follow: new records as they are written, until the instance is gone (or the client).
/// While nothing is written, the follower only sleeps and looks at the file's size and inode
/// and the instance's directory (a `stat` each, made inline: it does not block like a read,
/// and so an idle follower uses no blocking-pool thread at all); it reads once the file has
/// grown. Across a rotation (the shim renames `N.log` to `N.log.<stamp>` and starts a new
/// one): the rest of the rotated file, then every file rotated after it, oldest first
/// (gzipped ones decompressed), then the new `N.log`.
async fn follow(
    mut reader: BufReader<tokio::fs::File>,
    mut pending: Vec<u8>,
    mut src: Source<'_>,
    instance_dir: &Path,
    output: &mut Output,
) {
    use std::os::unix::fs::MetadataExt;
    let mut finishing = false;
    let mut rotated = false;
    loop {
        match reader.read_until(b'\n', &mut pending).await {
            Ok(0) if rotated => {
                // Everything of the rotated file is read: the files rotated after it, then
                // the new live file.
                rotated = false;
                let (path, live) = (src.path.to_path_buf(), src.live);
                let instance = instance_dir.to_path_buf();
                let Ok(later) =
                    tokio::task::spawn_blocking(move || later_files(&path, &live, &instance)).await
                else {
                    return;
                };
                let (texts, next_live) = later;
                pending.clear();
                for text in texts {
                    for line in text.split_inclusive(|&b| b == b'\n') {
                        if let Some(r) = line.strip_suffix(b"\n").and_then(parse) {
                            output.push(&r);
                        }
                        if output.out.len() >= SEND_AT && !output.flush().await {
                            return;
                        }
                    }
                }
                if !output.flush().await {
                    return;
                }
                let Some(next_live) = next_live else { return };
                let Ok(handle) = next_live.try_clone() else {
                    return;
                };
                reader = BufReader::with_capacity(SEND_AT, tokio::fs::File::from_std(handle));
                src.live = next_live;
                src.read_to = 0;
                continue;
            }
            Ok(0) => {
                let ours = src.live.metadata().map(|m| m.ino()).ok();
                if finishing {
                    // Rotated since the last look: the files after ours first.
                    match std::fs::metadata(src.path) {
                        Ok(m) if Some(m.ino()) != ours => rotated = true,
                        _ => return,
                    }
                    continue;
                }
                loop {
                    if output.tx.is_closed() {
                        return;
                    }
                    match std::fs::metadata(src.path) {
                        Ok(m) if Some(m.ino()) != ours => {
                            rotated = true;
                            break;
                        }
                        Ok(m) if m.len() > src.read_to => break,
                        _ => {}
                    }
                    if std::fs::metadata(instance_dir).is_err() {
                        // One more look: the last lines may have landed just before the end.
                        finishing = true;
                        break;
                    }
                    tokio::time::sleep(FOLLOW_POLL).await;
                }
                continue;
            }
            Ok(n) => src.read_to += n as u64,
            Err(_) => return,
        }
        if !pending.ends_with(b"\n") {
            continue;
        }
        if let Some(r) = parse(&pending[..pending.len() - 1]) {
            output.push(&r);
        }
        pending.clear();
        if !output.flush().await {
            return;
        }
    }
}

/// Where the last `lines` lines of a CRI log file start (whole lines: a P record continues
/// into the next), found by reading backwards from the end of its last complete record, so
/// only the tail is read.
fn tail_offset(file: &std::fs::File, lines: usize) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    // The end of the last complete record.
    let mut end = len;
    let mut buf = vec![0u8; BACKWARDS_CHUNK];
    let mut found_end = false;
    while end > 0 && !found_end {
        let from = end.saturating_sub(BACKWARDS_CHUNK as u64);
        let chunk = &mut buf[..(end - from) as usize];
        file.read_exact_at(chunk, from)?;
        match chunk.iter().rposition(|&b| b == b'\n') {
            Some(i) => {
                end = from + i as u64 + 1;
                found_end = true;
            }
            None => end = from,
        }
    }
    if lines == 0 || end == 0 {
        return Ok(end);
    }
    // Records from the end: each ends with a newline; its start is after the previous one.
    let mut whole = 0;
    let mut record_end = end;
    // Scanning [.., scan_end) backwards for the newline before the current record.
    let mut scan_end = end - 1;
    loop {
        let from = scan_end.saturating_sub(BACKWARDS_CHUNK as u64);
        let chunk = &mut buf[..(scan_end - from) as usize];
        file.read_exact_at(chunk, from)?;
        let mut cut = chunk.len();
        loop {
            let newline = chunk[..cut].iter().rposition(|&b| b == b'\n');
            let start = match newline {
                Some(i) => from + i as u64 + 1,
                None if from == 0 => 0,
                None => break,
            };
            let mut head = [0u8; 96];
            let n = file.read_at(&mut head, start)?;
            if is_partial(&head[..n]) != Some(true) {
                whole += 1;
                if whole == lines + 1 {
                    return Ok(record_end);
                }
            }
            record_end = start;
            match newline {
                Some(i) => cut = i,
                None => return Ok(0),
            }
        }
        scan_end = from;
        if scan_end == 0 {
            return Ok(0);
        }
    }
}

/// The last `lines` lines of the log file at `path` as the container wrote them (without the
/// CRI prefixes), at most the last `max_bytes` bytes of them; empty when unreadable.
pub(crate) fn tail_text(path: &Path, lines: usize, max_bytes: usize) -> String {
    use std::io::{BufRead, Seek};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let Ok(start) = tail_offset(&file, lines) else {
        return String::new();
    };
    if file.seek(std::io::SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let mut at_line_start = true;
    for line in std::io::BufReader::new(file).split(b'\n') {
        let Ok(line) = line else { break };
        if let Some(r) = parse(&line) {
            render(&r, false, &mut out, &mut at_line_start);
        }
        if out.len() > 2 * max_bytes.max(SEND_AT) {
            out.drain(..out.len() - max_bytes);
        }
    }
    let start = out.len().saturating_sub(max_bytes);
    String::from_utf8_lossy(&out[start..]).into_owned()
}

/// The inode of the file at `path`.
fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// What a follower reads after the file it had open was rotated: the texts of the files
/// rotated after it, oldest first (gzipped ones decompressed), then the new live file — `None`
/// if the instance ended meanwhile (or its shim did not create one). The live file is
/// opened before the rotated ones are listed, and the listing stops at it should it have been
/// rotated too since: so no file rotated between the listing and the opening is skipped.
fn later_files(
    path: &Path,
    live: &std::fs::File,
    instance_dir: &Path,
) -> (Vec<Vec<u8>>, Option<std::fs::File>) {
    // An empty stamp: ours was not found (compressed while the follower fell behind); on
    // with the live file.
    let mut at = rotated_stamp(path, live).unwrap_or_default();
    let mut texts = Vec::new();
    let give_up = std::time::Instant::now() + NO_LIVE_FILE;
    loop {
        let next = std::fs::File::open(path).ok();
        let mut next_id = next.as_ref().map(RotatedIdentity::new);
        while !at.is_empty() {
            let Some((f, stamp)) = rotated_after(path, &at) else {
                break;
            };
            if next_id.as_mut().is_some_and(|id| id.is(&f)) {
                break;
            }
            let Some(mut r) = open_rotated(&f) else {
                at = stamp;
                continue;
            };
            let mut text = Vec::new();
            let _ = std::io::Read::read_to_end(&mut r, &mut text);
            texts.push(text);
            at = stamp;
        }
        let gone = std::fs::metadata(instance_dir).is_err();
        if next.is_some() || gone || std::time::Instant::now() > give_up {
            return (texts, next);
        }
        // Between the shim's rename and its creating the new file there is none: in a moment
        // (a shim that died in between leaves none: the follower ends after NO_LIVE_FILE).
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How long a follower waits for the shim to create the new log file after its rename.
const NO_LIVE_FILE: Duration = Duration::from_secs(5);

/// Which rotated file an open log file became: the same inode while it is not compressed,
/// else (gzipped) the same first record (each starts with a nanosecond timestamp; a file is
/// rotated only once it holds one).
struct RotatedIdentity<'a> {
    file: &'a std::fs::File,
    ino: Option<u64>,
    first: Option<Vec<u8>>,
}

impl<'a> RotatedIdentity<'a> {
    fn new(file: &'a std::fs::File) -> Self {
        use std::os::unix::fs::MetadataExt;
        let ino = file.metadata().ok().map(|m| m.ino());
        RotatedIdentity {
            file,
            ino,
            first: None,
        }
    }

    /// Whether the rotated file listed as `f` is this one (listed uncompressed but
    /// compressed since: its `.gz`, by content).
    fn is(&mut self, f: &Path) -> bool {
        let gz = match f.extension().is_some_and(|e| e == "gz") {
            true => f.to_path_buf(),
            false => match inode(f) {
                Some(i) => return Some(i) == self.ino,
                None => gz_of(f),
            },
        };
        // Read once it has one (a file just created is empty until the shim writes).
        if self.first.is_none() {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; FIRST_RECORD];
            let n = self.file.read_at(&mut buf, 0).unwrap_or(0);
            buf.truncate(n);
            self.first = Some(first_record(&buf[..])).filter(|r| !r.is_empty());
        }
        let Some(mine) = &self.first else {
            return false;
        };
        std::fs::File::open(gz).is_ok_and(|gz| {
            use std::io::Read;
            let mut buf = Vec::new();
            let _ = flate2::read::GzDecoder::new(gz)
                .take(FIRST_RECORD as u64)
                .read_to_end(&mut buf);
            first_record(&buf) == *mine
        })
    }
}

/// The rotation stamp of the file open as `file` among the rotated files of the log at
/// `path`, looked for from the newest (the one a follower had open is rotated last but a
/// few). Not by time: the shim takes its stamp just before it renames, so a file opened in
/// between is stamped earlier than it was opened.
fn rotated_stamp(path: &Path, file: &std::fs::File) -> Option<String> {
    let mut id = RotatedIdentity::new(file);
    crate::runtime::logfile::rotated_files(path)
        .into_iter()
        .rev()
        .filter_map(|f| Some((stamp_of(path, &f)?, f)))
        .find(|(_, f)| id.is(f))
        .map(|(s, _)| s)
}

/// Enough bytes for one whole record (the shim splits lines at 16 KiB).
const FIRST_RECORD: usize = 20 * 1024;

/// The first line of `bytes`, with its newline (empty if there is no whole line).
fn first_record(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| bytes[..=i].to_vec())
        .unwrap_or_default()
}

/// `<stamp>` of `<path>.<stamp>[.gz]`.
fn stamp_of(path: &Path, rotated: &Path) -> Option<String> {
    let name = rotated.file_name()?.to_str()?;
    let base = path.file_name()?.to_str()?;
    let stamp = name.strip_prefix(base)?.strip_prefix('.')?;
    Some(stamp.trim_end_matches(".gz").to_string())
}

/// The first file rotated after `stamp`, with its stamp.
fn rotated_after(path: &Path, stamp: &str) -> Option<(PathBuf, String)> {
    crate::runtime::logfile::rotated_files(path)
        .into_iter()
        .filter_map(|f| Some((stamp_of(path, &f)?, f)))
        .find(|(s, _)| s.as_str() > stamp)
        .map(|(s, f)| (f, s))
}

/// A rotated file as listed, opened for reading (a `.gz` decompressed). One listed
/// uncompressed may have been compressed since (the shim writes `<f>.gz`, then removes
/// `<f>`): then its `.gz`. `None` if it is gone (a follower more than max-files behind).
fn open_rotated(f: &Path) -> Option<Box<dyn std::io::BufRead + Send>> {
    let (file, gz) = match std::fs::File::open(f) {
        Ok(file) => (file, f.extension().is_some_and(|e| e == "gz")),
        Err(_) => (std::fs::File::open(gz_of(f)).ok()?, true),
    };
    Some(if gz {
        Box::new(std::io::BufReader::new(flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    })
}

fn gz_of(f: &Path) -> PathBuf {
    PathBuf::from(format!("{}.gz", f.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(text: &str, tail: usize) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, text).unwrap();
        tail_offset(&std::fs::File::open(&path).unwrap(), tail).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follow_reads_every_line_across_rotations() {
        use crate::runtime::logfile::{LogFile, Rotation};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/0.log");
        let instance = dir.path().join("instance");
        std::fs::create_dir_all(&instance).unwrap();
        // Nothing deleted (many files), but all rotated files but the newest gzipped.
        let rotation = Rotation {
            max_size: 4096,
            max_files: 1000,
        };
        let mut log = LogFile::open(&path, rotation).unwrap();
        log.write_record(b"t stdout F 0\n").unwrap();
        // A small channel: the follower falls behind.
        let (tx, mut rx) = mpsc::channel(2);
        let req = LogRequest {
            follow: true,
            ..Default::default()
        };
        let follower = tokio::spawn(serve(path.clone(), instance.clone(), req, None, tx));
        // The follower has the file open (it sent the first line) before the writer starts.
        let mut text = rx.recv().await.unwrap().to_vec();
        // Fast enough to rotate several times between two looks of the follower.
        let writer = tokio::task::spawn_blocking(move || {
            for i in 1..=5000u32 {
                log.write_record(format!("t stdout F {i}\n").as_bytes())
                    .unwrap();
            }
            std::fs::remove_dir(&instance).unwrap();
        });
        while let Some(chunk) = rx.recv().await {
            text.extend_from_slice(&chunk);
        }
        writer.await.unwrap();
        follower.await.unwrap();
        let numbers: Vec<u32> = String::from_utf8(text)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        // Every line once, in order, across ~17 rotations.
        assert!(crate::runtime::logfile::rotated_files(&path).len() > 10);
        let gaps: Vec<(u32, u32)> = numbers
            .windows(2)
            .filter(|w| w[1] != w[0] + 1)
            .map(|w| (w[0], w[1]))
            .collect();
        assert!(gaps.is_empty(), "gaps {gaps:?}");
        assert_eq!((numbers.first(), numbers.last()), (Some(&0), Some(&5000)));
    }

    #[test]
    fn tail_counts_whole_lines() {
        let text = "t stdout F one\nt stdout P tw\nt stdout F o\nt stdout F three\n";
        let at = |n: usize| text.match_indices('\n').nth(n).unwrap().0 as u64 + 1;
        assert_eq!(offsets(text, 0), text.len() as u64);
        assert_eq!(offsets(text, 1), at(2));
        // The second line is two records (P then F).
        assert_eq!(offsets(text, 2), at(0));
        assert_eq!(offsets(text, 3), 0);
        assert_eq!(offsets(text, 10), 0);
        // An incomplete last record is not counted, nor read.
        let torn = format!("{text}t stdout F fou");
        assert_eq!(offsets(&torn, 1), at(2));
        assert_eq!(offsets(&torn, 0), text.len() as u64);
    }

    #[test]
    fn tail_finds_its_start_across_chunks() {
        // Lines longer than the backwards chunk, and many short ones.
        let long = "x".repeat(BACKWARDS_CHUNK + 17);
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!("2024-01-01T00:00:00Z stdout F {i}\n"));
            if i % 1000 == 0 {
                text.push_str(&format!("2024-01-01T00:00:00Z stdout P {long}\n"));
                text.push_str(&format!("2024-01-01T00:00:00Z stdout F {long}\n"));
            }
        }
        for tail in [1, 2, 999, 1000, 1001, 3000, 4999, 5005, 9999] {
            let records: Vec<&str> = text.lines().collect();
            // The reference: the record after the (tail+1)-th whole one from the end.
            let mut whole = 0;
            let mut want = 0;
            for (i, r) in records.iter().enumerate().rev() {
                if !r.contains(" stdout P ") {
                    whole += 1;
                    if whole == tail + 1 {
                        want = records[..=i].iter().map(|r| r.len() + 1).sum::<usize>();
                        break;
                    }
                }
            }
            assert_eq!(offsets(&text, tail), want as u64, "tail {tail}");
        }
    }

    #[tokio::test]
    async fn invalid_utf8_comes_out_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut text = b"2024-01-01T00:00:00Z stdout F caf\xc3\xa9 \xff\xfe bytes\n".to_vec();
        text.extend_from_slice(b"2024-01-01T00:00:01Z stdout P par\x80\n");
        text.extend_from_slice(b"2024-01-01T00:00:01Z stdout F tial\n");
        std::fs::write(&path, &text).unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let req = LogRequest {
            timestamps: true,
            ..Default::default()
        };
        serve(path, dir.path().join("gone"), req, None, tx).await;
        let mut got = Vec::new();
        while let Some(b) = rx.recv().await {
            got.extend_from_slice(&b);
        }
        assert_eq!(
            got,
            b"2024-01-01T00:00:00Z caf\xc3\xa9 \xff\xfe bytes\n2024-01-01T00:00:01Z par\x80tial\n"
        );
    }
}
