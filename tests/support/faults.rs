//! Fault injection for tests/e2e_faults.rs: a second Postfix as the sending MTA, a file-size
//! limit imposed on a running process (writes past it fail as on a full disk), and the paths of
//! the archive's day segments.

use super::postfix::{PostfixRelay, RelayOptions};
use std::path::{Path, PathBuf};

/// A second private Postfix acting as the sending MTA: no milter, every message relayed to
/// `[127.0.0.1]:next_hop_port` (the milter'd relay's smtpd), deferred mail retried every second.
pub fn sending_mta(next_hop_port: u16) -> PostfixRelay {
    let relayhost = format!("[127.0.0.1]:{next_hop_port}");
    PostfixRelay::start_with(
        // No relay_domains: the relay domain is an ordinary remote domain here, so relayhost
        // applies to it.
        RelayOptions { relay_domain: String::new(), ..RelayOptions::without_milter() },
        &[
            ("relayhost", relayhost.as_str()),
            ("minimal_backoff_time", "1s"),
            ("maximal_backoff_time", "2s"),
            ("queue_run_delay", "1s"),
            // The messages carry their own Message-ID and Date; add nothing.
            ("local_header_rewrite_clients", ""),
        ],
    )
}

/// Sets `RLIMIT_FSIZE` of process `pid` (`None`: unlimited). A write at or past the limit then
/// fails with `EFBIG` (a write crossing it is cut short), like a disk that is full from there on.
pub fn set_file_size_limit(pid: i32, bytes: Option<u64>) {
    let cur = bytes.unwrap_or(libc::RLIM_INFINITY);
    let limit = libc::rlimit { rlim_cur: cur, rlim_max: libc::RLIM_INFINITY };
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit({pid}, RLIMIT_FSIZE, {bytes:?}): {}", std::io::Error::last_os_error());
}

/// The archive segment of the UTC day of `at` (unix seconds) and of the day after (a test that
/// runs across midnight writes to that one).
pub fn segments_around(archive_dir: &Path, at: u64) -> [PathBuf; 2] {
    use bsm_milter::store::archive::day_dir;
    [archive_dir.join(format!("{}.seg", day_dir(at))), archive_dir.join(format!("{}.seg", day_dir(at + 86_400)))]
}

/// Where the frames of an archive segment end, walking their headers (`BSMJ`, kind, payload
/// length at bytes 8..16; README, "Archive"): zeros may follow, written ahead of them.
pub fn frames_end(segment: &Path) -> u64 {
    let bytes = std::fs::read(segment).unwrap();
    let mut pos = 0;
    while bytes.len() - pos >= 24 && &bytes[pos..pos + 4] == b"BSMJ" {
        let len = u64::from_le_bytes(bytes[pos + 8..pos + 16].try_into().unwrap()) as usize;
        if len > bytes.len() - pos - 24 {
            break;
        }
        pos += 24 + len;
    }
    pos as u64
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// A file made immutable (`chattr +i`): no one can write it, root included, not even through
/// descriptors opened before. Cleared on drop. `None` where the file system has no such flag.
pub struct Immutable(PathBuf);

impl Immutable {
    pub fn set(path: &Path) -> Option<Immutable> {
        let done = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        done.then(|| Immutable(path.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}
