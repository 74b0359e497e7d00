//! One poll of one appliance over SNMPv3 (USM with authentication and privacy), through the `snmp2` crate: a fresh
//! session per poll (engine discovery, then GETs and GETBULK walks), every request bounded by the target's timeout
//! and retried as configured. hsmwatch only reads: it never sends a SET.

use std::time::Duration;

use snmp2::v3::{Auth, AuthErrorKind, Cipher, KeyExtension, Security};
use snmp2::{AsyncSession, Oid, Value};

use super::objects::{oid_text, Arcs};
use crate::config::notifiers::Secret;
use crate::config::snmp::{AuthProtocol, PrivProtocol, ResolvedTarget};

/// Rows a GETBULK asks for at once.
const BULK_ROWS: u32 = 20;

/// Most requests one walk sends: a table that never ends (a buggy agent) stops here.
const MAX_WALK_REQUESTS: usize = 500;

/// Why a poll failed, as an operator needs to read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    /// No answer within the timeout, after every retry.
    #[error("timeout: no answer from {address} within {timeout:?} ({attempts} attempts)")]
    Timeout {
        /// The target.
        address: String,
        /// Per attempt.
        timeout: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// The agent refused the user, the passphrases, or the answer could not be authenticated or decrypted.
    #[error("authentication: {0}")]
    Auth(String),
    /// Nothing listens there: the port refused (ICMP unreachable) or the request could not be sent.
    #[error("unreachable: no SNMP agent answers at {0} (the port is closed or the host cannot be reached)")]
    Unreachable(String),
    /// The address cannot be used.
    #[error("address {address}: {message}")]
    Address {
        /// The target.
        address: String,
        /// What is wrong.
        message: String,
    },
    /// Anything else the agent or the network did.
    #[error("{0}")]
    Protocol(String),
}

/// A value read, as text or a number.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    /// An integer of any SNMP integer type.
    Number(i128),
    /// An octet string, as text (invalid UTF-8 replaced).
    Text(String),
    /// The agent has no such object.
    Missing,
}

impl Read {
    /// The value as text (numbers in decimal), `None` when the agent has no such object.
    pub fn into_text(self) -> Option<String> {
        match self {
            Read::Number(n) => Some(n.to_string()),
            Read::Text(t) => Some(t),
            Read::Missing => None,
        }
    }

    /// What a value read says.
    pub fn of(value: &Value<'_>) -> Read {
        match value {
            Value::Integer(n) => Read::Number(i128::from(*n)),
            Value::Counter32(n) | Value::Unsigned32(n) | Value::Timeticks(n) => Read::Number(i128::from(*n)),
            Value::Counter64(n) => Read::Number(i128::from(*n)),
            Value::OctetString(bytes) => {
                Read::Text(String::from_utf8_lossy(bytes).trim_end_matches('\0').trim().to_owned())
            }
            Value::IpAddress(ip) => Read::Text(std::net::Ipv4Addr::from(*ip).to_string()),
            Value::ObjectIdentifier(oid) => Read::Text(arcs_of(oid).map(|a| oid_text(&a)).unwrap_or_default()),
            Value::Boolean(b) => Read::Number(i128::from(*b)),
            _ => Read::Missing,
        }
    }
}

/// An OID's arcs, when it has any.
pub fn arcs_of(oid: &Oid<'_>) -> Option<Arcs> {
    oid.iter().map(Iterator::collect)
}

fn to_oid(arcs: &[u64]) -> Result<Oid<'static>, PollError> {
    Oid::from(arcs).map_err(|_| PollError::Protocol(format!("cannot encode OID {}", oid_text(arcs))))
}

fn security(target: &ResolvedTarget) -> Security {
    security_for(&target.user, &target.auth, target.privacy.as_ref())
}

