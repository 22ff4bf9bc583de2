//! Milter glue: each callback converts its arguments, calls one session or
//! relay method, and applies the result. Decisions live in `policy`/`relay`.

pub mod cleaner;
mod session;

pub use session::{Connection, InFlight};

use crate::policy::{Refusal, Target};
use crate::relay::{Relay, Verdict};
use crate::rewrite::{HeaderEdit, Rewrite};
use indymilter::{
    Actions, Callbacks, Context, ContextActions, EomContext, MacroStage, NegotiateContext, ProtoOpts, SetErrorReply,
    Status,
};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::sync::Arc;
use tracing::{info, warn};

/// Produces the relay (with the current config snapshot) for a new connection.
pub type RelaySource = Arc<dyn Fn() -> Relay + Send + Sync>;

fn queue_id(macros: &indymilter::Macros) -> String {
    macros.get(c"i").map_or_else(|| "NOQUEUE".to_string(), |q| q.to_string_lossy().into_owned())
}

fn set_reply(reply: &mut impl SetErrorReply, refusal: &Refusal) -> Status {
    let r = refusal.reply();
    match reply.set_error_reply(r.code, Some(r.xcode), r.lines.iter().map(String::as_str)) {
        Ok(()) if r.code.starts_with('4') => Status::Tempfail,
        Ok(()) => Status::Reject,
        Err(e) => {
            warn!("cannot set SMTP reply: {e}");
            Status::Tempfail
        }
    }
}

fn tempfail(reply: &mut impl SetErrorReply, qid: &str, what: &str, err: &dyn std::fmt::Display) -> Status {
    warn!("{qid}: {what}: {err}: temporary failure");
    let _ = reply.set_error_reply("451", Some("4.3.0"), ["Temporary failure in the relay, try again later"]);
    Status::Tempfail
}

fn lossy(s: &CStr) -> String {
    s.to_string_lossy().into_owned()
}

/// The modifications bsm-milter asks Postfix for (the benchmark's no-op milter asks the same).
pub const ACTIONS: Actions = Actions::CHANGE_SENDER
    .union(Actions::ADD_RCPT)
    .union(Actions::DELETE_RCPT)
    .union(Actions::ADD_HEADER)
    .union(Actions::CHANGE_HEADER)
    .union(Actions::REPLACE_BODY);

/// The macros bsm-milter reads, by stage (the benchmark's no-op milter asks for the same): the
/// queue id for the log, and the SMTP AUTH login at MAIL. The MTA sends no others at these
/// stages (Postfix's defaults are seven at MAIL, four at RCPT); the others keep its defaults.
pub fn macros() -> HashMap<MacroStage, CString> {
    HashMap::from([
        (MacroStage::Mail, c"i {auth_authen}".to_owned()),
        (MacroStage::Rcpt, c"i".to_owned()),
        (MacroStage::Eom, c"i".to_owned()),
    ])
}

