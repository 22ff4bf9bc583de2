//! The TOML configuration file: parsed strictly (unknown keys are errors naming
//! the key and line), validated, and shared as an immutable snapshot.

use crate::address::is_domain;
use serde::Deserialize;
use std::{
    fmt,
    net::{SocketAddr, ToSocketAddrs},
    path::{Path, PathBuf},
    str::FromStr,
};

pub const DEFAULT_PATH: &str = "/etc/bsm-milter/bsm-milter.toml";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub relay: RelayConfig,
    #[serde(default)]
    pub milter: MilterConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub archive: ArchiveConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub content: ContentConfig,
    /// DKIM signing of delivered mail; absent: no signing.
    #[serde(default)]
    pub dkim: Option<DkimConfig>,
    #[serde(default)]
    pub auth: AuthConfig,
}

/// How a party's message is authenticated before it is relayed as theirs.
/// Methods combine: a message passes when any configured method passes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Empty: an approved or registered address is enough (trust the network).
    /// `"sasl"`: a seller's message submitted with SMTP AUTH as a login mapped
    /// to the seller. `"verify"`: SPF, DKIM and DMARC-style alignment checked
    /// here. `"trust-authres"`: the `Authentication-Results` of `authserv_id`.
    #[serde(default)]
    pub methods: Vec<AuthMethod>,
    /// The authserv-id whose `Authentication-Results` are trusted (`trust-authres`).
    #[serde(default)]
    pub authserv_id: Option<String>,
    /// The cleaner's milter socket (`trust-authres`): Postfix must call it
    /// before the upstream verifier, e.g. `smtpd_milters = cleaner, opendmarc, bsm-milter`.
    #[serde(default)]
    pub cleaner_socket: Option<Socket>,
    /// DNS servers for `verify` (`ip` or `ip:port`); empty: /etc/resolv.conf.
    #[serde(default)]
    pub dns_servers: Vec<String>,
    /// Seconds to wait for one DNS answer.
    #[serde(default = "default_dns_timeout_secs")]
    pub dns_timeout_secs: u64,
}

fn default_dns_timeout_secs() -> u64 {
    5
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            methods: Vec::new(),
            authserv_id: None,
            cleaner_socket: None,
            dns_servers: Vec::new(),
            dns_timeout_secs: default_dns_timeout_secs(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    Sasl,
    Verify,
    TrustAuthres,
}

impl AuthConfig {
    pub fn has(&self, method: AuthMethod) -> bool {
        self.methods.contains(&method)
    }

    /// SASL is the only way a seller can authenticate: a seller without a
    /// mapped login is refused at RCPT already.
    pub fn requires_sasl(&self) -> bool {
        self.methods == [AuthMethod::Sasl]
    }

    /// A method that judges the message itself (headers, SPF, DKIM), at end of message.
    pub fn checks_messages(&self) -> bool {
        self.has(AuthMethod::Verify) || self.has(AuthMethod::TrustAuthres)
    }

    /// The DNS servers, parsed (port 53 unless given).
    pub fn dns_server_addrs(&self) -> Result<Vec<SocketAddr>, String> {
        self.dns_servers
            .iter()
            .map(|s| {
                s.parse::<SocketAddr>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| format!("auth.dns_servers: {s:?} is not an IP address or ip:port"))
            })
            .collect()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    /// The selector: publish `<selector>._domainkey.<relay domain>` TXT.
    pub selector: String,
    /// PEM private key: Ed25519 (PKCS#8) or RSA (PKCS#8 or PKCS#1).
    pub key_file: PathBuf,
}

/// The content policy (DESIGN §3), per direction.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentConfig {
    /// Domains (and their subdomains) whose links and images are kept.
    #[serde(default)]
    pub link_allowlist: Vec<String>,
    /// Largest attachment kept, decoded bytes.
    #[serde(default = "default_max_attachment_bytes")]
    pub max_attachment_bytes: u64,
    /// A table that sets some keys keeps its direction's defaults for the rest.
    #[serde(default = "DirectionRules::seller_to_buyer", deserialize_with = "DirectionRules::seller_to_buyer_with")]
    pub seller_to_buyer: DirectionRules,
    #[serde(default = "DirectionRules::buyer_to_seller", deserialize_with = "DirectionRules::buyer_to_seller_with")]
    pub buyer_to_seller: DirectionRules,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DirectionRules {
    pub remove_remote_content: bool,
    pub unwrap_external_links: bool,
    pub redact_contact_details: bool,
    pub filter_attachments: bool,
}

/// A `[content.<direction>]` table as written: the keys it leaves out take the direction's defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectionTable {
    remove_remote_content: Option<bool>,
    unwrap_external_links: Option<bool>,
    redact_contact_details: Option<bool>,
    filter_attachments: Option<bool>,
}

