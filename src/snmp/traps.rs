//! The SNMP trap listener: SNMPv1, v2c and v3 traps and informs (acknowledged) become `snmp.trap` events, named from
//! the SNMP table (`fan`, `power`, `ntls`...) when it knows their OID. A datagram from an address outside the
//! allowlist, with an unknown community or user, that does not authenticate, or that does not parse is counted (and
//! the first of each kind logged), never stored half-read and never able to stop the listener. SNMPv3 traps are read
//! with the configured users' keys, localized to each sending engine (snmp2's USM); SNMPv3 informs are sent to the
//! listener's own engine ([`super::engine`]), which answers the sender's discovery and acknowledges them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use snmp2::{MessageType, Pdu, Value};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::client::{arcs_of, Read};
use super::engine::{hex, LocalEngine, UsmReport, V3Header};
use super::objects::{oid_text, Arcs, Objects};
use crate::config::notifiers::Secret;
use crate::event::{field, Event, Timestamp};
use crate::metrics::ListenerCounters;
use crate::queue::Queue;

/// `snmpTrapOID.0`: the varbind that names a v2 trap.
const SNMP_TRAP_OID: [u64; 11] = [1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0];
/// `sysUpTime.0`: the first varbind of a v2 trap.
const SYS_UP_TIME: [u64; 9] = [1, 3, 6, 1, 2, 1, 1, 3, 0];
/// SAFENET-APPLIANCE-MIB `ssLogReference`: a Luna trap's pointer to its log line (with or without `.0`).
const LOG_REFERENCE: [u64; 12] = [1, 3, 6, 1, 4, 1, 23629, 1, 5, 2, 2, 1];
/// The generic v1 traps (coldStart...) as v2 OIDs (RFC 3584): this prefix and the generic number plus one.
const GENERIC_TRAPS: [u64; 9] = [1, 3, 6, 1, 6, 3, 1, 1, 5];
/// Engine keys kept at most (users × sending engines).
const MAX_KEYS: usize = 1024;
/// New engine keys made per minute at most; traps from further new engines are refused until the minute ends.
const NEW_KEYS_PER_MINUTE: u32 = 60;
/// BER tags of the PDUs answered or read.
const INFORM_TAG: u8 = 0xA6;
const RESPONSE_TAG: u8 = 0xA2;
/// The longest varbind text kept on an event.
const MAX_VARBINDS_TEXT: usize = 4000;

/// New engine keys allowed per minute.
#[derive(Debug, Clone, Copy)]
pub struct KeyBudget {
    since: std::time::Instant,
    made: u32,
}

impl KeyBudget {
    /// A full budget from `now`.
    pub fn new(now: std::time::Instant) -> Self {
        KeyBudget { since: now, made: 0 }
    }

    /// Whether one more key may be made at `now` (and counts it).
    pub fn take(&mut self, now: std::time::Instant) -> bool {
        if now.saturating_duration_since(self.since) >= std::time::Duration::from_secs(60) {
            *self = KeyBudget::new(now);
        }
        if self.made >= NEW_KEYS_PER_MINUTE {
            return false;
        }
        self.made += 1;
        true
    }
}

/// What the listener needs.
pub struct TrapListener {
    /// The bound socket.
    pub socket: UdpSocket,
    /// v2c (and v1) communities accepted.
    pub communities: Vec<Secret>,
    /// SNMPv3 users accepted.
    pub users: Vec<crate::config::snmp::Credentials>,
    /// Their keys, localized to each sender's engine (costly to make: kept).
    pub keys: HashMap<(String, Vec<u8>), snmp2::v3::Security>,
    /// New keys allowed: a sender cannot make the listener hash a megabyte for every engine ID it invents.
    pub new_keys: KeyBudget,
    /// The listener's own engine, which SNMPv3 informs are sent to.
    pub engine: LocalEngine,
    /// Each user's keys localized to that engine: with the user's privacy, and without (for reports).
    pub inform_keys: HashMap<String, (snmp2::v3::Security, snmp2::v3::Security)>,
    /// Senders allowed (empty: any).
    pub allow: Vec<ipnet::IpNet>,
    /// Trap names.
    pub objects: Arc<Objects>,
    /// Appliance names by address (the SNMP targets), for `host.name`.
    pub names: HashMap<IpAddr, String>,
    /// Where events go.
    pub queue: Queue,
    /// Its counters (received, unparsed = malformed or refused community, refused_not_allowed).
    pub counters: Arc<ListenerCounters>,
}

