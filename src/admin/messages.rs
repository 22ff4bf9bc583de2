//! Archive endpoints: list, show, raw copies, conversation export (mbox), purge.

use super::api::{ApiError, ApiState, blocking};
use crate::address::Address;
use crate::metrics::response::{WINDOWS, window};
use crate::store::archive::{Copy, day_dir};
use crate::store::{AliasOwner, MessageFilter, MessageRecord, Party, StoreError};
use axum::Json;
use axum::extract::{Path, Query, State, rejection::QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    seller: Option<String>,
    buyer: Option<String>,
    alias: Option<String>,
    order: Option<String>,
    /// RFC 3339 time or `YYYY-MM-DD` (UTC), inclusive.
    since: Option<String>,
    /// RFC 3339 time or `YYYY-MM-DD` (UTC), exclusive.
    until: Option<String>,
    #[serde(default)]
    reported: bool,
}

/// Parses `2026-11-23T10:00:00Z` or `2026-11-23` (midnight UTC).
fn parse_time(field: &str, v: &str) -> Result<u64, ApiError> {
    let bad = || ApiError::bad(format!("{field}: {v:?} is not an RFC 3339 time or a YYYY-MM-DD date"));
    let ts = match v.parse::<jiff::Timestamp>() {
        Ok(t) => t,
        Err(_) if v.len() == 10 => format!("{v}T00:00:00Z").parse::<jiff::Timestamp>().map_err(|_| bad())?,
        Err(_) => return Err(bad()),
    };
    u64::try_from(ts.as_second()).map_err(|_| bad())
}

pub fn record_view(r: &MessageRecord, relay_domain: &str) -> Value {
    json!({
        "id": r.relay_id,
        "seller": r.seller,
        "buyer": r.buyer,
        // A notice about a report whose buyer is unknown belongs to no pair.
        "alias": (!r.alias.is_empty()).then(|| format!("{}@{relay_domain}", r.alias)),
        "direction": match r.sender { Party::Buyer => "buyer_to_seller", Party::Seller => "seller_to_buyer" },
        "decision": r.decision,
        "order": r.order,
        "subject": r.subject,
        "at": jiff::Timestamp::from_second(r.at as i64).map(|t| t.to_string()).unwrap_or_default(),
        "auto_submitted": r.auto_submitted,
        "answered_at": r.answered_at.and_then(|t| jiff::Timestamp::from_second(t as i64).ok()).map(|t| t.to_string()),
        "no_response_needed": r.no_response_needed,
        "reported": r.reported,
        "removed": r.removed,
        "reason": r.reason,
        "notice": r.notice,
    })
}

/// Turns query parameters into a store filter; an alias narrows seller and
/// buyer, and a contradiction matches nothing (`Ok(None)`).
async fn filter(st: &ApiState, q: MessageQuery) -> Result<Option<MessageFilter>, ApiError> {
    let mut filter = MessageFilter {
        seller: q.seller,
        buyer: q.buyer,
        order: q.order,
        since: q.since.as_deref().map(|v| parse_time("since", v)).transpose()?,
        until: q.until.as_deref().map(|v| parse_time("until", v)).transpose()?,
        reported_only: q.reported,
    };
    if let Some(alias) = q.alias {
        let addr = Address::parse(&alias).map_err(|e| ApiError::bad(format!("alias: {e}")))?;
        let local = addr.local_part().to_string();
        let owner = if addr.domain() == st.config.snapshot().relay.domain.as_str() {
            blocking(st, move |store| store.alias_owner(&local)).await?
        } else {
            None
        };
        let (seller, buyer) = match owner {
            Some(AliasOwner::Pair { seller, buyer }) => (seller, Some(buyer)),
            Some(AliasOwner::Seller { seller }) => (seller, None),
            None => return Err(StoreError::NotFound { kind: "alias", id: alias }.into()),
        };
        if filter.seller.as_ref().is_some_and(|s| *s != seller)
            || buyer.as_ref().zip(filter.buyer.as_ref()).is_some_and(|(a, b)| a != b)
        {
            return Ok(None);
        }
        filter.seller = Some(seller);
        filter.buyer = buyer.or(filter.buyer);
    }
    Ok(Some(filter))
}

async fn records(st: &ApiState, q: MessageQuery) -> Result<Vec<MessageRecord>, ApiError> {
    match filter(st, q).await? {
        Some(f) => blocking(st, move |store| store.messages(&f)).await,
        None => Ok(Vec::new()),
    }
}

pub async fn list(
    State(st): State<ApiState>,
    query: Result<Query<MessageQuery>, QueryRejection>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad(e.body_text()))?;
    let domain = st.config.snapshot().relay.domain.to_string();
    Ok(Json(records(&st, q).await?.iter().map(|r| record_view(r, &domain)).collect()))
}

async fn record(st: &ApiState, id: String) -> Result<MessageRecord, ApiError> {
    let found = blocking(st, {
        let id = id.clone();
        move |store| store.message(&id)
    })
    .await?;
    found.ok_or_else(|| StoreError::NotFound { kind: "message", id }.into())
}

pub async fn show(State(st): State<ApiState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let r = record(&st, id).await?;
    Ok(Json(record_view(&r, st.config.snapshot().relay.domain.as_str())))
}

