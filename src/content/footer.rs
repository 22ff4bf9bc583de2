//! The command footer (DESIGN §2.6): every buyer → seller message carries
//! `mailto:` links to the relay's command addresses
//! (`no-response-needed+TOKEN@relay`, `report+TOKEN@relay`), and a seller's
//! reply that quotes it has it stripped again, so that the buyer never sees a
//! token or a command address.
//!
//! # Markers
//! Two fixed ASCII strings that do not depend on configuration, so a reply is
//! recognised even after the relay's name changed: [`FOOTER_START`] opens the
//! first footer line and [`FOOTER_END`] closes the last one. Mail clients that
//! re-wrap quoted text only move words *forward* onto new lines, so everything
//! between the start of the start marker's line and the end marker stays
//! between those two lines, whatever the quote prefixes and line width.
//!
//! # What stripping removes
//! In text (plain-text parts, and the visible lines of HTML parts):
//! - every block from a line containing the start marker to the next line
//!   containing the end marker, inclusive; when the end marker is missing, to
//!   the last line containing a command address (before the next start marker);
//! - every line containing a command address on the relay domain or an end
//!   marker, footer block or not (the safety net);
//! - a separator line (`-- `, `--`, a run of dashes or underscores, an `<hr>`)
//!   directly above a removed block, blank lines between included.
//!
//! HTML parts additionally lose every element marked `data-bsm-footer` or
//! whose class contains `bsm-footer` (Gmail keeps classes as `m_123…bsm-footer`
//! but drops `data-*` when quoting) and every link (content included) to a
//! command address; see [`html`].

use std::borrow::Cow;
use std::ops::Range;

mod html;

pub(super) use html::strip_html;

/// Opens the first line of the footer.
pub const FOOTER_START: &str = "::bsm-footer::";
/// Closes the last line of the footer.
pub const FOOTER_END: &str = "::bsm-footer-end::";

/// Found by the quick check: both markers, the class and the data attribute.
const TRACE: &[u8] = b"bsm-footer";

/// Per-message additions to the policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// Appended to the main text and HTML parts (buyer → seller).
    pub footer: Option<Footer>,
    /// Remove relay footers (also quoted ones: "> " prefixes, blockquotes) (seller → buyer).
    pub strip_footer: bool,
}

/// The command footer of one buyer message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footer {
    /// The message's command token (`[a-z0-9]`).
    pub token: String,
    pub relay_domain: String,
    /// Shown to the seller, e.g. "Marketplace Messaging".
    pub relay_name: String,
}

impl Footer {
    /// `no-response-needed+TOKEN@DOMAIN`.
    pub fn no_response_address(&self) -> String {
        format!("no-response-needed+{}@{}", one_line(&self.token), one_line(&self.relay_domain))
    }

    /// `report+TOKEN@DOMAIN`.
    pub fn report_address(&self) -> String {
        format!("report+{}@{}", one_line(&self.token), one_line(&self.relay_domain))
    }

    /// The plain-text footer, CRLF line ends, opening with a signature separator.
    pub fn text(&self) -> String {
        let name = one_line(&self.relay_name);
        format!(
            "-- \r\n\
             {FOOTER_START} [{name}] Reply to this message to answer the buyer.\r\n\
             No response needed? Write to <mailto:{}>\r\n\
             Report this message: <mailto:{}>\r\n\
             [end of {name} footer] {FOOTER_END}\r\n",
            self.no_response_address(),
            self.report_address(),
        )
    }

    /// The HTML footer: one marked `<div>`, small grey text below a rule.
    pub fn html(&self) -> String {
        let name = escape(&one_line(&self.relay_name));
        let (nrn, report) = (escape(&self.no_response_address()), escape(&self.report_address()));
        format!(
            "<div data-bsm-footer=\"1\" class=\"bsm-footer\" style=\"margin-top:16px;color:#888888;\
             font-family:Arial,Helvetica,sans-serif;font-size:12px;line-height:1.5\">\
             <hr style=\"border:0;border-top:1px solid #dddddd;margin:0 0 8px 0\">\
             {FOOTER_START} [{name}] Reply to this message to answer the buyer.<br>\
             No response needed? Write to <a href=\"mailto:{nrn}\" style=\"color:#888888\">{nrn}</a><br>\
             Report this message: <a href=\"mailto:{report}\" style=\"color:#888888\">{report}</a><br>\
             [end of {name} footer] {FOOTER_END}</div>"
        )
    }
}