/// Why a datagram became no event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrapError {
    /// Not SNMP, or cut short.
    #[error("not an SNMP message: {0}")]
    Malformed(String),
    /// A community not configured.
    #[error("unknown community")]
    Community,
    /// An SNMPv3 user that is not configured.
    #[error("SNMPv3 user not configured under listen.snmp_traps.users")]
    UnknownUser,
    /// An SNMPv3 message that did not authenticate or decrypt with its user's passphrases.
    #[error("SNMPv3 authentication: {0}")]
    Auth(String),
    /// An SNMPv3 message for an engine that is neither its sender's nor this listener's.
    #[error("SNMPv3 message for another engine ({0}): not a trap from its sender, nor sent to this listener")]
    ForeignEngine(String),
    /// A PDU that is not a trap or an inform.
    #[error("a {0:?} PDU is not a trap")]
    NotATrap(MessageType),
}

/// A datagram refused: why, and the report that tells an SNMPv3 sender (of an inform) what was wrong.
#[derive(Debug)]
pub struct Refused {
    /// Why.
    pub error: TrapError,
    /// The unauthenticated report to send back.
    pub report: Option<Vec<u8>>,
}

impl From<TrapError> for Refused {
    fn from(error: TrapError) -> Self {
        Refused { error, report: None }
    }
}

/// A datagram understood: the event, and the answer to send back.
#[derive(Debug)]
pub struct Received {
    /// The `snmp.trap` event; none for an SNMPv3 sender's discovery of this listener's engine.
    pub event: Option<Event>,
    /// The Response acknowledging an inform, or the report answering a discovery step.
    pub reply: Option<Vec<u8>>,
}

fn value_text(value: &Value<'_>) -> String {
    match value {
        Value::Null => "null".to_owned(),
        other => Read::of(other).into_text().unwrap_or_else(|| format!("{other:?}")),
    }
}

/// Whether the message is SNMPv3 (its version field is 3).
fn is_v3(bytes: &[u8]) -> bool {
    let mut reader = snmp2::AsnReader::from_bytes(bytes);
    reader
        .read_raw(snmp2::asn1::TYPE_SEQUENCE)
        .ok()
        .and_then(|inside| snmp2::AsnReader::from_bytes(inside).read_asn_integer().ok())
        == Some(3)
}

/// The trap OID, the varbinds as text (without sysUpTime and snmpTrapOID) and a Luna log reference, of a trap or
/// inform PDU.
fn trap_of(pdu: &Pdu<'_>) -> Result<(Arcs, Vec<String>, Option<String>), TrapError> {
    let mut trap_oid: Option<Arcs> = match (&pdu.message_type, &pdu.v1_trap_info) {
        (MessageType::TrapV1, Some(info)) if info.generic_trap == 6 => arcs_of(&info.enterprise).map(|mut a| {
            a.extend([0, u64::try_from(info.specific_trap).unwrap_or(0)]);
            a
        }),
        (MessageType::TrapV1, Some(info)) => {
            let mut a = GENERIC_TRAPS.to_vec();
            a.push(u64::try_from(info.generic_trap).unwrap_or(0) + 1);
            Some(a)
        }
        (MessageType::Trap | MessageType::InformRequest, _) => None,
        (other, _) => return Err(TrapError::NotATrap(*other)),
    };
    let mut varbinds = Vec::new();
    let mut log_reference = None;
    for (oid, value) in pdu.varbinds.clone() {
        let Some(oid) = arcs_of(&oid) else { continue };
        match (oid.as_slice(), &value) {
            (o, Value::ObjectIdentifier(named)) if o == SNMP_TRAP_OID => trap_oid = arcs_of(named),
            (o, _) if o == SYS_UP_TIME => {}
            _ => {
                let text = value_text(&value);
                if oid.starts_with(&LOG_REFERENCE) {
                    log_reference = Some(text.clone());
                }
                varbinds.push(format!("{}={text}", oid_text(&oid)));
            }
        }
    }
    let oid = trap_oid.ok_or_else(|| TrapError::Malformed("no snmpTrapOID.0".into()))?;
    Ok((oid, varbinds, log_reference))
}

