//! The example's gRPC service, `axum_obo.example.Profile` (described for clients
//! in `profile.proto` beside this file), written by hand: prost messages with
//! `#[derive(prost::Message)]` and the few lines tonic's code generator would
//! write, so that the example builds without `protoc`.
//!
//! The handler has no axum extractors: it reads the caller and gets an
//! On-Behalf-Of token through the `OboContext` that `OboLayer` puts in the
//! request's extensions, and `?` turns every error of axum-obo into a
//! `tonic::Status` (the crate's `tonic` feature). Refusals by the layer itself
//! (no token, bad token, missing scope, keys unavailable) never reach it: the
//! layer answers a gRPC client with a Trailers-Only response.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum_obo::layer::OboContext;
use axum_obo::GraphUserRead;
use bytes::Bytes;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

/// The service's name, the first segment of its paths.
pub const SERVICE: &str = "axum_obo.example.Profile";
/// The path of the `Me` method.
pub const ME_PATH: &str = "/axum_obo.example.Profile/Me";

/// `message MeRequest {}`
#[derive(Clone, PartialEq, prost::Message)]
pub struct MeRequest {}

/// `message MeReply { string display_name = 1; string id = 2; }`: the caller's
/// Graph profile.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MeReply {
    /// The caller's Graph `displayName`.
    #[prost(string, tag = "1")]
    pub display_name: String,
    /// The caller's Graph object id (the `oid` of their token).
    #[prost(string, tag = "2")]
    pub id: String,
}

/// `rpc Me(MeRequest) returns (MeReply)`: the caller's Graph profile, fetched on
/// their behalf.
async fn me(request: Request<MeRequest>) -> Result<Response<MeReply>, Status> {
    let ctx = OboContext::from_extensions(request.extensions())?;
    let token = ctx.obo_token::<GraphUserRead>().await?;
    let me = token.graph().me().await?;
    Ok(Response::new(MeReply {
        display_name: me.display_name.unwrap_or_default(),
        id: me.id.unwrap_or_default(),
    }))
}

/// The `Profile` service as a tower service, for an axum router
/// (`route_service`) or `tonic::transport::Server::add_service`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProfileService;

impl NamedService for ProfileService {
    const NAME: &'static str = SERVICE;
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> tower::Service<http::Request<B>> for ProfileService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError> + Send,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        Box::pin(async move {
            if request.uri().path() != ME_PATH {
                return Ok(Status::unimplemented("no such method").into_http());
            }
            let codec = tonic_prost::ProstCodec::<MeReply, MeRequest>::default();
            let mut grpc = tonic::server::Grpc::new(codec);
            Ok(grpc.unary(tower::service_fn(me), request).await)
        })
    }
}
