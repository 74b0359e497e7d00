//! The per-line path every input shares: frame → parse → decode, for network streams, datagrams and imported files.
//!
//! Receives bytes and their origin; emits events. Owns nothing but the composition, so the server, `tests/`, the
//! benches and later the rule-test runner all turn bytes into events with exactly the same code. It implements the
//! listener's [`Ingest`] trait, which keeps the listeners free of the stages after them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::config::NetworkZone;
use crate::decode::{base_event, is_unparsed, Decoders, Matched, Origin, RawFrame, SharedDecoders};
use crate::event::{field, Event};
use crate::frame::Framer;
use crate::listen::identity::ClientIdentity;
use crate::listen::{Ingest, StreamSink, Transport};
use crate::metrics::{Counters, ListenerCounters};
use crate::parse::{frame_text, parse, TimeRules};

/// Turns one frame into its event: redact, parse, decode.
pub fn frame_to_event(bytes: &[u8], truncated: bool, origin: &Origin, decoders: &Decoders) -> Event {
    decode_frame(bytes, truncated, origin, decoders).0
}

/// [`frame_to_event`], also naming the decoder pattern that matched (for `hsmwatch decode`).
pub fn decode_frame<'d>(
    bytes: &[u8],
    truncated: bool,
    origin: &Origin,
    decoders: &'d Decoders,
) -> (Event, Option<Matched<'d>>) {
    let bytes = decoders.redact(bytes);
    let text = frame_text(&bytes);
    let invalid_utf8 = matches!(text, std::borrow::Cow::Owned(_)).then_some(bytes.as_ref());
    let message = parse(&text, origin.received, origin.time_rules);
    let mut event = base_event(RawFrame { text: &text, invalid_utf8, truncated }, &message, origin);
    let pattern = decoders.classify(&message, &mut event);
    (event, pattern)
}

/// The zone each sender of a listener writes zone-less times in: its network's (`listen.timezones`, the most
/// specific network first), else the listener's.
#[derive(Debug, Clone)]
pub struct SenderZones {
    listener: Tz,
    networks: Arc<[NetworkZone]>,
}

impl SenderZones {
    /// The listener's zone and the per-network zones over it.
    pub fn new(listener: Tz, networks: &[NetworkZone]) -> Self {
        let mut networks = networks.to_vec();
        networks.sort_by_key(|zone| std::cmp::Reverse(zone.network.prefix_len()));
        SenderZones { listener, networks: networks.into() }
    }

    /// Every sender in UTC.
    pub fn utc() -> Self {
        SenderZones::new(Tz::UTC, &[])
    }

    /// How the lines of the sender at `ip` are read.
    pub fn rules_for(&self, ip: IpAddr) -> TimeRules {
        let zone = self.networks.iter().find(|zone| zone.network.contains(&ip)).map_or(self.listener, |z| z.timezone);
        TimeRules::in_zone(zone)
    }
}

/// The server's ingest path: frames with `max_frame`, decodes with `decoders`, counts what it sees.
#[derive(Debug, Clone)]
pub struct Pipeline {
    max_frame: usize,
    decoders: Arc<SharedDecoders>,
    counters: Arc<ListenerCounters>,
    zones: SenderZones,
}

impl Pipeline {
    /// A pipeline that cuts frames at `max_frame` bytes, decodes with `decoders`, reads zone-less times in the
    /// senders' `zones` and counts into its listener's `counters`.
    pub fn new(
        max_frame: usize,
        decoders: Arc<SharedDecoders>,
        counters: Arc<ListenerCounters>,
        zones: SenderZones,
    ) -> Self {
        Pipeline { max_frame, decoders, counters, zones }
    }

    fn count(&self, event: &Event) {
        Counters::add(&self.counters.received, 1);
        if is_unparsed(event) {
            Counters::add(&self.counters.unparsed, 1);
        } else if event.get(crate::event::field::DATASET) == Some(crate::event::DATASET_SYSLOG) {
            Counters::add(&self.counters.unknown, 1);
        }
        if event.get(crate::event::field::TRUNCATED).is_some() {
            Counters::add(&self.counters.truncated, 1);
        }
    }
}

fn origin_of(peer: SocketAddr, received: DateTime<Utc>, time_rules: TimeRules) -> Origin {
    Origin { received, source_address: peer.to_string(), peer_ip: Some(peer.ip()), default_host: None, time_rules }
}

impl Ingest for Pipeline {
    type Stream = StreamPipeline;