fn read_copy(st: &ApiState, r: &MessageRecord, copy: Copy) -> Result<Vec<u8>, ApiError> {
    let location = r.archive.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "message has no archived copy".into()))?;
    st.archive.read(r.at, &location, copy).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ApiError(
            StatusCode::NOT_FOUND,
            format!("no {copy:?} copy of message {} (was it delivered?)", r.relay_id).to_lowercase(),
        ),
        _ => ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("archive: {e}")),
    })
}

pub async fn raw(State(st): State<ApiState>, Path((id, copy)): Path<(String, String)>) -> Result<Response, ApiError> {
    let copy = match copy.as_str() {
        "original" => Copy::Original,
        "delivered" => Copy::Delivered,
        other => return Err(ApiError(StatusCode::NOT_FOUND, format!("no copy {other:?}: original or delivered"))),
    };
    let r = record(&st, id).await?;
    let bytes = read_copy(&st, &r, copy)?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], bytes).into_response())
}

/// mboxrd: a `From ` separator per message, `>`-quoting of lines that start
/// with `>*From `.
fn mbox_append(out: &mut Vec<u8>, r: &MessageRecord, message: &[u8]) {
    let date = jiff::Timestamp::from_second(r.at as i64)
        .map(|t| t.strftime("%a %b %e %H:%M:%S %Y").to_string())
        .unwrap_or_default();
    out.extend_from_slice(format!("From {} {date}\n", r.relay_id).as_bytes());
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().position(|&b| b != b'>').is_some_and(|i| line[i..].starts_with(b"From ")) {
            out.push(b'>');
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    if !out.ends_with(b"\n\n") {
        out.push(b'\n');
    }
}

/// A whole conversation (seller + buyer, an alias, or an order) as mbox: each
/// message as delivered, or as received when it was not delivered.
pub async fn export(
    State(st): State<ApiState>,
    query: Result<Query<MessageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad(e.body_text()))?;
    if q.order.is_none() && q.alias.is_none() && (q.seller.is_none() || q.buyer.is_none()) {
        return Err(ApiError::bad("export: give seller and buyer, an alias, or an order"));
    }
    let mut out = Vec::new();
    // A message refused for its size has a record but no copies.
    for r in records(&st, q).await?.into_iter().filter(|r| r.archive.is_some()) {
        let bytes = match read_copy(&st, &r, Copy::Delivered) {
            Ok(b) => b,
            Err(ApiError(StatusCode::NOT_FOUND, _)) => read_copy(&st, &r, Copy::Original)?,
            Err(e) => return Err(e),
        };
        mbox_append(&mut out, &r, &bytes);
    }
    Ok(([(header::CONTENT_TYPE, "application/mbox")], out).into_response())
}

/// Removes archived messages older than `archive.retention_days`; safe while
/// serving (today's directory is never touched: retention is at least a day).
pub async fn purge(State(st): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let config = st.config.snapshot();
    let (records, files) =
        run_purge(&st, config.archive.retention_days, crate::clock::Clock::now(&crate::clock::SystemClock)).await?;
    Ok(Json(json!({ "removed_records": records, "removed_files": files })))
}

pub async fn run_purge(st: &ApiState, retention_days: u32, now: u64) -> Result<(usize, usize), ApiError> {
    if retention_days == 0 {
        return Ok((0, 0));
    }
    // Whole UTC days, so the index and the day directories go together.
    let cutoff = (now / 86_400).saturating_sub(u64::from(retention_days)) * 86_400;
    let records = blocking(st, move |store| store.purge_messages_before(cutoff)).await?;
    let files = st
        .archive
        .purge_before(&day_dir(cutoff))
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("archive: {e}")))?;
    Ok((records, files))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsQuery {
    seller: Option<String>,
}

fn seller_metrics(seller: &str, records: &[MessageRecord], now: u64) -> Value {
    let windows: serde_json::Map<String, Value> = WINDOWS
        .iter()
        .map(|(name, days)| (name.to_string(), serde_json::to_value(window(records, now, *days)).unwrap_or_default()))
        .collect();
    json!({ "seller": seller, "windows": windows })
}

/// `{seller, windows: {"7d": W, "30d": W, "90d": W}}` for one seller, or an
/// array of those for every seller.
pub async fn response_metrics(
    State(st): State<ApiState>,
    query: Result<Query<MetricsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad(e.body_text()))?;
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    let since = now.saturating_sub(90 * crate::metrics::response::DAY);
    match q.seller {
        Some(seller) => {
            let exists = blocking(&st, {
                let s = seller.clone();
                move |store| store.seller(&s)
            })
            .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound { kind: "seller", id: seller }.into());
            }
            let filter = MessageFilter { seller: Some(seller.clone()), since: Some(since), ..MessageFilter::default() };
            let records = blocking(&st, move |store| store.messages(&filter)).await?;
            Ok(Json(seller_metrics(&seller, &records, now)))
        }
        None => {
            let filter = MessageFilter { since: Some(since), ..MessageFilter::default() };
            let (sellers, records) =
                blocking(&st, move |store| Ok((store.sellers()?, store.messages(&filter)?))).await?;
            Ok(Json(Value::Array(
                sellers
                    .iter()
                    .map(|s| {
                        let own: Vec<MessageRecord> = records.iter().filter(|r| r.seller == s.id).cloned().collect();
                        seller_metrics(&s.id, &own, now)
                    })
                    .collect(),
            )))
        }
    }
}
