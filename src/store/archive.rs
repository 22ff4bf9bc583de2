//! The archive and journal (DESIGN §2.5, §6): one append-only segment file per
//! UTC day (`YYYY-MM-DD.seg`) holding framed records:
//!
//! - **copies**: a message's original and delivered copies, located by offset
//!   and length in its store record;
//! - **index**: the store records of one group commit (written by the store,
//!   [`crate::store::RedbStore`]), so that the store may commit them without
//!   its own flush: a restart replays the index records written since the
//!   store's last durable checkpoint.
//!
//! Appending creates no file (the cost that dominated per-message files on
//! ext4), and concurrent writers share one `fdatasync` (group commit): a
//! message's copies and its record become durable in the same flush. Zeros are
//! written ahead of the frames ([`RESERVE`]), so that most flushes write data
//! blocks only, not the inode of a file that grew.
//!
//! A frame is a 24-byte header (`BSMJ`, kind, payload length, payload CRC-32,
//! header CRC-32) and the payload. An append that fails (disk full) is cut
//! back to where it began, so frames always follow each other; a crash can
//! leave only a torn tail, which recovery cuts off before anything is appended
//! after it. Retention removes whole days.

use super::group_sync::GroupSync;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copy {
    /// The message as the relay received it.
    Original,
    /// The message as the relay delivered it.
    Delivered,
}

/// Where one copy lies in its day's segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub offset: u64,
    pub len: u64,
}

/// Where a message's copies lie (the day is the day of the record's time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveRef {
    pub original: Span,
    pub delivered: Option<Span>,
}

const MAGIC: &[u8; 4] = b"BSMJ";
const HEADER_LEN: u64 = 24;

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Copies = 1,
    Index = 2,
}

fn header(kind: Kind, len: u64, payload_crc: u32) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..4].copy_from_slice(MAGIC);
    h[4] = kind as u8;
    h[8..16].copy_from_slice(&len.to_le_bytes());
    h[16..20].copy_from_slice(&payload_crc.to_le_bytes());
    let crc = crc32fast::hash(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A frame header's kind, payload length and payload CRC, if it is one.
fn parse_header(h: &[u8; HEADER_LEN as usize]) -> Option<(Kind, u64, u32)> {
    let word = |r: std::ops::Range<usize>| u32::from_le_bytes(h[r].try_into().expect("4 bytes"));
    if &h[..4] != MAGIC || h[5..8] != [0, 0, 0] || crc32fast::hash(&h[..20]) != word(20..24) {
        return None;
    }
    let kind = match h[4] {
        1 => Kind::Copies,
        2 => Kind::Index,
        _ => return None,
    };
    Some((kind, u64::from_le_bytes(h[8..16].try_into().expect("8 bytes")), word(16..20)))
}

/// An index record found by [`Archive::recover`].
pub(crate) struct IndexFrame {
    pub day: String,
    pub offset: u64,
    pub payload: Vec<u8>,
}

/// What [`Archive::recover`] found.
pub(crate) struct Recovered {
    /// The index records after what was applied, segment by segment.
    pub index: Vec<IndexFrame>,
    /// Where each segment's whole frames end.
    pub ends: Vec<(String, Applied)>,
}

/// How far the store has applied a segment: the segment file (its inode, so a
/// replaced file is read from its start) and the offset of the first frame not
/// yet applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Applied {
    pub ino: u64,
    pub offset: u64,
}

struct Segment {
    /// Shared with a flush in progress, which runs without the segments' lock.
    file: Arc<File>,
    ino: u64,
    /// Where the frames end: the next one is written here.
    len: u64,
    /// How far the file holds zeros after the frames (written ahead, see [`RESERVE`]).
    size: u64,
    /// Appended to since its last flush.
    dirty: bool,
}

#[derive(Default)]
struct Segments {
    open: HashMap<String, Segment>,
    /// Segments given up after a failed append, still holding other writers' frames that the
    /// next flush must make durable.
    retired: Vec<Arc<File>>,
    /// Where a failed append began in a segment that could not be cut back at once: the file
    /// is cut there when it is next opened, before anything is appended.
    cut_at: HashMap<String, u64>,
    /// Frames appended so far (the marks [`Archive::durable`] waits for).
    appended: u64,
    /// Where recovery found the frames of a segment to end, so that opening it need not walk
    /// them again.
    recovered: HashMap<String, Applied>,
}

/// How far flushes have made the archive durable, in marks.
#[derive(Clone, Copy, Debug, Default)]
struct Flushed {
    /// Every frame up to this mark is durable.
    synced: u64,
    /// A flush failed for the frames up to this mark.
    failed: u64,
}

