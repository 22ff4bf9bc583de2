//! The `Authentication-Results` cleaner (`trust-authres`): a second milter
//! socket that Postfix calls *before* the upstream verifier. It deletes every
//! inbound `Authentication-Results` naming the trusted authserv-id (however
//! quoted, commented or cased), so whatever carries that id when the relay's
//! main milter reads the message was added by the verifier at this hop.
//!
//! It also adds a marker header holding a secret of this process: the main
//! milter trusts nothing unless the marker shows the cleaner ran (a
//! `smtpd_milters` line without the cleaner must not make forgeries believed).

use crate::auth::authres;
use indymilter::{Actions, Callbacks, Context, ContextActions, EomContext, NegotiateContext, ProtoOpts, Status};
use std::sync::Arc;
use tracing::warn;

/// The marker header; the main milter removes it with every other header it does not know.
pub const MARKER: &str = "X-BSM-Authres-Cleaned";

pub struct Cleaning {
    authserv_id: String,
    /// Occurrence numbers (1-based, among `Authentication-Results`) to delete.
    delete: Vec<i32>,
    seen: i32,
    noreply_header: bool,
}

pub fn callbacks(authserv_id: Arc<str>, secret: Arc<str>) -> Callbacks<Cleaning> {
    Callbacks::new()
        .on_negotiate(move |cx: &mut NegotiateContext<Cleaning>, actions, opts| {
            let id = authserv_id.clone();
            Box::pin(async move {
                cx.requested_actions = actions & (Actions::CHANGE_HEADER | Actions::ADD_HEADER);
                let noreply = opts.contains(ProtoOpts::NOREPLY_HEADER);
                if noreply {
                    cx.requested_opts |= ProtoOpts::NOREPLY_HEADER;
                }
                cx.requested_opts |= ProtoOpts::NO_BODY;
                cx.data = Some(Cleaning {
                    authserv_id: id.to_string(),
                    delete: Vec::new(),
                    seen: 0,
                    noreply_header: noreply,
                });
                Status::Continue
            })
        })
        .on_header(|cx: &mut Context<Cleaning>, name, value| {
            Box::pin(async move {
                let Some(c) = cx.data.as_mut() else { return Status::Continue };
                if name.to_bytes().eq_ignore_ascii_case(b"Authentication-Results") {
                    c.seen += 1;
                    if authres::is_from(&value.to_string_lossy(), &c.authserv_id) {
                        c.delete.push(c.seen);
                    }
                }
                if c.noreply_header { Status::Noreply } else { Status::Continue }
            })
        })
        .on_eom(move |cx: &mut EomContext<Cleaning>| {
            let secret = secret.clone();
            Box::pin(async move {
                let Some(c) = cx.data.as_mut() else { return Status::Tempfail };
                let delete = std::mem::take(&mut c.delete);
                c.seen = 0;
                // From the last occurrence back, so earlier numbers stay valid.
                for index in delete.into_iter().rev() {
                    if let Err(e) = cx.actions.change_header("Authentication-Results", index, None::<&str>).await {
                        warn!("authres cleaner: cannot delete a header: {e}");
                        return Status::Tempfail;
                    }
                }
                if let Err(e) = cx.actions.add_header(MARKER, &*secret).await {
                    warn!("authres cleaner: cannot add its marker: {e}");
                    return Status::Tempfail;
                }
                Status::Continue
            })
        })
        .on_abort(|cx: &mut Context<Cleaning>| {
            Box::pin(async move {
                if let Some(c) = cx.data.as_mut() {
                    c.delete.clear();
                    c.seen = 0;
                }
                Status::Continue
            })
        })
}
