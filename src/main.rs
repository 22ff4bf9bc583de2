//! The `bsm-milter` command: the daemon and the admin CLI.

use bsm_milter::admin::client::{Client, segment};
use bsm_milter::config::{self, Config};
use bsm_milter::{SharedConfig, error_chain};
use clap::{Parser, Subcommand, ValueEnum};
use hyper::Method;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "bsm-milter", version, about = "Anonymous buyer-seller messaging for Postfix")]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the milter and the admin API.
    Serve,
    /// Validate the configuration file and exit.
    CheckConfig,
    /// Manage sellers.
    #[command(subcommand)]
    Seller(SellerCmd),
    /// Manage buyers.
    #[command(subcommand)]
    Buyer(BuyerCmd),
    /// Manage orders.
    #[command(subcommand)]
    Order(OrderCmd),
    /// Pair aliases.
    #[command(subcommand)]
    Alias(AliasCmd),
    /// Messages the relay decided on.
    #[command(subcommand)]
    Archive(ArchiveCmd),
    /// Sellers' response times over 7, 30 and 90 days.
    Metrics {
        #[arg(long)]
        seller: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ArchiveCmd {
    /// List decided messages, oldest first.
    List {
        #[arg(long)]
        seller: Option<String>,
        #[arg(long)]
        buyer: Option<String>,
        #[arg(long)]
        alias: Option<String>,
        #[arg(long)]
        order: Option<String>,
        /// RFC 3339 time or YYYY-MM-DD (UTC), inclusive.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 time or YYYY-MM-DD (UTC), exclusive.
        #[arg(long)]
        until: Option<String>,
        /// Only messages a seller reported.
        #[arg(long)]
        reported: bool,
        #[arg(long)]
        json: bool,
    },
    /// One message: its record, or a copy of it on stdout.
    Show {
        id: String,
        /// The message as the relay received it.
        #[arg(long, conflicts_with = "delivered")]
        original: bool,
        /// The message as the relay delivered it.
        #[arg(long)]
        delivered: bool,
    },
    /// A whole conversation as mbox on stdout: --seller and --buyer, --alias, or --order.
    Export {
        #[arg(long)]
        seller: Option<String>,
        #[arg(long)]
        buyer: Option<String>,
        #[arg(long)]
        alias: Option<String>,
        #[arg(long)]
        order: Option<String>,
    },
    /// Remove archived messages older than archive.retention_days now (also runs hourly).
    Purge,
}

#[derive(Subcommand)]
enum SellerCmd {
    /// Register a seller (its own alias is created).
    Add {
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long = "service-address")]
        service_address: String,
        /// An address allowed to write to buyers as this seller (repeatable).
        #[arg(long = "approve")]
        approve: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Approve a sending address.
    Approve { id: String, address: String },
    /// Revoke an approved sending address.
    Revoke { id: String, address: String },
    /// Let an SMTP AUTH login submit as this seller (with [auth] methods = ["sasl"]).
    MapLogin { id: String, login: String },
    /// Remove an SMTP AUTH login from this seller.
    UnmapLogin { id: String, login: String },
    /// Change a seller's details.
    Set {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "service-address")]
        service_address: Option<String>,
        #[arg(long = "opt-out-notices")]
        opt_out_notices: Option<OnOff>,
    },
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Subcommand)]
enum BuyerCmd {
    Add {
        id: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The buyer no longer wants unsolicited messages.
    OptOut {
        id: String,
    },
    OptIn {
        id: String,
    },
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum OrderCmd {
    Add {
        order_id: String,
        #[arg(long)]
        seller: String,
        #[arg(long)]
        buyer: String,
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AliasCmd {
    /// The pair alias of a seller and a buyer, created if new.
    Get {
        #[arg(long)]
        seller: String,
        #[arg(long)]
        buyer: String,
        #[arg(long)]
        json: bool,
    },
    /// Which seller, buyer and orders an alias belongs to.
    Lookup {
        address: String,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("bsm-milter: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &std::path::Path) -> Result<Config, String> {
    Config::load(path).map_err(|e| error_chain(&e).replace('\n', " "))
}

/// glibc gives each thread that allocates its own arena (up to 8 per core) and
/// keeps what is freed in it: with 100 sessions, the soak's RSS grew to
/// 117 MiB; with two arenas it levels off near 80 MiB (see README).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// One thread for all sessions: the milter's async work is protocol I/O,
/// and whatever blocks or computes (end of message, admin API store calls)
/// runs on the blocking pool. indymilter hands every read and write of a
/// session to an I/O task; on a multi-thread runtime those hand-offs cross
/// threads (futex wake-ups): the current-thread runtime took the benchmark's
/// no-op milter from 0.44–0.62 to 0.30–0.38 ms of CPU per message (bsm-milter's
/// own figure moved less than the machine's noise: README, Performance).
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot start runtime: {e}"))
}

fn run(cli: Cli) -> Result<(), String> {
    let config = load(&cli.config)?;
    match cli.command {
        Command::CheckConfig => {
            if let Some(d) = &config.dkim {
                bsm_milter::dkim::Dkim::load(d, config.relay.domain.as_str())?;
            }
            println!("{}: OK (relay domain {})", cli.config.display(), config.relay.domain);
            Ok(())
        }
        Command::Serve => {
            limit_malloc_arenas();
            init_logging();
            let shared = SharedConfig::new(config, Some(cli.config.clone()));
            runtime()?.block_on(bsm_milter::serve(shared)).map_err(|e| error_chain(&e))
        }
        other => {
            let client = Client::new(config.admin.socket.clone());
            runtime()?.block_on(admin(&client, other))
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    // indymilter's own spans only at warn: one info line per decision is ours.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,indymilter=warn"));
    // Colours only on a terminal: under systemd the journal would keep the escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

fn print(value: &Value, as_json: bool, human: impl FnOnce(&Value) -> String) {
    if as_json {
        println!("{value}");
    } else {
        println!("{}", human(value));
    }
}

fn s(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(a) => {
            a.iter().map(|x| x.as_str().map_or_else(|| x.to_string(), String::from)).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

/// One seller's response metrics as a table; targets from seeds 002/004.
fn metrics_text(v: &Value) -> String {
    let pct =
        |n: u64, of: u64| if of == 0 { "-".to_string() } else { format!("{:.1} %", n as f64 * 100.0 / of as f64) };
    let mut out = format!(
        "seller {}\n{:<6} {:>8} {:>16} {:>14} {:>12} {:>17} {:>5} {:>13}",
        s(v, "seller"),
        "window",
        "received",
        "within 24h",
        "late",
        "no response",
        "unanswered > 24h",
        "open",
        "avg response"
    );
    for name in ["7d", "30d", "90d"] {
        let w = &v["windows"][name];
        let n = |k: &str| w[k].as_u64().unwrap_or(0);
        let received = n("received");
        let avg =
            w["avg_response_secs"].as_u64().map_or("-".to_string(), |s| format!("{}h {:02}m", s / 3600, s % 3600 / 60));
        out.push_str(&format!(
            "\n{name:<6} {received:>8} {:>16} {:>14} {:>12} {:>17} {:>5} {avg:>13}",
            format!("{} ({})", n("answered_within_24h"), pct(n("answered_within_24h"), received)),
            format!("{} ({})", n("answered_late"), pct(n("answered_late"), received)),
            n("no_response_needed"),
            n("unanswered_over_24h"),
            n("open"),
        ));
    }
    out.push_str("\ntargets: within 24h > 90 %, late <= 10 %");
    out
}

/// `k=v&…` for the parameters that are set, values percent-encoded.
fn query(params: &[(&str, Option<String>)]) -> String {
    params.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", segment(v)))).collect::<Vec<_>>().join("&")
}

fn seller_text(v: &Value) -> String {
    format!(
        "seller {}\n  name:               {}\n  alias:              {}\n  service address:    {}\n  approved addresses: {}\n  opt-out notices:    {}\n  SMTP AUTH logins:   {}",
        s(v, "id"),
        s(v, "name"),
        s(v, "alias"),
        s(v, "service_address"),
        s(v, "approved_addresses"),
        if v["opt_out_notices"] == json!(true) { "on" } else { "off" },
        s(v, "logins")
    )
}

fn buyer_text(v: &Value) -> String {
    format!(
        "buyer {}\n  email:      {}\n  name:       {}\n  opted out:  {}",
        s(v, "id"),
        s(v, "email"),
        s(v, "name"),
        if v["opted_out"] == json!(true) { "yes" } else { "no" }
    )
}

async fn admin(client: &Client, command: Command) -> Result<(), String> {
    let err = |e: bsm_milter::admin::client::ClientError| e.to_string();
    match command {
        Command::Seller(cmd) => match cmd {
            SellerCmd::Add { id, name, service_address, approve, json } => {
                let body = json!({ "id": id, "name": name, "service_address": service_address, "approved_addresses": approve });
                let v = client.request(Method::POST, "/v1/sellers", Some(body)).await.map_err(err)?;
                print(&v, json, seller_text);
            }
            cmd @ (SellerCmd::Approve { .. }
            | SellerCmd::Revoke { .. }
            | SellerCmd::MapLogin { .. }
            | SellerCmd::UnmapLogin { .. }) => {
                // Adding to or removing from one of a seller's lists: the seller as it is now.
                let (method, path, body) = match cmd {
                    SellerCmd::Approve { id, address } => (
                        Method::POST,
                        format!("/v1/sellers/{}/approved-addresses", segment(&id)),
                        Some(json!({ "address": address })),
                    ),
                    SellerCmd::Revoke { id, address } => (
                        Method::DELETE,
                        format!("/v1/sellers/{}/approved-addresses/{}", segment(&id), segment(&address)),
                        None,
                    ),
                    SellerCmd::MapLogin { id, login } => {
                        (Method::POST, format!("/v1/sellers/{}/logins", segment(&id)), Some(json!({ "login": login })))
                    }
                    SellerCmd::UnmapLogin { id, login } => {
                        (Method::DELETE, format!("/v1/sellers/{}/logins/{}", segment(&id), segment(&login)), None)
                    }
                    _ => unreachable!("matched above"),
                };
                let v = client.request(method, &path, body).await.map_err(err)?;
                println!("{}", seller_text(&v));
            }
            SellerCmd::Set { id, name, service_address, opt_out_notices } => {
                if name.is_none() && service_address.is_none() && opt_out_notices.is_none() {
                    return Err(
                        "seller set: nothing to change (give --name, --service-address or --opt-out-notices)".into()
                    );
                }
                let mut body = serde_json::Map::new();
                if let Some(n) = name {
                    body.insert("name".into(), json!(n));
                }
                if let Some(a) = service_address {
                    body.insert("service_address".into(), json!(a));
                }
                if let Some(o) = opt_out_notices {
                    body.insert("opt_out_notices".into(), json!(matches!(o, OnOff::On)));
                }
                let path = format!("/v1/sellers/{}", segment(&id));
                let v = client.request(Method::PATCH, &path, Some(Value::Object(body))).await.map_err(err)?;
                println!("{}", seller_text(&v));
            }
            SellerCmd::Show { id, json } => {
                let v = client.get(&format!("/v1/sellers/{}", segment(&id))).await.map_err(err)?;
                print(&v, json, seller_text);
            }
        },
        Command::Buyer(cmd) => match cmd {
            BuyerCmd::Add { id, email, name, json } => {
                let v = client
                    .request(Method::POST, "/v1/buyers", Some(json!({ "id": id, "email": email, "name": name })))
                    .await
                    .map_err(err)?;
                print(&v, json, buyer_text);
            }
            BuyerCmd::OptOut { id } => {
                let v = client
                    .request(Method::POST, &format!("/v1/buyers/{}/opt-out", segment(&id)), None)
                    .await
                    .map_err(err)?;
                println!("{}", buyer_text(&v));
            }
            BuyerCmd::OptIn { id } => {
                let v = client
                    .request(Method::POST, &format!("/v1/buyers/{}/opt-in", segment(&id)), None)
                    .await
                    .map_err(err)?;
                println!("{}", buyer_text(&v));
            }
            BuyerCmd::Show { id, json } => {
                let v = client.get(&format!("/v1/buyers/{}", segment(&id))).await.map_err(err)?;
                print(&v, json, buyer_text);
            }
        },
        Command::Order(OrderCmd::Add { order_id, seller, buyer, category, json }) => {
            let body = json!({ "id": order_id, "seller": seller, "buyer": buyer, "category": category });
            let v = client.request(Method::POST, "/v1/orders", Some(body)).await.map_err(err)?;
            print(&v, json, |v| {
                format!(
                    "order {} (seller {}, buyer {}, category {})",
                    s(v, "id"),
                    s(v, "seller"),
                    s(v, "buyer"),
                    s(v, "category")
                )
            });
        }
        Command::Alias(AliasCmd::Get { seller, buyer, json }) => {
            let v = client
                .request(Method::POST, "/v1/aliases", Some(json!({ "seller": seller, "buyer": buyer })))
                .await
                .map_err(err)?;
            print(&v, json, |v| s(v, "alias"));
        }
        Command::Alias(AliasCmd::Lookup { address, json }) => {
            let v = client.get(&format!("/v1/aliases/{}", segment(&address))).await.map_err(err)?;
            print(&v, json, |v| {
                format!(
                    "{} ({}): seller {}, buyer {}, orders: {}",
                    s(v, "alias"),
                    s(v, "kind"),
                    s(v, "seller"),
                    s(v, "buyer"),
                    s(v, "orders")
                )
            });
        }
        Command::Archive(ArchiveCmd::List { seller, buyer, alias, order, since, until, reported, json }) => {
            let reported = reported.then(|| "true".to_string());
            let query = query(&[
                ("seller", seller),
                ("buyer", buyer),
                ("alias", alias),
                ("order", order),
                ("since", since),
                ("until", until),
                ("reported", reported),
            ]);
            let v = client.get(&format!("/v1/messages?{query}")).await.map_err(err)?;
            print(&v, json, |v| {
                let rows = v.as_array().map(Vec::as_slice).unwrap_or_default();
                let mut out = format!(
                    "{:<20}  {:<15}  {:<9}  {:<10}  {:<10}  {:<19}  SUBJECT",
                    "AT", "DIRECTION", "DECISION", "SELLER", "BUYER", "ORDER"
                );
                for r in rows {
                    out.push_str(&format!(
                        "\n{:<20}  {:<15}  {:<9}  {:<10}  {:<10}  {:<19}  {}",
                        s(r, "at"),
                        s(r, "direction"),
                        // A report replaced by the relay's notice: what was delivered is the notice.
                        if r["notice"].as_bool() == Some(true) { "notice".into() } else { s(r, "decision") },
                        s(r, "seller"),
                        s(r, "buyer"),
                        s(r, "order"),
                        s(r, "subject")
                    ));
                }
                out
            });
        }
        Command::Archive(ArchiveCmd::Show { id, original, delivered }) => {
            let id = segment(id.trim_start_matches('<').trim_end_matches('>'));
            if original || delivered {
                let copy = if original { "original" } else { "delivered" };
                let bytes =
                    client.request_raw(Method::GET, &format!("/v1/messages/{id}/{copy}"), None).await.map_err(err)?;
                std::io::Write::write_all(&mut std::io::stdout(), &bytes).map_err(|e| e.to_string())?;
            } else {
                let v = client.get(&format!("/v1/messages/{id}")).await.map_err(err)?;
                let fields = [
                    "id",
                    "at",
                    "direction",
                    "decision",
                    "seller",
                    "buyer",
                    "alias",
                    "order",
                    "subject",
                    "answered_at",
                    "reason",
                ];
                println!("{}", fields.iter().map(|f| format!("{f:<12} {}", s(&v, f))).collect::<Vec<_>>().join("\n"));
            }
        }
        Command::Archive(ArchiveCmd::Export { seller, buyer, alias, order }) => {
            let query = query(&[("seller", seller), ("buyer", buyer), ("alias", alias), ("order", order)]);
            let bytes = client.request_raw(Method::GET, &format!("/v1/export?{query}"), None).await.map_err(err)?;
            std::io::Write::write_all(&mut std::io::stdout(), &bytes).map_err(|e| e.to_string())?;
        }
        Command::Archive(ArchiveCmd::Purge) => {
            let v = client.request(Method::POST, "/v1/archive/purge", None).await.map_err(err)?;
            println!("removed {} record(s) and {} file(s)", s(&v, "removed_records"), s(&v, "removed_files"));
        }
        Command::Metrics { seller, json } => {
            let path = match &seller {
                Some(s) => format!("/v1/metrics?seller={}", segment(s)),
                None => "/v1/metrics".to_string(),
            };
            let v = client.get(&path).await.map_err(err)?;
            print(&v, json, |v| match v {
                Value::Array(all) => all.iter().map(metrics_text).collect::<Vec<_>>().join("\n\n"),
                one => metrics_text(one),
            });
        }
        Command::Serve | Command::CheckConfig => unreachable!("handled before connecting"),
    }
    Ok(())
}