/// The offset of the PDU's tag in a v1/v2c message: after the message's SEQUENCE header, its version and community.
fn pdu_offset(bytes: &[u8]) -> Option<usize> {
    fn header(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
        let first = *bytes.get(at + 1)?;
        if first < 0x80 {
            return Some((at + 2, usize::from(first)));
        }
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let length = bytes.get(at + 2..at + 2 + count)?.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
        Some((at + 2 + count, length))
    }
    let (inside, _) = header(bytes, 0)?;
    let (version, version_len) = header(bytes, inside)?;
    let (community, community_len) = header(bytes, version.checked_add(version_len)?)?;
    let pdu = community.checked_add(community_len)?;
    (pdu < bytes.len()).then_some(pdu)
}

/// The acknowledgement of a v2c inform: the same message as a Response (RFC 3416: the same request-id and varbinds,
/// error-status and error-index zero, which an inform already carries).
fn inform_reply(bytes: &[u8]) -> Option<Vec<u8>> {
    let at = pdu_offset(bytes)?;
    (bytes[at] == INFORM_TAG).then(|| {
        let mut reply = bytes.to_vec();
        reply[at] = RESPONSE_TAG;
        reply
    })
}

/// The configured SNMPv3 user a message names.
fn configured_user<'a>(
    users: &'a [crate::config::snmp::Credentials],
    name: &[u8],
) -> Result<&'a crate::config::snmp::Credentials, TrapError> {
    users.iter().find(|u| u.user.as_bytes() == name).ok_or(TrapError::UnknownUser)
}

/// What a failed USM check or encoding means to the operator.
fn auth_error(error: snmp2::Error) -> TrapError {
    match error {
        snmp2::Error::AuthFailure(kind) => TrapError::Auth(kind.to_string()),
        snmp2::Error::Crypto(message) => TrapError::Auth(message),
        other => TrapError::Malformed(other.to_string()),
    }
}

