//! The fault suite, a test binary of its own: its load (thousands of connections, floods, kill -9) runs after the
//! integration tests, not beside their timing-sensitive UDP checks.

#[path = "../it/support.rs"]
#[allow(dead_code)]
mod support;

mod relay;
#[path = "../it/relay_peers.rs"]
#[allow(dead_code)]
mod relay_peers;
mod suite;
