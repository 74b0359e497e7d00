//! The trap listener's own SNMPv3 engine. An SNMPv3 inform is sent to the receiver as its authoritative engine (RFC
//! 3414): the sender asks for the receiver's engine ID with a probe (answered by a `usmStatsUnknownEngineIDs` report
//! that carries the engine's boots and time too), localizes the user's keys to that ID and sends the inform, answered
//! by a Response with the inform's msgID. A sender whose idea of the boots and time is wrong (RFC 3414's second
//! discovery step, or a cached one from before a restart) gets a `usmStatsNotInTimeWindows` report once its message
//! authenticates, and sends again. The engine ID is made once and kept in the store with the count of starts, so a
//! sender's cached engine time never runs backwards across a restart.

use std::time::Instant;

use snmp2::v3::{Answered, Auth, Security};
use snmp2::{AsnReader, Oid, Pdu, Value};

/// The `usmStats` counters this engine reports (RFC 3414, 5): what went wrong with a message sent to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsmReport {
    /// `usmStatsUnsupportedSecLevels`: a user with privacy sent a message without.
    UnsupportedSecLevel = 1,
    /// `usmStatsNotInTimeWindows`: the sender's idea of the engine's boots or time is wrong.
    NotInTimeWindow = 2,
    /// `usmStatsUnknownUserNames`: no such user here.
    UnknownUserName = 3,
    /// `usmStatsUnknownEngineIDs`: a discovery probe.
    UnknownEngineId = 4,
    /// `usmStatsWrongDigests`: the authentication passphrase differs.
    WrongDigest = 5,
    /// `usmStatsDecryptionErrors`: the privacy passphrase (or protocol) differs.
    DecryptionError = 6,
}

impl UsmReport {
    /// The counter's OID, `usmStats.N.0`.
    fn oid(self) -> [u64; 11] {
        [1, 3, 6, 1, 6, 3, 15, 1, 1, self as u64, 0]
    }
}
/// How far a message's time may be from this engine's (RFC 3414, 3.2 step 7).
const TIME_WINDOW: i64 = 150;
/// msgFlags bits (RFC 3412).
const FLAG_AUTH: u8 = 0x01;
const FLAG_PRIVACY: u8 = 0x02;
const FLAG_REPORTABLE: u8 = 0x04;

/// This listener's engine: what a sender of informs discovers and synchronises with.
#[derive(Debug)]
pub struct LocalEngine {
    /// snmpEngineID (RFC 3411).
    pub id: Vec<u8>,
    /// snmpEngineBoots: how many times the listener has started, this start included.
    pub boots: i64,
    /// When this start began: snmpEngineTime counts seconds from it.
    started: Instant,
    /// Each `usmStats` counter, as reported (indexed by [`UsmReport`]).
    reported: [u32; 7],
}

impl LocalEngine {
    /// The engine with its stored ID and this start's boot count.
    pub fn new(id: Vec<u8>, boots: i64) -> Self {
        LocalEngine { id, boots, started: Instant::now(), reported: [0; 7] }
    }

    /// A new engine ID: RFC 3411's format 5 (octets) under enterprise 0, as hsmwatch has no enterprise number of its
    /// own; sixteen random octets make it unique.
    pub fn new_id() -> Result<Vec<u8>, getrandom::Error> {
        let mut id = vec![0x80, 0, 0, 0, 5];
        let mut random = [0u8; 16];
        getrandom::getrandom(&mut random)?;
        id.extend_from_slice(&random);
        Ok(id)
    }

