//! The `bsm-milter` command as an admin uses it: the real binary, serving on
//! unix sockets, driven by its own CLI.

mod support;

use serde_json::Value;
use support::process::{BIN, Served, cli, fails, ok, stderr};

fn json(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn check_config_accepts_the_sample_and_names_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/bsm-milter.toml");
    assert!(ok(sample.as_ref(), &["check-config"]).contains("OK"));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[relay]\ndomain = \"m.example.com\"\n[policy]\ndaily_limit_bse = 3\n").unwrap();
    let err = fails(&bad, &["check-config"]);
    assert!(err.contains("daily_limit_bse") && err.contains("line 4"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let dkim = dir.path().join("dkim.toml");
    std::fs::write(
        &dkim,
        "[relay]\ndomain = \"m.example.com\"\n[dkim]\nselector = \"s1\"\nkey_file = \"/nonexistent/key.pem\"\n",
    )
    .unwrap();
    let err = fails(&dkim, &["check-config"]);
    assert!(err.contains("dkim.key_file") && err.contains("/nonexistent/key.pem"), "{err}");
    std::fs::write(dir.path().join("junk.pem"), "not a key").unwrap();
    std::fs::write(
        &dkim,
        format!(
            "[relay]\ndomain = \"m.example.com\"\n[dkim]\nselector = \"s1\"\nkey_file = \"{}/junk.pem\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    assert!(fails(&dkim, &["check-config"]).contains("not a PEM private key"));
    let missing = fails(&dir.path().join("nope.toml"), &["check-config"]);
    assert!(missing.contains("nope.toml"), "{missing}");
}

#[test]
fn admin_commands_round_trip_through_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = Served::start(dir.path());
    let c = &d.config;
    let seller = json(&ok(
        c,
        &[
            "seller",
            "add",
            "S1",
            "--name",
            "Shop One",
            "--service-address",
            "CS@Shop1.example",
            "--approve",
            "sales@shop1.example",
            "--json",
        ],
    ));
    assert_eq!(seller["id"], "S1");
    assert_eq!(seller["service_address"], "cs@shop1.example");
    assert_eq!(seller["approved_addresses"], serde_json::json!(["sales@shop1.example"]));
    assert_eq!(seller["opt_out_notices"], true);
    let alias = seller["alias"].as_str().unwrap();
    let (local, domain) = alias.split_once('@').unwrap();
    assert_eq!((local.len(), domain), (15, "m.example.com"));

    ok(c, &["seller", "approve", "S1", "support@shop1.example"]);
    ok(c, &["seller", "set", "S1", "--name", "Shop Uno", "--opt-out-notices", "off"]);
    let shown = json(&ok(c, &["seller", "show", "S1", "--json"]));
    assert_eq!(shown["name"], "Shop Uno");
    assert_eq!(shown["opt_out_notices"], false);
    assert_eq!(shown["alias"], alias);
    assert_eq!(shown["approved_addresses"].as_array().unwrap().len(), 2);
    ok(c, &["seller", "revoke", "S1", "support@shop1.example"]);
    ok(c, &["seller", "map-login", "S1", "shop1-cs"]);
    assert_eq!(json(&ok(c, &["seller", "show", "S1", "--json"]))["logins"], serde_json::json!(["shop1-cs"]));
    ok(c, &["seller", "unmap-login", "S1", "shop1-cs"]);
    assert_eq!(json(&ok(c, &["seller", "show", "S1", "--json"]))["logins"], serde_json::json!([]));
    assert!(ok(c, &["seller", "show", "S1"]).contains("Shop Uno"));

    let buyer = json(&ok(c, &["buyer", "add", "B1", "--email", "bob@buyer.example", "--name", "Bob", "--json"]));
    assert_eq!(buyer["email"], "bob@buyer.example");
    ok(c, &["buyer", "opt-out", "B1"]);
    assert_eq!(json(&ok(c, &["buyer", "show", "B1", "--json"]))["opted_out"], true);
    ok(c, &["buyer", "opt-in", "B1"]);
    ok(c, &["order", "add", "114-1234567-1234567", "--seller", "S1", "--buyer", "B1", "--category", "handmade"]);

    let pair = json(&ok(c, &["alias", "get", "--seller", "S1", "--buyer", "B1", "--json"]));
    assert_eq!(pair["seller"], "S1");
    assert_eq!(pair["buyer"], "B1");
    let pair_alias = pair["alias"].as_str().unwrap().to_string();
    assert_ne!(pair_alias, alias);
    // The same pair always gets the same alias.
    assert_eq!(ok(c, &["alias", "get", "--seller", "S1", "--buyer", "B1"]).trim(), pair_alias);
    let found = json(&ok(c, &["alias", "lookup", &pair_alias, "--json"]));
    assert_eq!(found["seller"], "S1");
    assert_eq!(found["buyer"], "B1");
    assert_eq!(found["orders"], serde_json::json!(["114-1234567-1234567"]));
    assert_eq!(json(&ok(c, &["alias", "lookup", alias, "--json"]))["kind"], "seller");
    assert!(d.stop().success());
}

#[test]
fn bad_input_gets_one_clear_line_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Served::start(dir.path());
    let config = d.config.clone();
    let c = &config;
    ok(
        c,
        &["seller", "add", "S1", "--name", "One", "--service-address", "cs@one.example", "--approve", "a@one.example"],
    );
    ok(c, &["buyer", "add", "B1", "--email", "bob@buyer.example"]);

    let cases: &[(&[&str], &str)] = &[
        (&["seller", "add", "S1", "--name", "Again", "--service-address", "cs@x.example"], "already exists"),
        (&["seller", "add", "S2", "--name", "Two", "--service-address", "not-an-address"], "service_address"),
        (&["seller", "add", "S2", "--name", "Two", "--service-address", "cs@m.example.com"], "relay domain"),
        (&["seller", "add", "bad id!", "--name", "Two", "--service-address", "cs@two.example"], "id"),
        (
            &[
                "seller",
                "add",
                "S2",
                "--name",
                "Two",
                "--service-address",
                "cs@two.example",
                "--approve",
                "a@one.example",
            ],
            "already approved",
        ),
        (&["seller", "show", "nobody"], "not found"),
        (&["seller", "approve", "S1", "x@"], "address"),
        (&["buyer", "add", "B2", "--email", "bob@buyer.example"], "already registered"),
        (&["buyer", "opt-out", "nobody"], "not found"),
        (&["order", "add", "O1", "--seller", "S1", "--buyer", "nobody"], "buyer"),
        (&["order", "add", "O1", "--seller", "S1", "--buyer", "B1", "--category", "wine & cheese"], "category"),
        (&["alias", "get", "--seller", "S1", "--buyer", "nobody"], "not found"),
        (&["alias", "lookup", "zzzzzzzzzzzzzzz@m.example.com"], "not found"),
        (&["seller", "set", "S1"], "nothing to change"),
        (&["seller", "map-login", "S1", "has space"], "login"),
        (&["seller", "unmap-login", "S1", "never-mapped"], "not found"),
    ];
    for (args, expect) in cases {
        let err = fails(c, args);
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    // Nothing half-applied: the refused S2 left no seller and no approved address behind.
    fails(c, &["seller", "show", "S2"]);
    let s1 = json(&ok(c, &["seller", "show", "S1", "--json"]));
    assert_eq!(s1["approved_addresses"], serde_json::json!(["a@one.example"]));
    // A missing flag is clap's error, with a non-zero exit.
    let o = cli(c, &["seller", "add", "S3", "--name", "Three"]);
    assert!(!o.status.success() && stderr(&o).contains("--service-address"));
    assert!(d.stop().success());
    // Daemon not running.
    let err = fails(c, &["seller", "show", "S1"]);
    assert!(err.contains("is `bsm-milter serve` running?"), "{err}");
}

#[test]
fn sighup_reloads_and_a_bad_file_keeps_the_old_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = Served::start(dir.path());
    let good = std::fs::read_to_string(&d.config).unwrap();
    let cli_config = dir.path().join("cli.toml");
    std::fs::write(&cli_config, &good).unwrap();
    std::fs::write(&d.config, format!("{good}\n[bogus]\nkey = 1\n")).unwrap();
    d.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !d.log_text().contains("config reload failed") {
        assert!(std::time::Instant::now() < deadline, "no reload error logged: {}", d.log_text());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(d.log_text().contains("bogus"), "{}", d.log_text());
    // Still serving with the old config.
    ok(&cli_config, &["seller", "add", "S1", "--name", "One", "--service-address", "cs@one.example"]);
    std::fs::write(&d.config, good.replace("[relay]\n", "[relay]\nnotice_name = \"Relay\"\n")).unwrap();
    d.signal("HUP");
    while !d.log_text().contains("config reloaded") {
        assert!(std::time::Instant::now() < deadline, "no reload logged: {}", d.log_text());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(d.stop().success());
}

#[test]
fn sigterm_removes_sockets_and_stale_sockets_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let d = Served::start(dir.path());
    let (milter, admin, config) = (d.milter_socket.clone(), d.admin_socket.clone(), d.config.clone());
    let status = d.stop();
    assert!(status.success(), "{status:?}");
    assert!(!milter.exists() && !admin.exists());

    // A daemon killed outright leaves its sockets behind; the next start removes them.
    let d = Served::start_with(dir.path(), config.clone());
    d.kill();
    assert!(milter.exists(), "SIGKILL leaves the socket file");
    let d = Served::start_with(dir.path(), config.clone());
    // A second daemon on the same sockets refuses to steal them.
    let o = std::process::Command::new(BIN).arg("--config").arg(&config).arg("serve").output().unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("in use") || stderr(&o).contains("store"), "{}", stderr(&o));
    assert!(d.stop().success());
}
