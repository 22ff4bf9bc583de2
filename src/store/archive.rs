//! Archived messages as files (DESIGN §2.5, §6): written to a temporary file,
//! fsynced, renamed into place and the directory fsynced, so a message is
//! either fully archived or absent. One directory per UTC day, which is also
//! what retention purges.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copy {
    /// The message as the relay received it.
    Original,
    /// The message as the relay delivered it.
    Delivered,
}

impl Copy {
    fn suffix(self) -> &'static str {
        match self {
            Copy::Original => "original.eml",
            Copy::Delivered => "delivered.eml",
        }
    }
}

pub struct Archive {
    dir: PathBuf,
    flush: super::group_sync::GroupSync,
}

/// `YYYY-MM-DD` of a unix time, the archive's day directory.
pub fn day_dir(at: u64) -> String {
    jiff::Timestamp::from_second(at as i64).map_or_else(|_| "1970-01-01".into(), |t| t.strftime("%Y-%m-%d").to_string())
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 64 && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Archive {
    pub fn new(dir: impl Into<PathBuf>) -> Archive {
        Archive { dir: dir.into(), flush: Default::default() }
    }

    fn path(&self, at: u64, key: &str, copy: Copy) -> io::Result<PathBuf> {
        if !valid_key(key) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "invalid archive key"));
        }
        Ok(self.dir.join(day_dir(at)).join(format!("{key}.{}", copy.suffix())))
    }

    /// Writes copies of one message and returns once they are durable.
    /// Concurrent writers share one filesystem flush (group commit): the
    /// files are renamed into place complete, then flushed together.
    pub fn write(&self, at: u64, key: &str, copies: &[(Copy, &[u8])]) -> io::Result<()> {
        for (copy, bytes) in copies {
            let path = self.path(at, key, *copy)?;
            let dir = path.parent().expect("archive paths have a day directory");
            fs::create_dir_all(dir)?;
            let tmp = dir.join(format!(".{key}.{}.tmp", copy.suffix()));
            File::create(&tmp)?.write_all(bytes)?;
            fs::rename(&tmp, &path)?;
        }
        self.flush.sync(|| super::group_sync::syncfs(&self.dir))
    }

    pub fn read(&self, at: u64, key: &str, copy: Copy) -> io::Result<Vec<u8>> {
        fs::read(self.path(at, key, copy)?)
    }

    /// Removes every day directory before `cutoff_day` (`YYYY-MM-DD`); returns
    /// how many files went.
    pub fn purge_before(&self, cutoff_day: &str) -> io::Result<usize> {
        let mut removed = 0;
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() == 10 && name.as_str() < cutoff_day && entry.file_type()?.is_dir() {
                removed += fs::read_dir(entry.path())?.count();
                fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(removed)
    }

    /// Bytes used by archived messages.
    pub fn size(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            fs::read_dir(p).map_or(0, |rd| {
                rd.flatten()
                    .map(|e| match e.file_type() {
                        Ok(t) if t.is_dir() => walk(&e.path()),
                        Ok(_) => e.metadata().map_or(0, |m| m.len()),
                        Err(_) => 0,
                    })
                    .sum()
            })
        }
        walk(&self.dir)
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
        a.write(day, "k1", &[(Copy::Original, b"orig")]).unwrap();
        a.write(day + 86_400, "k2", &[(Copy::Delivered, b"deliv")]).unwrap();
        assert_eq!(a.read(day, "k1", Copy::Original).unwrap(), b"orig");
        assert!(a.read(day, "k1", Copy::Delivered).is_err());
        assert!(a.write(day, "../evil", &[(Copy::Original, b"x")]).is_err());
        assert_eq!(a.size(), 9);
        assert_eq!(a.purge_before("2026-11-24").unwrap(), 1);
        assert!(a.read(day, "k1", Copy::Original).is_err());
        assert_eq!(a.read(day + 86_400, "k2", Copy::Delivered).unwrap(), b"deliv");
    }
}