    /// snmpEngineTime now.
    fn time(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_secs()).unwrap_or(i64::from(i32::MAX)).min(i64::from(i32::MAX))
    }

    /// `security` (keys localized to this engine's ID) with this engine's boots and time now: what a message is
    /// judged against and an answer carries.
    pub fn now(&self, security: &Security) -> Security {
        security.clone().with_engine_boots_and_time(self.boots, self.time())
    }

    /// Whether a message's boots and time are this engine's, within RFC 3414's 150 seconds.
    pub fn in_time(&self, header: &V3Header) -> bool {
        header.boots == self.boots && (header.time - self.time()).abs() <= TIME_WINDOW
    }

    /// The keys to authenticate a message that is not in time with: at the boots and time it was sent with, which
    /// its encryption used. Boots 0 is a sender learning the time (RFC 3414, 4), with authentication only.
    pub fn as_sent(&self, header: &V3Header, keys: &Security, auth_only: &Security) -> Security {
        let keys = if header.flags & FLAG_PRIVACY != 0 { keys } else { auth_only };
        let boots = if header.boots == 0 { self.boots } else { header.boots };
        keys.clone().with_engine_boots_and_time(boots, header.time)
    }

    /// The report answering a discovery probe (an unauthenticated, reportable message with no engine ID), or `None`
    /// for a message that asks for none.
    pub fn discovery_report(&mut self, header: &V3Header) -> Option<Result<Vec<u8>, snmp2::Error>> {
        self.refusal_report(header, UsmReport::UnknownEngineId)
    }

    /// The unauthenticated report telling the sender of a reportable message what was wrong with it (RFC 3414, 3.2),
    /// or `None` when it asks for none. Its request-id is the message's when that is in clear, else 0.
    pub fn refusal_report(&mut self, header: &V3Header, what: UsmReport) -> Option<Result<Vec<u8>, snmp2::Error>> {
        if header.flags & FLAG_REPORTABLE == 0 {
            return None;
        }
        let security = match Security::new(&header.user, b"").with_auth(Auth::NoAuthNoPriv).with_engine_id(&self.id) {
            Ok(security) => self.now(&security),
            Err(error) => return Some(Err(error)),
        };
        let request_id = header.plain_request_id.unwrap_or(0);
        Some(self.report(what, request_id, header.msg_id, &security))
    }

    /// The report telling an authenticated sender this engine's boots and time, with its user's keys without
    /// privacy (RFC 3414, 3.2 step 7a).
    pub fn time_report(&mut self, header: &V3Header, auth_only: &Security) -> Result<Vec<u8>, snmp2::Error> {
        let security = self.now(auth_only);
        self.report(UsmReport::NotInTimeWindow, 0, header.msg_id, &security)
    }

    /// A Report of `what`'s counter, counting this one.
    fn report(
        &mut self,
        what: UsmReport,
        request_id: i32,
        msg_id: i32,
        security: &Security,
    ) -> Result<Vec<u8>, snmp2::Error> {
        let count = &mut self.reported[what as usize];
        *count = count.wrapping_add(1);
        let oid = Oid::from(&what.oid()).map_err(|_| snmp2::Error::AsnInvalidLen)?;
        let answered = Answered { msg_id, context_engine_id: &self.id };
        snmp2::v3::build_answer(
            snmp2::snmp::MSG_REPORT,
            request_id,
            &[(&oid, Value::Counter32(*count))],
            answered,
            security,
        )
    }

    /// The Response acknowledging `inform`: its request-id and varbinds, its msgID and contextEngineID, with the
    /// keys it came with.
    pub fn inform_response(&self, inform: &Pdu<'_>, security: &Security) -> Result<Vec<u8>, snmp2::Error> {
        let (oids, values): (Vec<Oid<'_>>, Vec<Value<'_>>) = inform.varbinds.clone().unzip();
        let values: Vec<(&Oid<'_>, Value<'_>)> = oids.iter().zip(values).collect();
        let answered = Answered { msg_id: inform.v3_msg_id, context_engine_id: inform.v3_context_engine_id };
        snmp2::v3::build_answer(snmp2::snmp::MSG_RESPONSE, inform.req_id, &values, answered, &self.now(security))
    }
}

