//! Phone numbers in free text, without eating order ids, dates, prices or postcodes.
//!
//! A hand-written scanner: runs of digit groups joined by short separator runs
//! (space, hyphen, dot, parentheses) are cut at natural breaks (whitespace) and
//! each sub-run is judged by its shape. Accepted shapes:
//! - international: `+` then 8–15 digits (`+1 (555) 123-4567`, `+82 2-1234-5678`),
//!   or `00` + country code, 10–15 digits in two groups or more;
//! - national with a trunk `0`: 9–12 digits in two groups or more
//!   (`010-1234-5678`, `02-123-4567`, `020 7946 0958`, `(02) 1234 5678`);
//! - North American `(555) 123-4567`, `555-123-4567`, `1-800-555-1234`;
//! - Korean service numbers `1588-1234`; an unseparated Korean mobile `01012345678`.
//!
//! Anything else is left alone: `114-1234567-1234567` (17 digits), dates,
//! times (`:` is no separator), prices (`,` is none, a currency sign before
//! refuses), ZIP+4, postcodes, long unseparated digit runs (tracking numbers).

use std::borrow::Cow;

pub const PHONE_REMOVED: &str = "[phone removed]";

fn digit(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '\u{FF10}'..='\u{FF19}' => Some((c as u32 - 0xFF10) as u8),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sep {
    Space,
    Dash,
    Dot,
    Open,
    Close,
}

fn sep(c: char) -> Option<Sep> {
    match c {
        ' ' | '\u{a0}' | '\u{2009}' | '\u{202f}' | '\u{3000}' => Some(Sep::Space),
        '-' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FF0D}' => Some(Sep::Dash),
        '.' | '\u{FF0E}' => Some(Sep::Dot),
        '(' | '\u{FF08}' => Some(Sep::Open),
        ')' | '\u{FF09}' => Some(Sep::Close),
        _ => None,
    }
}

fn is_currency(c: char) -> bool {
    matches!(c, '$' | '€' | '£' | '¥' | '₩' | '₹' | '￦' | '￥' | '＄')
}

struct Group {
    start: usize,
    end: usize,
    digits: Vec<u8>,
    /// Separators between the previous group and this one.
    seps: Vec<Sep>,
}

/// The fewest digits any accepted shape has (`1588-1234`, `+` and 8 digits).
const MIN_DIGITS: usize = 8;

/// Whether `text` has fewer than `n` digits (ASCII or full-width).
fn digits_below(text: &str, n: usize) -> bool {
    let ascii = text.bytes().filter(u8::is_ascii_digit).count();
    if ascii >= n {
        return false;
    }
    text.is_ascii() || ascii + text.chars().filter(|c| ('\u{FF10}'..='\u{FF19}').contains(c)).count() < n
}

/// Replaces phone numbers with `[phone removed]`; returns the text and how many.
pub fn redact_phones(text: &str) -> (Cow<'_, str>, u32) {
    if digits_below(text, MIN_DIGITS) {
        return (Cow::Borrowed(text), 0);
    }
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = String::new();
    let mut last = 0usize;
    let mut count = 0u32;
    let mut i = 0usize;
    while i < chars.len() {
        let (pos, c) = chars[i];
        let starts = digit(c).is_some()
            || (c == '+' || sep(c) == Some(Sep::Open)) && chars.get(i + 1).is_some_and(|&(_, n)| digit(n).is_some());
        if !starts || !left_ok(&chars, i) {
            i += 1;
            continue;
        }
        let plus = c == '+';
        let (groups, next) = collect(&chars, if plus { i + 1 } else { i });
        if let Some((a, b)) = best_run(&groups, plus, &chars, next) {
            let start = if a == 0 { pos } else { groups[a].start };
            // Include an opening parenthesis right before the first group.
            let start = if a > 0 && groups[a].seps.last() == Some(&Sep::Open) {
                chars.iter().rev().find(|&&(p, _)| p < groups[a].start).map_or(start, |&(p, _)| p)
            } else {
                start
            };
            let end = groups[b].end;
            out.push_str(&text[last..start]);
            out.push_str(PHONE_REMOVED);
            last = end;
            count += 1;
            // Continue after the match.
            while i < chars.len() && chars[i].0 < end {
                i += 1;
            }
            continue;
        }
        // Skip the whole digit run so that no sub-run starts mid-number.
        let end = groups.last().map_or(pos + c.len_utf8(), |g| g.end);
        while i < chars.len() && chars[i].0 < end {
            i += 1;
        }
    }
    if count == 0 {
        return (Cow::Borrowed(text), 0);
    }
    out.push_str(&text[last..]);
    (Cow::Owned(out), count)
}