impl DirectionTable {
    fn over(self, d: DirectionRules) -> DirectionRules {
        DirectionRules {
            remove_remote_content: self.remove_remote_content.unwrap_or(d.remove_remote_content),
            unwrap_external_links: self.unwrap_external_links.unwrap_or(d.unwrap_external_links),
            redact_contact_details: self.redact_contact_details.unwrap_or(d.redact_contact_details),
            filter_attachments: self.filter_attachments.unwrap_or(d.filter_attachments),
        }
    }
}

impl DirectionRules {
    fn seller_to_buyer_with<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DirectionTable::deserialize(d).map(|t| t.over(Self::seller_to_buyer()))
    }
    fn buyer_to_seller_with<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DirectionTable::deserialize(d).map(|t| t.over(Self::buyer_to_seller()))
    }
    fn seller_to_buyer() -> Self {
        DirectionRules {
            remove_remote_content: true,
            unwrap_external_links: true,
            redact_contact_details: true,
            filter_attachments: true,
        }
    }
    fn buyer_to_seller() -> Self {
        DirectionRules {
            remove_remote_content: true,
            unwrap_external_links: false,
            redact_contact_details: false,
            filter_attachments: false,
        }
    }
}

fn default_max_attachment_bytes() -> u64 {
    10 * 1024 * 1024
}

impl Default for ContentConfig {
    fn default() -> Self {
        ContentConfig {
            link_allowlist: Vec::new(),
            max_attachment_bytes: default_max_attachment_bytes(),
            seller_to_buyer: DirectionRules::seller_to_buyer(),
            buyer_to_seller: DirectionRules::buyer_to_seller(),
        }
    }
}

impl ContentConfig {
    /// The policy for mail written by `sender`.
    pub fn policy(&self, sender: crate::store::Party) -> crate::content::ContentPolicy {
        let r = match sender {
            crate::store::Party::Seller => &self.seller_to_buyer,
            crate::store::Party::Buyer => &self.buyer_to_seller,
        };
        crate::content::ContentPolicy {
            remove_remote_content: r.remove_remote_content,
            unwrap_external_links: r.unwrap_external_links,
            redact_contact_details: r.redact_contact_details,
            filter_attachments: r.filter_attachments,
            link_allowlist: self.link_allowlist.clone(),
            max_attachment_bytes: self.max_attachment_bytes,
        }
    }
}

/// Bounds on what one message may make the milter hold in memory.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Longest body line, bytes without the line end (RFC 5322 allows 998;
    /// the default only stops pathological input).
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
}

fn default_max_message_bytes() -> usize {
    52_428_800
}
fn default_max_headers() -> usize {
    1000
}
fn default_max_header_bytes() -> usize {
    262_144
}
fn default_max_line_bytes() -> usize {
    65_536
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: default_max_message_bytes(),
            max_headers: default_max_headers(),
            max_header_bytes: default_max_header_bytes(),
            max_line_bytes: default_max_line_bytes(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// The marketplace's mail domain; every alias lives here.
    pub domain: RelayDomain,
    /// Display name of the relay's own notices (bounce replacements).
    #[serde(default = "default_notice_name")]
    pub notice_name: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MilterConfig {
    #[serde(default = "default_milter_socket")]
    pub socket: Socket,
    /// Permissions of a unix socket; Postfix's smtpd must be able to connect.
    #[serde(default = "default_socket_mode")]
    pub socket_mode: SocketMode,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_admin_socket")]
    pub socket: Socket,
    #[serde(default = "default_admin_socket_mode")]
    pub socket_mode: SocketMode,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// redb's page cache, MiB: the daemon's memory grows with the store up to it.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u32,
}

fn default_cache_mb() -> u32 {
    16
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    #[serde(default = "default_archive_dir")]
    pub dir: PathBuf,
    /// Days an archived message (files and index) is kept; 0 keeps them
    /// forever. At least [`METRICS_DAYS`]: the metrics count the records.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default = "default_critical_markers")]
    pub critical_markers: Vec<String>,
    #[serde(default = "default_exempt_categories")]
    pub opt_out_exempt_categories: Vec<String>,
    #[serde(default = "default_limit_base")]
    pub daily_limit_base: u64,
    #[serde(default = "default_limit_per_order")]
    pub daily_limit_per_order: u64,
    #[serde(default = "default_limit_window")]
    pub daily_limit_window_days: u32,
    #[serde(default = "default_order_id_pattern")]
    pub order_id_pattern: OrderIdPattern,
}

/// A regular expression that finds order ids in a subject.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "String")]
pub struct OrderIdPattern(pub regex::Regex);

impl TryFrom<String> for OrderIdPattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match regex::Regex::new(&s) {
            Ok(r) if !r.is_match("") => Ok(OrderIdPattern(r)),
            Ok(_) => Err(format!("{s:?}: the pattern matches the empty string")),
            Err(e) => Err(format!("{s:?}: not a regular expression: {e}")),
        }
    }
}

