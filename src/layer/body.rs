//! [`OboBody`]: the response body of [`OboService`](super::OboService), either the
//! wrapped service's own body, untouched, or the body of a refusal.
//!
//! Being generic over the inner body is what lets the layer sit in front of an
//! axum router (`axum::body::Body`), a tonic server (`tonic::body::Body`) or any
//! other tower service answering `http::Response<B>`. An admitted request's body
//! is moved in as it is, not boxed; its frames, errors, `size_hint` and
//! `is_end_stream` are the inner body's. A refusal's body is one chunk of bytes
//! (the JSON of an HTTP refusal), or nothing at all (a gRPC Trailers-Only answer),
//! and never fails, so the error type is the inner body's.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The response body of [`OboService`](super::OboService): the inner service's
    /// body for an admitted request, moved in as it is (frames, errors, `size_hint`
    /// and `is_end_stream` are its own), or a refusal's: the JSON of an HTTP
    /// refusal in one frame, or no frame at all for a gRPC Trailers-Only answer.
    /// A refusal's body never fails, so the error type is the inner body's.
    pub struct OboBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Rejection { data: Option<Bytes> },
    }
}

impl<B> OboBody<B> {
    /// The inner service's body, as it is.
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A refusal's body: `data` in one frame, or no frame at all when it is empty.
    pub(crate) fn rejection(data: Bytes) -> Self {
        let data = (!data.is_empty()).then_some(data);
        Self {
            kind: Kind::Rejection { data },
        }
    }

    /// Whether this is a refusal's body rather than the inner service's.
    pub fn is_rejection(&self) -> bool {
        matches!(self.kind, Kind::Rejection { .. })
    }
}

impl<B> Body for OboBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

impl<B> fmt::Debug for OboBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Rejection { .. } => "rejection",
        };
        f.debug_struct("OboBody").field("kind", &kind).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::future::poll_fn;

    /// A body of two frames whose size is known, to see each property passed through.
    struct Two(Vec<Bytes>);

    impl Body for Two {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready((!self.0.is_empty()).then(|| Ok(Frame::data(self.0.remove(0)))))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.0.iter().map(|b| b.len() as u64).sum())
        }
    }

    async fn frames<B: Body<Data = Bytes> + Unpin>(mut body: B) -> Vec<Bytes>
    where
        B::Error: fmt::Debug,
    {
        let mut out = Vec::new();
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            out.push(frame.unwrap().into_data().unwrap());
        }
        out
    }

    #[tokio::test]
    async fn the_inner_body_passes_through() {
        let body = OboBody::inner(Two(vec![Bytes::from("ab"), Bytes::from("cde")]));
        assert!(!body.is_rejection());
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(frames(body).await, ["ab", "cde"]);
        assert!(OboBody::inner(Two(vec![])).is_end_stream());
    }

    #[tokio::test]
    async fn a_rejection_is_one_frame_or_none() {
        let body = OboBody::<Two>::rejection(Bytes::from("{\"error\":1}"));
        assert!(body.is_rejection());
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(11));
        assert_eq!(frames(body).await, ["{\"error\":1}"]);

        // gRPC Trailers-Only: a header-only answer, ended before any frame.
        let empty = OboBody::<Two>::rejection(Bytes::new());
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
        assert!(frames(empty).await.is_empty());
        assert_eq!(
            format!("{:?}", OboBody::<Two>::rejection(Bytes::new())),
            "OboBody { kind: \"rejection\" }"
        );
    }
}
