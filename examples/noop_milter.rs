//! A milter that does nothing: the baseline (b) of `examples/e2e_bench.rs`.
//!
//!     noop_milter /path/to/milter.sock
//!
//! It is what bsm-milter would cost if its callbacks were free: the same library
//! (indymilter 0.3), the same tokio runtime (current-thread), a unix socket (mode 0666),
//! the same stages (MAIL, RCPT, header, body, end of message, abort: no
//! connect/HELO/DATA callbacks, so indymilter negotiates those away) and the same
//! negotiation as `src/milter/mod.rs`: the same actions and macros requested, and
//! NOREPLY_HEADER | NOREPLY_BODY. Callbacks only read their arguments (they sum the
//! bytes of the message); end of message accepts the message unchanged.
//! Stops on SIGTERM or SIGINT and removes its socket.
//!
//! With `NOOP_EDITS=1` in its environment it is instead the bound of what bsm-milter makes
//! Postfix do: at end of message it asks for as many modifications as bsm-milter makes of a
//! buyer→seller message (From, To and Message-ID changed, one header added, the sender
//! changed, the recipient deleted and added, the body replaced by itself plus a 700-byte
//! footer), all to the values the message already has, so the envelope stays as it was.

use indymilter::{Callbacks, Context, ContextActions, EomContext, NegotiateContext, ProtoOpts, Status};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// What one connection has read of the current message.
#[derive(Default)]
struct Seen {
    envelope: usize,
    header_bytes: usize,
    body_bytes: usize,
    /// Kept with NOOP_EDITS: what the modifications repeat.
    edits: Option<Edits>,
}

#[derive(Default)]
struct Edits {
    sender: String,
    rcpt: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Read once: the plain baseline pays nothing per message for the option.
fn edits_wanted() -> bool {
    static WANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WANTED.get_or_init(|| std::env::var_os("NOOP_EDITS").is_some_and(|v| v == "1"))
}

async fn apply(cx: &mut EomContext<Seen>, e: &Edits) -> Result<(), indymilter::ActionError> {
    for name in ["From", "To", "Message-ID"] {
        if let Some((_, value)) = e.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            cx.actions.change_header(name, 1, Some(value.as_str())).await?;
        }
    }
    cx.actions.add_header("X-Bench-Edit", "1").await?;
    cx.actions.change_sender(e.sender.as_str(), None::<&str>).await?;
    cx.actions.delete_recipient(e.rcpt.as_str()).await?;
    cx.actions.add_recipient(e.rcpt.as_str()).await?;
    let mut body = e.body.clone();
    body.extend_from_slice(format!("\r\n-- \r\n{}\r\n", "footer line ".repeat(56)).as_bytes());
    for chunk in body.chunks(65_535) {
        cx.actions.replace_body(chunk).await?;
    }
    Ok(())
}

fn callbacks() -> Callbacks<Seen> {
    Callbacks::new()
        .on_negotiate(|cx: &mut NegotiateContext<Seen>, actions, opts| {
            Box::pin(async move {
                cx.requested_actions |= actions & bsm_milter::milter::ACTIONS;
                cx.requested_opts |= opts & (ProtoOpts::NOREPLY_HEADER | ProtoOpts::NOREPLY_BODY);
                cx.requested_macros = bsm_milter::milter::macros();
                Status::Continue
            })
        })
        .on_mail(|cx: &mut Context<Seen>, args| {
            Box::pin(async move {
                let seen = cx.data.get_or_insert_with(Seen::default);
                *seen = Seen::default();
                seen.envelope += args.iter().map(|a| a.to_bytes().len()).sum::<usize>();
                if edits_wanted() {
                    let sender = args.first().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
                    seen.edits = Some(Edits { sender, ..Default::default() });
                }
                Status::Continue
            })
        })
        .on_rcpt(|cx: &mut Context<Seen>, args| {
            Box::pin(async move {
                if let Some(seen) = cx.data.as_mut() {
                    seen.envelope += args.iter().map(|a| a.to_bytes().len()).sum::<usize>();
                    if let (Some(e), Some(rcpt)) = (seen.edits.as_mut(), args.first()) {
                        e.rcpt = rcpt.to_string_lossy().into_owned();
                    }
                }
                Status::Continue
            })
        })
        .on_header(|cx: &mut Context<Seen>, name, value| {
            Box::pin(async move {
                if let Some(seen) = cx.data.as_mut() {
                    seen.header_bytes += name.to_bytes().len() + value.to_bytes().len();
                    if let Some(e) = seen.edits.as_mut() {
                        e.headers.push((name.to_string_lossy().into_owned(), value.to_string_lossy().into_owned()));
                    }
                }
                Status::Continue
            })
        })
        .on_body(|cx: &mut Context<Seen>, chunk| {
            Box::pin(async move {
                if let Some(seen) = cx.data.as_mut() {
                    seen.body_bytes += chunk.len();
                    if let Some(e) = seen.edits.as_mut() {
                        e.body.extend_from_slice(&chunk);
                    }
                }
                Status::Continue
            })
        })
        .on_eom(|cx: &mut EomContext<Seen>| {
            Box::pin(async move {
                let Some(mut seen) = cx.data.take() else { return Status::Continue };
                std::hint::black_box((seen.envelope, seen.header_bytes, seen.body_bytes));
                if let Some(e) = seen.edits.take()
                    && apply(cx, &e).await.is_err()
                {
                    return Status::Tempfail;
                }
                cx.data = Some(Seen::default());
                Status::Continue
            })
        })
        .on_abort(|cx: &mut Context<Seen>| {
            Box::pin(async move {
                if let Some(seen) = cx.data.as_mut() {
                    *seen = Seen::default();
                }
                Status::Continue
            })
        })
}

fn main() {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: noop_milter SOCKET_PATH");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async move {
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)
            .unwrap_or_else(|e| panic!("noop_milter: cannot bind {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod socket");
        let shutdown = async {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        let config = indymilter::Config { max_connections: 1000, ..Default::default() };
        let result = indymilter::run(listener, callbacks(), config, shutdown).await;
        let _ = std::fs::remove_file(&path);
        if let Err(e) = result {
            eprintln!("noop_milter: {e}");
            std::process::exit(1);
        }
    });
}