fn default_notice_name() -> String {
    "Marketplace Messaging".into()
}
fn default_milter_socket() -> Socket {
    Socket::Unix("/run/bsm-milter/milter.sock".into())
}
fn default_admin_socket() -> Socket {
    Socket::Unix("/run/bsm-milter/admin.sock".into())
}
fn default_socket_mode() -> SocketMode {
    SocketMode(0o660)
}
fn default_admin_socket_mode() -> SocketMode {
    SocketMode(0o600)
}
fn default_store_path() -> PathBuf {
    "/var/lib/bsm-milter/store.redb".into()
}
fn default_archive_dir() -> PathBuf {
    "/var/lib/bsm-milter/archive".into()
}
/// The longest response-metrics window (`metrics`: 7, 30 and 90 days).
pub const METRICS_DAYS: u32 = {
    let w = crate::metrics::response::WINDOWS;
    w[w.len() - 1].1 as u32
};

fn default_retention_days() -> u32 {
    400
}
fn default_critical_markers() -> Vec<String> {
    ["[Important]", "[중요]", "[重要]"].map(String::from).to_vec()
}
fn default_exempt_categories() -> Vec<String> {
    ["handmade", "wine", "custom"].map(String::from).to_vec()
}
fn default_limit_base() -> u64 {
    600
}
fn default_limit_per_order() -> u64 {
    5
}
fn default_limit_window() -> u32 {
    30
}
fn default_order_id_pattern() -> OrderIdPattern {
    OrderIdPattern(regex::Regex::new(r"\b\d{3}-\d{7}-\d{7}\b").expect("constant pattern"))
}

