//! [`GraphStandIn`], the handle to a running Graph stand-in: start, where it listens, the
//! data knobs, fault injection and observation.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;

use super::auth::KeySet;
use super::cae::Revocations;
use super::data;
use super::faults::{Faults, GraphFault};
use super::server::{handle, lock, Shared, DEFAULT_COLLECTION_SIZE};
use crate::record::RequestRecord;

/// Handle to a running Microsoft Graph stand-in on `127.0.0.1`; see the
/// [module docs](super) for what it serves and demands.
///
/// Cheap to clone (an `Arc` inside). The server stops when the last handle is dropped or
/// its Tokio runtime shuts down. Query it with an async client (or from another thread),
/// never with a blocking client on the same current-thread runtime.
#[derive(Clone)]
pub struct GraphStandIn {
    shared: Arc<Shared>,
    /// Dropping the last clone of the sender stops the server.
    _shutdown: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl fmt::Debug for GraphStandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphStandIn")
            .field("url", &self.shared.url)
            .field("jwks_url", &self.shared.keys.jwks_url())
            .finish_non_exhaustive()
    }
}

impl GraphStandIn {
    /// Binds `127.0.0.1:0` and starts serving on the current Tokio runtime; tokens are
    /// checked against the key set at `jwks_url` (fetched on first use), e.g.
    /// [`EntraStandIn::jwks_url`](crate::EntraStandIn::jwks_url).
    ///
    /// # Panics
    /// If the loopback socket cannot be bound.
    pub async fn start(jwks_url: &str) -> GraphStandIn {
        let (listener, addr) = crate::serve::bind_loopback("Graph stand-in").await;
        let shared = Arc::new(Shared {
            addr,
            url: format!("http://{addr}"),
            keys: KeySet::new(jwks_url),
            faults: Mutex::new(Faults::default()),
            requests: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            collection_size: AtomicUsize::new(DEFAULT_COLLECTION_SIZE),
            revocations: Revocations::default(),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let shutdown = crate::serve::spawn(listener, addr, app, "Graph stand-in");
        GraphStandIn {
            shared,
            _shutdown: shutdown,
        }
    }

    /// `http://127.0.0.1:PORT`, the stand-in's Graph URL (the v1.0 base is `{url}/v1.0`).
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// The socket address the stand-in listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Sets how many items `/users` and `/me/messages` hold (default 45).
    pub fn set_collection_size(&self, items: usize) {
        self.shared.collection_size.store(items, Ordering::SeqCst);
    }

    /// The id of the `index`-th user of `/users`.
    pub fn user_id(&self, index: usize) -> String {
        data::user_id(index)
    }

    /// Answers the next `times` requests (`None`: every one until
    /// [`clear_faults`](Self::clear_faults)) with `fault`, before the token is looked at
    /// ([`GraphFault::BatchItemTooManyRequests`]: the next `times` `$batch` items). Faults
    /// injected while others are pending queue up behind them.
    pub fn inject_fault(&self, fault: GraphFault, times: Option<usize>) {
        lock(&self.shared.faults).inject(fault, times);
    }

    /// Removes every pending injected fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Requests received (batch items not counted separately), failed ones included.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Every request so far, in the order answered.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    /// A critical event for user `oid` now (sessions revoked, account disabled): until its
    /// tokens are renewed, those issued before now (`iat` earlier) that carry `xms_cc:
    /// ["cp1"]` get `401` with a Continuous Access Evaluation claims challenge asking for
    /// `nbf` at or after the returned time (Unix seconds); tokens without `cp1` keep working
    /// until they expire, as at Graph.
    pub fn revoke_session(&self, oid: &str) -> i64 {
        let now = crate::ids::unix_seconds(std::time::SystemTime::now());
        self.shared.revocations.revoke(oid, now);
        now
    }

    /// Key-set fetches the stand-in made so far (it fetches on first use and for an unknown
    /// `kid`).
    pub fn jwks_fetches(&self) -> usize {
        self.shared.keys.fetches()
    }
}
