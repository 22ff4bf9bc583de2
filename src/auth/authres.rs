//! `Authentication-Results` (RFC 8601) read the way a receiver must read a
//! header anybody could have written: comments, quoting, folding and case are
//! taken apart before the authserv-id is compared.

/// One `method=result` statement with its properties (`header.from=…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResInfo {
    pub method: String,
    pub result: String,
    pub props: Vec<(String, String)>,
    /// Text of the comments inside this statement (`(p=reject dis=none)`).
    pub comments: String,
}

impl ResInfo {
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.props.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthResults {
    /// Lower-cased, without quotes or a trailing dot.
    pub authserv_id: String,
    pub results: Vec<ResInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Eq,
    Semi,
    Comment(String),
}

/// Splits a header value into words, `=`, `;` and comments. Unbalanced quotes
/// and comments run to the end of the value (what a lenient reader would see).
fn tokens(value: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ';' | '=' => {
                chars.next();
                out.push(if c == ';' { Token::Semi } else { Token::Eq });
            }
            '(' => {
                chars.next();
                let (mut depth, mut text) = (1, String::new());
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => text.extend(chars.next()),
                        '(' => {
                            depth += 1;
                            text.push(c);
                        }
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                            text.push(c);
                        }
                        _ => text.push(c),
                    }
                }
                out.push(Token::Comment(text));
            }
            '"' => {
                chars.next();
                let mut word = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => word.extend(chars.next()),
                        '"' => break,
                        _ => word.push(c),
                    }
                }
                out.push(Token::Word(word));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "();=\"".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    out
}

fn normalize_id(id: &str) -> String {
    id.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The authserv-id of a header value, normalized; `None` when there is none.
pub fn authserv_id(value: &str) -> Option<String> {
    tokens(value).into_iter().find_map(|t| match t {
        Token::Word(w) => Some(normalize_id(&w)),
        Token::Semi | Token::Eq => Some(String::new()),
        Token::Comment(_) => None,
    })
}

/// Parses a header value. Statements that do not read as `method=result` are skipped.
pub fn parse(value: &str) -> Option<AuthResults> {
    let id = authserv_id(value).filter(|id| !id.is_empty())?;
    let tokens = tokens(value);
    let mut statements = tokens.split(|t| *t == Token::Semi);
    statements.next(); // authserv-id and version
    let mut results = Vec::new();
    for stmt in statements {
        let comments: Vec<&str> =
            stmt.iter().filter_map(|t| if let Token::Comment(c) = t { Some(c.as_str()) } else { None }).collect();
        let words: Vec<&Token> = stmt.iter().filter(|t| !matches!(t, Token::Comment(_))).collect();
        let mut pairs = Vec::new();
        let mut i = 0;
        while i < words.len() {
            match (words.get(i), words.get(i + 1), words.get(i + 2)) {
                (Some(Token::Word(k)), Some(Token::Eq), Some(Token::Word(v))) => {
                    pairs.push((k.to_ascii_lowercase(), v.clone()));
                    i += 3;
                }
                _ => i += 1,
            }
        }
        let mut pairs = pairs.into_iter();
        let Some((method, result)) = pairs.next() else { continue };
        // `dkim/1=pass`: the method's version does not matter here.
        let method = method.split('/').next().unwrap_or_default().to_string();
        results.push(ResInfo {
            method,
            result: result.to_ascii_lowercase(),
            props: pairs.collect(),
            comments: comments.join(" "),
        });
    }
    Some(AuthResults { authserv_id: id, results })
}

/// Whether a header value names `id` as its authserv-id.
pub fn is_from(value: &str, id: &str) -> bool {
    authserv_id(value).is_some_and(|got| got == normalize_id(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_opendmarc_header() {
        let ar = parse("mx.example.com; dmarc=fail (p=reject dis=none) header.from=seller.test").unwrap();
        assert_eq!(ar.authserv_id, "mx.example.com");
        assert_eq!(ar.results.len(), 1);
        let r = &ar.results[0];
        assert_eq!((r.method.as_str(), r.result.as_str()), ("dmarc", "fail"));
        assert_eq!(r.prop("header.from"), Some("seller.test"));
        assert_eq!(r.comments, "p=reject dis=none");
    }

    #[test]
    fn reads_an_rspamd_header_with_several_statements() {
        let v = "mx.example.com;\r\n\tdkim=pass header.d=seller.test header.s=s1 header.b=abc;\r\n\tspf=pass (mx.example.com: domain of a@seller.test designates 127.0.0.1 as permitted sender) smtp.mailfrom=a@seller.test;\r\n\tdmarc=pass (policy=reject) header.from=seller.test";
        let ar = parse(v).unwrap();
        let methods: Vec<_> = ar.results.iter().map(|r| (r.method.as_str(), r.result.as_str())).collect();
        assert_eq!(methods, [("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]);
        assert_eq!(ar.results[1].prop("smtp.mailfrom"), Some("a@seller.test"));
        assert_eq!(ar.results[2].comments, "policy=reject");
    }

    #[test]
    fn the_id_survives_comments_quotes_case_and_folding() {
        for v in [
            "MX.Example.COM; dmarc=pass header.from=x.test",
            "\"mx.example.com\"; dmarc=pass header.from=x.test",
            "(forged? (nested)) mx.example.com (c) ; dmarc=pass",
            "\r\n\tmx.example.com.;dmarc=pass",
            "mx.example.com 1; dmarc=pass",
        ] {
            assert!(is_from(v, "mx.example.com"), "{v:?}");
        }
        for v in [
            "(mx.example.com) evil.test; dmarc=pass",
            "evil.test (mx.example.com); dmarc=pass",
            "mx.example.com.evil.test; dmarc=pass",
            "; dmarc=pass",
            "",
            "(unclosed mx.example.com; dmarc=pass",
        ] {
            assert!(!is_from(v, "mx.example.com"), "{v:?}");
        }
    }

    #[test]
    fn quoted_values_and_escapes_are_unquoted() {
        let ar = parse(r#"mx.test; dmarc=pass reason="a \"b\"; c" header.from="x.test""#).unwrap();
        assert_eq!(ar.results.len(), 1);
        assert_eq!(ar.results[0].prop("reason"), Some(r#"a "b"; c"#));
        assert_eq!(ar.results[0].prop("header.from"), Some("x.test"));
    }

    #[test]
    fn none_and_garbage_give_no_results() {
        assert_eq!(parse("mx.test; none").unwrap().results, []);
        assert_eq!(parse("mx.test; =;==; dmarc").unwrap().results, []);
        assert!(parse("(only a comment)").is_none());
    }
}