impl Default for MilterConfig {
    fn default() -> Self {
        Self { socket: default_milter_socket(), socket_mode: default_socket_mode() }
    }
}
impl Default for AdminConfig {
    fn default() -> Self {
        Self { socket: default_admin_socket(), socket_mode: default_admin_socket_mode() }
    }
}
impl Default for StoreConfig {
    fn default() -> Self {
        Self { path: default_store_path(), cache_mb: default_cache_mb() }
    }
}
impl Default for ArchiveConfig {
    fn default() -> Self {
        Self { dir: default_archive_dir(), retention_days: default_retention_days() }
    }
}
impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            critical_markers: default_critical_markers(),
            opt_out_exempt_categories: default_exempt_categories(),
            daily_limit_base: default_limit_base(),
            daily_limit_per_order: default_limit_per_order(),
            daily_limit_window_days: default_limit_window(),
            order_id_pattern: default_order_id_pattern(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid { path: path.into(), message })
    }

    /// Parses and validates; the error names the offending key (and line).
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => {
                let line_no = text[..span.start].matches('\n').count() + 1;
                let line = text.lines().nth(line_no - 1).unwrap_or_default().trim();
                match line {
                    "" => format!("line {line_no}: {}", e.message()),
                    _ => format!("line {line_no} `{line}`: {}", e.message()),
                }
            }
            None => e.message().to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let p = &self.policy;
        if p.critical_markers.iter().any(|m| m.trim().is_empty()) {
            return Err("policy.critical_markers: markers must not be empty".into());
        }
        if p.opt_out_exempt_categories.iter().any(|c| c.trim().is_empty()) {
            return Err("policy.opt_out_exempt_categories: categories must not be empty".into());
        }
        if self.limits.max_line_bytes < 998 {
            return Err("limits.max_line_bytes: must be at least 998 (RFC 5322)".into());
        }
        if self.store.cache_mb == 0 {
            return Err("store.cache_mb: must be at least 1".into());
        }
        if (1..METRICS_DAYS).contains(&self.archive.retention_days) {
            return Err(format!(
                "archive.retention_days: must be 0 (kept forever) or at least {METRICS_DAYS}: the response metrics \
                 count the last {METRICS_DAYS} days of messages"
            ));
        }
        if p.daily_limit_window_days == 0 || p.daily_limit_window_days > 366 {
            return Err("policy.daily_limit_window_days: must be between 1 and 366".into());
        }
        if let Some(d) = &self.dkim
            && (d.selector.is_empty()
                || !d
                    .selector
                    .split('.')
                    .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')))
        {
            return Err(format!("dkim.selector: {:?} is not a DNS label", d.selector));
        }
        let a = &self.auth;
        a.dns_server_addrs()?;
        if a.dns_timeout_secs == 0 || a.dns_timeout_secs > 60 {
            return Err("auth.dns_timeout_secs: must be between 1 and 60".into());
        }
        match &a.authserv_id {
            None if a.has(AuthMethod::TrustAuthres) => {
                return Err("auth.authserv_id: required when auth.methods has \"trust-authres\"".into());
            }
            Some(id) if id.is_empty() || !id.chars().all(|c| c.is_ascii_graphic() && !"();\"\\=".contains(c)) => {
                return Err(format!("auth.authserv_id: {id:?} is not an authserv-id like mx.example.com"));
            }
            _ => {}
        }
        if a.has(AuthMethod::TrustAuthres) && a.cleaner_socket.is_none() {
            return Err("auth.cleaner_socket: required when auth.methods has \"trust-authres\"".into());
        }
        if a.cleaner_socket.as_ref().is_some_and(|s| *s == self.milter.socket || *s == self.admin.socket) {
            return Err("auth.cleaner_socket: must differ from milter.socket and admin.socket".into());
        }
        if let Some(d) = self.content.link_allowlist.iter().find(|d| !is_domain(&d.to_ascii_lowercase())) {
            return Err(format!("content.link_allowlist: {d:?} is not a domain name"));
        }
        if self.relay.notice_name.trim().is_empty() || self.relay.notice_name.contains(['\r', '\n']) {
            return Err("relay.notice_name: must be a non-empty single line".into());
        }
        let ephemeral = matches!(self.milter.socket, Socket::Inet(a) if a.port() == 0);
        if self.milter.socket == self.admin.socket && !ephemeral {
            return Err("admin.socket: must differ from milter.socket".into());
        }
        Ok(())
    }
}

/// The relay domain, lower-cased and checked to be a DNS name.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RelayDomain(String);

impl RelayDomain {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RelayDomain {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let d = s.trim().to_ascii_lowercase();
        if is_domain(&d) {
            Ok(RelayDomain(d))
        } else {
            Err(format!("{s:?} is not a domain name like marketplace.example.com"))
        }
    }
}

impl fmt::Display for RelayDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A listening socket in Postfix's milter syntax: `unix:/path` or `inet:host:port`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Socket {
    Unix(PathBuf),
    Inet(SocketAddr),
}

impl FromStr for Socket {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!("{s:?}: unix socket path must be absolute"));
            }
            Ok(Socket::Unix(path.into()))
        } else if let Some(hostport) = s.strip_prefix("inet:") {
            let addr = hostport
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| format!("{s:?}: expected inet:HOST:PORT"))?;
            Ok(Socket::Inet(addr))
        } else {
            Err(format!("{s:?}: expected unix:/path or inet:host:port"))
        }
    }
}

impl TryFrom<String> for Socket {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Socket::Unix(p) => write!(f, "unix:{}", p.display()),
            Socket::Inet(a) => write!(f, "inet:{a}"),
        }
    }
}

/// Octal permission bits for a unix socket, written as a string (`"0660"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct SocketMode(pub u32);