/// An engine ID as net-snmp prints and takes it (`0x8000...`).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold("0x".to_owned(), |text, byte| text + &format!("{byte:02x}"))
}

/// The report a message sent to this engine earns when it fails to authenticate or decrypt, if any. An encrypted
/// message that authenticated but does not read is one decrypted with the wrong key: what a wrong privacy passphrase
/// gives.
pub fn refusal_of(error: &snmp2::Error, header: &V3Header) -> Option<UsmReport> {
    use snmp2::v3::AuthErrorKind;
    match error {
        snmp2::Error::AuthFailure(AuthErrorKind::SignatureMismatch) => Some(UsmReport::WrongDigest),
        snmp2::Error::AuthFailure(AuthErrorKind::ReplyNotEncrypted) => Some(UsmReport::UnsupportedSecLevel),
        snmp2::Error::AuthFailure(_) | snmp2::Error::AuthUpdated => None,
        snmp2::Error::Crypto(_) => Some(UsmReport::DecryptionError),
        _ if header.flags & FLAG_PRIVACY != 0 => Some(UsmReport::DecryptionError),
        _ => None,
    }
}

/// Whether an SNMPv3 message failed only because its boots or time are not this engine's (it authenticated).
pub fn out_of_time(error: &snmp2::Error, header: &V3Header) -> bool {
    use snmp2::v3::AuthErrorKind;
    header.flags & FLAG_AUTH != 0
        && matches!(
            error,
            snmp2::Error::AuthUpdated
                | snmp2::Error::AuthFailure(AuthErrorKind::EngineBootsMismatch | AuthErrorKind::EngineTimeMismatch)
        )
}

/// The clear parts of an SNMPv3 message's header (RFC 3412 msgGlobalData, RFC 3414 security parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Header {
    /// msgID, which an answer repeats.
    pub msg_id: i32,
    /// msgFlags.
    pub flags: u8,
    /// msgAuthoritativeEngineID: the sender's for a trap, the receiver's for an inform, empty for a probe.
    pub engine_id: Vec<u8>,
    /// msgAuthoritativeEngineBoots and msgAuthoritativeEngineTime: the sender's idea of them.
    pub boots: i64,
    /// See `boots`.
    pub time: i64,
    /// msgUserName.
    pub user: Vec<u8>,
    /// The request-id, when the scoped PDU is not encrypted.
    pub plain_request_id: Option<i32>,
}

impl V3Header {
    /// The header of an SNMPv3 message, or `None` when it does not parse.
    pub fn read(bytes: &[u8]) -> Option<V3Header> {
        let inside = AsnReader::from_bytes(bytes).read_raw(snmp2::asn1::TYPE_SEQUENCE).ok()?;
        let mut message = AsnReader::from_bytes(inside);
        message.read_asn_integer().ok()?;
        let mut global = AsnReader::from_bytes(message.read_raw(snmp2::asn1::TYPE_SEQUENCE).ok()?);
        let msg_id = i32::try_from(global.read_asn_integer().ok()?).ok()?;
        global.read_asn_integer().ok()?;
        let flags = *global.read_asn_octetstring().ok()?.first()?;
        let parameters = message.read_asn_octetstring().ok()?;
        let sequence = AsnReader::from_bytes(parameters).read_raw(snmp2::asn1::TYPE_SEQUENCE).ok()?;
        let mut usm = AsnReader::from_bytes(sequence);
        let engine_id = usm.read_asn_octetstring().ok()?.to_vec();
        let boots = usm.read_asn_integer().ok()?;
        let time = usm.read_asn_integer().ok()?;
        let user = usm.read_asn_octetstring().ok()?.to_vec();
        let plain_request_id = if flags & FLAG_PRIVACY == 0 { request_id(&mut message) } else { None };
        Some(V3Header { msg_id, flags, engine_id, boots, time, user, plain_request_id })
    }
}

