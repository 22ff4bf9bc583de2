//! Measurements: sellers' response times (for the marketplace) and the
//! daemon's own counters (for Prometheus).

pub mod ops;
pub mod response;