pub struct Archive {
    dir: PathBuf,
    segments: Mutex<Segments>,
    flush: GroupSync,
    flushed: tokio::sync::watch::Sender<Flushed>,
    /// An async waiter has a flush running for the others.
    flushing: std::sync::atomic::AtomicBool,
    /// Flushes that synced something (one `fdatasync` per dirty segment).
    flushes: std::sync::atomic::AtomicU64,
    #[cfg(test)]
    faults: TestFaults,
}

/// Tests: a flush held open, and `fdatasync` failures, on demand.
#[cfg(test)]
#[derive(Default)]
struct TestFaults {
    /// Milliseconds each flush sleeps before its `fdatasync`, to hold one open, and
    /// whether one has got there.
    slow_flush_ms: std::sync::atomic::AtomicU64,
    flush_held: std::sync::atomic::AtomicBool,
    /// How many of the next `fdatasync` calls fail.
    failing_syncs: std::sync::atomic::AtomicU32,
}

/// `YYYY-MM-DD` of a unix time: the archive's day.
pub fn day_dir(at: u64) -> String {
    jiff::Timestamp::from_second(at as i64).map_or_else(|_| "1970-01-01".into(), |t| t.strftime("%Y-%m-%d").to_string())
}

fn is_day(name: &str) -> Option<&str> {
    let day = name.strip_suffix(".seg")?;
    (day.len() == 10 && day.bytes().all(|b| b.is_ascii_digit() || b == b'-')).then_some(day)
}

/// Frames no larger than this are gathered and appended with one `write`.
const GATHER: u64 = 256 * 1024;

/// Zeros kept written ahead of a segment's frames: a frame written over them changes
/// neither the file's size nor its block map, so the flush that makes it durable writes
/// its data blocks and not the inode too (one I/O instead of two on ext4). Topped up when
/// less than [`GATHER`] is left. Whatever follows the frames is zeros, so a segment's
/// frames end where the frame headers stop and only zeros follow ([`data_end`]).
const RESERVE: u64 = 1024 * 1024;

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

impl Segment {
    /// Writes zeros ahead of the frames, up to [`RESERVE`] after them, if less than
    /// [`GATHER`] is left. A failure (a full disk) only means that the next frames grow
    /// the file themselves.
    fn reserve(&mut self) {
        if self.size >= self.len + GATHER {
            return;
        }
        let to = self.len + RESERVE;
        while self.size < to {
            let n = (to - self.size).min(ZEROS.len() as u64);
            if let Err(e) = self.file.write_all_at(&ZEROS[..n as usize], self.size) {
                tracing::debug!("archive: zeros ahead of the frames not written: {e}");
                return;
            }
            self.size += n;
        }
    }
}

/// Whether `file` holds only zeros from `from` to `to`.
fn zeros(file: &File, from: u64, to: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = from;
    while pos < to {
        let n = ((to - pos) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], pos)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

/// Where a segment's frames end, walking their headers from `from` (where a frame begins):
/// where they stop, if only zeros follow (written ahead); otherwise the file's end, as for a
/// segment an earlier, unframed version wrote, or a torn tail that recovery has not cut.
fn data_end(file: &File, from: u64, size: u64) -> io::Result<u64> {
    let mut pos = from.min(size);
    while size - pos >= HEADER_LEN {
        let mut h = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut h, pos)?;
        match parse_header(&h) {
            Some((_, len, _)) if len <= size - pos - HEADER_LEN => pos += HEADER_LEN + len,
            _ => break,
        }
    }
    Ok(if zeros(file, pos, size)? { pos } else { size })
}

impl Segments {
    /// The day's segment, opened (and cut back after an earlier failed append) if need be.
    fn get(&mut self, dir: &std::path::Path, day: &str) -> io::Result<&mut Segment> {
        if !self.open.contains_key(day) {
            fs::create_dir_all(dir)?;
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .read(true)
                .open(dir.join(format!("{day}.seg")))?;
            // The name must survive a crash too: synced on every open, so an open that
            // created the file and then failed does not leave it unsynced for the next one.
            File::open(dir)?.sync_all()?;
            let meta = file.metadata()?;
            let mut size = meta.len();
            let len = match self.cut_at.remove(day) {
                Some(at) => {
                    if size > at {
                        file.set_len(at)?;
                        size = at;
                    }
                    at
                }
                None => {
                    let from = self.recovered.get(day).filter(|r| r.ino == meta.ino()).map_or(0, |r| r.offset);
                    data_end(&file, from, size)?
                }
            }
            .min(size);
            // An earlier day's segment gives its zeros back: few frames, if any, come after.
            for (_, s) in self.open.iter_mut().filter(|(d, s)| d.as_str() < day && s.size > s.len) {
                if s.file.set_len(s.len).is_ok() {
                    s.size = s.len;
                }
            }
            self.open
                .insert(day.to_string(), Segment { file: Arc::new(file), ino: meta.ino(), len, size, dirty: false });
        }
        Ok(self.open.get_mut(day).expect("inserted above"))
    }
}

