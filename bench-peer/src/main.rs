//! The `jwt-authorizer` variant of the load benchmark: the same RS256 validation
//! as `OboLayer` (signature by `kid` from the tenant's JWKS, issuer, audience,
//! `exp`, `nbf`, 60 s leeway, the `access_as_user` scope) in front of a handler
//! that takes the claims.
//!
//! ```text
//! bench-peer JWKS_URL ISSUER AUDIENCE PORT
//! ```
//! `benches/load.sh` starts it against the stand-in of `load_server idp`.

use axum::routing::get;
use axum::Router;
use jwt_authorizer::{Authorizer, IntoLayer, JwtAuthorizer, JwtClaims, Validation};
use serde::Deserialize;

/// The claims a handler needs, as a `jwt-authorizer` user would declare them.
#[derive(Clone, Debug, Deserialize)]
struct EntraClaims {
    oid: String,
    #[allow(dead_code)]
    tid: String,
    #[serde(default)]
    scp: Option<String>,
}

async fn handler(JwtClaims(caller): JwtClaims<EntraClaims>) -> &'static str {
    if caller.oid.is_empty() {
        "?"
    } else {
        "ok"
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [jwks_url, issuer, audience, port] = args.as_slice() else {
        eprintln!("usage: bench-peer JWKS_URL ISSUER AUDIENCE PORT");
        std::process::exit(2);
    };
    let port: u16 = port.parse().expect("PORT is a number");
    let validation = Validation::new()
        .iss(&[issuer])
        .aud(&[audience])
        .nbf(true)
        .leeway(60);
    let auth: Authorizer<EntraClaims> = JwtAuthorizer::from_jwks_url(jwks_url)
        .validation(validation)
        .check(|c: &EntraClaims| {
            c.scp
                .as_deref()
                .is_some_and(|s| s.split(' ').any(|s| s == "access_as_user"))
        })
        .build()
        .await
        .expect("a jwt-authorizer for the stand-in's JWKS");
    let app = Router::new()
        .route("/", get(handler))
        .layer(auth.into_layer());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("binding the port");
    println!("bench-peer listening on 127.0.0.1:{port}");
    axum::serve(listener, app).await.expect("serving");
}
