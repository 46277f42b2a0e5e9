//! One API's sealed namespace in the L2's Redis, shared by the token L2 and the
//! session store: the connection, the sealer, and how an identity becomes a Redis key
//! and the associated data of its value.
//!
//! A Redis key is `{prefix}{infix}{hex SHA-256(domain ‖ client id ‖ id)}` (the client
//! id length-prefixed): unlinkable to the identity, holding nothing in clear. The
//! associated data is `domain ‖ format version ‖ prefix ‖ client id ‖ id` (prefix and
//! client id length-prefixed): a value moved under another identity's key, another
//! prefix or another API fails to open.

use std::fmt::Write as _;

use super::seal::{Sealer, VERSION};
use super::store::RedisStore;
use super::{EntraAuth, L2Settings, RedisOptions};

/// The Redis connection, the sealer and the naming rules of one use of the L2.
#[derive(Debug)]
pub(crate) struct SealedNamespace {
    pub(crate) store: RedisStore,
    pub(crate) sealer: Sealer,
    prefix: String,
    client_id: String,
    domain: &'static [u8],
    infix: &'static str,
}

impl SealedNamespace {
    /// `None` (logged, naming `what`) if the settings cannot be used; `build()`
    /// checked them. `auth`: the layer's Entra authentication, if configured.
    pub(crate) fn new(
        settings: &L2Settings,
        auth: Option<&EntraAuth>,
        client_id: &str,
        domain: &'static [u8],
        infix: &'static str,
        what: &str,
    ) -> Option<Self> {
        let options = RedisOptions {
            auth: auth.cloned(),
            ..settings.redis_options()
        };
        let store = RedisStore::new(&options)
            .inspect_err(|e| tracing::error!(error = %e, "{what} disabled: bad URL"))
            .ok()?;
        let sealer = Sealer::new(&settings.key, &settings.old_keys)?;
        Some(Self {
            store,
            sealer,
            prefix: settings.prefix.clone(),
            client_id: client_id.to_owned(),
            domain,
            infix,
        })
    }

    /// The Redis key of the value identified by `id`.
    pub(crate) fn redis_key(&self, id: &[u8]) -> String {
        let mut input = Vec::with_capacity(self.domain.len() + 8 + self.client_id.len() + id.len());
        input.extend_from_slice(self.domain);
        push_prefixed(&mut input, self.client_id.as_bytes());
        input.extend_from_slice(id);
        let digest = crate::digest::sha256(&input);
        let mut out = String::with_capacity(self.prefix.len() + self.infix.len() + 64);
        out.push_str(&self.prefix);
        out.push_str(self.infix);
        for b in digest {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// The associated data sealing the value identified by `id`.
    pub(crate) fn aad(&self, id: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(
            self.domain.len() + 17 + self.prefix.len() + self.client_id.len() + id.len(),
        );
        aad.extend_from_slice(self.domain);
        aad.push(VERSION);
        push_prefixed(&mut aad, self.prefix.as_bytes());
        push_prefixed(&mut aad, self.client_id.as_bytes());
        aad.extend_from_slice(id);
        aad
    }
}

/// Appends `part` with its length (8 bytes, big-endian) in front.
fn push_prefixed(buf: &mut Vec<u8>, part: &[u8]) {
    buf.extend_from_slice(&(part.len() as u64).to_be_bytes());
    buf.extend_from_slice(part);
}
