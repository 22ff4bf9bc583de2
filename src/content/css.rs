//! CSS in `style` attributes and `<style>` blocks: every declaration or
//! at-rule that can load something (`url()`, `image-set()`, `@import`,
//! `expression()`, bindings) is dropped whole. Comments go too (they can hide
//! nothing then, and Outlook reads some).

use super::url::{is_allowed_web_url, is_local_image};

/// Sanitized CSS, or `None` when nothing had to go. `removed` counts the
/// dropped declarations that loaded something.
pub fn sanitize(css: &str, allowlist: &[String], drop_content: bool) -> (Option<String>, u32) {
    let may_load = css.as_bytes().iter().any(|b| matches!(b, b'(' | b'@' | b'\\' | b'/'));
    if !(may_load || drop_content && css.contains("content")) {
        return (None, 0);
    }
    let mut out = String::with_capacity(css.len());
    let mut removed = 0;
    let mut changed = false;
    let mut chunk = String::new();
    let mut depth_paren = 0u32;
    let flush = |chunk: &mut String, out: &mut String, removed: &mut u32, changed: &mut bool| {
        match judge(chunk, allowlist, drop_content) {
            Verdict::Keep => out.push_str(chunk),
            Verdict::Drop { loads } => {
                *changed = true;
                if loads {
                    *removed += 1;
                }
            }
        }
        chunk.clear();
    };
    // Bytewise: every character that matters is ASCII, so `at` and `copied`
    // always sit on character boundaries. `css[copied..at]` is pending for `chunk`.
    let b = css.as_bytes();
    let (mut at, mut copied) = (0, 0);
    while at < b.len() {
        match b[at] {
            b'/' if b.get(at + 1) == Some(&b'*') => {
                chunk.push_str(&css[copied..at]);
                at = css[at + 2..].find("*/").map_or(b.len(), |k| at + 2 + k + 2);
                copied = at;
                changed = true;
                chunk.push(' ');
            }
            q @ (b'"' | b'\'') => {
                at += 1;
                let mut escaped = false;
                while at < b.len() {
                    let s = b[at];
                    at += 1;
                    if escaped {
                        escaped = false;
                    } else if s == b'\\' {
                        escaped = true;
                    } else if s == q || s == b'\n' {
                        break;
                    }
                }
            }
            b'\\' => at += 1 + css[at + 1..].chars().next().map_or(0, char::len_utf8),
            b'(' => {
                depth_paren += 1;
                at += 1;
            }
            b')' => {
                depth_paren = depth_paren.saturating_sub(1);
                at += 1;
            }
            c @ (b';' | b'{' | b'}') if depth_paren == 0 => {
                chunk.push_str(&css[copied..at]);
                flush(&mut chunk, &mut out, &mut removed, &mut changed);
                out.push(c as char);
                at += 1;
                copied = at;
            }
            _ => at += 1,
        }
    }
    chunk.push_str(&css[copied..]);
    flush(&mut chunk, &mut out, &mut removed, &mut changed);
    // Never let a rewritten block close its own <style> element.
    if out.contains("</") {
        out = out.replace("</", "<\\/");
        changed = true;
    }
    (changed.then_some(out), removed)
}

enum Verdict {
    Keep,
    Drop { loads: bool },
}

/// CSS functions that load something, whatever their argument.
const LOADING_FUNCTIONS: &[&str] = &["expression", "image-set", "image", "cross-fade", "element", "src"];

/// Whether `h` contains `n`; declarations are short, so no searcher is built.
fn has(h: &[u8], n: &[u8]) -> bool {
    memchr::memchr_iter(n[0], h).any(|i| h[i..].starts_with(n))
}

/// One declaration, selector or at-rule prelude.
fn judge(chunk: &str, allowlist: &[String], drop_content: bool) -> Verdict {
    if chunk.trim().is_empty() {
        return Verdict::Keep;
    }
    // Escapes can spell `url(` in many ways: any escape in something that has a
    // parenthesis or an at-keyword is dropped.
    let has_escape = chunk.contains('\\');
    let folded: String = if chunk.is_ascii() {
        chunk.bytes().filter(|b| !(*b as char).is_whitespace()).map(|b| b.to_ascii_lowercase() as char).collect()
    } else {
        chunk.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect()
    };
    let f = folded.as_bytes();
    let (paren, at) = (f.contains(&b'('), f.contains(&b'@'));
    let loads = (at && has(f, b"@import"))
        || has(f, b"behavior:")
        || has(f, b"-moz-binding")
        || (paren
            && (memchr::memchr_iter(b'(', f)
                .any(|i| LOADING_FUNCTIONS.iter().any(|n| f[..i].ends_with(n.as_bytes())))
                || has(f, b"url(") && has_remote_url(chunk, allowlist)))
        || (has_escape && (paren || at));
    if loads {
        return Verdict::Drop { loads: true };
    }
    if drop_content && folded.starts_with("content:") {
        return Verdict::Drop { loads: false };
    }
    if bare_url(f) {
        // A URL outside `url()` loads nothing, but names a host to whoever reads the source
        // (`ur!('https://…')`, or markup inside an unclosed `<style>`).
        return Verdict::Drop { loads: false };
    }
    Verdict::Keep
}

