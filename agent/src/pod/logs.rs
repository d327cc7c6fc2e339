//! Container logs for `kubectl logs`: reads the CRI-format files the shims write
//! (`<data-dir>/pods/<ns>_<pod>_<uid>/<container>/<restart>.log`), with `--tail`,
//! `--timestamps`, `--since`, `--limit-bytes`, `--previous`, and `-f` (following the file until
//! the container instance has exited and its directory is gone).

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

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
    time: &'a str,
    partial: bool,
    text: &'a str,
}

fn parse(line: &str) -> Option<Record<'_>> {
    let mut it = line.splitn(4, ' ');
    let time = it.next()?;
    let _stream = it.next()?;
    let flag = it.next()?;
    let text = it.next().unwrap_or("");
    Some(Record {
        time,
        partial: flag == "P",
        text,
    })
}

fn render(r: &Record<'_>, timestamps: bool, out: &mut Vec<u8>, at_line_start: &mut bool) {
    if timestamps && *at_line_start {
        out.extend_from_slice(r.time.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(r.text.as_bytes());
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

/// Opens a container's log as a stream of chunks.
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
    let (tx, rx) = mpsc::channel(64);
    let since = req
        .since_seconds
        .map(|s| jiff::Timestamp::now().as_second() - s)
        .and_then(|s| jiff::Timestamp::from_second(s).ok());
    tokio::task::spawn_blocking(move || serve(&path, &instance_dir, &req, since, tx));
    Ok(rx)
}

/// Where rendered records go: the stream, within `--limit-bytes`.
struct Output {
    tx: mpsc::Sender<bytes::Bytes>,
    out: Vec<u8>,
    budget: usize,
    at_line_start: bool,
    timestamps: bool,
}

impl Output {
    fn push(&mut self, r: &Record<'_>) {
        render(r, self.timestamps, &mut self.out, &mut self.at_line_start);
    }
    /// Sends what was rendered; false when the stream is done (closed, or the limit reached).
    fn flush(&mut self) -> bool {
        send(&self.tx, &mut self.out, &mut self.budget)
    }
}

/// Sends the log file at `path` (records since `since`, the last `--tail` lines), then, when
/// following, what is written to it until the instance is gone.
fn serve(
    path: &Path,
    instance_dir: &Path,
    req: &LogRequest,
    since: Option<jiff::Timestamp>,
    tx: mpsc::Sender<bytes::Bytes>,
) {
    // Any rotation of the file opened now is stamped later than this.
    let opened_at = crate::runtime::logfile::rotation_stamp(jiff::Timestamp::now());
    let Ok(mut file) = std::fs::File::open(path) else {
        return;
    };
    let mut text = String::new();
    if file.read_to_string(&mut text).is_err() {
        return;
    }
    let mut offset = text.len() as u64;
    // Whole records only: a trailing line without newline is re-read when following.
    let complete = match text.rfind('\n') {
        Some(i) => i + 1,
        None => 0,
    };
    offset -= (text.len() - complete) as u64;
    let records: Vec<Record<'_>> = text[..complete]
        .lines()
        .filter_map(parse)
        .filter(|r| since.is_none_or(|s| r.time.parse::<jiff::Timestamp>().is_ok_and(|t| t >= s)))
        .collect();
    let mut output = Output {
        tx,
        out: Vec::new(),
        budget: req.limit_bytes.unwrap_or(usize::MAX),
        at_line_start: true,
        timestamps: req.timestamps,
    };
    for r in &records[tail_start(&records, req.tail_lines)..] {
        output.push(r);
    }
    if !output.flush() || !req.follow {
        return;
    }
    let mut reader = BufReader::new(file);
    if reader.seek(SeekFrom::Start(offset)).is_err() {
        return;
    }
    follow(reader, opened_at, path, instance_dir, &mut output);
}

/// The first record `--tail` shows: it counts whole lines (a P record continues into the next).
fn tail_start(records: &[Record<'_>], tail: Option<usize>) -> usize {
    let Some(tail) = tail else {
        return 0;
    };
    let ends: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.partial)
        .map(|(i, _)| i)
        .collect();
    if ends.len() <= tail {
        0
    } else if tail == 0 {
        records.len()
    } else {
        ends[ends.len() - tail - 1] + 1
    }
}

/// The last `lines` lines of the log file at `path` as the container wrote them (without the
/// CRI prefixes), at most the last `max_bytes` bytes of them; empty when unreadable.
pub(crate) fn tail_text(path: &Path, lines: usize, max_bytes: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let records: Vec<Record<'_>> = text.lines().filter_map(parse).collect();
    let mut out = Vec::new();
    let mut at_line_start = true;
    for r in &records[tail_start(&records, Some(lines))..] {
        render(r, false, &mut out, &mut at_line_start);
    }
    let start = out.len().saturating_sub(max_bytes);
    String::from_utf8_lossy(&out[start..]).into_owned()
}

/// The inode of the file at `path`.
fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// The rotation stamp of the file open as `file`, opened when the clock said `opened_at`,
/// among the rotated files of the log at `path`: the one rotated since then that is the same
/// file — its inode while it is not compressed, else (gzipped) the same first record (each
/// starts with a nanosecond timestamp).
fn rotated_stamp(path: &Path, file: &std::fs::File, opened_at: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let ino = file.metadata().ok()?.ino();
    let mut first: Option<Vec<u8>> = None;
    crate::runtime::logfile::rotated_files(path)
        .into_iter()
        .filter_map(|f| Some((stamp_of(path, &f)?, f)))
        .filter(|(s, _)| s.as_str() >= opened_at)
        .find(|(_, f)| {
            if f.extension().is_some_and(|e| e == "gz") {
                let mine = first.get_or_insert_with(|| {
                    use std::os::unix::fs::FileExt;
                    let mut buf = vec![0u8; FIRST_RECORD];
                    let n = file.read_at(&mut buf, 0).unwrap_or(0);
                    buf.truncate(n);
                    first_record(&buf[..])
                });
                std::fs::File::open(f).is_ok_and(|gz| {
                    let mut buf = Vec::new();
                    let _ = flate2::read::GzDecoder::new(gz)
                        .take(FIRST_RECORD as u64)
                        .read_to_end(&mut buf);
                    !mine.is_empty() && first_record(&buf) == *mine
                })
            } else {
                inode(f) == Some(ino)
            }
        })
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

/// The first file rotated after `stamp` (opened, decompressing a `.gz`), with its stamp.
fn rotated_after(path: &Path, stamp: &str) -> Option<(Box<dyn BufRead + Send>, String)> {
    for f in crate::runtime::logfile::rotated_files(path) {
        let Some(s) = stamp_of(path, &f) else {
            continue;
        };
        if s.as_str() <= stamp {
            continue;
        }
        // Deleted meanwhile (a follower more than max-files behind): the next one.
        let Ok(file) = std::fs::File::open(&f) else {
            continue;
        };
        let reader: Box<dyn BufRead + Send> = if f.extension().is_some_and(|e| e == "gz") {
            Box::new(BufReader::new(flate2::read::GzDecoder::new(file)))
        } else {
            Box::new(BufReader::new(file))
        };
        return Some((reader, s));
    }
    None
}

/// Follow: new records as they are written, until the instance is gone. Across rotations
/// (the shim renames `N.log` to `N.log.<stamp>` and starts a new one), the rest of the
/// rotated file, then every file rotated after it, oldest first, then the new `N.log`.
fn follow(
    first: BufReader<std::fs::File>,
    mut opened_at: String,
    path: &Path,
    instance_dir: &Path,
    output: &mut Output,
) {
    use std::os::unix::fs::MetadataExt;
    // The source being read: the live file (a second handle, for its inode and length) until
    // it is found rotated (its stamp).
    let mut live = first.get_ref().try_clone().ok();
    let mut stamp: Option<String> = None;
    let mut reader: Box<dyn BufRead + Send> = Box::new(first);
    let mut pending = String::new();
    let mut lines = 0u64;
    loop {
        // Notice a rotation early, while the rotated file still has its name (it is gzipped
        // once another rotation follows).
        lines += 1;
        if lines.is_multiple_of(256) && stamp.is_none() {
            if let Some(f) = &live {
                if f.metadata().is_ok_and(|m| inode(path) != Some(m.ino())) {
                    stamp = rotated_stamp(path, f, &opened_at);
                }
            }
        }
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => {
                // Its final length, now that nothing is written to it any more.
                let moved = live.as_ref().filter(|f| {
                    f.metadata()
                        .is_ok_and(|m| inode(path).is_some_and(|now| now != m.ino()))
                });
                if let (None, Some(f)) = (&stamp, moved) {
                    stamp = rotated_stamp(path, f, &opened_at);
                    if stamp.is_none() {
                        // Rotated and already compressed (the follower fell behind): on with
                        // the live file.
                        stamp = Some(String::new());
                    }
                }
                if let Some(s) = stamp.clone() {
                    // Whatever landed in this file before its rotation, then the next file.
                    let _ = reader.read_line(&mut line);
                    if line.is_empty() {
                        let next = if s.is_empty() {
                            None
                        } else {
                            rotated_after(path, &s)
                        };
                        match next {
                            Some((r, s)) => {
                                reader = r;
                                stamp = Some(s);
                                live = None;
                            }
                            None => {
                                opened_at =
                                    crate::runtime::logfile::rotation_stamp(jiff::Timestamp::now());
                                match std::fs::File::open(path) {
                                    Ok(f) => {
                                        live = f.try_clone().ok();
                                        stamp = None;
                                        reader = Box::new(BufReader::new(f));
                                    }
                                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                                }
                            }
                        }
                        continue;
                    }
                } else if !instance_dir.exists() || output.tx.is_closed() {
                    // One more look: the last lines may have landed just before the end.
                    let _ = reader.read_line(&mut line);
                    if line.is_empty() {
                        return;
                    }
                } else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
        pending.push_str(&line);
        if !pending.ends_with('\n') {
            continue;
        }
        if let Some(r) = parse(pending.trim_end_matches('\n')) {
            output.push(&r);
        }
        pending.clear();
        if !output.flush() {
            return;
        }
    }
}

fn send(tx: &mpsc::Sender<bytes::Bytes>, out: &mut Vec<u8>, budget: &mut usize) -> bool {
    if out.is_empty() {
        return *budget > 0;
    }
    let n = out.len().min(*budget);
    *budget -= n;
    let chunk = bytes::Bytes::copy_from_slice(&out[..n]);
    out.clear();
    tx.blocking_send(chunk).is_ok() && *budget > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_reads_every_line_across_rotations() {
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
        let (tx, mut rx) = mpsc::channel(4);
        let opened_at = crate::runtime::logfile::rotation_stamp(jiff::Timestamp::now());
        let file = std::fs::File::open(&path).unwrap();
        let follower = {
            let (path, instance) = (path.clone(), instance.clone());
            std::thread::spawn(move || {
                let mut output = Output {
                    tx,
                    out: Vec::new(),
                    budget: usize::MAX,
                    at_line_start: true,
                    timestamps: false,
                };
                follow(
                    BufReader::new(file),
                    opened_at,
                    &path,
                    &instance,
                    &mut output,
                );
            })
        };
        // Fast enough to rotate several times between two looks of the follower, whose
        // channel is small (it falls behind).
        for i in 1..=5000u32 {
            log.write_record(format!("t stdout F {i}\n").as_bytes())
                .unwrap();
        }
        std::fs::remove_dir(&instance).unwrap();
        let mut text = Vec::new();
        while let Some(chunk) = rx.blocking_recv() {
            text.extend_from_slice(&chunk);
        }
        follower.join().unwrap();
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
        let records: Vec<Record<'_>> = text.lines().filter_map(parse).collect();
        assert_eq!(tail_start(&records, None), 0);
        assert_eq!(tail_start(&records, Some(0)), 4);
        assert_eq!(tail_start(&records, Some(1)), 3);
        // The second line is two records (P then F).
        assert_eq!(tail_start(&records, Some(2)), 1);
        assert_eq!(tail_start(&records, Some(3)), 0);
        assert_eq!(tail_start(&records, Some(10)), 0);
    }
}
