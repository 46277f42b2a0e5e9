//! Refusals in the app's own shape: the hook set with
//! [`OboLayer::render_refusals_with`](crate::OboLayer::render_refusals_with).
//!
//! # Where it sits
//!
//! The layer renders its own refusals (no token, a bad token, the layer-wide
//! policy, an admission hook's refusal) with the hook. The extractors'
//! rejections (and any [`AuthRejection`] a handler returns) are answered by the
//! handler inside the layer: [`AuthRejection`]'s `IntoResponse` marks its
//! answer with a [`Refused`] extension carrying the rejection, and the layer,
//! when a hook is set, answers that response again with the hook. A response an
//! app built itself (its own error type) carries no mark and is left alone.
//!
//! # What it guarantees
//!
//! The hook chooses the body and its headers; the status code, the
//! `WWW-Authenticate` challenge and `Retry-After` are always the crate's
//! (whatever the hook set is replaced, so a hook cannot drop or alter the
//! challenge a client needs to sign in again), and `Cache-Control: no-store` is
//! added unless the hook set its own `Cache-Control`. gRPC requests keep their
//! gRPC answers (`grpc-status`), hook or not.
//!
//! # How it fails
//!
//! The hook's body must be in memory (JSON, text, bytes: anything whose first
//! poll yields all of it). A body that is not (a stream) is logged at error
//! level and the crate's own JSON body is sent instead.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, RETRY_AFTER, WWW_AUTHENTICATE};
use http_body::Body as _;

use super::AuthRejection;

/// The rejection behind a response built by [`AuthRejection`]'s `IntoResponse`
/// (in the response's extensions), for the layer to render again with the hook.
#[derive(Clone)]
pub(crate) struct Refused(pub(crate) Arc<AuthRejection>);

/// The app's rendering of refusals (see the module docs).
#[derive(Clone)]
pub(crate) struct Renderer(Arc<dyn Fn(&AuthRejection) -> Response + Send + Sync>);

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Renderer")
    }
}

impl Renderer {
    pub(crate) fn new(render: impl Fn(&AuthRejection) -> Response + Send + Sync + 'static) -> Self {
        Self(Arc::new(render))
    }

    /// The hook's answer to `rejection`, with the crate's status, challenge and
    /// `Retry-After`; the crate's own answer if the hook's body is not in memory.
    pub(crate) fn render(&self, rejection: &AuthRejection) -> http::Response<Bytes> {
        let (mut parts, body) = (self.0)(rejection).into_parts();
        let Some(body) = in_memory(body) else {
            tracing::error!(
                "the refusal renderer answered a streaming body; sent the crate's JSON instead"
            );
            return rejection.http_response();
        };
        parts.status = rejection.status();
        // Ours only, whatever the hook set: a removed or altered challenge would
        // leave the client unable to sign in again.
        parts.headers.remove(WWW_AUTHENTICATE);
        parts.headers.remove(RETRY_AFTER);
        for (name, value) in &rejection.headers() {
            if name != CACHE_CONTROL || !parts.headers.contains_key(CACHE_CONTROL) {
                parts.headers.insert(name, value.clone());
            }
        }
        // Extensions (e.g. the `Refused` mark of a rejection the hook built) stay
        // out: the answer is final.
        parts.extensions.clear();
        http::Response::from_parts(parts, body)
    }
}

/// All of `body` if its frames are ready at once (a full body), else `None`.
fn in_memory(mut body: axum::body::Body) -> Option<Bytes> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = BytesMut::new();
    loop {
        match std::pin::Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Poll::Ready(None) => return Some(out.freeze()),
            Poll::Ready(Some(Err(_))) | Poll::Pending => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Refusal;
    use axum::response::IntoResponse;

    #[test]
    fn the_hooks_body_with_the_crates_status_challenge_and_retry_after() {
        let renderer = Renderer::new(|r| {
            let mut response =
                (http::StatusCode::IM_A_TEAPOT, r.error_code().to_owned()).into_response();
            response
                .headers_mut()
                .insert(CACHE_CONTROL, "private".parse().unwrap());
            response
        });
        let rejection = AuthRejection::NotAdmitted(Refusal::unavailable("db down"));
        let r = renderer.render(&rejection);
        assert_eq!(r.status(), 503);
        assert_eq!(r.body(), "temporarily_unavailable");
        assert_eq!(r.headers()[RETRY_AFTER], "5");
        assert_eq!(
            r.headers()[CACHE_CONTROL],
            "private",
            "the hook's own Cache-Control"
        );
        assert!(r.headers().get(WWW_AUTHENTICATE).is_none());

        let plain = Renderer::new(|_| "refused".into_response());
        let r = plain.render(&AuthRejection::NotAdmitted(Refusal::forbidden("no plan")));
        assert_eq!(
            (r.status().as_u16(), r.body().as_ref()),
            (403, b"refused".as_slice())
        );
        assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
        let challenge = r.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert!(challenge.contains("no plan"), "{challenge}");
    }

    #[test]
    fn a_streaming_body_falls_back_to_the_crates_answer() {
        let renderer = Renderer::new(|_| {
            let stream = futures_util::stream::pending::<Result<Bytes, std::io::Error>>();
            axum::body::Body::from_stream(stream).into_response()
        });
        let r = renderer.render(&AuthRejection::MissingToken);
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["error"], "unauthorized");
    }

    #[test]
    fn a_rejections_answer_carries_it_for_the_layer() {
        let r = AuthRejection::MissingToken.into_response();
        let Refused(carried) = r.extensions().get::<Refused>().expect("marked");
        assert!(matches!(**carried, AuthRejection::MissingToken));
    }
}
