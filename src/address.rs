//! Mail addresses as the relay compares them: one canonical, lower-case form.

use std::fmt;

/// A syntactically plain `local@domain` address, lower-cased.
///
/// Quoted local parts and source routes are refused: marketplace parties
/// register ordinary mailbox addresses, and a strict form keeps every
/// comparison (approved senders, registered buyers, aliases) exact.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address(String);

impl TryFrom<String> for Address {
    type Error = InvalidAddress;
    fn try_from(s: String) -> Result<Self, InvalidAddress> {
        Address::parse(&s)
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.0
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid mail address {0:?}: expected local@domain")]
pub struct InvalidAddress(pub String);

impl Address {
    pub fn parse(input: &str) -> Result<Self, InvalidAddress> {
        let bad = || InvalidAddress(input.to_string());
        let s = input.trim();
        let s = s.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(s);
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        if local.is_empty() || local.len() > 64 || !local.chars().all(is_local_char) {
            return Err(bad());
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(bad());
        }
        if !is_domain(domain) {
            return Err(bad());
        }
        Ok(Address(format!("{}@{}", local, domain).to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(l, _)| l)
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }

    /// The address wrapped in angle brackets, as milter envelope actions take it.
    pub fn bracketed(&self) -> String {
        format!("<{}>", self.0)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)
}

/// A DNS domain name of at least two labels (`example.com`), letters, digits and hyphens.
pub fn is_domain(d: &str) -> bool {
    let labels: Vec<&str> = d.split('.').collect();
    d.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Parses the first argument of MAIL FROM / RCPT TO as Postfix hands it to the
/// milter (`<a@b>`, or `<>` for the null sender). `Ok(None)` is the null sender.
pub fn parse_envelope(arg: &str) -> Result<Option<Address>, InvalidAddress> {
    let s = arg.trim();
    if s == "<>" || s.is_empty() {
        return Ok(None);
    }
    Address::parse(s).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_is_lower_case_without_brackets() {
        let a = Address::parse(" <Bob.Smith+x@Mail.Example.COM> ").unwrap();
        assert_eq!(a.as_str(), "bob.smith+x@mail.example.com");
        assert_eq!(a.local_part(), "bob.smith+x");
        assert_eq!(a.domain(), "mail.example.com");
        assert_eq!(a.bracketed(), "<bob.smith+x@mail.example.com>");
    }

    #[test]
    fn refuses_what_is_not_a_plain_mailbox() {
        for bad in [
            "",
            "bob",
            "@example.com",
            "bob@",
            "bob@localhost",
            "bob smith@example.com",
            "\"bob\"@example.com",
            "bob@exa_mple.com",
            "bob@-example.com",
            ".bob@example.com",
            "bo..b@example.com",
            "bob@example..com",
            "Bob <bob@example.com>",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn envelope_null_sender() {
        assert_eq!(parse_envelope("<>").unwrap(), None);
        assert_eq!(parse_envelope("<a@b.example>").unwrap(), Some(Address::parse("a@b.example").unwrap()));
        assert!(parse_envelope("<a@>").is_err());
    }
}