impl TrapListener {
    /// Reads one datagram from `peer`.
    pub fn read(
        &mut self,
        bytes: &[u8],
        peer: SocketAddr,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Received, Refused> {
        if is_v3(bytes) {
            return self.read_v3(bytes, peer, now);
        }
        let pdu = Pdu::from_bytes(bytes).map_err(|error| TrapError::Malformed(error.to_string()))?;
        let community_ok =
            self.communities.iter().any(|c| crate::config::secret::same_secret(pdu.community, c.0.as_bytes()));
        if !community_ok {
            return Err(TrapError::Community.into());
        }
        let (oid, varbinds, reference) = trap_of(&pdu)?;
        let reply = match pdu.message_type {
            MessageType::InformRequest => {
                Some(inform_reply(bytes).ok_or_else(|| TrapError::Malformed("inform".into()))?)
            }
            _ => None,
        };
        Ok(Received { event: Some(self.event(&oid, &varbinds, reference.as_deref(), peer, now)), reply })
    }

    /// An SNMPv3 message: a discovery probe, a message for this listener's engine (an inform), or a trap from its
    /// sender's engine.
    fn read_v3(
        &mut self,
        bytes: &[u8],
        peer: SocketAddr,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Received, Refused> {
        let header = V3Header::read(bytes).ok_or_else(|| TrapError::Malformed("SNMPv3 header".into()))?;
        if header.engine_id.is_empty() {
            let report = self
                .engine
                .discovery_report(&header)
                .ok_or_else(|| TrapError::Malformed("SNMPv3 message without an engine ID".into()))?
                .map_err(|error| TrapError::Malformed(error.to_string()))?;
            return Ok(Received { event: None, reply: Some(report) });
        }
        if header.engine_id == self.engine.id {
            return self.read_for_this_engine(bytes, &header, peer, now);
        }
        Ok(self.read_trap_v3(bytes, &header, peer, now)?)
    }

    /// A message sent to this listener's engine: an inform, acknowledged, or a sender learning the engine's time. One
    /// that does not authenticate or decrypt is refused with the report that tells the sender why.
    fn read_for_this_engine(
        &mut self,
        bytes: &[u8],
        header: &V3Header,
        peer: SocketAddr,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Received, Refused> {
        let (keys, auth_only) = match self.inform_keys(&header.user) {
            Ok(keys) => keys,
            Err(error) => return Err(self.refused(error, header, Some(UsmReport::UnknownUserName))),
        };
        // The crate writes into the message while it checks the digest: it gets a copy.
        let copy = bytes.to_vec();
        if !self.engine.in_time(header) {
            // A sender with an old idea of this engine's time (from before a restart) or none yet: once the message
            // authenticates, it is told the time, and sends again.
            let mut as_sent = self.engine.as_sent(header, &keys, &auth_only);
            match Pdu::from_bytes_with_security(&copy, Some(&mut as_sent)) {
                Ok(_) => {}
                Err(error) if super::engine::out_of_time(&error, header) => {}
                Err(error) => {
                    let report = super::engine::refusal_of(&error, header);
                    return Err(self.refused(auth_error(error), header, report));
                }
            }
            let report = self.engine.time_report(header, &auth_only).map_err(auth_error)?;
            return Ok(Received { event: None, reply: Some(report) });
        }
        let mut judged = self.engine.now(&keys);
        let pdu = match Pdu::from_bytes_with_security(&copy, Some(&mut judged)) {
            Ok(pdu) => pdu,
            Err(error) => {
                let report = super::engine::refusal_of(&error, header);
                return Err(self.refused(auth_error(error), header, report));
            }
        };
        let (oid, varbinds, reference) = trap_of(&pdu)?;
        let reply = match pdu.message_type {
            MessageType::InformRequest => Some(self.engine.inform_response(&pdu, &keys).map_err(auth_error)?),
            _ => None,
        };
        Ok(Received { event: Some(self.event(&oid, &varbinds, reference.as_deref(), peer, now)), reply })
    }

    /// `error`, with the report of `what` when the sender asked for reports.
    fn refused(&mut self, error: TrapError, header: &V3Header, what: Option<UsmReport>) -> Refused {
        let report = what.and_then(|what| self.engine.refusal_report(header, what)).and_then(Result::ok);
        Refused { error, report }
    }

    /// A user's keys localized to this listener's engine, with and without privacy: made on the user's first
    /// inform (a megabyte of hashing each), then kept.
    fn inform_keys(&mut self, user_name: &[u8]) -> Result<(snmp2::v3::Security, snmp2::v3::Security), TrapError> {
        let user = configured_user(&self.users, user_name)?;
        if let Some(keys) = self.inform_keys.get(&user.user) {
            return Ok(keys.clone());
        }
        let localized = |privacy| {
            super::client::security_for(&user.user, &user.auth, privacy)
                .with_engine_id(&self.engine.id)
                .map_err(|e| TrapError::Auth(e.to_string()))
        };
        let keys = (localized(user.privacy.as_ref())?, localized(None)?);
        self.inform_keys.insert(user.user.clone(), keys.clone());
        Ok(keys)
    }

    /// An SNMPv3 trap: its user's keys, localized to the sending engine, authenticate and decrypt it.
    fn read_trap_v3(
        &mut self,
        bytes: &[u8],
        header: &V3Header,
        peer: SocketAddr,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Received, TrapError> {
        let engine_id = &header.engine_id;
        let user = configured_user(&self.users, &header.user)?;
        let key = (user.user.clone(), engine_id.clone());
        if !self.keys.contains_key(&key) {
            if !self.new_keys.take(std::time::Instant::now()) {
                return Err(TrapError::Auth("too many new sending engines this minute; refused until it ends".into()));
            }
            if self.keys.len() >= MAX_KEYS {
                self.keys.clear();
            }
            let security = super::client::security_for(&user.user, &user.auth, user.privacy.as_ref())
                .with_engine_id(engine_id)
                .map_err(|e| TrapError::Auth(e.to_string()))?;
            self.keys.insert(key.clone(), security);
        }
        let mut security = self.keys.get(&key).cloned().ok_or(TrapError::UnknownUser)?;
        // The crate writes into the message while it checks the digest: it gets a copy.
        let copy = bytes.to_vec();
        let pdu = Pdu::from_bytes_with_security(&copy, Some(&mut security)).map_err(auth_error)?;
        if pdu.message_type == MessageType::InformRequest {
            // An inform is answered by the engine it is sent to; one sent to its sender's engine is misaddressed.
            return Err(TrapError::ForeignEngine(hex(engine_id)));
        }
        let (oid, varbinds, reference) = trap_of(&pdu)?;
        Ok(Received { event: Some(self.event(&oid, &varbinds, reference.as_deref(), peer, now)), reply: None })
    }

    fn event(
        &self,
        oid: &[u64],
        varbinds: &[String],
        log_reference: Option<&str>,
        peer: SocketAddr,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Event {
        let at = Timestamp::from_clock(now);
        let mut event = Event::new(at, at);
        let host = self.names.get(&peer.ip()).cloned().unwrap_or_else(|| peer.ip().to_string());
        let oid_string = oid_text(oid);
        let name = self.objects.trap_name(oid).map(str::to_owned);
        let mut text: String = varbinds.join(" ");
        if text.len() > MAX_VARBINDS_TEXT {
            let mut cut = MAX_VARBINDS_TEXT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        event.set(field::ORIGINAL, format!("snmp trap {peer} {oid_string} {text}").trim_end().to_owned());
        event.set(field::MESSAGE, format!("trap {} from {host}: {text}", name.as_deref().unwrap_or(&oid_string)));
        event.set(field::SOURCE_ADDRESS, peer.to_string());
        event.set(field::HOST_NAME, host);
        event.set(field::DATASET, "luna.snmp");
        event.set(field::ACTION, "snmp.trap");
        event.set(field::CATEGORY, if name.as_deref() == Some("ntls") { "network" } else { "hardware" });
        // A Luna trap points at a log line ending in `/ 1]` (assert) or `/ 0]` (de-assert, a clear).
        let outcome = match log_reference.map(|r| r.trim_end_matches(']').trim_end()) {
            Some(r) if r.ends_with("/ 1") || r.ends_with("/1") => "failure",
            Some(r) if r.ends_with("/ 0") || r.ends_with("/0") => "success",
            _ => "unknown",
        };
        event.set(field::OUTCOME, outcome);
        event.set(field::SNMP_TRAP_OID, oid_string);
        if let Some(name) = name {
            event.set(field::SNMP_TRAP_NAME, name);
        }
        if !text.is_empty() {
            event.set(field::SNMP_VARBINDS, text);
        }
        event
    }

    /// Receives until `shutdown`.
    pub async fn serve(mut self, shutdown: CancellationToken) {
        let mut buffer = vec![0u8; 65_535];
        let mut told = std::collections::HashSet::new();
        loop {
            let (length, peer) = tokio::select! {
                _ = shutdown.cancelled() => return,
                received = self.socket.recv_from(&mut buffer) => match received {
                    Ok(received) => received,
                    Err(error) => {
                        tracing::warn!(%error, "SNMP trap listener: receive failed");
                        continue;
                    }
                },
            };
            crate::metrics::Counters::add(&self.counters.received, 1);
            crate::metrics::Counters::add(&self.counters.bytes, length as u64);
            if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(&peer.ip())) {
                crate::metrics::Counters::add(&self.counters.refused_not_allowed, 1);
                continue;
            }
            match self.read(&buffer[..length], peer, chrono::Utc::now()) {
                Ok(received) => {
                    if let Some(reply) = received.reply {
                        if let Err(error) = self.socket.send_to(&reply, peer).await {
                            tracing::warn!(%peer, %error, "cannot answer an SNMP inform or discovery");
                        }
                    }
                    if let Some(event) = received.event {
                        if self.queue.send(event).await.is_err() {
                            return;
                        }
                    }
                }
                Err(Refused { error, report }) => {
                    crate::metrics::Counters::add(&self.counters.unparsed, 1);
                    if let Some(report) = report {
                        if let Err(error) = self.socket.send_to(&report, peer).await {
                            tracing::warn!(%peer, %error, "cannot send an SNMP report");
                        }
                    }
                    // Said once per kind and sender: a flood of junk must not flood the log.
                    if told.len() < 1000 && told.insert((peer.ip(), std::mem::discriminant(&error))) {
                        tracing::warn!(%peer, %error, "SNMP datagram not taken as a trap (counted in hsmwatch_lines_unparsed)");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn listener() -> TrapListener {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let counters = Arc::new(crate::metrics::Counters::default());
        let (queue, _receiver) = crate::queue::channel(16, 1 << 20, counters.clone());
        TrapListener {
            socket,
            communities: vec![Secret("public".into())],
            users: Vec::new(),
            keys: HashMap::new(),
            new_keys: KeyBudget::new(std::time::Instant::now()),
            engine: LocalEngine::new(LocalEngine::new_id().unwrap(), 1),
            inform_keys: HashMap::new(),
            allow: Vec::new(),
            objects: Arc::new(super::super::objects::load(&crate::pack::RuleSource::Embedded).unwrap()),
            names: HashMap::new(),
            queue,
            counters: counters.listener("snmp-trap", address),
        }
    }

    /// A v2c inform of `1.3.6.1.4.1.23629.1.5.2.2.6` with community `public`, as net-snmp's snmpinform sends it.
    const INFORM: &[u8] = b"\x30\x2c\x02\x01\x01\x04\x06public\xa6\x1f\x02\x01\x07\x02\x01\x00\x02\x01\x00\x30\x14\x30\x12\x06\x0a\x2b\x06\x01\x06\x03\x01\x01\x04\x01\x00\x06\x04\x2b\x06\x01\x04";

    #[tokio::test]
    async fn an_inform_is_answered_with_the_same_message_as_a_response() {
        let mut listener = listener().await;
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let received = listener.read(INFORM, peer, chrono::Utc::now()).unwrap();
        let reply = received.reply.expect("an inform is acknowledged");
        assert_eq!(reply.len(), INFORM.len());
        assert_eq!(reply[13], RESPONSE_TAG);
        assert_eq!((&reply[..13], &reply[14..]), (&INFORM[..13], &INFORM[14..]));
        assert_eq!(received.event.expect("an event").get(field::SNMP_TRAP_OID), Some("1.3.6.1.4"));
        let mut trap = INFORM.to_vec();
        trap[13] = 0xA7;
        assert!(listener.read(&trap, peer, chrono::Utc::now()).unwrap().reply.is_none(), "a trap is not answered");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Any datagram, made up or a valid v2c inform or SNMPv3 probe with bytes changed, is read or refused, never a
        /// panic; the listener keeps answering afterwards.
        #[test]
        fn any_datagram_is_read_or_refused(
            base in 0usize..3,
            changes in proptest::collection::vec((0usize..256, 0u8..=255), 0..6),
            cut in proptest::option::of(0usize..256),
            random in proptest::collection::vec(0u8..=255, 0..300),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let mut listener = runtime.block_on(listener());
            let mut bytes = match base {
                0 => INFORM.to_vec(),
                1 => super::super::engine::NET_SNMP_PROBE.to_vec(),
                _ => random,
            };
            for (at, byte) in changes {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = byte;
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut);
            }
            let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
            let _ = listener.read(&bytes, peer, chrono::Utc::now());
            proptest::prop_assert!(listener.read(INFORM, peer, chrono::Utc::now()).unwrap().reply.is_some());
        }
    }

    #[test]
    fn new_engine_keys_are_limited_per_minute() {
        let start = std::time::Instant::now();
        let mut budget = KeyBudget::new(start);
        assert!((0..NEW_KEYS_PER_MINUTE).all(|_| budget.take(start)));
        assert!(!budget.take(start + std::time::Duration::from_secs(59)));
        assert!(budget.take(start + std::time::Duration::from_secs(60)), "a new minute, a new budget");
    }

    #[tokio::test]
    async fn hostile_bytes_are_errors_never_panics() {
        let mut listener = listener().await;
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        for cut in 0..INFORM.len() {
            assert!(listener.read(&INFORM[..cut], peer, chrono::Utc::now()).is_err(), "cut at {cut}");
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for round in 0..20_000 {
            // The v2c path, and the SNMPv3 one (a discovery probe).
            let valid = if round % 3 == 0 { super::super::engine::NET_SNMP_PROBE } else { INFORM };
            let mut bytes = valid.to_vec();
            // Flip a few bytes of a valid message, or make one up.
            let flips = 1 + (seed % 4) as usize;
            for _ in 0..flips {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize) % bytes.len();
                bytes[at] = (seed >> 32) as u8;
            }
            if round % 2 == 0 {
                bytes.truncate((seed as usize) % (bytes.len() + 1));
            }
            let _ = listener.read(&bytes, peer, chrono::Utc::now());
            let _ = inform_reply(&bytes);
        }
        assert_eq!(
            listener.read(b"", peer, chrono::Utc::now()).unwrap_err().error.to_string().split(':').next(),
            Some("not an SNMP message")
        );
        let wrong = INFORM.iter().map(|b| if *b == b'p' { b'P' } else { *b }).collect::<Vec<_>>();
        assert_eq!(listener.read(&wrong, peer, chrono::Utc::now()).unwrap_err().error, TrapError::Community);
    }
}
