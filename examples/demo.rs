//! The main job in one command: a private loopback Postfix with bsm-milter in
//! front (embedded redb store), a buyer writing to a seller and the seller
//! answering, printing what each side's mailbox receives.
//!
//!     sudo cargo run --example demo        (or: scripts/demo.sh)

// The module allows its own dead code (not every test uses all of it).
#[path = "../tests/support/postfix.rs"]
mod postfix;

use bsm_milter::admin::client::Client;
use bsm_milter::config::{Config, Socket};
use bsm_milter::{Daemon, SharedConfig};
use hyper::Method;
use postfix::{PostfixRelay, RelayOptions, SinkMessage, send};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const DOMAIN: &str = "marketplace.example.com";

fn show(title: &str, m: &SinkMessage) {
    println!("\n=== {title}");
    println!("envelope: MAIL FROM:<{}>  RCPT TO:<{}>", m.mail_from, m.rcpt_to.join(">, <"));
    println!("{}", String::from_utf8_lossy(&m.raw).trim_end());
}

fn message(headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut m: String = headers.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
    m.push_str("\r\n");
    m.push_str(body);
    m.into_bytes()
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let d = dir.path().display();
    let config = Config::parse(&format!(
        "[relay]\ndomain = \"{DOMAIN}\"\n[milter]\nsocket = \"unix:{d}/milter.sock\"\nsocket_mode = \"0666\"\n\
         [admin]\nsocket = \"unix:{d}/admin.sock\"\n[store]\npath = \"{d}/store.redb\"\n[archive]\ndir = \"{d}/archive\"\n"
    ))
    .expect("demo config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let daemon = rt.block_on(Daemon::bind(SharedConfig::new(config, None))).expect("bind bsm-milter");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = rt.spawn(daemon.run(async move {
        let _ = stopped.await;
    }));
    let admin = Client::new(Socket::Unix(dir.path().join("admin.sock")));
    let api = |method: Method, path: &str, body: Value| -> Value {
        rt.block_on(admin.request(method, path, Some(body))).unwrap_or_else(|e| panic!("{path}: {e}"))
    };

    println!("== registering a seller and a buyer through the admin API");
    let seller = api(
        Method::POST,
        "/v1/sellers",
        json!({"id": "S100", "name": "Hanok Pottery", "service_address": "cs@hanok-pottery.example", "approved_addresses": ["minsu@hanok-pottery.example"]}),
    );
    api(Method::POST, "/v1/buyers", json!({"id": "B200", "email": "jane.doe@buyer-mail.example", "name": "Jane"}));
    api(
        Method::POST,
        "/v1/orders",
        json!({"id": "114-1234567-1234567", "seller": "S100", "buyer": "B200", "category": "handmade"}),
    );
    let seller_alias = seller["alias"].as_str().expect("alias").to_string();
    println!("seller S100 'Hanok Pottery' writes from minsu@hanok-pottery.example; its alias is {seller_alias}");
    println!("buyer B200 'Jane' writes from jane.doe@buyer-mail.example");

    let relay = PostfixRelay::start(RelayOptions::with_milter(dir.path().join("milter.sock")));
    println!("== Postfix on 127.0.0.1:{} with bsm-milter in front, smtp-sink behind", relay.smtp_port());

    let question = message(
        &[
            ("From", "Jane Doe <jane.doe@buyer-mail.example>"),
            ("To", &format!("Hanok Pottery <{seller_alias}>")),
            ("Subject", "Order 114-1234567-1234567: glaze colour?"),
            ("Message-ID", "<q1@buyer-mail.example>"),
            ("Reply-To", "jane.doe@buyer-mail.example"),
        ],
        "Hello, could the bowl be glazed in celadon green?\r\nJane\r\n",
    );
    let (_, rcpt, data) = send(relay.smtp_port(), "jane.doe@buyer-mail.example", &[&seller_alias], &question);
    println!("\nbuyer sends to {seller_alias}: RCPT {} / DATA {}", rcpt[0].code, data.map_or(0, |d| d.code));
    let got = relay.wait_delivered(1, Duration::from_secs(30)).remove(0);
    show("what the seller receives (at cs@hanok-pottery.example)", &got);
    let pair_alias = got.mail_from.clone();
    let relay_id = got.header("Message-ID").unwrap_or_default();

    let answer = message(
        &[
            ("From", "Minsu Kim <minsu@hanok-pottery.example>"),
            ("To", &format!("Jane <{pair_alias}>")),
            ("Subject", "Re: Order 114-1234567-1234567: glaze colour?"),
            ("Message-ID", "<a1@hanok-pottery.example>"),
            ("In-Reply-To", &relay_id),
            ("References", &relay_id),
        ],
        "Dear Jane, yes: celadon it is. It ships on Friday.\r\nMinsu\r\n",
    );
    let (_, rcpt, data) = send(relay.smtp_port(), "minsu@hanok-pottery.example", &[&pair_alias], &answer);
    println!("\nseller replies to {pair_alias}: RCPT {} / DATA {}", rcpt[0].code, data.map_or(0, |d| d.code));
    let got = relay.wait_delivered(2, Duration::from_secs(30)).remove(1);
    show("what the buyer receives (at jane.doe@buyer-mail.example)", &got);

    let (_, rcpt, _) = send(relay.smtp_port(), "spammer@elsewhere.example", &[&pair_alias], &answer);
    println!("\na stranger writing to {pair_alias} gets: {} {}", rcpt[0].code, rcpt[0].text);

    drop(relay);
    let _ = stop.send(());
    rt.block_on(served).expect("join").expect("bsm-milter stopped cleanly");
}
