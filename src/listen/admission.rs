//! Who may send, and how many connections each may hold: decided on the peer address alone, before any byte is
//! parsed. Syslog over UDP is trivially spoofable and a forged line can raise or hide alerts, so a listener can be
//! limited to the HSMs' networks; a flood of connections from one address cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// Whether a peer may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted; [`Admission::release`] when it closes.
    Admit,
    /// Not in the allowlist.
    NotAllowed,
    /// The listener holds its maximum of connections.
    ListenerFull,
    /// This address holds its maximum of connections.
    PeerFull,
}

/// The allowlist and connection limits of one listener, with its open connections (owned by its accept loop).
#[derive(Debug, Clone, Default)]
pub struct Admission {
    allow: Vec<IpNet>,
    max_connections: usize,
    max_per_peer: usize,
    open: HashMap<IpAddr, usize>,
    total: usize,
}

/// An IPv4 peer seen on a dual-stack socket arrives as `::ffff:a.b.c.d`; the allowlist speaks of `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Admission {
    /// An allowlist (empty: every address) and limits (0: none).
    pub fn new(allow: Vec<IpNet>, max_connections: usize, max_per_peer: usize) -> Self {
        Admission { allow, max_connections, max_per_peer, ..Admission::default() }
    }

    /// Whether the allowlist lets `ip` send at all.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&ip))
    }

    /// Decides on a new connection from `ip`, counting it when admitted.
    pub fn admit(&mut self, ip: IpAddr) -> Verdict {
        let ip = canonical(ip);
        if !self.permits(ip) {
            return Verdict::NotAllowed;
        }
        if self.max_connections > 0 && self.total >= self.max_connections {
            return Verdict::ListenerFull;
        }
        let held = self.open.entry(ip).or_default();
        if self.max_per_peer > 0 && *held >= self.max_per_peer {
            return Verdict::PeerFull;
        }
        *held += 1;
        self.total += 1;
        Verdict::Admit
    }

    /// An admitted connection from `ip` closed.
    pub fn release(&mut self, ip: IpAddr) {
        let ip = canonical(ip);
        if let Some(held) = self.open.get_mut(&ip) {
            *held -= 1;
            self.total -= 1;
            if *held == 0 {
                self.open.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_allowlist_holds_networks_of_both_families() {
        let admission = Admission::new(vec!["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()], 0, 0);
        assert!(admission.permits(ip("10.1.2.3")));
        assert!(admission.permits(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6 is its IPv4 address");
        assert!(admission.permits(ip("2001:db8::1")));
        assert!(!admission.permits(ip("192.0.2.1")));
        assert!(Admission::default().permits(ip("192.0.2.1")), "no allowlist: everyone");
    }

    #[test]
    fn limits_per_listener_and_per_peer() {
        let mut admission = Admission::new(Vec::new(), 3, 2);
        assert_eq!(admission.admit(ip("10.0.0.1")), Verdict::Admit);
        assert_eq!(admission.admit(ip("10.0.0.1")), Verdict::Admit);
        assert_eq!(admission.admit(ip("10.0.0.1")), Verdict::PeerFull);
        assert_eq!(admission.admit(ip("10.0.0.2")), Verdict::Admit);
        assert_eq!(admission.admit(ip("10.0.0.3")), Verdict::ListenerFull);
        admission.release(ip("10.0.0.1"));
        assert_eq!(admission.admit(ip("10.0.0.3")), Verdict::Admit);
        admission.release(ip("192.0.2.9"));
        assert_eq!(admission.total, 3, "releasing an unknown peer changes nothing");
    }
}
