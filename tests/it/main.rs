//! Integration tests: a real hsmwatch (in-process or the binary) over real loopback sockets.

mod alerts;
mod backpressure;
mod cli;
mod corpus;
mod dashboard;
mod decoders;
mod delivery;
mod docs;
mod email;
mod formats;
mod hosts;
mod http;
mod integrity;
mod logger;
mod properties;
mod relay_peers;
mod relays;
mod rules;
mod senders;
mod shutdown;
mod snmp;
mod support;
mod tcp;
mod tls;
mod triage;
mod udp;
