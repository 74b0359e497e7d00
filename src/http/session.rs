//! Dashboard sign-in: a session is a random id the browser holds in a cookie, valid for `http.session_lifetime` or
//! until sign-out (the token itself never sits in the browser, and a copied cookie dies); failed sign-ins are limited
//! per client address, so the token cannot be guessed at the speed of the network. A session carries the name its
//! holder gave at sign-in (who acknowledged an alert), and every form that changes something carries a token derived
//! from the session and a key of this process (CSRF), which another site's page cannot read.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Sessions open at once, at most: the oldest goes when a new one would exceed it.
const MAX_SESSIONS: usize = 10_000;

/// Failed sign-ins from one address within [`FAILURE_WINDOW`] before it must wait.
pub const MAX_FAILURES: u32 = 5;

/// The window failed sign-ins are counted in; an address that used them up waits until it ends.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(300);

/// Addresses whose failures are remembered at once, at most (a spray from many addresses cannot grow the table).
const MAX_TRACKED: usize = 10_000;

/// An open session: when it expires, and who holds it.
#[derive(Debug, Clone)]
struct Session {
    expires: Instant,
    name: String,
}

/// The open sessions.
#[derive(Debug)]
pub struct Sessions {
    lifetime: Duration,
    /// Keyed by the digest of the id, so that the table holds nothing a browser could present.
    open: Mutex<HashMap<[u8; 32], Session>>,
    /// The key form tokens are derived with: random per process, so a restart ends every form in flight.
    form_key: [u8; 32],
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn random_bytes() -> std::io::Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|error| std::io::Error::other(error.to_string()))?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random session id: 32 bytes from the operating system, hex.
fn random_id() -> std::io::Result<String> {
    Ok(hex(&random_bytes()?))
}

impl Sessions {
    /// No sessions; each lasts `lifetime`.
    pub fn new(lifetime: Duration) -> std::io::Result<Self> {
        Ok(Sessions { lifetime, open: Mutex::default(), form_key: random_bytes()? })
    }

    /// How long a session lasts.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Opens a session for `name`; its id, for the cookie.
    pub fn open(&self, name: &str) -> std::io::Result<String> {
        let id = random_id()?;
        let now = Instant::now();
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        open.retain(|_, session| session.expires > now);
        if open.len() >= MAX_SESSIONS {
            if let Some(oldest) = open.iter().min_by_key(|(_, session)| session.expires).map(|(key, _)| *key) {
                open.remove(&oldest);
            }
        }
        open.insert(digest(&id), Session { expires: now + self.lifetime, name: name.to_owned() });
        Ok(id)
    }

    /// Whether `id` is an open session that has not expired.
    pub fn is_open(&self, id: &str) -> bool {
        self.name(id).is_some()
    }

    /// The name the holder of session `id` gave, while it is open.
    pub fn name(&self, id: &str) -> Option<String> {
        let open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        open.get(&digest(id)).filter(|session| session.expires > Instant::now()).map(|session| session.name.clone())
    }

    /// The form token of session `id` (`None`: no session, on a loopback listener without a token).
    pub fn form_token(&self, id: Option<&str>) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.form_key);
        hasher.update(id.unwrap_or("").as_bytes());
        hex(&hasher.finalize())
    }

    /// Ends a session (sign-out).
    pub fn close(&self, id: &str) {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&digest(id));
    }
}

/// Failed sign-ins per client address.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginThrottle {
    /// `Err(wait)` when `ip` used up its failures and must wait this long; Ok otherwise.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match failures.get(&ip) {
            Some((count, since)) if *count >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW => {
                Err(FAILURE_WINDOW.saturating_sub(since.elapsed()))
            }
            _ => Ok(()),
        }
    }

    /// A sign-in from `ip` failed.
    pub fn failed(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&ip) {
            // Every slot holds a recent failure: forget the oldest rather than grow.
            if let Some(oldest) = failures.iter().min_by_key(|(_, (_, since))| *since).map(|(ip, _)| *ip) {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// A sign-in from `ip` succeeded: its failures are forgotten.
    pub fn succeeded(&self, ip: IpAddr) {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_random_expire_and_close() {
        let sessions = Sessions::new(Duration::from_millis(50)).unwrap();
        let (a, b) = (sessions.open("alice").unwrap(), sessions.open("bob").unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(sessions.is_open(&a) && sessions.is_open(&b));
        assert_eq!(sessions.name(&b).as_deref(), Some("bob"));
        assert_ne!(sessions.form_token(Some(&a)), sessions.form_token(Some(&b)));
        let other = Sessions::new(Duration::from_millis(50)).unwrap();
        assert_ne!(sessions.form_token(None), other.form_token(None), "each process has its own key");
        assert!(!sessions.is_open("not a session"));
        sessions.close(&a);
        assert!(!sessions.is_open(&a), "signed out");
        std::thread::sleep(Duration::from_millis(60));
        assert!(!sessions.is_open(&b), "expired");
    }

    #[test]
    fn an_address_waits_after_its_failures_and_others_do_not() {
        let throttle = LoginThrottle::default();
        let (guesser, other): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            assert!(throttle.check(guesser).is_ok());
            throttle.failed(guesser);
        }
        let wait = throttle.check(guesser).unwrap_err();
        assert!(wait > Duration::from_secs(290) && wait <= FAILURE_WINDOW, "{wait:?}");
        assert!(throttle.check(other).is_ok());
        throttle.succeeded(guesser);
        assert!(throttle.check(guesser).is_ok());
    }
}
