//! hsmwatch collects syslog from Thales/SafeNet Luna Network HSMs and AWS CloudHSM, stores every line, and alerts.
//!
//! Modules follow the flow of a line, and data flows one way:
//!
//! ```text
//! listen ──▶ frame ──▶ parse ──▶ decode ──▶ store
//! sockets    RFC 6587   5424/3164  events      SQLite, batch commit
//!            octet/LF   Luna file
//! ```
//!
//! `ingest` composes frame → parse → decode for every input; `app` wires the stages into a server; `event`,
//! `config`, `metrics` and `pack` are leaves every stage may use.

pub mod alert;
pub mod app;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod decode;
pub mod deliver;
pub mod diagnostic;
pub mod evaluate;
pub mod event;
pub mod frame;
pub mod http;
pub mod import;
pub mod ingest;
pub mod inventory;
pub mod lead;
pub mod listen;
pub mod metrics;
pub mod outbox;
pub mod pack;
pub mod parse;
pub mod queue;
pub mod recovery;
pub mod rule_tests;
pub mod rules;
pub mod silence;
pub mod snmp;
pub mod store;
pub mod telemetry;

/// The allocator of the server and of everything built on this crate (tests, benches, examples), so that benches
/// measure what the server runs. An event costs a dozen small allocations on the way from frame to row; mimalloc's
/// thread-local free lists serve them in a fraction of glibc malloc's instructions, and the writer, which frees what
/// the readers allocated, does not contend on one arena.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