/// The USM security of a user: its authentication and, when given, its privacy.
pub fn security_for(user: &str, auth: &(AuthProtocol, Secret), privacy: Option<&(PrivProtocol, Secret)>) -> Security {
    let (protocol, passphrase) = auth;
    let protocol = match protocol {
        AuthProtocol::Md5 => snmp2::v3::AuthProtocol::Md5,
        AuthProtocol::Sha => snmp2::v3::AuthProtocol::Sha1,
        AuthProtocol::Sha224 => snmp2::v3::AuthProtocol::Sha224,
        AuthProtocol::Sha256 => snmp2::v3::AuthProtocol::Sha256,
        AuthProtocol::Sha384 => snmp2::v3::AuthProtocol::Sha384,
        AuthProtocol::Sha512 => snmp2::v3::AuthProtocol::Sha512,
    };
    let security = Security::new(user.as_bytes(), passphrase.0.as_bytes()).with_auth_protocol(protocol);
    match privacy {
        None => security.with_auth(Auth::AuthNoPriv),
        Some((privacy, passphrase)) => {
            let cipher = match privacy {
                PrivProtocol::Aes => Cipher::Aes128,
                PrivProtocol::Aes192 => Cipher::Aes192,
                PrivProtocol::Aes256 => Cipher::Aes256,
                PrivProtocol::Des => Cipher::Des,
            };
            security
                .with_auth(Auth::AuthPriv { cipher, privacy_password: passphrase.0.as_bytes().to_vec() })
                // net-snmp's way of making an AES-192/256 key from a shorter hash.
                .with_key_extension_method(KeyExtension::Blumenthal)
        }
    }
}

fn classify(error: &snmp2::Error, address: &str) -> PollError {
    match error {
        snmp2::Error::Send | snmp2::Error::Receive => PollError::Unreachable(address.to_owned()),
        snmp2::Error::AuthFailure(kind) => PollError::Auth(match kind {
            AuthErrorKind::SignatureMismatch | AuthErrorKind::NotAuthenticated => {
                "the agent did not accept the user or the authentication passphrase (unknown user or wrong digest)"
                    .to_owned()
            }
            AuthErrorKind::PrivLengthMismatch | AuthErrorKind::PayloadLengthMismatch => {
                "the answer could not be decrypted: wrong privacy passphrase or protocol".to_owned()
            }
            other => other.to_string(),
        }),
        snmp2::Error::Crypto(message) => PollError::Auth(format!("decryption: {message}")),
        other => PollError::Protocol(other.to_string()),
    }
}

/// What one request asks.
#[derive(Clone, Copy)]
enum Request<'a> {
    /// These objects.
    Get(&'a [&'a Oid<'a>]),
    /// The rows after this one.
    Bulk(&'a Oid<'a>),
}

/// A session with one appliance, for one poll.
pub struct Session {
    session: AsyncSession,
    address: String,
    timeout: Duration,
    attempts: u32,
}

impl Session {
    /// Opens a session and discovers the agent's engine (ID, boots, time) with a first, authenticated exchange.
    pub async fn open(target: &ResolvedTarget) -> Result<Session, PollError> {
        let address_error = |message: String| PollError::Address { address: target.address.clone(), message };
        let request_id = i32::try_from(std::process::id() & 0x7fff).unwrap_or(1) << 16;
        let session = AsyncSession::new_v3(target.address.as_str(), request_id, security(target))
            .await
            .map_err(|e| address_error(e.to_string()))?;
        let mut session =
            Session { session, address: target.address.clone(), timeout: target.timeout, attempts: target.retries + 1 };
        for _ in 0..session.attempts {
            match tokio::time::timeout(session.timeout, session.session.init()).await {
                Ok(Ok(())) => return Ok(session),
                Ok(Err(error)) => return Err(classify(&error, &session.address)),
                Err(_) => {}
            }
        }
        Err(session.timed_out())
    }

    fn timed_out(&self) -> PollError {
        PollError::Timeout { address: self.address.clone(), timeout: self.timeout, attempts: self.attempts }
    }

