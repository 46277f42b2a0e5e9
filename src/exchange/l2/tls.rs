//! TLS to Redis (`rediss://`): the server is verified against the system's
//! trust store, or against the certificates of a private CA
//! (`OBO_REDIS_CA_FILE`) read once at start-up.
//!
//! The `redis` crate's rustls uses the process-wide crypto provider, the same
//! aws-lc-rs as every other TLS client of the crate (no second backend).
//!
//! # How it fails
//!
//! A CA file that is missing, unreadable or holds no certificate is a start-up
//! error ([`RedisCa::load`]). A server whose certificate does not chain to the
//! trusted roots (or does not name the host) is refused at connect: every call
//! of that connection fails, which the L2 logs once and answers as a miss.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

/// The PEM certificates of a private CA, trusted instead of the system roots.
#[derive(Clone)]
pub(crate) struct RedisCa {
    pem: Arc<[u8]>,
    certificates: usize,
}

impl fmt::Debug for RedisCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCa")
            .field("certificates", &self.certificates)
            .finish()
    }
}

impl RedisCa {
    /// Reads and checks the PEM file at `path`; the reason of a refusal.
    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_pem(&pem).map_err(|reason| format!("{}: {reason}", path.display()))
    }

    /// Checks PEM text: at least one certificate, and every certificate usable
    /// as a root (parsed as the client's root store will parse it).
    pub(crate) fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let mut certificates = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            cert.map_err(|e| format!("is not PEM: {e}"))?;
            certificates += 1;
        }
        if certificates == 0 {
            return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
        }
        let ca = Self {
            pem: pem.into(),
            certificates,
        };
        // The client builds its root store here (nothing connects).
        let probe = redis::IntoConnectionInfo::into_connection_info("rediss://localhost")
            .map_err(|e| e.to_string())?;
        client(probe, Some(&ca)).map_err(|e| format!("is not a usable CA certificate: {e}"))?;
        Ok(ca)
    }

    /// The roots as the `redis` crate takes them.
    pub(crate) fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(self.pem.to_vec()),
        }
    }
}

/// The client of `info`: with `ca` (a `rediss://` URL), trusting only it.
pub(crate) fn client(
    info: redis::ConnectionInfo,
    ca: Option<&RedisCa>,
) -> redis::RedisResult<redis::Client> {
    match ca {
        Some(ca) => redis::Client::build_with_tls(info, ca.certificates()),
        None => redis::Client::open(info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn a_ca_file_needs_at_least_one_usable_certificate() {
        let one = ca_pem();
        assert_eq!(RedisCa::from_pem(one.as_bytes()).unwrap().certificates, 1);
        let two = format!("{one}\n{}", ca_pem());
        assert_eq!(RedisCa::from_pem(two.as_bytes()).unwrap().certificates, 2);
        for (pem, why) in [
            ("", "no PEM certificate"),
            ("not a certificate at all", "no PEM certificate"),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "no PEM certificate",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not a usable CA certificate",
            ),
            (
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                "not PEM",
            ),
        ] {
            let e = RedisCa::from_pem(pem.as_bytes()).unwrap_err();
            assert!(e.contains(why), "{pem:?}: {e}");
        }
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let e = RedisCa::load(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn a_ca_needs_a_rediss_url() {
        let ca = RedisCa::from_pem(ca_pem().as_bytes()).unwrap();
        let tls = redis::IntoConnectionInfo::into_connection_info("rediss://127.0.0.1:1").unwrap();
        assert!(client(tls, Some(&ca)).is_ok());
        let plain = redis::IntoConnectionInfo::into_connection_info("redis://127.0.0.1:1").unwrap();
        assert!(client(plain, Some(&ca)).is_err());
    }
}
