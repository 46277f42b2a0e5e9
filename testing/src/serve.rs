//! Starting a stand-in's HTTP server on loopback, and stopping it with its last handle.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Binds `127.0.0.1:0` for the stand-in called `what`.
///
/// # Panics
/// If the loopback socket cannot be bound.
pub(crate) async fn bind_loopback(what: &str) -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap_or_else(|e| panic!("binding 127.0.0.1:0 for the {what}: {e}"));
    let addr = listener
        .local_addr()
        .expect("a bound listener has a local address");
    (listener, addr)
}

/// Serves `app` on `listener` in the background until the returned sender (kept in every
/// handle of the stand-in) is dropped.
pub(crate) fn spawn(
    listener: TcpListener,
    addr: SocketAddr,
    app: Router,
    what: &'static str,
) -> Arc<oneshot::Sender<()>> {
    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // An error means the last handle was dropped: stop too.
                let _ = stopped.await;
            })
            .await;
        if let Err(error) = result {
            tracing::warn!(%addr, %error, "{what} server failed");
        }
    });
    tracing::debug!(%addr, "{what} started");
    Arc::new(shutdown)
}
