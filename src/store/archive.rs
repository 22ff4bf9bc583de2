//! Archived messages (DESIGN §2.5, §6): one append-only segment file per UTC
//! day (`YYYY-MM-DD.seg`), each message's copies appended and located by
//! offset and length in its store record. Appending creates no file (the
//! cost that dominated per-message files on ext4), and concurrent writers
//! share one `fdatasync` (group commit). A crash mid-append leaves bytes no
//! record points to: records are committed only after the flush.
//! Retention removes whole days.

use super::group_sync::GroupSync;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Mutex;

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

struct Segment {
    file: File,
    len: u64,
    /// Appended to since its last flush.
    dirty: bool,
}

#[derive(Default)]
struct Segments {
    open: HashMap<String, Segment>,
    /// Segments given up after a failed append, still holding other writers' copies that the
    /// next flush must make durable.
    retired: Vec<File>,
}

pub struct Archive {
    dir: PathBuf,
    segments: Mutex<Segments>,
    flush: GroupSync,
}

/// `YYYY-MM-DD` of a unix time: the archive's day.
pub fn day_dir(at: u64) -> String {
    jiff::Timestamp::from_second(at as i64).map_or_else(|_| "1970-01-01".into(), |t| t.strftime("%Y-%m-%d").to_string())
}

fn is_day(name: &str) -> Option<&str> {
    let day = name.strip_suffix(".seg")?;
    (day.len() == 10 && day.bytes().all(|b| b.is_ascii_digit() || b == b'-')).then_some(day)
}

impl Archive {
    pub fn new(dir: impl Into<PathBuf>) -> Archive {
        Archive { dir: dir.into(), segments: Mutex::default(), flush: GroupSync::default() }
    }

    fn path(&self, day: &str) -> PathBuf {
        self.dir.join(format!("{day}.seg"))
    }