    /// A request that got no answer although the agent answered engine discovery: an agent drops what it cannot
    /// decrypt without a word, so a wrong privacy passphrase looks exactly like this.
    fn unanswered_after_discovery(&self) -> PollError {
        PollError::Auth(format!(
            "the agent at {} answered engine discovery but not the encrypted request within {:?} ({} attempts): \
             wrong privacy passphrase or protocol (or an agent too busy to answer)",
            self.address, self.timeout, self.attempts
        ))
    }

    /// GETs `oids` in one request; each answer in the order asked.
    pub async fn get(&mut self, oids: &[Arcs]) -> Result<Vec<Read>, PollError> {
        let encoded: Vec<Oid<'static>> = oids.iter().map(|a| to_oid(a)).collect::<Result<_, _>>()?;
        let refs: Vec<&Oid<'_>> = encoded.iter().collect();
        let mut found: std::collections::HashMap<Arcs, Read> =
            self.ask(Request::Get(&refs)).await?.into_iter().filter_map(|(oid, read)| Some((oid, read?))).collect();
        Ok(oids.iter().map(|oid| found.remove(oid).unwrap_or(Read::Missing)).collect())
    }

    /// One request, sent again after a timeout as configured: each varbind of the answer (`None`: end of the MIB).
    async fn ask(&mut self, request: Request<'_>) -> Result<Vec<(Arcs, Option<Read>)>, PollError> {
        for attempt in 0..self.attempts {
            let sent = async {
                match request {
                    Request::Get(oids) => self.session.get_many(oids).await,
                    Request::Bulk(oid) => self.session.getbulk(&[oid], 0, BULK_ROWS).await,
                }
            };
            let answer = match tokio::time::timeout(self.timeout, sent).await {
                Ok(answer) => answer,
                Err(_) if attempt + 1 < self.attempts => continue,
                Err(_) => break,
            };
            let mut pdu = match answer {
                Ok(pdu) => pdu,
                // The engine's clock moved on: the crate has updated it; ask again.
                Err(snmp2::Error::AuthUpdated) => continue,
                Err(error) => return Err(classify(&error, &self.address)),
            };
            let mut varbinds = Vec::new();
            for (oid, value) in pdu.varbinds.by_ref() {
                let read = (!matches!(value, Value::EndOfMibView)).then(|| Read::of(&value));
                if let Some(arcs) = arcs_of(&oid) {
                    varbinds.push((arcs, read));
                }
            }
            return Ok(varbinds);
        }
        Err(self.unanswered_after_discovery())
    }

    /// Walks the column `column`: each cell as (the index after the column's OID, value), in the agent's order.
    pub async fn walk(&mut self, column: &[u64]) -> Result<Vec<(Arcs, Read)>, PollError> {
        let mut cells = Vec::new();
        let mut from = column.to_vec();
        for _ in 0..MAX_WALK_REQUESTS {
            let batch = self.next_rows(&from).await?;
            let mut ended = batch.is_empty();
            for (oid, read) in batch {
                // Past the column (or going backwards, which a broken agent may do): the walk is over.
                if !oid.starts_with(column) || oid.len() <= column.len() || oid <= from {
                    ended = true;
                    break;
                }
                from.clone_from(&oid);
                if read != Read::Missing {
                    cells.push((oid[column.len()..].to_vec(), read));
                }
            }
            if ended {
                return Ok(cells);
            }
        }
        Err(PollError::Protocol(format!(
            "the walk of {} did not end after {MAX_WALK_REQUESTS} requests",
            oid_text(column)
        )))
    }

    async fn next_rows(&mut self, from: &[u64]) -> Result<Vec<(Arcs, Read)>, PollError> {
        let oid = to_oid(from)?;
        let varbinds = self.ask(Request::Bulk(&oid)).await?;
        Ok(varbinds.into_iter().map_while(|(oid, read)| Some((oid, read?))).collect())
    }
}
