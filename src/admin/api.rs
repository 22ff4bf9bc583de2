//! HTTP/JSON admin API. Bad input answers 4xx with `{"error": ...}` naming the
//! field; every change is one store transaction, so nothing is half-applied.

use super::messages;
use crate::SharedConfig;
use crate::address::Address;
use crate::listener::BoundListener;
use crate::store::{AliasOwner, Buyer, NewBuyer, NewOrder, NewSeller, Order, Seller, SellerUpdate, Store, StoreError};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;

#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn Store>,
    pub config: SharedConfig,
    pub ops: Arc<crate::metrics::ops::OpsMetrics>,
    pub archive: Arc<crate::store::archive::Archive>,
}

pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn bad(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::Duplicate { .. } | StoreError::Conflict(_) => StatusCode::CONFLICT,
            StoreError::Backend(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("invalid request body: {e}")))
}

/// Runs a store call off the async workers (writes fsync).
pub async fn blocking<R: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&dyn Store) -> Result<R, StoreError> + Send + 'static,
) -> Result<R, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

fn valid_id(field: &str, v: &str) -> Result<String, ApiError> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.chars().all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(v.to_string())
    } else {
        Err(ApiError::bad(format!("{field}: {v:?} is not a valid id (1-64 of A-Z a-z 0-9 . _ : -)")))
    }
}

fn valid_name(field: &str, v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > 200 || v.chars().any(char::is_control) {
        return Err(ApiError::bad(format!("{field}: must be 1-200 characters on one line")));
    }
    Ok(v.to_string())
}

/// A party's real address: valid, and never on the relay domain (that would loop).
fn valid_address(state: &ApiState, field: &str, v: &str) -> Result<Address, ApiError> {
    let addr = Address::parse(v).map_err(|e| ApiError::bad(format!("{field}: {e}")))?;
    if addr.domain() == state.config.snapshot().relay.domain.as_str() {
        return Err(ApiError::bad(format!("{field}: {addr} is on the relay domain; give the party's real address")));
    }
    Ok(addr)
}

