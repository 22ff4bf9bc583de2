//! What the other side receives: rewritten headers, translated ids, notices.

pub mod contact;
pub mod headers;
pub mod ids;
pub mod notice;

/// One header as Postfix passed it to the milter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawHeader {
    pub name: String,
    pub value: String,
}

impl RawHeader {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        RawHeader { name: name.into(), value: value.into() }
    }
}

/// A header action at end of message. Indexes are 1-based per header name, as
/// in the milter protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderEdit {
    Change { name: String, index: i32, value: String },
    Delete { name: String, index: i32 },
    Add { name: String, value: String },
}

/// Everything end of message does to an accepted message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rewrite {
    pub headers: Vec<HeaderEdit>,
    /// New envelope sender, bracketed (`<alias@domain>`).
    pub sender: Option<String>,
    /// Envelope recipients to delete, exactly as received.
    pub delete_rcpts: Vec<String>,
    /// Envelope recipients to add, bracketed.
    pub add_rcpts: Vec<String>,
    /// A replacement body (the headers that describe it are in `headers`).
    pub body: Option<crate::content::Spliced>,
}

impl Rewrite {
    /// The delivered body: the replacement, or `original` when there is none.
    pub fn body_slices<'a>(&'a self, original: &'a [u8]) -> Box<dyn Iterator<Item = &'a [u8]> + 'a> {
        match &self.body {
            Some(b) => Box::new(b.slices(original)),
            None => Box::new(std::iter::once(original)),
        }
    }
}

/// Each header with its 1-based index among the headers of the same name
/// (case-insensitive), the milter protocol's way of naming a header.
pub fn indexed(headers: &[RawHeader]) -> Vec<(&RawHeader, i32)> {
    let mut seen: Vec<(String, i32)> = Vec::new();
    headers
        .iter()
        .map(|h| {
            let name = h.name.to_ascii_lowercase();
            let index = match seen.iter_mut().find(|(n, _)| *n == name) {
                Some((_, i)) => {
                    *i += 1;
                    *i
                }
                None => {
                    seen.push((name, 1));
                    1
                }
            };
            (h, index)
        })
        .collect()
}

/// Orders edits so that indexes stay valid whichever way the MTA renumbers:
/// per name, changes first (ascending), then deletions from the highest index
/// down; additions last.
pub fn order_edits(mut edits: Vec<HeaderEdit>) -> Vec<HeaderEdit> {
    fn key(e: &HeaderEdit) -> (u8, String, i64) {
        match e {
            HeaderEdit::Change { name, index, .. } => (0, name.to_ascii_lowercase(), i64::from(*index)),
            HeaderEdit::Delete { name, index } => (1, name.to_ascii_lowercase(), -i64::from(*index)),
            HeaderEdit::Add { .. } => (2, String::new(), 0),
        }
    }
    edits.sort_by_key(key);
    edits
}

/// Applies header edits the way Postfix does (an index counts the live headers
/// of that name), for the archive's "as delivered" copy.
pub fn apply_edits(headers: &[RawHeader], edits: &[HeaderEdit]) -> Vec<RawHeader> {
    let mut live: Vec<RawHeader> = headers.to_vec();
    let nth = |live: &[RawHeader], name: &str, index: i32| {
        live.iter()
            .enumerate()
            .filter(|(_, h)| h.name.eq_ignore_ascii_case(name))
            .nth((index.max(1) - 1) as usize)
            .map(|(i, _)| i)
    };
    for e in edits {
        match e {
            HeaderEdit::Change { name, index, value } => {
                if let Some(i) = nth(&live, name, *index) {
                    live[i].value = value.clone();
                }
            }
            HeaderEdit::Delete { name, index } => {
                if let Some(i) = nth(&live, name, *index) {
                    live.remove(i);
                }
            }
            HeaderEdit::Add { name, value } => live.push(RawHeader::new(name, value)),
        }
    }
    live
}

/// A whole message from milter headers and body (CRLF line ends).
pub fn assemble(headers: &[RawHeader], body: &[u8]) -> Vec<u8> {
    let mut out = header_block(headers);
    out.extend_from_slice(body);
    out
}

/// The header section of a message, blank line included (CRLF line ends).
pub fn header_block(headers: &[RawHeader]) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.len() * 64 + 2);
    for h in headers {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        // Postfix hands folded values over with bare LF before the continuation.
        out.extend_from_slice(h.value.replace("\r\n", "\n").replace('\n', "\r\n").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}
