//! Who may send, and how many connections each may hold: decided on the peer address alone, before any byte is
//! parsed. Syslog over UDP is trivially spoofable and a forged line can raise or hide alerts, so a listener can be
//! limited to the HSMs' networks; a flood of connections from one address, or from one network (an IPv4 /24, an IPv6
//! /64: addresses an attacker can pick among), cannot take every slot.

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
    /// This address's network (IPv4 /24, IPv6 /64) holds its maximum of connections.
    NetFull,
}

/// The allowlist and connection limits of one listener, with its open connections (owned by its accept loop).
#[derive(Debug, Clone, Default)]
pub struct Admission {
    allow: Vec<IpNet>,
    max_connections: usize,
    max_per_peer: usize,
    max_per_net: usize,
    open: HashMap<IpAddr, usize>,
    open_per_net: HashMap<IpAddr, usize>,
    total: usize,
}

/// The network an address counts against: its IPv4 /24 or IPv6 /64, as an address with the host part zeroed.
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xffff_ff00).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
    }
}

/// An IPv4 peer seen on a dual-stack socket arrives as `::ffff:a.b.c.d`; the allowlist speaks of `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Admission {
    /// An allowlist (empty: every address) and limits per listener, per address and per network (0: none).
    pub fn new(allow: Vec<IpNet>, max_connections: usize, max_per_peer: usize, max_per_net: usize) -> Self {
        Admission { allow, max_connections, max_per_peer, max_per_net, ..Admission::default() }
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
        let held = self.open.get(&ip).copied().unwrap_or(0);
        if self.max_per_peer > 0 && held >= self.max_per_peer {
            return Verdict::PeerFull;
        }
        let held_by_net = self.open_per_net.get(&network(ip)).copied().unwrap_or(0);
        if self.max_per_net > 0 && held_by_net >= self.max_per_net {
            return Verdict::NetFull;
        }
        if self.is_full() {
            return Verdict::ListenerFull;
        }
        *self.open.entry(ip).or_default() += 1;
        *self.open_per_net.entry(network(ip)).or_default() += 1;
        self.total += 1;
        Verdict::Admit
    }

    /// Whether the listener holds its maximum of connections.
    pub fn is_full(&self) -> bool {
        self.max_connections > 0 && self.total >= self.max_connections
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
            if let Some(held) = self.open_per_net.get_mut(&network(ip)) {
                *held -= 1;
                if *held == 0 {
                    self.open_per_net.remove(&network(ip));
                }
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
        let admission = Admission::new(vec!["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()], 0, 0, 0);
        assert!(admission.permits(ip("10.1.2.3")));
        assert!(admission.permits(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6 is its IPv4 address");
        assert!(admission.permits(ip("2001:db8::1")));
        assert!(!admission.permits(ip("192.0.2.1")));
        assert!(Admission::default().permits(ip("192.0.2.1")), "no allowlist: everyone");
    }

    #[test]
    fn limits_per_listener_and_per_peer() {
        let mut admission = Admission::new(Vec::new(), 3, 2, 0);
        assert_eq!(admission.admit(ip("10.0.0.1")), Verdict::Admit);
        assert_eq!(admission.admit(ip("10.0.0.1")), Verdict::Admit);
        assert_eq!(admission.admit(ip("10.0.0.1")), Verdict::PeerFull);
        assert_eq!(admission.admit(ip("10.0.0.2")), Verdict::Admit);
        assert_eq!(admission.admit(ip("10.0.0.3")), Verdict::ListenerFull);
        assert!(admission.is_full());
        admission.release(ip("10.0.0.1"));
        assert_eq!(admission.admit(ip("10.0.0.3")), Verdict::Admit);
        admission.release(ip("192.0.2.9"));
        assert_eq!(admission.total, 3, "releasing an unknown peer changes nothing");
    }

    #[test]
    fn limits_per_network_count_ipv4_slash_24_and_ipv6_slash_64() {
        let mut admission = Admission::new(Vec::new(), 0, 0, 2);
        assert_eq!(admission.admit(ip("10.0.0.1")), Verdict::Admit);
        assert_eq!(admission.admit(ip("10.0.0.200")), Verdict::Admit);
        assert_eq!(admission.admit(ip("10.0.0.3")), Verdict::NetFull);
        assert_eq!(admission.admit(ip("::ffff:10.0.0.4")), Verdict::NetFull, "mapped IPv4 counts as IPv4");
        assert_eq!(admission.admit(ip("10.0.1.3")), Verdict::Admit, "the next /24 is another network");
        assert_eq!(admission.admit(ip("2001:db8::1")), Verdict::Admit);
        assert_eq!(admission.admit(ip("2001:db8::ffff:1")), Verdict::Admit);
        assert_eq!(admission.admit(ip("2001:db8::2:0:0:1")), Verdict::NetFull);
        assert_eq!(admission.admit(ip("2001:db8:0:1::1")), Verdict::Admit, "the next /64 is another network");
        admission.release(ip("10.0.0.200"));
        assert_eq!(admission.admit(ip("10.0.0.3")), Verdict::Admit);
        assert!(!admission.is_full(), "no listener limit");
    }
}