fn valid_category(v: &str) -> Result<String, ApiError> {
    let c = v.trim().to_ascii_lowercase();
    if c.is_empty() || c.len() > 64 || !c.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ApiError::bad(format!("category: {v:?} is not a category name (letters, digits, - and _)")));
    }
    Ok(c)
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SellerView {
    pub id: String,
    pub name: String,
    pub alias: String,
    pub service_address: String,
    pub approved_addresses: Vec<String>,
    pub opt_out_notices: bool,
    /// SMTP AUTH logins that submit as this seller.
    #[serde(default)]
    pub logins: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BuyerView {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub opted_out: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AliasView {
    pub alias: String,
    pub seller: String,
    pub buyer: String,
}

fn seller_view(state: &ApiState, s: Seller) -> SellerView {
    SellerView {
        alias: format!("{}@{}", s.alias, state.config.snapshot().relay.domain),
        id: s.id,
        name: s.name,
        service_address: s.service_address.to_string(),
        approved_addresses: s.approved_addresses.iter().map(|a| a.to_string()).collect(),
        opt_out_notices: s.opt_out_notices,
        logins: s.logins,
    }
}

fn buyer_view(b: Buyer) -> BuyerView {
    BuyerView { id: b.id, email: b.email.to_string(), name: b.name, opted_out: b.opted_out }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SellerIn {
    id: String,
    name: String,
    service_address: String,
    #[serde(default)]
    approved_addresses: Vec<String>,
}

async fn add_seller(State(st): State<ApiState>, body: Bytes) -> Result<(StatusCode, Json<SellerView>), ApiError> {
    let inp: SellerIn = parse_json(&body)?;
    let new = NewSeller {
        id: valid_id("id", &inp.id)?,
        name: valid_name("name", &inp.name)?,
        service_address: valid_address(&st, "service_address", &inp.service_address)?,
        approved_addresses: inp
            .approved_addresses
            .iter()
            .map(|a| valid_address(&st, "approved_addresses", a))
            .collect::<Result<_, _>>()?,
    };
    let s = blocking(&st, move |store| store.add_seller(new)).await?;
    Ok((StatusCode::CREATED, Json(seller_view(&st, s))))
}

async fn get_seller(State(st): State<ApiState>, Path(id): Path<String>) -> ApiResult<SellerView> {
    let found = blocking(&st, {
        let id = id.clone();
        move |store| store.seller(&id)
    })
    .await?;
    found.map(|s| Json(seller_view(&st, s))).ok_or(StoreError::NotFound { kind: "seller", id }.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SellerPatch {
    name: Option<String>,
    service_address: Option<String>,
    opt_out_notices: Option<bool>,
}

async fn update_seller(State(st): State<ApiState>, Path(id): Path<String>, body: Bytes) -> ApiResult<SellerView> {
    let p: SellerPatch = parse_json(&body)?;
    let update = SellerUpdate {
        name: p.name.as_deref().map(|n| valid_name("name", n)).transpose()?,
        service_address: p.service_address.as_deref().map(|a| valid_address(&st, "service_address", a)).transpose()?,
        opt_out_notices: p.opt_out_notices,
    };
    let s = blocking(&st, move |store| store.update_seller(&id, update)).await?;
    Ok(Json(seller_view(&st, s)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressIn {
    address: String,
}

async fn approve(State(st): State<ApiState>, Path(id): Path<String>, body: Bytes) -> ApiResult<SellerView> {
    let a: AddressIn = parse_json(&body)?;
    let addr = valid_address(&st, "address", &a.address)?;
    let s = blocking(&st, move |store| store.approve(&id, &addr)).await?;
    Ok(Json(seller_view(&st, s)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginIn {
    login: String,
}

fn valid_login(v: &str) -> Result<String, ApiError> {
    if v.is_empty() || v.len() > 255 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::bad(format!("login: {v:?} is not an SMTP AUTH login (1-255 characters, no spaces)")));
    }
    Ok(v.to_string())
}

async fn map_login(State(st): State<ApiState>, Path(id): Path<String>, body: Bytes) -> ApiResult<SellerView> {
    let l: LoginIn = parse_json(&body)?;
    let login = valid_login(&l.login)?;
    let s = blocking(&st, move |store| store.map_login(&id, &login)).await?;
    Ok(Json(seller_view(&st, s)))
}

async fn unmap_login(State(st): State<ApiState>, Path((id, login)): Path<(String, String)>) -> ApiResult<SellerView> {
    let s = blocking(&st, move |store| store.unmap_login(&id, &login)).await?;
    Ok(Json(seller_view(&st, s)))
}

async fn revoke(State(st): State<ApiState>, Path((id, address)): Path<(String, String)>) -> ApiResult<SellerView> {
    let addr = Address::parse(&address).map_err(|e| ApiError::bad(format!("address: {e}")))?;
    let s = blocking(&st, move |store| store.revoke(&id, &addr)).await?;
    Ok(Json(seller_view(&st, s)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuyerIn {
    id: String,
    email: String,
    name: Option<String>,
}

async fn add_buyer(State(st): State<ApiState>, body: Bytes) -> Result<(StatusCode, Json<BuyerView>), ApiError> {
    let inp: BuyerIn = parse_json(&body)?;
    let new = NewBuyer {
        id: valid_id("id", &inp.id)?,
        email: valid_address(&st, "email", &inp.email)?,
        name: inp.name.as_deref().map(|n| valid_name("name", n)).transpose()?,
    };
    let b = blocking(&st, move |store| store.add_buyer(new)).await?;
    Ok((StatusCode::CREATED, Json(buyer_view(b))))
}

async fn get_buyer(State(st): State<ApiState>, Path(id): Path<String>) -> ApiResult<BuyerView> {
    let found = blocking(&st, {
        let id = id.clone();
        move |store| store.buyer(&id)
    })
    .await?;
    found.map(|b| Json(buyer_view(b))).ok_or(StoreError::NotFound { kind: "buyer", id }.into())
}

async fn set_opt_out(st: ApiState, id: String, opted_out: bool) -> ApiResult<BuyerView> {
    let b = blocking(&st, move |store| store.set_opted_out(&id, opted_out)).await?;
    Ok(Json(buyer_view(b)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderIn {
    id: String,
    seller: String,
    buyer: String,
    category: Option<String>,
    /// Unix seconds; defaults to now (back offices backfill older orders).
    created_at: Option<u64>,
}

async fn add_order(State(st): State<ApiState>, body: Bytes) -> Result<(StatusCode, Json<Order>), ApiError> {
    let inp: OrderIn = parse_json(&body)?;
    let new = NewOrder {
        id: valid_id("id", &inp.id)?,
        seller: valid_id("seller", &inp.seller)?,
        buyer: valid_id("buyer", &inp.buyer)?,
        category: inp.category.as_deref().map(valid_category).transpose()?,
        created_at: inp.created_at.unwrap_or_else(|| crate::clock::Clock::now(&crate::clock::SystemClock)),
    };
    let o = blocking(&st, move |store| store.add_order(new)).await?;
    Ok((StatusCode::CREATED, Json(o)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PairIn {
    seller: String,
    buyer: String,
}

async fn get_alias(State(st): State<ApiState>, body: Bytes) -> ApiResult<AliasView> {
    let p: PairIn = parse_json(&body)?;
    let (seller, buyer) = (valid_id("seller", &p.seller)?, valid_id("buyer", &p.buyer)?);
    let local = blocking(&st, {
        let (s, b) = (seller.clone(), buyer.clone());
        move |store| store.pair_alias(&s, &b)
    })
    .await?;
    Ok(Json(AliasView { alias: format!("{local}@{}", st.config.snapshot().relay.domain), seller, buyer }))
}

async fn lookup_alias(
    State(st): State<ApiState>,
    Path(address): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let addr = Address::parse(&address).map_err(|e| ApiError::bad(format!("address: {e}")))?;
    let not_found = || ApiError::from(StoreError::NotFound { kind: "alias", id: addr.to_string() });
    if addr.domain() != st.config.snapshot().relay.domain.as_str() {
        return Err(not_found());
    }
    let local = addr.local_part().to_string();
    let found = blocking(&st, move |store| {
        Ok(match store.alias_owner(&local)? {
            Some(AliasOwner::Pair { seller, buyer }) => {
                let orders = store.orders_of_pair(&seller, &buyer)?;
                Some((AliasOwner::Pair { seller, buyer }, orders))
            }
            Some(owner) => Some((owner, Vec::new())),
            None => None,
        })
    })
    .await?;
    let (owner, orders) = found.ok_or_else(not_found)?;
    Ok(Json(match owner {
        AliasOwner::Seller { seller } => {
            json!({ "alias": addr.to_string(), "kind": "seller", "seller": seller, "buyer": null, "orders": [] })
        }
        AliasOwner::Pair { seller, buyer } => json!({
            "alias": addr.to_string(), "kind": "pair", "seller": seller, "buyer": buyer,
            "orders": orders.iter().map(|o| &o.id).collect::<Vec<_>>(),
        }),
    }))
}

/// Prometheus scrape endpoint: the daemon's own counters.
async fn prometheus(State(st): State<ApiState>) -> Response {
    let config = st.config.snapshot();
    let store_bytes = std::fs::metadata(&config.store.path).map_or(0, |m| m.len());
    let archive = st.archive.clone();
    let archive_bytes = tokio::task::spawn_blocking(move || archive.size()).await.unwrap_or(0);
    let text = st.ops.render(store_bytes, archive_bytes, st.archive.flushes());
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/v1/sellers", post(add_seller))
        .route("/v1/sellers/{id}", get(get_seller).patch(update_seller))
        .route("/v1/sellers/{id}/approved-addresses", post(approve))
        .route("/v1/sellers/{id}/approved-addresses/{address}", delete(revoke))
        .route("/v1/sellers/{id}/logins", post(map_login))
        .route("/v1/sellers/{id}/logins/{login}", delete(unmap_login))
        .route("/v1/buyers", post(add_buyer))
        .route("/v1/buyers/{id}", get(get_buyer))
        .route("/v1/buyers/{id}/opt-out", post(|State(st), Path(id)| set_opt_out(st, id, true)))
        .route("/v1/buyers/{id}/opt-in", post(|State(st), Path(id)| set_opt_out(st, id, false)))
        .route("/v1/orders", post(add_order))
        .route("/v1/aliases", post(get_alias))
        .route("/v1/aliases/{address}", get(lookup_alias))
        .route("/v1/messages", get(messages::list))
        .route("/v1/messages/{id}", get(messages::show))
        .route("/v1/messages/{id}/{copy}", get(messages::raw))
        .route("/v1/export", get(messages::export))
        .route("/v1/archive/purge", post(messages::purge))
        .route("/v1/metrics", get(messages::response_metrics))
        .route("/metrics", get(prometheus))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// axum's own refusals (a wrong method, a path segment that is not UTF-8, a body over
/// its limit) come as plain text or empty: they are given the API's `{"error": ...}` shape,
/// headers such as `Allow` kept.
async fn json_errors(resp: Response) -> Response {
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    let status = resp.status();
    let json = resp.headers().get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("request refused").to_ascii_lowercase()
    } else {
        text
    };
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(CONTENT_TYPE);
    (parts, ApiError(status, message)).into_response()
}

pub async fn serve(
    listener: BoundListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match listener {
        BoundListener::Tcp(l) => axum::serve(l, app).with_graceful_shutdown(shutdown).await,
        BoundListener::Unix { listener, .. } => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
    }
}
