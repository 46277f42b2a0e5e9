//! Just enough X.509 for client certificates: PEM to DER, the `SubjectPublicKeyInfo` inside,
//! and the SHA-1 / SHA-256 thumbprints client assertions name the certificate by.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::super::ids::{sha1, sha256};

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// A certificate registered on the API's app registration ("Certificates & secrets").
#[derive(Debug, Clone)]
pub(super) struct ClientCertificate {
    /// SHA-1 of the DER certificate (`x5t`).
    pub(super) sha1: Vec<u8>,
    /// SHA-256 of the DER certificate (`x5t#S256`).
    pub(super) sha256: Vec<u8>,
    /// The public key, DER `SubjectPublicKeyInfo`.
    pub(super) spki: Vec<u8>,
}

impl ClientCertificate {
    /// Every certificate in `pem`, in order; `Err` names what is wrong.
    pub(super) fn from_pem(pem: &str) -> Result<Vec<ClientCertificate>, String> {
        let mut certificates = Vec::new();
        let mut rest = pem;
        while let Some(start) = rest.find(BEGIN) {
            let after = &rest[start + BEGIN.len()..];
            let end = after
                .find(END)
                .ok_or_else(|| format!("no {END:?} after {BEGIN:?}"))?;
            let body: String = after[..end]
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            let der = STANDARD
                .decode(body)
                .map_err(|e| format!("the certificate is not base64: {e}"))?;
            certificates.push(ClientCertificate::from_der(&der)?);
            rest = &after[end + END.len()..];
        }
        if certificates.is_empty() {
            return Err(format!("no {BEGIN:?} block"));
        }
        Ok(certificates)
    }

    /// A certificate from its DER encoding.
    pub(super) fn from_der(der: &[u8]) -> Result<ClientCertificate, String> {
        let spki = subject_public_key_info(der)
            .ok_or("not a DER X.509 certificate")?
            .to_vec();
        Ok(ClientCertificate {
            sha1: sha1(der),
            sha256: sha256(der),
            spki,
        })
    }
}

/// One DER element at the start of some input.
struct Element<'a> {
    tag: u8,
    /// The value, without tag and length.
    content: &'a [u8],
    /// Tag, length and value.
    whole: &'a [u8],
    /// The input after this element.
    rest: &'a [u8],
}

fn element(input: &[u8]) -> Option<Element<'_>> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let bytes = input.get(2..2 + count)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + count)
    };
    let end = header.checked_add(len)?;
    let whole = input.get(..end)?;
    Some(Element {
        tag,
        content: &whole[header..],
        whole,
        rest: &input[end..],
    })
}

/// The `SubjectPublicKeyInfo` element of a DER certificate:
/// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
/// signature, issuer, validity, subject, subjectPublicKeyInfo, … }, … }`.
fn subject_public_key_info(der: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xa0;
    let certificate = element(der).filter(|e| e.tag == SEQUENCE)?;
    let tbs = element(certificate.content).filter(|e| e.tag == SEQUENCE)?;
    let mut rest = tbs.content;
    if rest.first() == Some(&VERSION) {
        rest = element(rest)?.rest;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        rest = element(rest)?.rest;
    }
    let spki = element(rest).filter(|e| e.tag == SEQUENCE)?;
    Some(spki.whole)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData as _;

    #[test]
    fn extracts_the_public_key_of_a_generated_certificate() {
        let Ok(key) = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256) else {
            panic!("rcgen (aws-lc-rs) generates RSA keys");
        };
        let params = rcgen::CertificateParams::new(vec!["client.example".to_owned()]);
        let Ok(cert) = params.and_then(|p| p.self_signed(&key)) else {
            panic!("rcgen self-signs");
        };
        let parsed = ClientCertificate::from_pem(&cert.pem());
        let Ok(parsed) = parsed else {
            panic!("parses: {parsed:?}");
        };
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].spki, key.subject_public_key_info());
        assert_eq!(parsed[0].sha1, sha1(cert.der()));
        assert!(ClientCertificate::from_pem("nothing").is_err());
        assert!(ClientCertificate::from_der(b"\x30\x03\x02\x01\x01").is_err());
    }
}
