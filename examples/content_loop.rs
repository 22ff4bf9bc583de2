//! Runs the seller → buyer content policy N times on one message: the loop that
//! callgrind counts instructions of (benches/README.md, "Profiling").
//!
//!     content_loop FILE N   # FILE: a message with LF or CRLF line ends

use bsm_milter::content::{ContentPolicy, apply};
use std::hint::black_box;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: content_loop FILE N");
    let n: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let raw = std::fs::read_to_string(path)
        .unwrap()
        .replace("@@PAIR_ALIAS@@", "b-k3x9q2@m.example.com")
        .replace("\r\n", "\n")
        .replace('\n', "\r\n");
    let at = raw.find("\r\n\r\n").unwrap();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in raw[..at].split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().unwrap();
            last.1.push_str("\r\n");
            last.1.push_str(line);
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.to_string(), v.trim_start().to_string()));
        }
    }
    let body = raw.as_bytes()[at + 4..].to_vec();
    let policy = ContentPolicy::seller_to_buyer_default();
    let t = std::time::Instant::now();
    for _ in 0..n {
        black_box(apply(black_box(&headers), black_box(&body), &policy, "m.example.com"));
    }
    println!("{:.1} µs/iter", t.elapsed().as_secs_f64() * 1e6 / n as f64);
}