pub fn callbacks(source: RelaySource, in_flight: Arc<InFlight>) -> Callbacks<Connection> {
    Callbacks::new()
        .on_negotiate(move |cx: &mut NegotiateContext<Connection>, actions, opts| {
            let (source, in_flight) = (source.clone(), in_flight.clone());
            Box::pin(async move {
                cx.requested_actions |= actions & ACTIONS;
                // Headers and body chunks need no answer: saves a round trip each.
                let noreply = opts
                    & (ProtoOpts::NOREPLY_HEADER
                        | ProtoOpts::NOREPLY_BODY
                        | ProtoOpts::NOREPLY_CONNECT
                        | ProtoOpts::NOREPLY_HELO);
                cx.requested_opts |= noreply;
                cx.requested_macros = macros();
                let relay = source();
                // The client's address and HELO name matter only to SPF.
                if !relay.config.auth.has(crate::config::AuthMethod::Verify) {
                    cx.requested_opts |= ProtoOpts::NO_CONNECT | ProtoOpts::NO_HELO;
                }
                cx.data = Some(Connection {
                    relay,
                    in_flight,
                    message: None,
                    noreply,
                    client: crate::relay::ClientInfo::default(),
                });
                Status::Continue
            })
        })
        .on_connect(|cx: &mut Context<Connection>, _hostname, socket| {
            Box::pin(async move {
                let Some(c) = cx.data.as_mut() else { return Status::Continue };
                c.client.ip = match socket {
                    indymilter::SocketInfo::Inet(addr) => Some(addr.ip()),
                    _ => None,
                };
                c.status_after(ProtoOpts::NOREPLY_CONNECT)
            })
        })
        .on_helo(|cx: &mut Context<Connection>, helo| {
            Box::pin(async move {
                let Some(c) = cx.data.as_mut() else { return Status::Continue };
                c.client.helo = lossy(&helo);
                c.status_after(ProtoOpts::NOREPLY_HELO)
            })
        })
        .on_mail(|cx: &mut Context<Connection>, args| {
            Box::pin(async move {
                let Some(conn) = cx.data.as_mut() else { return Status::Tempfail };
                let from = args.first().map(|a| lossy(a)).unwrap_or_default();
                let size = args.iter().skip(1).find_map(|a| {
                    let (key, value) = a.to_str().ok()?.split_at_checked(5)?;
                    key.eq_ignore_ascii_case("SIZE=").then(|| value.parse::<usize>().ok()).flatten()
                });
                let login = cx.macros.get(c"{auth_authen}").map(lossy).filter(|l| !l.is_empty());
                match conn.begin(&from, login) {
                    Ok(()) => {
                        if let Some(m) = conn.message.as_mut() {
                            m.announced_size = size;
                        }
                        Status::Continue
                    }
                    Err(e) => tempfail(&mut cx.reply, &queue_id(&cx.macros), "sender look-up", &e),
                }
            })
        })
        .on_rcpt(|cx: &mut Context<Connection>, args| {
            Box::pin(async move {
                let qid = queue_id(&cx.macros);
                let Some(conn) = cx.data.as_mut() else {
                    return Status::Tempfail;
                };
                let rcpt = args.first().map(|a| lossy(a)).unwrap_or_default();
                match conn.rcpt(&rcpt) {
                    Ok(Ok(_)) => Status::Continue,
                    Ok(Err(refusal)) => {
                        info!("{qid}: recipient refused: {}", refusal.reason());
                        conn.relay.ops.refusal(refusal.reason());
                        set_reply(&mut cx.reply, &refusal)
                    }
                    Err(e) => tempfail(&mut cx.reply, &qid, "recipient look-up", &e),
                }
            })
        })
        .on_header(|cx: &mut Context<Connection>, name, value| {
            Box::pin(async move {
                let Some(c) = cx.data.as_mut() else { return Status::Continue };
                if let Some(m) = c.message.as_mut() {
                    m.header(&c.relay.config.limits, lossy(&name), lossy(&value));
                }
                c.status_after(ProtoOpts::NOREPLY_HEADER)
            })
        })
        .on_body(|cx: &mut Context<Connection>, chunk| {
            Box::pin(async move {
                let Some(c) = cx.data.as_mut() else { return Status::Continue };
                if let Some(m) = c.message.as_mut() {
                    m.body_chunk(&c.relay.config.limits, &chunk);
                }
                c.status_after(ProtoOpts::NOREPLY_BODY)
            })
        })
        .on_eom(|cx: &mut EomContext<Connection>| Box::pin(end_of_message(cx)))
        .on_abort(|cx: &mut Context<Connection>| {
            Box::pin(async move {
                if let Some(c) = cx.data.as_mut() {
                    c.message = None;
                }
                Status::Continue
            })
        })
}

/// Messages up to this size are worked on the milter's thread at end of message.
const INLINE_MAX: usize = 256 * 1024;