/// Whether folded CSS has a `://` outside the argument of a `url(…)`.
fn bare_url(f: &[u8]) -> bool {
    if memchr::memchr(b'/', f).is_none() {
        return false;
    }
    let mut url_end = 0;
    memchr::memmem::find_iter(f, b"://").any(|i| {
        if i < url_end {
            return false;
        }
        // The last `url(` before it, and whether its `)` comes after.
        match memchr::memmem::rfind(&f[..i], b"url(") {
            Some(u) => match memchr::memchr(b')', &f[u..]) {
                Some(close) if u + close > i => {
                    url_end = u + close;
                    false
                }
                None => false,
                _ => true,
            },
            None => true,
        }
    })
}

/// `url(…)` with anything but a `cid:`/`data:` image or an allowlisted URL.
fn has_remote_url(chunk: &str, allowlist: &[String]) -> bool {
    let lower = chunk.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("url(") {
        let start = from + i + 4;
        let end = lower[start..].find(')').map_or(lower.len(), |j| start + j);
        let arg = chunk[start..end].trim().trim_matches(['"', '\'']);
        if !(is_local_image(arg) || is_allowed_web_url(arg, allowlist)) {
            return true;
        }
        from = end;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(css: &str) -> String {
        let (out, _) = sanitize(css, &["cdn.m.example".into()], true);
        out.unwrap_or_else(|| css.to_string())
    }

    #[test]
    fn urls_outside_url_go() {
        // Found by the pipeline fuzz target: a broken `url(` kept its tracker's host.
        assert_eq!(s("color:red;background-image:ur!('https://t.example/bg.png')"), "color:red;");
        assert_eq!(s("<a href=\"https://t.example/x\">y</a>"), "");
        // Inside url(), allowlisted, it stays.
        assert_eq!(s("background:url(https://cdn.m.example/a.png)"), "background:url(https://cdn.m.example/a.png)");
        assert_eq!(s("background:url('https://cdn.m.example/a.png') https://t.example"), "");
    }

    #[test]
    fn drops_loads_and_keeps_the_rest() {
        assert_eq!(
            s("color:red; background:url(https://t.example/p.gif); font-size:12px"),
            "color:red;; font-size:12px"
        );
        assert_eq!(s("@import url(https://t.example/a.css); p{color:red}"), "; p{color:red}");
        assert_eq!(s("@import 'https://t.example/a.css'; p{color:red}"), "; p{color:red}");
        assert_eq!(s("td{background-image:URL( \"//t.example/x\" )}"), "td{}");
        assert_eq!(s("a{b:u\\72l(//t.example/x)}"), "a{}");
        assert_eq!(s("a{width:expression(alert(1))}"), "a{}");
        assert_eq!(s("p{background:url(cid:logo)}"), "p{background:url(cid:logo)}");
        assert_eq!(
            s("p{background:url(https://cdn.m.example/bg.png)}"),
            "p{background:url(https://cdn.m.example/bg.png)}"
        );
        assert_eq!(s("p::after{content:'010-1234-5678'}"), "p::after{}");
        assert_eq!(s("/* x */p{color:red}"), " p{color:red}");
        assert_eq!(s("p{x:'</style><img src=x>'}"), "p{x:'<\\/style><img src=x>'}");
        let (out, n) =
            sanitize("@font-face{src:url(https://f.example/a.woff)} b{background:url(http://t.example/)}", &[], false);
        assert_eq!(out.unwrap(), "@font-face{} b{}");
        assert_eq!(n, 2);
    }

    #[test]
    fn clean_css_is_untouched() {
        assert_eq!(sanitize("color:red;font-weight:bold", &[], true).0, None);
        assert_eq!(sanitize("p{margin:0 auto}", &[], true).0, None);
    }
}