    /// Appends a message's copies and returns once they are durable. Each copy
    /// is given in pieces (header block, body) so large bodies are not copied.
    ///
    /// A failed append (disk full) may leave part of the copy in the file: the
    /// segment is then given up, and the next message reopens it and appends
    /// after whatever is there, so every recorded offset stays right. Reopening
    /// also picks up a segment file that was replaced meanwhile.
    pub fn write(&self, at: u64, original: &[&[u8]], delivered: Option<&[&[u8]]>) -> io::Result<ArchiveRef> {
        let day = day_dir(at);
        let location = {
            let mut segments = self.segments.lock().unwrap_or_else(|e| e.into_inner());
            if !segments.open.contains_key(&day) {
                fs::create_dir_all(&self.dir)?;
                let file = OpenOptions::new().create(true).append(true).read(true).open(self.path(&day))?;
                // The name must survive a crash too: synced on every open, so an open that
                // created the file and then failed does not leave it unsynced for the next one.
                File::open(&self.dir)?.sync_all()?;
                let len = file.metadata()?.len();
                segments.open.insert(day.clone(), Segment { file, len, dirty: false });
            }
            let seg = segments.open.get_mut(&day).expect("inserted above");
            let mut append = |pieces: &[&[u8]]| -> io::Result<Span> {
                let span = Span { offset: seg.len, len: pieces.iter().map(|p| p.len() as u64).sum() };
                for p in pieces {
                    seg.file.write_all(p)?;
                }
                seg.len += span.len;
                Ok(span)
            };
            let appended = append(original).and_then(|original| {
                let delivered = delivered.map(&mut append).transpose()?;
                Ok(ArchiveRef { original, delivered })
            });
            match appended {
                Ok(location) => {
                    seg.dirty = true;
                    location
                }
                Err(e) => {
                    let seg = segments.open.remove(&day).expect("appended to above");
                    if seg.dirty {
                        segments.retired.push(seg.file);
                    }
                    return Err(e);
                }
            }
        };
        self.flush.sync(|| {
            let mut segments = self.segments.lock().unwrap_or_else(|e| e.into_inner());
            let segments = &mut *segments;
            segments.open.values().filter(|s| s.dirty).try_for_each(|s| s.file.sync_data())?;
            segments.retired.iter().try_for_each(|f| f.sync_data())?;
            // Appends wait for the lock held here: what was dirty is durable now.
            segments.open.values_mut().for_each(|s| s.dirty = false);
            segments.retired.clear();
            Ok(())
        })?;
        Ok(location)
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
        let mut segments = self.segments.lock().unwrap_or_else(|e| e.into_inner());
        segments.open.retain(|day, _| day.as_str() >= cutoff_day);
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_day(&name).is_some_and(|d| d < cutoff_day) {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Bytes used by archived messages.
    pub fn size(&self) -> u64 {
        fs::read_dir(&self.dir).map_or(0, |rd| {
            rd.flatten()
                .filter(|e| is_day(&e.file_name().to_string_lossy()).is_some())
                .map(|e| e.metadata().map_or(0, |m| m.len()))
                .sum()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_purge() {
        let dir = tempfile::tempdir().unwrap();
        let a = Archive::new(dir.path());
        let day = 20_780 * 86_400; // 2026-11-23
        assert_eq!(day_dir(day), "2026-11-23");
        let r1 = a.write(day, &[b"or", b"ig"], Some(&[b"deliv"])).unwrap();
        let r2 = a.write(day + 86_400, &[b"second"], None).unwrap();
        let r3 = a.write(day + 5, &[b"third"], None).unwrap();
        assert_eq!(a.read(day, &r1, Copy::Original).unwrap(), b"orig");
        assert_eq!(a.read(day, &r1, Copy::Delivered).unwrap(), b"deliv");
        assert_eq!(a.read(day + 5, &r3, Copy::Original).unwrap(), b"third");
        assert_eq!(a.read(day + 86_400, &r2, Copy::Delivered).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(a.size(), 20);
        // A reopened archive appends after what is there.
        let b = Archive::new(dir.path());
        let r4 = b.write(day, &[b"fourth"], None).unwrap();
        assert_eq!(r4.original.offset, 14);
        assert_eq!(b.read(day, &r1, Copy::Delivered).unwrap(), b"deliv");
        assert_eq!(b.purge_before("2026-11-24").unwrap(), 1);
        assert!(b.read(day, &r1, Copy::Original).is_err());
        assert_eq!(b.read(day + 86_400, &r2, Copy::Original).unwrap(), b"second");
    }

    #[test]
    fn a_full_segment_fails_the_write_and_the_next_one_reopens_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = Archive::new(dir.path());
        let day = 20_780 * 86_400;
        // Today's segment is on a device that is always full (ENOSPC).
        let path = dir.path().join("2026-11-23.seg");
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        assert_eq!(a.write(day, &[b"first"], None).unwrap_err().kind(), io::ErrorKind::StorageFull);
        assert_eq!(a.write(day, &[b"first"], None).unwrap_err().kind(), io::ErrorKind::StorageFull);
        // Space again: the next write opens the segment afresh.
        fs::remove_file(&path).unwrap();
        let r1 = a.write(day, &[b"first"], None).unwrap();
        let r2 = a.write(day, &[b"second"], None).unwrap();
        assert_eq!((r1.original.offset, r2.original.offset), (0, 5));
        assert_eq!(a.read(day, &r2, Copy::Original).unwrap(), b"second");
    }

    #[test]
    fn concurrent_writers_each_find_their_own_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let a = std::sync::Arc::new(Archive::new(dir.path()));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let a = a.clone();
                std::thread::spawn(move || {
                    let body = format!("message {i} ").repeat(100);
                    let r = a.write(86_400, &[body.as_bytes()], None).unwrap();
                    (body, r)
                })
            })
            .collect();
        for t in threads {
            let (body, r) = t.join().unwrap();
            assert_eq!(a.read(86_400, &r, Copy::Original).unwrap(), body.as_bytes());
        }
    }
}