async fn end_of_message(cx: &mut EomContext<Connection>) -> Status {
    let qid = queue_id(&cx.macros);
    let Some(conn) = cx.data.as_mut() else {
        return Status::Tempfail;
    };
    let Some(mut msg) = conn.message.take() else {
        return Status::Tempfail;
    };
    // No relay recipient: the message passes untouched (there is no DATA
    // stage to say so earlier: its round trip would cost every message).
    let Some(target) = msg.target.clone().filter(|t| *t != Target::Outside) else {
        return Status::Accept;
    };
    if let Some(refusal) = &msg.too_big {
        if let Err(e) = conn.relay.record_unkept(&target, &msg.headers, refusal) {
            // The refusal stands: the sender keeps the message.
            warn!("{qid}: recording the refusal: {e}");
        }
        info!("{qid}: refused ({})", refusal.reason());
        conn.relay.ops.refusal(refusal.reason());
        return set_reply(&mut cx.reply, refusal);
    }
    let relay = conn.relay.clone();
    let ops = relay.ops.clone();
    let started = std::time::Instant::now();
    let prelude_len = msg.start_body(&relay.config.limits);
    let auth = relay.authenticate(&target, &msg.sender, &conn.client, &msg.headers, msg.body()).await;
    let direction = match &target {
        Target::Conversation { from: crate::store::Party::Buyer, .. } => "buyer_to_seller",
        Target::Conversation { from: crate::store::Party::Seller, .. } => "seller_to_buyer",
        Target::Bounce { .. } => "bounce",
        Target::Command { .. } => "command",
        Target::Outside => "outside",
    };
    // End of message records and archives without a flush of its own: the answer waits (below)
    // for the archive's flush, without blocking this thread, so the other sessions go on and
    // share that flush. A large message is worked on a blocking thread instead, so that it does
    // not hold the other sessions up. The message comes back: a rebuilt body refers to it.
    let archive = relay.archive.clone();
    let inline = msg.raw.len() <= INLINE_MAX;
    let work = move || {
        let v = relay.end_of_message(&crate::relay::Incoming {
            target: &target,
            rcpts: &msg.rcpts,
            headers: &msg.headers,
            body: msg.body(),
            raw: &msg.raw,
            prelude_len,
            auth: auth.as_ref(),
        });
        (v, msg)
    };
    let verdict = if inline { Ok(work()) } else { tokio::task::spawn_blocking(work).await };
    let (verdict, msg) = match verdict {
        Ok((v, msg)) => (Ok(v), Some(msg)),
        Err(e) => (Err(e), None),
    };
    // Nothing is acknowledged before the records and copies it depends on are durable.
    let verdict = match verdict {
        Ok(Ok(v @ (Verdict::Deliver { .. } | Verdict::Discard { .. }))) => {
            match archive.durable(archive.mark()).await {
                Ok(()) => Ok(Ok(v)),
                Err(e) => Ok(Err(crate::store::StoreError::Backend(format!("archive flush: {e}")))),
            }
        }
        other => other,
    };
    let original = msg.as_ref().map_or(&[][..], |m| m.body());
    let status = match verdict {
        Ok(Ok(Verdict::Deliver { rewrite, summary })) => match apply(&cx.actions, &rewrite, original).await {
            Ok(()) => {
                info!("{qid}: {summary}");
                ops.message(direction, "delivered");
                Status::Continue
            }
            Err(e) => tempfail(&mut cx.reply, &qid, "applying rewrite", &e),
        },
        Ok(Ok(Verdict::Discard { summary })) => {
            info!("{qid}: {summary}");
            ops.message(direction, if direction == "command" { "accepted" } else { "discarded" });
            Status::Discard
        }
        Ok(Ok(Verdict::Refuse { refusal, summary })) => {
            info!("{qid}: {summary}");
            let decision = if matches!(refusal, Refusal::OptedOut { .. }) { "blocked" } else { "refused" };
            ops.message(direction, decision);
            ops.refusal(refusal.reason());
            set_reply(&mut cx.reply, &refusal)
        }
        Ok(Err(e)) => tempfail(&mut cx.reply, &qid, "store", &e),
        Err(e) => tempfail(&mut cx.reply, &qid, "end of message", &e),
    };
    ops.eom_latency(started.elapsed().as_secs_f64());
    status
}

async fn apply(actions: &impl ContextActions, rw: &Rewrite, original: &[u8]) -> Result<(), indymilter::ActionError> {
    for edit in &rw.headers {
        match edit {
            HeaderEdit::Change { name, index, value } => {
                actions.change_header(name.as_str(), *index, Some(value.as_str())).await?
            }
            HeaderEdit::Delete { name, index } => actions.change_header(name.as_str(), *index, None::<&str>).await?,
            HeaderEdit::Add { name, value } => actions.add_header(name.as_str(), value.as_str()).await?,
        }
    }
    if let Some(sender) = &rw.sender {
        actions.change_sender(sender.as_str(), None::<&str>).await?;
    }
    for r in &rw.delete_rcpts {
        actions.delete_recipient(r.as_str()).await?;
    }
    for r in &rw.add_rcpts {
        actions.add_recipient(r.as_str()).await?;
    }
    if let Some(body) = &rw.body {
        if body.is_empty() {
            actions.replace_body(&[]).await?;
        }
        for piece in body.slices(original) {
            actions.replace_body(piece).await?;
        }
    }
    Ok(())
}