    fn open_stream(&self, peer: SocketAddr, _transport: Transport) -> StreamPipeline {
        let time_rules = self.zones.rules_for(peer.ip());
        StreamPipeline {
            framer: Framer::new(self.max_frame),
            peer,
            time_rules,
            pipeline: self.clone(),
            identity: None,
            mismatch_logged: false,
        }
    }

    fn datagram(&self, bytes: &[u8], peer: SocketAddr, received: DateTime<Utc>) -> Event {
        // One datagram is one message (RFC 5426 §3.1); senders often end it with LF or NUL anyway.
        let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        let trimmed = trimmed.strip_suffix(b"\0").unwrap_or(trimmed);
        let (frame, truncated) = match trimmed.get(..self.max_frame) {
            Some(head) if head.len() < trimmed.len() => (head, true),
            _ => (trimmed, false),
        };
        let origin = origin_of(peer, received, self.zones.rules_for(peer.ip()));
        let event = frame_to_event(frame, truncated, &origin, &self.decoders.current());
        self.count(&event);
        event
    }
}

/// The ingest path of one TCP or TLS connection: its framer and its peer.
#[derive(Debug)]
pub struct StreamPipeline {
    framer: Framer,
    peer: SocketAddr,
    time_rules: TimeRules,
    pipeline: Pipeline,
    identity: Option<ClientIdentity>,
    /// A line's host was none of the certificate's names: said once per connection.
    mismatch_logged: bool,
}

impl StreamPipeline {
    fn drain(&mut self, received: DateTime<Utc>, out: &mut Vec<Event>) -> Result<(), crate::frame::FrameError> {
        let origin = origin_of(self.peer, received, self.time_rules);
        let decoders = self.pipeline.decoders.current();
        while let Some(frame) = self.framer.next_frame()? {
            let mut event = frame_to_event(frame.bytes, frame.truncated, &origin, &decoders);
            if let Some(identity) = &self.identity {
                let mismatch = mark_identity(&mut event, identity);
                if mismatch && !self.mismatch_logged {
                    tracing::warn!(
                        peer = %self.peer,
                        subject = %identity.subject,
                        host = %crate::telemetry::Escaped(event.get(field::HOST_NAME).unwrap_or_default()),
                        "a line names a host its client certificate does not (tls.client.host_mismatch)"
                    );
                    self.mismatch_logged = true;
                }
            }
            self.pipeline.count(&event);
            out.push(event);
        }
        Ok(())
    }
}

/// Puts a client's certificate names on its event; true when `bind_host` is set and the event's host is none of them.
fn mark_identity(event: &mut Event, identity: &ClientIdentity) -> bool {
    event.set(field::TLS_CLIENT_SUBJECT, identity.subject.clone());
    if !identity.alternative_names.is_empty() {
        event.set(field::TLS_CLIENT_ALT_NAMES, identity.alternative_names.join(","));
    }
    let mismatch = identity.bind_host && !identity.vouches_for(event.get(field::HOST_NAME).unwrap_or_default());
    if mismatch {
        event.set(field::TLS_CLIENT_HOST_MISMATCH, "true");
    }
    mismatch
}

impl StreamPipeline {
    /// Takes the last frames at the end of the stream; a framing error then is counted and logged.
    fn drain_last(&mut self, received: DateTime<Utc>, out: &mut Vec<Event>) {
        if let Err(error) = self.drain(received, out) {
            Counters::add(&self.pipeline.counters.framing_errors, 1);
            tracing::warn!(peer = %self.peer, %error, "framing error at end of stream");
        }
    }
}

impl StreamSink for StreamPipeline {
    fn push(
        &mut self,
        data: &[u8],
        received: DateTime<Utc>,
        out: &mut Vec<Event>,
    ) -> Result<(), crate::listen::StreamError> {
        self.framer.push(data);
        self.drain(received, out).map_err(|error| {
            Counters::add(&self.pipeline.counters.framing_errors, 1);
            crate::listen::StreamError(error.to_string())
        })
    }

    fn mid_frame(&self) -> bool {
        self.framer.mid_frame()
    }

    fn identify(&mut self, identity: ClientIdentity) {
        self.identity = Some(identity);
    }

    fn finish(&mut self, received: DateTime<Utc>, out: &mut Vec<Event>) {
        self.framer.finish();
        self.drain_last(received, out);
    }

    fn cut(&mut self, received: DateTime<Utc>, out: &mut Vec<Event>) {
        self.framer.cut();
        self.drain_last(received, out);
    }
}