/// The request-id of a clear scoped PDU (contextEngineID, contextName, then the PDU).
fn request_id(message: &mut AsnReader<'_>) -> Option<i32> {
    let mut scoped = AsnReader::from_bytes(message.read_raw(snmp2::asn1::TYPE_SEQUENCE).ok()?);
    scoped.read_asn_octetstring().ok()?;
    scoped.read_asn_octetstring().ok()?;
    let tag = scoped.peek_byte().ok()?;
    let mut pdu = AsnReader::from_bytes(scoped.read_raw(tag).ok()?);
    i32::try_from(pdu.read_asn_integer().ok()?).ok()
}

/// net-snmp 5.9's discovery probe, as `snmpinform -v3` sent it to a receiver it had not met: reportable, no engine
/// ID or user, an empty GET in the sender's context.
#[cfg(test)]
pub(crate) const NET_SNMP_PROBE: &[u8] = b"\x30\x4f\x02\x01\x03\x30\x11\x02\x04\x7f\x06\x04\x65\x02\x03\x00\xff\xe3\x04\x01\x04\x02\x01\x03\x04\x10\x30\x0e\x04\x00\x02\x01\x00\x02\x01\x00\x04\x00\x04\x00\x04\x00\x30\x25\x04\x11\x80\x00\x1f\x88\x80\x5b\x57\x33\x2b\x22\x99\x13\x6b\x00\x00\x00\x00\x04\x00\xa0\x0e\x02\x04\x6e\x92\x74\xf7\x02\x01\x00\x02\x01\x00\x30\x00";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_read_and_answered_with_this_engine_s_id_boots_and_time() {
        let header = V3Header::read(NET_SNMP_PROBE).expect("the probe parses");
        assert_eq!(
            header,
            V3Header {
                msg_id: 0x7f06_0465,
                flags: 4,
                engine_id: vec![],
                boots: 0,
                time: 0,
                user: vec![],
                plain_request_id: Some(0x6e92_74f7)
            }
        );
        let mut engine = LocalEngine::new(vec![0x80, 0, 0, 0, 5, 1, 2, 3], 7);
        let report = engine.discovery_report(&header).expect("a probe is answered").unwrap();
        let answer = V3Header::read(&report).expect("the report parses");
        assert_eq!((answer.msg_id, answer.flags, answer.plain_request_id), (0x7f06_0465, 0, Some(0x6e92_74f7)));
        assert_eq!((answer.engine_id, answer.boots, answer.time), (engine.id.clone(), 7, 0));
        assert!(report.windows(10).any(|w| w == [0x2b, 6, 1, 6, 3, 15, 1, 1, 4, 0]), "{report:02x?}");
    }

    #[test]
    fn a_message_is_in_time_with_this_engine_s_boots_and_within_150_seconds() {
        let engine = LocalEngine::new(vec![0x80, 0, 0, 0, 5], 3);
        let mut header = V3Header::read(NET_SNMP_PROBE).unwrap();
        (header.boots, header.time) = (3, 150);
        assert!(engine.in_time(&header));
        header.time = 151;
        assert!(!engine.in_time(&header), "too far ahead");
        (header.boots, header.time) = (2, 0);
        assert!(!engine.in_time(&header), "sent before this engine's last start");
    }

    #[test]
    fn a_message_that_asks_for_no_report_gets_none() {
        let mut header = V3Header::read(NET_SNMP_PROBE).unwrap();
        header.flags = 0;
        assert!(LocalEngine::new(vec![0x80, 0, 0, 0, 5], 1).discovery_report(&header).is_none());
    }

    #[test]
    fn engine_ids_are_rfc_3411_octets_and_differ() {
        let (a, b) = (LocalEngine::new_id().unwrap(), LocalEngine::new_id().unwrap());
        assert_eq!((a.len(), &a[..5]), (21, &[0x80, 0, 0, 0, 5][..]));
        assert_ne!(a, b);
    }
}
