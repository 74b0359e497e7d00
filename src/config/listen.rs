//! Where syslog is received: the UDP, TCP and TLS listeners, and the zone in which their senders write times that
//! carry no offset.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

use super::units::{self, ByteSize};
use super::DEFAULT_SYSLOG_ADDRESS;

/// Syslog listeners.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// UDP sockets: one datagram is one message.
    #[serde(default)]
    pub udp: Vec<UdpListenerConfig>,
    /// TCP sockets: RFC 6587 octet counting or LF/CRLF/NUL framing, detected per frame.
    #[serde(default)]
    pub tcp: Vec<TcpListenerConfig>,
    /// TLS sockets (RFC 5425): the TCP framing inside TLS 1.2 or 1.3.
    #[serde(default)]
    pub tls: Vec<TlsListenerConfig>,
    /// The zone of senders by network, over their listener's `timezone`; the most specific network wins.
    #[serde(default)]
    pub timezones: Vec<NetworkZone>,
    /// SNMP traps and informs from appliances (off unless given).
    #[serde(default)]
    pub snmp_traps: Option<super::snmp::TrapsConfig>,
}

/// The zone in which the senders of one network write times without an offset.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkZone {
    /// The senders: a network (`10.20.0.0/16`) or one address.
    #[serde(with = "units::network")]
    pub network: ipnet::IpNet,
    /// Their zone, an IANA name (`Europe/Berlin`).
    #[serde(with = "units::zone")]
    pub timezone: Tz,
}

/// One TLS listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListenerConfig {
    /// Address and port to bind (6514 is the registered syslog-over-TLS port).
    pub address: SocketAddr,
    /// Longest frame kept, as for TCP.
    #[serde(default = "default_max_frame")]
    pub max_frame: ByteSize,
    /// The server certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM).
    pub key_file: PathBuf,
    /// Client certificates must chain to these CAs (PEM); unset: no client certificate is asked for.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Certificate revocation lists (PEM) of those CAs: a revoked client certificate is refused. Needs
    /// `client_ca_file`; read again on reload.
    #[serde(default)]
    pub crl_file: Option<PathBuf>,
    /// An event's `host.name` must be one of its client certificate's names (common name or DNS name); one that is
    /// not is stored marked `tls.client.host_mismatch`. Needs `client_ca_file`.
    #[serde(default)]
    pub bind_host: bool,
    /// Only these networks may connect (empty: any); other connections are closed unread and counted.
    #[serde(default, with = "units::networks")]
    pub allow: Vec<ipnet::IpNet>,
    /// Connections open at once on this listener (0: no limit).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections open at once from one address (0: no limit).
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Connections open at once from one network, an IPv4 /24 or an IPv6 /64 (0: no limit).
    #[serde(default = "default_max_connections_per_net")]
    pub max_connections_per_net: usize,
    /// A connection that sends nothing for this long is closed (null: never).
    #[serde(default = "default_idle_timeout", with = "units::optional_duration")]
    pub idle_timeout: Option<Duration>,
    /// A connection whose line is not complete this long after it began is closed, the part received stored and
    /// marked (null: never).
    #[serde(default = "default_line_timeout", with = "units::optional_duration")]
    pub line_timeout: Option<Duration>,
    /// The zone in which this listener's senders write times without an offset (RFC 3164, the Luna file layout): an
    /// IANA name such as `Europe/Berlin`. Times with an offset (RFC 5424) are read as written.
    #[serde(default = "default_zone", with = "units::zone")]
    pub timezone: Tz,
}

