//! The admin API's answers to requests it cannot serve: every refusal is a 4xx with
//! `{"error": ...}` (DESIGN §4), also the ones axum gives itself.

mod support;

use bsm_milter::admin::client::ClientError;
use hyper::Method;
use support::daemon::TestDaemon;

async fn refused(d: &TestDaemon, method: Method, path: &str, body: Option<serde_json::Value>) -> (u16, String) {
    match d.admin.request(method, path, body).await {
        Err(ClientError::Api { status, message }) => (status, message),
        other => panic!("{path}: {other:?}"),
    }
}

#[tokio::test]
async fn refusals_are_json_with_an_error_that_says_what_went_wrong() {
    let d = TestDaemon::start().await;
    d.post("/v1/sellers", serde_json::json!({"id": "S1", "name": "Shop One", "service_address": "cs@shop1.example"}))
        .await;
    // The client reads `error` from a JSON body and says "request failed" when there is none.
    let (status, message) = refused(&d, Method::GET, "/v1/sellers", None).await;
    assert_eq!((status, message.as_str()), (405, "method not allowed"));
    let (status, message) = refused(&d, Method::DELETE, "/v1/sellers/S1", None).await;
    assert_eq!((status, message.as_str()), (405, "method not allowed"));
    let (status, message) = refused(&d, Method::GET, "/v1/sellers/%FF", None).await;
    assert_eq!(status, 400);
    assert!(message.contains("UTF-8"), "{message}");
    let big = serde_json::json!({"id": "B9", "email": "b9@buyer.example", "name": "x".repeat(3 << 20)});
    let (status, message) = refused(&d, Method::POST, "/v1/buyers", Some(big)).await;
    assert_eq!(status, 413);
    assert!(message.contains("too large") || message.contains("length limit"), "{message}");
    // The API's own refusals keep their messages.
    let (status, message) = refused(&d, Method::GET, "/v1/sellers/S9", None).await;
    assert_eq!(status, 404);
    assert!(message.contains("S9"), "{message}");
    let (status, message) = refused(&d, Method::GET, "/v1/nothing", None).await;
    assert_eq!((status, message.as_str()), (404, "no such endpoint"));
    d.stop().await;
}