/// Configuration text on one line: control characters become spaces.
fn one_line(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// For text and attribute values alike.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// The quick check: whether `text` may hold anything to strip. A false
/// positive costs a scan, never a rebuild. `relay` is lower-case.
pub(super) fn mentions(text: &str, relay: &str) -> bool {
    find_ci(text.as_bytes(), TRACE, 0).is_some() || has_command_address(text, relay)
}

/// The quick check for HTML, where an address may hide behind character
/// references or percent-encoding: the command words themselves.
pub(super) fn mentions_html(html: &str) -> bool {
    let b = html.as_bytes();
    [TRACE, b"no-response-needed", b"report"].iter().any(|w| find_ci(b, w, 0).is_some())
}

/// Whether `s` holds `no-response-needed+…@relay` or `report+…@relay`
/// (any case; `+` also percent-encoded). `relay` is lower-case.
pub(super) fn has_command_address(s: &str, relay: &str) -> bool {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(at) = find_ci(b, relay.as_bytes(), from) {
        from = at + 1;
        if at < 2 || b[at - 1] != b'@' {
            continue;
        }
        // The domain ends here, or it is only the start of another one.
        let end = at + relay.len();
        let label = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        if b.get(end).is_some_and(|&c| label(c))
            || (b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(|&c| label(c)))
        {
            continue;
        }
        let local_end = at - 1;
        let is_local = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.' | b'_' | b'%' | b'=');
        let start = b[..local_end].iter().rposition(|&c| !is_local(c)).map_or(0, |i| i + 1);
        let local = b[start..local_end].to_ascii_lowercase();
        let command = [&b"no-response-needed"[..], b"report"]
            .iter()
            .any(|cmd| local.strip_prefix(*cmd).is_some_and(|rest| rest.starts_with(b"+") || rest.starts_with(b"%2b")));
        if command {
            return true;
        }
    }
    false
}

/// `needle` is lower-case ASCII. Candidates are found by their first byte, in
/// either case, with `memchr` (this runs over every text part and HTML body).
fn find_ci(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let last_start = hay.len().checked_sub(needle.len())?;
    let window = hay.get(from..=last_start)?;
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), window)
        .map(|i| from + i)
        .find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

/// Removes relay footers from plain text (see the module documentation).
/// Borrowed when there was nothing to remove. `relay` is lower-case.
pub(super) fn strip_text<'t>(text: &'t str, relay: &str) -> Cow<'t, str> {
    if !mentions(text, relay) {
        return Cow::Borrowed(text);
    }
    let ranges = footer_lines(text, relay);
    if ranges.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for r in ranges {
        out.push_str(&text[last..r.start]);
        last = r.end;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// The byte ranges of `text` that are footer: whole lines, line ends
/// included, sorted and disjoint.
pub(super) fn footer_lines(text: &str, relay: &str) -> Vec<Range<usize>> {
    let mut lines: Vec<Range<usize>> = Vec::new();
    let mut at = 0;
    for l in text.split_inclusive('\n') {
        lines.push(at..at + l.len());
        at += l.len();
    }
    let b = text.as_bytes();
    let has = |m: &str| -> Vec<bool> {
        let m = m.as_bytes();
        lines.iter().map(|r| find_ci(&b[r.clone()], m, 0).is_some()).collect()
    };
    let (start, end) = (has(FOOTER_START), has(FOOTER_END));
    let cmd: Vec<bool> = lines.iter().map(|r| has_command_address(&text[r.clone()], relay)).collect();
    let n = lines.len();
    let mut drop = vec![false; n];
    let mut i = 0;
    while i < n {
        if !start[i] {
            i += 1;
            continue;
        }
        let next = (i + 1..n).find(|&j| start[j]).unwrap_or(n);
        let last = (i..next).find(|&j| end[j]).or_else(|| (i..next).rev().find(|&j| cmd[j])).unwrap_or(i);
        drop[i..=last].fill(true);
        i = last + 1;
    }
    for j in 0..n {
        drop[j] |= end[j] || cmd[j];
    }
    for j in 1..n {
        if drop[j]
            && !drop[j - 1]
            && let Some(k) = separator_above(text, &lines, j)
        {
            drop[k..j].fill(true);
        }
    }
    let mut out: Vec<Range<usize>> = Vec::new();
    for (r, _) in lines.into_iter().zip(drop).filter(|(_, d)| *d) {
        match out.last_mut() {
            Some(prev) if prev.end == r.start => prev.end = r.end,
            _ => out.push(r),
        }
    }
    out
}

/// The separator line directly above line `j` (at most two blank lines
/// between), if there is one.
fn separator_above(text: &str, lines: &[Range<usize>], j: usize) -> Option<usize> {
    for k in (j.saturating_sub(3)..j).rev() {
        let line = unquoted(&text[lines[k].clone()]).trim();
        if line.len() >= 2 && line.chars().all(|c| matches!(c, '-' | '_' | '–' | '—' | '─')) {
            return Some(k);
        }
        if !line.is_empty() {
            return None;
        }
    }
    None
}

/// The line without its quote prefix (`>`, `> > `, `>>` …).
fn unquoted(line: &str) -> &str {
    line.trim_start_matches(|c: char| c == '>' || c.is_whitespace())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod find_ci_tests {
    use super::find_ci;

    #[test]
    fn finds_any_case_from_an_offset_and_not_past_the_end() {
        let hay = b"xx No-Response-NEEDED and no-response-needed";
        assert_eq!(find_ci(hay, b"no-response-needed", 0), Some(3));
        assert_eq!(find_ci(hay, b"no-response-needed", 4), Some(26));
        assert_eq!(find_ci(hay, b"no-response-needed", 27), None);
        assert_eq!(find_ci(hay, b"needed", hay.len() - 6), Some(hay.len() - 6));
        assert_eq!(find_ci(b"abc", b"abcd", 0), None);
        assert_eq!(find_ci(b"abc", b"", 0), None);
        assert_eq!(find_ci(b"abc", b"c", 5), None);
    }
}