impl Archive {
    pub fn new(dir: impl Into<PathBuf>) -> Archive {
        Archive {
            dir: dir.into(),
            segments: Mutex::default(),
            flush: GroupSync::default(),
            flushed: tokio::sync::watch::Sender::new(Flushed::default()),
            flushing: Default::default(),
            flushes: Default::default(),
            #[cfg(test)]
            faults: TestFaults::default(),
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    fn path(&self, day: &str) -> PathBuf {
        self.dir.join(format!("{day}.seg"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Segments> {
        self.segments.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one frame whose payload is `pieces`; returns the payload's offset.
    fn append(&self, day: &str, kind: Kind, pieces: &[&[u8]]) -> io::Result<u64> {
        let len: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        let mut crc = crc32fast::Hasher::new();
        pieces.iter().for_each(|p| crc.update(p));
        let head = header(kind, len, crc.finalize());
        // A small frame goes out in one write; a large one piece by piece, not copied.
        let gathered: Option<Vec<u8>> = (len <= GATHER).then(|| {
            let mut buf = Vec::with_capacity((HEADER_LEN + len) as usize);
            buf.extend_from_slice(&head);
            pieces.iter().for_each(|p| buf.extend_from_slice(p));
            buf
        });
        let mut segments = self.lock();
        let segments = &mut *segments;
        // Only the latest day's segment keeps zeros ahead.
        let latest = segments.open.keys().all(|d| d.as_str() <= day);
        let seg = segments.get(&self.dir, day)?;
        let start = seg.len;
        let written = match &gathered {
            Some(buf) => seg.file.write_all_at(buf, start),
            None => std::iter::once(&head[..])
                .chain(pieces.iter().copied())
                .try_fold(start, |at, p| seg.file.write_all_at(p, at).map(|()| at + p.len() as u64))
                .map(drop),
        };
        match written {
            Ok(()) => {
                seg.len += HEADER_LEN + len;
                seg.size = seg.size.max(seg.len);
                if latest {
                    seg.reserve();
                }
                seg.dirty = true;
                segments.appended += 1;
                Ok(start + HEADER_LEN)
            }
            Err(e) => {
                // Frames must follow each other: the partial one is cut off now (with the zeros
                // after it), or when the segment is next opened.
                if seg.file.set_len(start).is_ok() {
                    seg.size = start;
                } else {
                    let seg = segments.open.remove(day).expect("appended to above");
                    if seg.dirty {
                        segments.retired.push(seg.file);
                    }
                    segments.cut_at.insert(day.to_string(), start);
                }
                Err(e)
            }
        }
    }

    /// Appends a message's copies; they are durable after the next [`Archive::sync`]
    /// (the store's commit of the message's record syncs). Each copy is given in
    /// pieces (header block, body) so large bodies are not copied.
    pub fn append_copies(&self, at: u64, original: &[&[u8]], delivered: Option<&[&[u8]]>) -> io::Result<ArchiveRef> {
        let pieces: Vec<&[u8]> = original.iter().chain(delivered.unwrap_or_default()).copied().collect();
        let offset = self.append(&day_dir(at), Kind::Copies, &pieces)?;
        let original_len: u64 = original.iter().map(|p| p.len() as u64).sum();
        Ok(ArchiveRef {
            original: Span { offset, len: original_len },
            delivered: delivered
                .map(|d| Span { offset: offset + original_len, len: d.iter().map(|p| p.len() as u64).sum() }),
        })
    }

    /// Appends a message's copies and returns once they are durable.
    pub fn write(&self, at: u64, original: &[&[u8]], delivered: Option<&[&[u8]]>) -> io::Result<ArchiveRef> {
        let location = self.append_copies(at, original, delivered)?;
        self.sync()?;
        Ok(location)
    }

    /// Appends an index record to the day's segment (durable after the next sync).
    pub(crate) fn append_index(&self, day: &str, payload: &[u8]) -> io::Result<()> {
        self.append(day, Kind::Index, &[payload]).map(drop)
    }

    /// Returns once every frame appended before the call is durable; concurrent callers
    /// share one flush. The flush runs without the segments' lock, so appends (the other
    /// sessions' ends of message) go on meanwhile; they wait for the next flush.
    pub fn sync(&self) -> io::Result<()> {
        self.flush.sync(|| {
            let (target, dirty, retired) = {
                let mut segments = self.lock();
                let segments = &mut *segments;
                let dirty: Vec<(String, Arc<File>)> = segments
                    .open
                    .iter_mut()
                    .filter(|(_, s)| s.dirty)
                    .map(|(day, s)| {
                        s.dirty = false;
                        (day.clone(), s.file.clone())
                    })
                    .collect();
                (segments.appended, dirty, std::mem::take(&mut segments.retired))
            };
            if !dirty.is_empty() || !retired.is_empty() {
                self.flushes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            #[cfg(test)]
            self.hold_flush();
            // Every frame up to `target` was written before the files were taken: the
            // `fdatasync` of each covers them.
            let flushed = dirty.iter().try_for_each(|(_, f)| self.sync_file(f));
            let flushed = flushed.and_then(|()| retired.iter().try_for_each(|f| self.sync_file(f)));
            if let Err(e) = flushed {
                // Still to be made durable: dirty again, or retired if no longer open.
                let mut segments = self.lock();
                for (day, file) in dirty {
                    match segments.open.get_mut(&day) {
                        Some(s) if Arc::ptr_eq(&s.file, &file) => s.dirty = true,
                        _ => segments.retired.push(file),
                    }
                }
                segments.retired.extend(retired);
                self.flushed.send_modify(|f| f.failed = f.failed.max(target));
                return Err(e);
            }
            self.flushed.send_modify(|f| f.synced = f.synced.max(target));
            Ok(())
        })
    }

    fn sync_file(&self, file: &File) -> io::Result<()> {
        #[cfg(test)]
        if self
            .faults
            .failing_syncs
            .fetch_update(std::sync::atomic::Ordering::AcqRel, std::sync::atomic::Ordering::Acquire, |n| {
                n.checked_sub(1)
            })
            .is_ok()
        {
            return Err(io::Error::other("injected fdatasync failure"));
        }
        file.sync_data()
    }

    #[cfg(test)]
    fn hold_flush(&self) {
        use std::sync::atomic::Ordering;
        let ms = self.faults.slow_flush_ms.load(Ordering::Relaxed);
        if ms > 0 {
            self.faults.flush_held.store(true, Ordering::Release);
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }

    /// How many flushes this archive has done (that had something to sync).
    pub fn flushes(&self) -> u64 {
        self.flushes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The mark of everything appended so far, for [`Archive::durable`].
    pub fn mark(&self) -> u64 {
        self.lock().appended
    }

    /// Resolves once every frame up to `mark` is durable, without blocking the
    /// async thread: one waiter flushes (on a blocking thread) for all who wait.
    pub async fn durable(self: &std::sync::Arc<Self>, mark: u64) -> io::Result<()> {
        use std::sync::atomic::Ordering;
        loop {
            let mut rx = self.flushed.subscribe();
            let now = *rx.borrow_and_update();
            if now.synced >= mark {
                return Ok(());
            }
            if now.failed >= mark {
                return Err(io::Error::other("archive flush failed"));
            }
            if !self.flushing.swap(true, Ordering::AcqRel) {
                let this = self.clone();
                let flushed = tokio::task::spawn_blocking(move || {
                    let r = this.sync();
                    // Cleared before the waiters hear of the flush (sync published it): one that
                    // finds it still set is woken by that news, or by a later flush's.
                    this.flushing.store(false, Ordering::Release);
                    this.flushed.send_modify(|_| ());
                    r
                })
                .await;
                match flushed {
                    Ok(r) => r?,
                    Err(e) => return Err(io::Error::other(format!("archive flush: {e}"))),
                }
            } else if rx.changed().await.is_err() {
                return Err(io::Error::other("archive closed"));
            }
        }
    }

    /// Where the open segments end now.
    pub(crate) fn ends(&self) -> Vec<(String, Applied)> {
        let segments = self.lock();
        segments.open.iter().map(|(day, s)| (day.clone(), Applied { ino: s.ino, offset: s.len })).collect()
    }

    fn days(&self) -> io::Result<Vec<String>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut days = Vec::new();
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(day) = is_day(&name) {
                days.push(day.to_string());
            }
        }
        days.sort();
        Ok(days)
    }

    /// Where every segment's frames end now (unchecked: their headers are walked, their
    /// payloads not read): what a store that has never replayed this archive takes as
    /// applied. A segment written before frames is applied to its end.
    pub(crate) fn existing(&self) -> io::Result<Vec<(String, Applied)>> {
        self.days()?
            .into_iter()
            .map(|day| {
                let f = File::open(self.path(&day))?;
                let m = f.metadata()?;
                Ok((day, Applied { ino: m.ino(), offset: data_end(&f, 0, m.len())? }))
            })
            .collect()
    }

    /// Reads every frame after what `applied` says was applied, checking each; returns the
    /// index records found and where each segment's whole frames end. A torn tail (a crash
    /// mid-append or before a flush) is cut off, so later appends follow whole frames. Holds
    /// the segments while it runs: nothing is appended meanwhile.
    pub(crate) fn recover(&self, applied: &HashMap<String, Applied>) -> io::Result<Recovered> {
        let mut segments = self.lock();
        let mut frames = Vec::new();
        let mut ends = Vec::new();
        let days = self.days()?;
        let last = days.last().cloned();
        for day in days {
            let (file, ino, end) = match segments.open.get(&day) {
                Some(s) => (s.file.clone(), s.ino, s.len),
                None => {
                    let f = OpenOptions::new().read(true).write(true).open(self.path(&day))?;
                    let m = f.metadata()?;
                    (Arc::new(f), m.ino(), m.len())
                }
            };
            let from = match applied.get(&day) {
                Some(a) if a.ino == ino && a.offset <= end => a.offset,
                _ => 0,
            };
            let whole = scan(&file, &day, from, end, &mut frames)?;
            // Zeros after the frames were written ahead of them (or were frames that never
            // reached the disk, and were never acknowledged): the last day keeps them for its
            // next frames, an earlier one gives them back.
            let torn = whole < end && !zeros(&file, whole, end)?;
            if torn {
                tracing::warn!(day, offset = whole, bytes = end - whole, "archive: cut off a torn tail");
            }
            if torn || (whole < end && last.as_ref() != Some(&day)) {
                file.set_len(whole)?;
                file.sync_data()?;
                if let Some(s) = segments.open.get_mut(&day) {
                    (s.len, s.size) = (whole, whole);
                }
            }
            segments.recovered.insert(day.clone(), Applied { ino, offset: whole });
            ends.push((day, Applied { ino, offset: whole }));
        }
        segments.cut_at.clear();
        Ok(Recovered { index: frames, ends })
    }

    pub fn read(&self, at: u64, location: &ArchiveRef, copy: Copy) -> io::Result<Vec<u8>> {
        let span = match copy {
            Copy::Original => location.original,
            Copy::Delivered => {
                location.delivered.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no delivered copy"))?
            }
        };
        let mut f = File::open(self.path(&day_dir(at)))?;
        f.seek(SeekFrom::Start(span.offset))?;
        let mut buf = vec![0; span.len as usize];
        f.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Removes every day before `cutoff_day` (`YYYY-MM-DD`); returns how many
    /// day segments went.
    pub fn purge_before(&self, cutoff_day: &str) -> io::Result<usize> {
        let mut segments = self.lock();
        segments.open.retain(|day, _| day.as_str() >= cutoff_day);
        segments.recovered.retain(|day, _| day.as_str() >= cutoff_day);
        let mut removed = 0;
        for day in self.days()? {
            if day.as_str() < cutoff_day {
                fs::remove_file(self.path(&day))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Bytes the segments take, the zeros written ahead of each open one's frames included.
    pub fn size(&self) -> u64 {
        fs::read_dir(&self.dir).map_or(0, |rd| {
            rd.flatten()
                .filter(|e| is_day(&e.file_name().to_string_lossy()).is_some())
                .map(|e| e.metadata().map_or(0, |m| m.len()))
                .sum()
        })
    }
}

/// Checks the frames of `file` from `from` to `end`, collecting the index records; returns
/// where the whole, intact frames end.
fn scan(file: &File, day: &str, from: u64, end: u64, frames: &mut Vec<IndexFrame>) -> io::Result<u64> {
    let mut pos = from;
    let mut buf = vec![0u8; 64 * 1024];
    while end - pos >= HEADER_LEN {
        let mut h = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut h, pos)?;
        let Some((kind, len, crc)) = parse_header(&h) else { break };
        let body = pos + HEADER_LEN;
        if len > end - body {
            break;
        }
        let mut hasher = crc32fast::Hasher::new();
        let mut payload = Vec::new();
        let mut off = body;
        while off < body + len {
            let n = ((body + len - off) as usize).min(buf.len());
            file.read_exact_at(&mut buf[..n], off)?;
            hasher.update(&buf[..n]);
            if kind == Kind::Index {
                payload.extend_from_slice(&buf[..n]);
            }
            off += n as u64;
        }
        if hasher.finalize() != crc {
            break;
        }
        if kind == Kind::Index {
            frames.push(IndexFrame { day: day.to_string(), offset: body, payload });
        }
        pos = body + len;
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 20_780 * 86_400; // 2026-11-23

    #[test]
    fn write_read_purge() {
        let dir = tempfile::tempdir().unwrap();
        let a = Archive::new(dir.path());
        assert_eq!(day_dir(DAY), "2026-11-23");
        let r1 = a.write(DAY, &[b"or", b"ig"], Some(&[b"deliv"])).unwrap();
        let r2 = a.write(DAY + 86_400, &[b"second"], None).unwrap();
        let r3 = a.write(DAY + 5, &[b"third"], None).unwrap();
        assert_eq!(a.read(DAY, &r1, Copy::Original).unwrap(), b"orig");
        assert_eq!(a.read(DAY, &r1, Copy::Delivered).unwrap(), b"deliv");
        assert_eq!(a.read(DAY + 5, &r3, Copy::Original).unwrap(), b"third");
        assert_eq!(a.read(DAY + 86_400, &r2, Copy::Delivered).unwrap_err().kind(), io::ErrorKind::NotFound);
        let ends: u64 = a.ends().iter().map(|(_, e)| e.offset).sum();
        assert_eq!(ends, 3 * HEADER_LEN + 20);
        // Only the latest day's file holds zeros ahead of its frames: the earlier day's gave
        // them back when the later one opened, and a frame appended to it since added none.
        assert_eq!(fs::metadata(dir.path().join("2026-11-23.seg")).unwrap().len(), 2 * HEADER_LEN + 14);
        assert_eq!(a.size(), (2 * HEADER_LEN + 14) + (HEADER_LEN + 6 + RESERVE));
        // A reopened archive appends after what is there.
        let b = Archive::new(dir.path());
        let r4 = b.write(DAY, &[b"fourth"], None).unwrap();
        assert_eq!(r4.original.offset, 2 * HEADER_LEN + 14 + HEADER_LEN);
        assert_eq!(b.read(DAY, &r1, Copy::Delivered).unwrap(), b"deliv");
        assert_eq!(b.purge_before("2026-11-24").unwrap(), 1);
        assert!(b.read(DAY, &r1, Copy::Original).is_err());
        assert_eq!(b.read(DAY + 86_400, &r2, Copy::Original).unwrap(), b"second");
    }

    #[test]
    fn a_full_segment_fails_the_write_and_the_next_one_reopens_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = Archive::new(dir.path());
        // Today's segment is on a device that is always full (ENOSPC).
        let path = dir.path().join("2026-11-23.seg");
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        assert_eq!(a.write(DAY, &[b"first"], None).unwrap_err().kind(), io::ErrorKind::StorageFull);
        assert_eq!(a.write(DAY, &[b"first"], None).unwrap_err().kind(), io::ErrorKind::StorageFull);
        // Space again: the next write opens the segment afresh.
        fs::remove_file(&path).unwrap();
        let r1 = a.write(DAY, &[b"first"], None).unwrap();
        let r2 = a.write(DAY, &[b"second"], None).unwrap();
        assert_eq!((r1.original.offset, r2.original.offset), (HEADER_LEN, 2 * HEADER_LEN + 5));
        assert_eq!(a.read(DAY, &r2, Copy::Original).unwrap(), b"second");
    }

    #[test]
    fn concurrent_writers_each_find_their_own_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let a = std::sync::Arc::new(Archive::new(dir.path()));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let a = a.clone();
                std::thread::spawn(move || {
                    // Some frames are gathered into one write, some written piece by piece.
                    let body = format!("message {i} ").repeat(if i % 2 == 0 { 100 } else { 30_000 });
                    let r = a.write(86_400, &[b"head\r\n", body.as_bytes()], Some(&[body.as_bytes()])).unwrap();
                    (body, r)
                })
            })
            .collect();
        let mut framed = 0;
        for t in threads {
            let (body, r) = t.join().unwrap();
            assert_eq!(a.read(86_400, &r, Copy::Original).unwrap(), [b"head\r\n", body.as_bytes()].concat());
            assert_eq!(a.read(86_400, &r, Copy::Delivered).unwrap(), body.as_bytes());
            framed += HEADER_LEN + 6 + 2 * body.len() as u64;
        }
        let Recovered { index: frames, ends } = a.recover(&HashMap::new()).unwrap();
        assert!(frames.is_empty());
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].1.offset, framed, "every frame is whole");
    }

    #[test]
    fn appends_go_on_while_a_flush_runs_and_wait_for_the_next() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let a = std::sync::Arc::new(Archive::new(dir.path()));
        a.append_copies(DAY, &[b"first"], None).unwrap();
        let first = a.mark();
        a.faults.slow_flush_ms.store(1000, Ordering::Relaxed);
        let flusher = {
            let a = a.clone();
            std::thread::spawn(move || a.sync())
        };
        while !a.faults.flush_held.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        // The flush has taken the dirty segment and sleeps before its fdatasync.
        let t = std::time::Instant::now();
        a.append_copies(DAY, &[b"second"], None).unwrap();
        let second = a.mark();
        assert!(t.elapsed() < std::time::Duration::from_millis(500), "the append waited {:?}", t.elapsed());
        flusher.join().unwrap().unwrap();
        let synced = a.flushed.borrow().synced;
        assert!(synced >= first && synced < second, "that flush covers the first append only: {synced}");
        assert!(a.lock().open.values().all(|s| s.dirty), "the second append waits for the next flush");
        a.faults.slow_flush_ms.store(0, Ordering::Relaxed);
        a.sync().unwrap();
        assert!(a.flushed.borrow().synced >= second);
        assert_eq!(a.flushes(), 2);
    }

    #[test]
    fn a_failed_flush_leaves_its_segments_for_the_next_one() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let a = std::sync::Arc::new(Archive::new(dir.path()));
        a.append_copies(DAY, &[b"first"], None).unwrap();
        let mark = a.mark();
        a.faults.failing_syncs.store(1, Ordering::Relaxed);
        assert!(a.sync().is_err());
        assert!(a.flushed.borrow().failed >= mark);
        assert!(a.flushed.borrow().synced < mark, "a failed flush made nothing durable");
        assert!(a.lock().open.values().all(|s| s.dirty), "the segment is dirty again");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert!(rt.block_on(a.durable(mark)).is_err(), "its waiters hear of the failure");
        // A later append's waiter gets the retry, which covers the first frame too.
        a.append_copies(DAY, &[b"second"], None).unwrap();
        rt.block_on(a.durable(a.mark())).unwrap();
        assert!(a.flushed.borrow().synced >= mark);
        assert!(a.lock().open.values().all(|s| !s.dirty));
        assert_eq!(a.flushes(), 2);
    }

    #[test]
    fn async_waiters_resolve_only_once_a_flush_covers_them_and_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let a = std::sync::Arc::new(Archive::new(dir.path()));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let marks = rt.block_on(async {
            let tasks: Vec<_> = (0..50)
                .map(|i| {
                    let a = a.clone();
                    tokio::spawn(async move {
                        a.append_copies(DAY, &[format!("message {i}").as_bytes()], None).unwrap();
                        let mark = a.mark();
                        a.durable(mark).await.unwrap();
                        assert!(a.flushed.borrow().synced >= mark, "resolved before its flush");
                        assert!(a.lock().open.values().all(|s| !s.dirty) || a.mark() > mark);
                        mark
                    })
                })
                .collect();
            let mut marks = Vec::new();
            for t in tasks {
                marks.push(t.await.unwrap());
            }
            marks
        });
        assert_eq!(marks.iter().max(), Some(&50));
        let flushes = a.flushes();
        assert!((1..50).contains(&flushes), "{flushes} flushes for 50 waiters");
        // Nothing appended since: durable at once, no flush needed.
        rt.block_on(a.durable(a.mark())).unwrap();
        assert_eq!(a.flushes(), flushes);
    }

    fn index_payloads(frames: &[IndexFrame]) -> Vec<&[u8]> {
        frames.iter().map(|f| f.payload.as_slice()).collect()
    }

    #[test]
    fn recovery_finds_the_index_records_after_what_was_applied() {
        let dir = tempfile::tempdir().unwrap();
        let a = Archive::new(dir.path());
        a.append_copies(DAY, &[b"copy one"], None).unwrap();
        a.append_index("2026-11-23", b"first").unwrap();
        a.sync().unwrap();
        let applied: HashMap<_, _> = a.ends().into_iter().collect();
        a.append_copies(DAY, &[b"copy two"], None).unwrap();
        a.append_index("2026-11-23", b"second").unwrap();
        a.append_index("2026-11-24", b"other day").unwrap();
        a.sync().unwrap();
        let b = Archive::new(dir.path());
        let Recovered { index: frames, ends } = b.recover(&applied).unwrap();
        assert_eq!(index_payloads(&frames), [&b"second"[..], b"other day"]);
        // From nothing applied, every index record.
        let Recovered { index: frames, ends: again } = b.recover(&HashMap::new()).unwrap();
        assert_eq!(index_payloads(&frames), [&b"first"[..], b"second", b"other day"]);
        assert_eq!(ends, again);
        // A replaced segment file is read from its start.
        let replaced = dir.path().join("2026-11-23.seg");
        fs::copy(&replaced, dir.path().join("copy")).unwrap();
        fs::rename(dir.path().join("copy"), &replaced).unwrap();
        let all_applied: HashMap<_, _> = ends.into_iter().collect();
        let Recovered { index: frames, .. } = b.recover(&all_applied).unwrap();
        assert_eq!(index_payloads(&frames), [&b"first"[..], b"second"]);
    }

    #[test]
    fn recovery_cuts_a_torn_or_damaged_tail_and_appends_follow_whole_frames() {
        for damage in ["torn header", "torn payload", "flipped byte"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("2026-11-23.seg");
            let a = Archive::new(dir.path());
            a.append_index("2026-11-23", b"kept").unwrap();
            a.sync().unwrap();
            let whole = HEADER_LEN + 4;
            a.append_index("2026-11-23", b"lost in the crash").unwrap();
            a.sync().unwrap();
            drop(a);
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            match damage {
                "torn header" => f.set_len(whole + 10).unwrap(),
                "torn payload" => f.set_len(whole + HEADER_LEN + 3).unwrap(),
                _ => f.write_all_at(b"X", whole + HEADER_LEN + 2).unwrap(),
            }
            let b = Archive::new(dir.path());
            let Recovered { index: frames, ends } = b.recover(&HashMap::new()).unwrap();
            assert_eq!(index_payloads(&frames), [&b"kept"[..]], "{damage}");
            assert_eq!(ends[0].1.offset, whole, "{damage}");
            assert_eq!(fs::metadata(&path).unwrap().len(), whole, "{damage}: the tail is cut off");
            b.append_index("2026-11-23", b"after").unwrap();
            b.sync().unwrap();
            let Recovered { index: frames, .. } = Archive::new(dir.path()).recover(&HashMap::new()).unwrap();
            assert_eq!(index_payloads(&frames), [&b"kept"[..], b"after"], "{damage}");
        }
    }

    #[test]
    fn flushes_write_over_zeros_written_ahead_and_the_file_does_not_grow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("2026-11-23.seg");
        let a = Archive::new(dir.path());
        a.write(DAY, &[b"first"], None).unwrap();
        let size = fs::metadata(&path).unwrap().len();
        assert_eq!(size, HEADER_LEN + 5 + RESERVE);
        let body = vec![b'x'; 10_000];
        let mut written = Vec::new();
        while a.ends()[0].1.offset + HEADER_LEN + body.len() as u64 + GATHER <= size {
            written.push(a.write(DAY, &[&body], None).unwrap());
            assert_eq!(fs::metadata(&path).unwrap().len(), size, "after {} frames", written.len());
        }
        assert!(written.len() > 70, "{} frames", written.len());
        // Less than GATHER left: the next frame tops the zeros up.
        a.write(DAY, &[&body], None).unwrap();
        let end = a.ends()[0].1.offset;
        assert_eq!(fs::metadata(&path).unwrap().len(), end + RESERVE);
        assert!(written.iter().all(|r| a.read(DAY, r, Copy::Original).unwrap() == body));
    }

    #[test]
    fn zeros_after_the_frames_are_kept_and_later_frames_follow_the_last_whole_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("2026-11-23.seg");
        let a = Archive::new(dir.path());
        a.append_index("2026-11-23", b"kept").unwrap();
        a.append_index("2026-11-23", b"never reached the disk").unwrap();
        a.sync().unwrap();
        drop(a);
        // As a crash may leave it: the second frame's blocks were never written.
        let whole = HEADER_LEN + 4;
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0; HEADER_LEN as usize + 22], whole).unwrap();
        let size = fs::metadata(&path).unwrap().len();
        assert!(size > whole + GATHER);
        // A store that never replayed the archive takes it as applied where the frames end.
        let b = Archive::new(dir.path());
        assert_eq!(b.existing().unwrap()[0].1.offset, whole);
        let Recovered { index: frames, ends } = b.recover(&HashMap::new()).unwrap();
        assert_eq!(index_payloads(&frames), [&b"kept"[..]]);
        assert_eq!(ends[0].1.offset, whole);
        assert_eq!(fs::metadata(&path).unwrap().len(), size, "zeros are not a torn tail");
        b.append_index("2026-11-23", b"after").unwrap();
        assert_eq!(b.ends()[0].1.offset, whole + HEADER_LEN + 5);
        b.sync().unwrap();
        // Opened without recovery, it finds the end by walking the frame headers.
        let c = Archive::new(dir.path());
        c.append_index("2026-11-23", b"last").unwrap();
        c.sync().unwrap();
        let Recovered { index: frames, ends } = Archive::new(dir.path()).recover(&HashMap::new()).unwrap();
        assert_eq!(index_payloads(&frames), [&b"kept"[..], b"after", b"last"]);
        let end = whole + 2 * HEADER_LEN + 9;
        assert_eq!(ends[0].1.offset, end);
        // The next day opened elsewhere: recovery gives the earlier day's zeros back, and keeps
        // the last day's.
        let d = Archive::new(dir.path());
        d.append_index("2026-11-24", b"next day").unwrap();
        d.sync().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), size, "not open here: its zeros stay");
        let next = dir.path().join("2026-11-24.seg");
        let Recovered { index: frames, .. } = Archive::new(dir.path()).recover(&HashMap::new()).unwrap();
        assert_eq!(index_payloads(&frames), [&b"kept"[..], b"after", b"last", b"next day"]);
        assert_eq!(fs::metadata(&path).unwrap().len(), end);
        assert_eq!(fs::metadata(&next).unwrap().len(), HEADER_LEN + 8 + RESERVE);
    }

    #[test]
    fn an_old_unframed_segment_is_taken_as_applied_where_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("2026-11-22.seg"), b"raw copies of an earlier version").unwrap();
        let a = Archive::new(dir.path());
        let existing = a.existing().unwrap();
        assert_eq!(existing.len(), 1);
        assert_eq!(existing[0].1.offset, 32);
        a.append_index("2026-11-22", b"new").unwrap();
        let Recovered { index: frames, .. } = a.recover(&existing.into_iter().collect()).unwrap();
        assert_eq!(index_payloads(&frames), [&b"new"[..]]);
        assert_eq!(fs::read(dir.path().join("2026-11-22.seg")).unwrap()[..32], b"raw copies of an earlier version"[..]);
    }
}