impl TryFrom<String> for SocketMode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match u32::from_str_radix(s.trim(), 8) {
            Ok(m) if m <= 0o777 => Ok(SocketMode(m)),
            _ => Err(format!("{s:?}: expected octal permissions like \"0660\"")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_file_takes_documented_defaults() {
        let c = Config::parse("[relay]\ndomain = \"Marketplace.Example.com\"\n").unwrap();
        assert_eq!(c.relay.domain.as_str(), "marketplace.example.com");
        assert_eq!(c.milter.socket, Socket::Unix("/run/bsm-milter/milter.sock".into()));
        assert_eq!(c.policy.daily_limit_base, 600);
        assert_eq!(c.policy.critical_markers, ["[Important]", "[중요]", "[重要]"]);
    }

    #[test]
    fn a_direction_table_keeps_the_defaults_it_does_not_set() {
        let c = Config::parse(
            "[relay]\ndomain = \"m.example.com\"\n[content.seller_to_buyer]\nunwrap_external_links = false\n\
             [content.buyer_to_seller]\nfilter_attachments = true\n",
        )
        .unwrap();
        let (s2b, b2s) = (&c.content.seller_to_buyer, &c.content.buyer_to_seller);
        assert_eq!(DirectionRules { unwrap_external_links: true, ..s2b.clone() }, DirectionRules::seller_to_buyer());
        assert!(!s2b.unwrap_external_links);
        assert_eq!(DirectionRules { filter_attachments: false, ..b2s.clone() }, DirectionRules::buyer_to_seller());
        assert!(b2s.filter_attachments);
        let e = Config::parse("[relay]\ndomain = \"m.example.com\"\n[content.buyer_to_seller]\nfilter = true\n")
            .unwrap_err();
        assert!(e.contains("filter") && e.contains("line 4"), "{e}");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e = Config::parse("[relay]\ndomain = \"m.example.com\"\n\n[store]\npaht = \"/x\"\n").unwrap_err();
        assert!(e.contains("paht") && e.contains("line 5"), "{e}");
    }

    #[test]
    fn bad_values_name_the_problem() {
        let e = Config::parse("[relay]\ndomain = \"not a domain\"\n").unwrap_err();
        assert!(e.contains("domain"), "{e}");
        let e = Config::parse("[relay]\ndomain = \"m.example.com\"\n[milter]\nsocket = \"tcp:1\"\n").unwrap_err();
        assert!(e.contains("socket"), "{e}");
        let e =
            Config::parse("[relay]\ndomain = \"m.example.com\"\n[policy]\ndaily_limit_window_days = 0\n").unwrap_err();
        assert!(e.contains("daily_limit_window_days"), "{e}");
        assert!(Config::parse("").unwrap_err().contains("relay"));
        let retention = |days: u32| {
            Config::parse(&format!("[relay]\ndomain = \"m.example.com\"\n[archive]\nretention_days = {days}\n"))
        };
        let e = retention(30).unwrap_err();
        assert!(e.starts_with("archive.retention_days: must be 0 (kept forever) or at least 90"), "{e}");
        assert!(retention(89).is_err());
        assert!(retention(0).is_ok() && retention(90).is_ok());
    }

    #[test]
    fn auth_settings_are_checked_together() {
        let with = |auth: &str| Config::parse(&format!("[relay]\ndomain = \"m.example.com\"\n[auth]\n{auth}"));
        let e = with("methods = [\"trust-authres\"]\ncleaner_socket = \"unix:/run/c.sock\"\n").unwrap_err();
        assert!(e.starts_with("auth.authserv_id: required"), "{e}");
        let e = with("methods = [\"trust-authres\"]\nauthserv_id = \"mx.example.com\"\n").unwrap_err();
        assert!(e.starts_with("auth.cleaner_socket: required"), "{e}");
        let e = with("authserv_id = \"mx; dmarc=pass\"\n").unwrap_err();
        assert!(e.starts_with("auth.authserv_id:"), "{e}");
        let e = with("methods = [\"verify\"]\ndns_servers = [\"localhost\"]\n").unwrap_err();
        assert!(e.starts_with("auth.dns_servers: \"localhost\""), "{e}");
        let e = with("methods = [\"dkim\"]\n").unwrap_err();
        assert!(e.contains("methods") || e.contains("unknown variant"), "{e}");
        let ok = with("methods = [\"verify\", \"sasl\"]\ndns_servers = [\"127.0.0.1\", \"[::1]:5353\"]\n").unwrap();
        assert_eq!(ok.auth.dns_server_addrs().unwrap()[0].port(), 53);
        assert!(!ok.auth.requires_sasl() && ok.auth.checks_messages());
    }

    #[test]
    fn socket_syntax_round_trips() {
        let s: Socket = "inet:127.0.0.1:7357".parse().unwrap();
        assert_eq!(s.to_string(), "inet:127.0.0.1:7357");
        let s: Socket = "unix:/run/x.sock".parse().unwrap();
        assert_eq!(s.to_string(), "unix:/run/x.sock");
        assert!("unix:relative".parse::<Socket>().is_err());
        assert!("inet:nohost".parse::<Socket>().is_err());
    }
}
