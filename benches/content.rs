//! Content-policy throughput on four messages: a 2 KB plain-text message
//! (nothing to do), a ~20 KB tracker-laden HTML message, the end-to-end
//! benchmark's ~20 KB newsletter (text and HTML alternatives), and a message
//! with a 5 MB attachment.

use bsm_milter::content::{ContentPolicy, Outcome, apply};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn split(raw: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..at]).into_owned();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().unwrap();
            last.1.push_str("\r\n");
            last.1.push_str(line);
        } else if let Some((n, v)) = line.split_once(':') {
            headers.push((n.to_string(), v.trim_start().to_string()));
        }
    }
    (headers, raw[at + 4..].to_vec())
}

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/corpus/{name}.eml", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The end-to-end benchmark's seller → buyer message, as Postfix hands it over.
fn newsletter() -> Vec<u8> {
    let raw =
        std::fs::read_to_string(format!("{}/benches/data/tracker-newsletter.eml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    raw.replace("@@PAIR_ALIAS@@", "b-k3x9q2@m.example.com").replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

fn with_5mb_attachment() -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut data = b"%PDF-1.7\n".to_vec();
    data.resize(5 * 1024 * 1024, b'x');
    let mut m = b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"big\"\r\n\r\n--big\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe catalogue you asked for, order 114-1234567-1234567.\r\n--big\r\nContent-Type: application/pdf; name=\"catalogue.pdf\"\r\nContent-Disposition: attachment; filename=\"catalogue.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    for chunk in data.chunks(57) {
        for c in chunk.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for k in 0..4 {
                m.push(if k <= c.len() { T[(n >> (18 - 6 * k) & 63) as usize] } else { b'=' });
            }
        }
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b"--big--\r\n");
    m
}

fn bench(c: &mut Criterion) {
    let policy = ContentPolicy::seller_to_buyer_default();
    let mut g = c.benchmark_group("content_policy");
    for (name, raw) in [
        ("text_2kb_unchanged", corpus("clean_text")),
        ("html_20kb_trackers", corpus("marketing")),
        ("newsletter_20kb_e2e", newsletter()),
        ("attachment_5mb", with_5mb_attachment()),
    ] {
        let (headers, body) = split(&raw);
        let kind = match apply(&headers, &body, &policy, "m.example.com") {
            Outcome::Unchanged => "unchanged",
            Outcome::Rewritten { .. } => "rewritten",
            Outcome::Refuse { .. } => "refused",
        };
        eprintln!("{name}: {} bytes of body, {kind}", body.len());
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| b.iter(|| apply(black_box(&headers), black_box(&body), &policy, "m.example.com")));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