/// One UDP listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpListenerConfig {
    /// Address and port to bind.
    pub address: SocketAddr,
    /// Kernel receive buffer to ask for; the kernel may grant less (`net.core.rmem_max`).
    #[serde(default = "default_udp_recv_buffer")]
    pub recv_buffer: ByteSize,
    /// Longest datagram kept; longer ones are truncated and marked.
    #[serde(default = "default_max_frame")]
    pub max_frame: ByteSize,
    /// Only these networks may send (empty: any); other datagrams are dropped unread and counted.
    #[serde(default, with = "units::networks")]
    pub allow: Vec<ipnet::IpNet>,
    /// The zone in which this listener's senders write times without an offset (RFC 3164, the Luna file layout): an
    /// IANA name such as `Europe/Berlin`. Times with an offset (RFC 5424) are read as written.
    #[serde(default = "default_zone", with = "units::zone")]
    pub timezone: Tz,
}

/// One TCP listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpListenerConfig {
    /// Address and port to bind.
    pub address: SocketAddr,
    /// Longest frame kept: a longer LF-framed line is truncated and marked; a larger octet count closes the
    /// connection.
    #[serde(default = "default_max_frame")]
    pub max_frame: ByteSize,
    /// Only these networks may connect (empty: any); other connections are closed unread and counted.
    #[serde(default, with = "units::networks")]
    pub allow: Vec<ipnet::IpNet>,
    /// Connections open at once on this listener (0: no limit).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections open at once from one address (0: no limit).
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Connections open at once from one network, an IPv4 /24 or an IPv6 /64 (0: no limit).
    #[serde(default = "default_max_connections_per_net")]
    pub max_connections_per_net: usize,
    /// A connection that sends nothing for this long is closed (null: never).
    #[serde(default = "default_idle_timeout", with = "units::optional_duration")]
    pub idle_timeout: Option<Duration>,
    /// A connection whose line is not complete this long after it began is closed, the part received stored and
    /// marked (null: never).
    #[serde(default = "default_line_timeout", with = "units::optional_duration")]
    pub line_timeout: Option<Duration>,
    /// The zone in which this listener's senders write times without an offset (RFC 3164, the Luna file layout): an
    /// IANA name such as `Europe/Berlin`. Times with an offset (RFC 5424) are read as written.
    #[serde(default = "default_zone", with = "units::zone")]
    pub timezone: Tz,
}

fn default_max_connections() -> usize {
    4096
}
fn default_max_connections_per_ip() -> usize {
    64
}
fn default_max_connections_per_net() -> usize {
    256
}
fn default_idle_timeout() -> Option<Duration> {
    Some(Duration::from_secs(3600))
}
fn default_line_timeout() -> Option<Duration> {
    Some(Duration::from_secs(30))
}
fn default_zone() -> Tz {
    Tz::UTC
}
fn default_udp_recv_buffer() -> ByteSize {
    ByteSize(8 * 1024 * 1024)
}
fn default_max_frame() -> ByteSize {
    ByteSize(crate::frame::DEFAULT_MAX_FRAME as u64)
}

impl UdpListenerConfig {
    /// A listener on `address` with every other setting at its default.
    pub fn on(address: SocketAddr) -> Self {
        UdpListenerConfig {
            address,
            recv_buffer: default_udp_recv_buffer(),
            max_frame: default_max_frame(),
            allow: Vec::new(),
            timezone: default_zone(),
        }
    }
}

impl TcpListenerConfig {
    /// A listener on `address` with every other setting at its default.
    pub fn on(address: SocketAddr) -> Self {
        TcpListenerConfig {
            address,
            max_frame: default_max_frame(),
            allow: Vec::new(),
            max_connections: default_max_connections(),
            max_connections_per_ip: default_max_connections_per_ip(),
            max_connections_per_net: default_max_connections_per_net(),
            idle_timeout: default_idle_timeout(),
            line_timeout: default_line_timeout(),
            timezone: default_zone(),
        }
    }
}

impl Default for ListenConfig {
    fn default() -> Self {
        let address: SocketAddr = DEFAULT_SYSLOG_ADDRESS.parse().expect("the default address is a valid literal");
        ListenConfig {
            udp: vec![UdpListenerConfig::on(address)],
            tcp: vec![TcpListenerConfig::on(address)],
            tls: Vec::new(),
            timezones: Vec::new(),
            snmp_traps: None,
        }
    }
}