/// What precedes a candidate must not make it part of a larger token.
fn left_ok(chars: &[(usize, char)], i: usize) -> bool {
    let Some(&(_, p)) = i.checked_sub(1).and_then(|j| chars.get(j)) else {
        return true;
    };
    if p.is_ascii_alphanumeric() || p == '_' || is_currency(p) || digit(p).is_some() {
        return false;
    }
    if matches!(p, '-' | '.' | '/' | ',' | ':' | '#' | '+' | '=' | '@') {
        let pp = i.checked_sub(2).and_then(|j| chars.get(j)).map(|&(_, c)| c);
        if pp.is_some_and(|c| digit(c).is_some() || is_currency(c)) || p == '@' || p == '=' {
            return false;
        }
    }
    if p == ' ' {
        let pp = i.checked_sub(2).and_then(|j| chars.get(j)).map(|&(_, c)| c);
        if pp.is_some_and(is_currency) {
            return false;
        }
    }
    true
}

/// Digit groups from `i` on, joined by separator runs of at most three characters.
fn collect(chars: &[(usize, char)], mut i: usize) -> (Vec<Group>, usize) {
    let mut groups: Vec<Group> = Vec::new();
    let mut seps = Vec::new();
    loop {
        // Separator run (none before the first group unless it is '(').
        let save = i;
        seps.clear();
        while let Some(s) = chars.get(i).and_then(|&(_, c)| sep(c)) {
            seps.push(s);
            i += 1;
            if seps.len() > 3 {
                break;
            }
        }
        let valid_seps = seps.len() <= 3
            && seps.iter().filter(|s| **s == Sep::Space).count() <= 1
            && seps.iter().filter(|s| matches!(s, Sep::Dash | Sep::Dot)).count() <= 1
            && (!groups.is_empty() || seps.iter().all(|s| *s == Sep::Open));
        let Some(&(start, c)) = chars.get(i) else {
            return (groups, save);
        };
        if !valid_seps || digit(c).is_none() || (groups.is_empty() && seps.len() > 1) {
            return (groups, save);
        }
        let mut digits = Vec::new();
        let mut end = start;
        while let Some(&(p, c)) = chars.get(i) {
            let Some(d) = digit(c) else { break };
            digits.push(d);
            end = p + c.len_utf8();
            i += 1;
        }
        groups.push(Group { start, end, digits, seps: seps.clone() });
        if groups.len() > 12 {
            return (groups, i);
        }
    }
}

/// The leftmost, then longest, sub-run of groups that is a phone number. Sub-runs
/// may only start or end at whitespace breaks.
fn best_run(groups: &[Group], plus: bool, chars: &[(usize, char)], next: usize) -> Option<(usize, usize)> {
    let n = groups.len();
    let breaks_before = |k: usize| groups[k].seps.contains(&Sep::Space);
    for a in 0..n {
        if a > 0 && !breaks_before(a) {
            continue;
        }
        for b in (a..n).rev() {
            if b + 1 < n && !breaks_before(b + 1) {
                continue;
            }
            let right_ok = if b + 1 == n { right_ok(chars, next) } else { true };
            if right_ok && is_phone(&groups[a..=b], plus && a == 0) {
                return Some((a, b));
            }
        }
    }
    None
}

fn right_ok(chars: &[(usize, char)], next: usize) -> bool {
    // `next` is the index after the last digit of the run (separators not consumed).
    match chars.get(next).map(|&(_, c)| c) {
        None => true,
        Some(c) if c.is_ascii_alphanumeric() || c == '%' || c == '@' || c == '_' => false,
        Some(c) if is_currency(c) || matches!(c, '원' | '円' | '元') => false,
        Some(',' | '.') => chars.get(next + 1).is_none_or(|&(_, c)| digit(c).is_none()),
        _ => true,
    }
}

fn number(d: &[u8]) -> u32 {
    d.iter().fold(0u32, |n, &x| n.saturating_mul(10) + u32::from(x))
}

fn is_date(g: &[Group]) -> bool {
    if g.len() != 3 || g.iter().skip(1).any(|g| g.seps.contains(&Sep::Space)) {
        return false;
    }
    let [a, b, c] = [&g[0].digits, &g[1].digits, &g[2].digits];
    let year = |d: &[u8]| d.len() == 4 && (1900..=2099).contains(&number(d));
    let small = |d: &[u8], max| (1..=2).contains(&d.len()) && (1..=max).contains(&number(d));
    (year(a) && small(b, 12) && small(c, 31))
        || (year(c) && ((small(a, 31) && small(b, 12)) || (small(a, 12) && small(b, 31))))
}

