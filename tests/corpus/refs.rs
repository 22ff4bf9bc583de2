//! Shared by the corpus checks (`check.rs`) and the fuzz judge (`fuzz/src/lib.rs`).

/// Numeric references and the few named ones that spell URL or address syntax.
pub fn resolve_refs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '#')).unwrap_or(tail.len());
        let name = &tail[..end];
        let decoded = if let Some(n) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
            u32::from_str_radix(n, 16).ok().and_then(char::from_u32)
        } else if let Some(n) = name.strip_prefix('#') {
            n.parse().ok().and_then(char::from_u32)
        } else {
            match name {
                "commat" => Some('@'),
                "period" => Some('.'),
                "colon" => Some(':'),
                "sol" => Some('/'),
                "amp" => Some('&'),
                _ => None,
            }
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[end..];
                rest = rest.strip_prefix(';').unwrap_or(rest);
            }
            None => {
                out.push('&');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}
