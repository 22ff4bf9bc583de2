//! The admin API (HTTP/JSON on `admin.socket`) and the CLI's client for it.

pub mod api;
pub mod client;
pub mod messages;