fn is_phone(g: &[Group], plus: bool) -> bool {
    let total: usize = g.iter().map(|g| g.digits.len()).sum();
    let max_group = g.iter().map(|g| g.digits.len()).max().unwrap_or(0);
    if plus {
        return (8..=15).contains(&total) && (max_group >= 3 || g.len() >= 4);
    }
    if g.iter().skip(1).any(|g| g.digits.len() < 2) || max_group > 8 {
        // Groups of one digit after the first are lists or quantities; long
        // groups are ids. A single unseparated run is judged below.
        if !(g.len() == 1 && total <= 11) {
            return false;
        }
    }
    if is_date(g) {
        return false;
    }
    let first = &g[0].digits;
    if g.len() == 1 {
        // Only the unmistakable Korean mobile form: 01[016789] + 7 or 8 digits.
        return (10..=11).contains(&total)
            && first[0] == 0
            && first[1] == 1
            && matches!(first[2], 0 | 1 | 6 | 7 | 8 | 9);
    }
    if first.starts_with(&[0, 0]) {
        return (10..=15).contains(&total);
    }
    if first[0] == 0 {
        let zip4 = g.len() == 2 && first.len() == 5 && g[1].digits.len() == 4;
        return (9..=12).contains(&total) && !zip4 && (max_group >= 3 || g.len() >= 5);
    }
    // North American: optional leading 1, then 3-3-4 with area and exchange 2-9.
    let nanp = if first.as_slice() == [1] && g.len() == 4 { &g[1..] } else { g };
    if nanp.len() == 3
        && nanp[0].digits.len() == 3
        && nanp[1].digits.len() == 3
        && nanp[2].digits.len() == 4
        && nanp[0].digits[0] >= 2
    {
        return true;
    }
    // Korean nationwide service numbers 15xx/16xx/18xx-xxxx.
    g.len() == 2
        && first.len() == 4
        && g[1].digits.len() == 4
        && first[0] == 1
        && matches!(first[1], 5 | 6 | 8)
        && !g[1].seps.contains(&Sep::Dot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        redact_phones(s).0.into_owned()
    }

    #[test]
    fn removes_international_and_local_numbers() {
        for (input, want) in [
            ("call +1 (555) 123-4567 now", "call [phone removed] now"),
            ("010-1234-5678", "[phone removed]"),
            ("tel: +82 2-1234-5678.", "tel: [phone removed]."),
            ("+44 20 7946 0958", "[phone removed]"),
            ("(555) 123-4567", "[phone removed]"),
            ("555.123.4567", "[phone removed]"),
            ("1-800-555-1234", "[phone removed]"),
            ("02-123-4567", "[phone removed]"),
            ("전화010-1234-5678로 주세요", "전화[phone removed]로 주세요"),
            ("Tel.010 1234 5678", "Tel.[phone removed]"),
            ("01012345678", "[phone removed]"),
            ("+821012345678", "[phone removed]"),
            ("0044 20 7946 0958", "[phone removed]"),
            ("고객센터 1588-1234", "고객센터 [phone removed]"),
            ("０１０－１２３４－５６７８", "[phone removed]"),
            ("(02) 1234 5678", "[phone removed]"),
            ("06 12 34 56 78", "[phone removed]"),
            ("+33 1 23 45 67 89", "[phone removed]"),
            ("Order 12 010-1234-5678", "Order 12 [phone removed]"),
            ("010-1234-5678 2 items", "[phone removed] 2 items"),
            ("a 010-1234-5678, b", "a [phone removed], b"),
        ] {
            assert_eq!(r(input), want, "{input:?}");
        }
    }

    #[test]
    fn keeps_ids_dates_times_prices_and_postcodes() {
        for keep in [
            "order 114-1234567-1234567",
            "#114-1234567-1234567",
            "2026-11-23",
            "23/11/2026",
            "11/23/2026",
            "2026.11.23",
            "23.11.2026",
            "14:30",
            "10:00-18:00",
            "$1,234.56",
            "₩12,000",
            "12,000원",
            "$ 555 123 4567",
            "qty 3 x 2",
            "postcode 06236",
            "ZIP 01234-5678",
            "90210",
            "SKU AB010-1234-5678",
            "192.168.0.1",
            "version 1.2.3",
            "1 2 3 4 5 6 7 8 9 10",
            "tracking 123456789012",
            "card 1234 5678 9012 3456",
            "range 100-2000",
            "50%",
            "3.5",
        ] {
            assert_eq!(r(keep), keep, "{keep:?}");
        }
    }

    #[test]
    fn counts_and_borrows() {
        let (t, n) = redact_phones("a 010-1234-5678 b 02-123-4567");
        assert_eq!(n, 2);
        assert_eq!(t, "a [phone removed] b [phone removed]");
        assert!(matches!(redact_phones("no digits").0, Cow::Borrowed(_)));
        assert!(matches!(redact_phones("2026-11-23").0, Cow::Borrowed(_)));
    }
}
