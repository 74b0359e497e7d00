//! Who a mutual-TLS client proved to be: the subject of its certificate (as `C=US, O=Example, CN=hsm-01`) and its DNS
//! names (subject alternative names), read from the certificate rustls has already verified. Events from the
//! connection carry them (`tls.client.subject`, `tls.client.x509.alternative_names`); with `bind_host`, an event whose
//! `host.name` is none of the certificate's names is marked (`tls.client.host_mismatch`), so that one appliance's key
//! cannot speak for another unseen.

use tokio_rustls::rustls::pki_types::CertificateDer;

/// A verified client certificate's names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The subject, attribute by attribute in certificate order.
    pub subject: String,
    /// The subject's common names and DNS subject alternative names: what `host.name` may be.
    pub names: Vec<String>,
    /// The DNS subject alternative names alone.
    pub alternative_names: Vec<String>,
    /// Whether `host.name` must be one of `names`.
    pub bind_host: bool,
}

impl ClientIdentity {
    /// The identity in a certificate; `None` when it cannot be read (rustls verified it, so this is not expected).
    pub fn of(certificate: &CertificateDer<'_>, bind_host: bool) -> Option<ClientIdentity> {
        let certificate = webpki::EndEntityCert::try_from(certificate).ok()?;
        let attributes = name_attributes(certificate.subject())?;
        let subject = attributes.iter().map(|(kind, value)| format!("{kind}={value}")).collect::<Vec<_>>().join(", ");
        let alternative_names: Vec<String> = certificate.valid_dns_names().map(str::to_owned).collect();
        let names = attributes
            .iter()
            .filter(|(kind, _)| kind == "CN")
            .map(|(_, value)| value.clone())
            .chain(alternative_names.iter().cloned())
            .collect();
        Some(ClientIdentity { subject, names, alternative_names, bind_host })
    }

    /// Whether `host` is one of the certificate's names (DNS names compare without case).
    pub fn vouches_for(&self, host: &str) -> bool {
        self.names.iter().any(|name| name.eq_ignore_ascii_case(host))
    }
}

/// One DER element: its tag, its contents and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let length = rest[..octets].iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
        (length, &rest[octets..])
    };
    (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
}

const SET: u8 = 0x31;
const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;

/// The attributes of an X.501 Name (the contents of its SEQUENCE), as (short name or dotted OID, text).
fn name_attributes(mut name: &[u8]) -> Option<Vec<(String, String)>> {
    let mut attributes = Vec::new();
    while !name.is_empty() {
        let (tag, mut set, rest) = element(name)?;
        name = rest;
        if tag != SET {
            return None;
        }
        while !set.is_empty() {
            let (tag, pair, rest) = element(set)?;
            set = rest;
            if tag != SEQUENCE {
                return None;
            }
            let (tag, oid, value) = element(pair)?;
            let (value_tag, value, _) = element(value)?;
            if tag != OID {
                return None;
            }
            attributes.push((attribute_name(oid), text(value_tag, value)));
        }
    }
    Some(attributes)
}

/// The short name of an attribute type (RFC 4514's, and OpenSSL's for the others), else its dotted OID.
fn attribute_name(oid: &[u8]) -> String {
    let known: &[(&[u8], &str)] = &[
        (&[0x55, 0x04, 0x03], "CN"),
        (&[0x55, 0x04, 0x05], "serialNumber"),
        (&[0x55, 0x04, 0x06], "C"),
        (&[0x55, 0x04, 0x07], "L"),
        (&[0x55, 0x04, 0x08], "ST"),
        (&[0x55, 0x04, 0x0a], "O"),
        (&[0x55, 0x04, 0x0b], "OU"),
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01], "emailAddress"),
        (&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19], "DC"),
    ];
    if let Some((_, name)) = known.iter().find(|(bytes, _)| *bytes == oid) {
        return (*name).to_owned();
    }
    dotted(oid)
}

/// An OID's dotted form.
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value = 0u64;
    for &byte in oid {
        value = value.saturating_mul(128).saturating_add(u64::from(byte & 0x7f));
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.extend([first, value - first * 40]);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// An attribute value as text: UTF-8 and the ASCII string types as they are, BMPString from UTF-16, anything else
/// in hex (`#…`, as RFC 4514 writes values it cannot show).
fn text(tag: u8, value: &[u8]) -> String {
    const UTF8: u8 = 0x0c;
    const PRINTABLE: u8 = 0x13;
    const TELETEX: u8 = 0x14;
    const IA5: u8 = 0x16;
    const BMP: u8 = 0x1e;
    match tag {
        UTF8 | PRINTABLE | TELETEX | IA5 => String::from_utf8_lossy(value).into_owned(),
        BMP => {
            let units: Vec<u16> = value.chunks_exact(2).map(|pair| u16::from_be_bytes([pair[0], pair[1]])).collect();
            String::from_utf16_lossy(&units)
        }
        _ => format!("#{}", value.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_gives_its_subject_and_names() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["hsm-01.example".to_owned(), "hsm-01".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CountryName, "DE");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Example GmbH");
        params.distinguished_name.push(rcgen::DnType::CommonName, "hsm-01");
        let certificate = params.self_signed(&key).unwrap();
        let identity = ClientIdentity::of(certificate.der(), true).unwrap();
        assert_eq!(identity.subject, "C=DE, O=Example GmbH, CN=hsm-01");
        assert_eq!(identity.alternative_names, ["hsm-01.example", "hsm-01"]);
        assert!(identity.vouches_for("HSM-01") && identity.vouches_for("hsm-01.example"));
        assert!(!identity.vouches_for("hsm-02"));
    }

    #[test]
    fn malformed_names_are_refused_and_oids_print_dotted() {
        assert_eq!(name_attributes(&[0x31, 0x05, 0x30]), None, "a length past the end");
        assert_eq!(name_attributes(&[0x30, 0x00]), None, "not a SET");
        assert_eq!(dotted(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37]), "1.3.6.1.4.1.311");
        assert_eq!(text(0x04, &[0xde, 0xad]), "#dead");
        assert_eq!(text(0x1e, &[0x00, 0x68, 0x00, 0x69]), "hi");
    }
}
