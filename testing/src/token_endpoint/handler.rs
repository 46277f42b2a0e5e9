//! `POST /{tenant}/oauth2/v2.0/token`: counting, logging and scripted faults around the
//! grants (OBO, client credentials, refresh token).

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::super::documents::Tenant;
use super::super::ids::unix_seconds;
use super::super::record::header_map;
use super::super::response::{self, Caching, EntraError, RequestIds};
use super::super::state::Shared;
use super::claims::{self, ClaimsRequest};
use super::client_auth::{authenticate, ClientAuth, Context};
use super::errors;
use super::faults::{self, mfa_claims, TokenFault};
use super::form::Form;
use super::issue::{self, Grant};
use super::refresh::{self, RefreshGrant};
use super::scopes::{self, ScopeRequest};
use super::state::TokenRequestRecord;
use super::user_assertion::{self, Subject};

/// The OBO grant type (RFC 7523 JWT bearer).
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The token endpoint handler.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let endpoint = &shared.token_endpoint;
    endpoint.count_request();
    let ids = RequestIds::from_headers(&headers);
    let form = Form::parse(&headers, &body);
    let record = |status: u16| TokenRequestRecord {
        tenant: segment.clone(),
        form: form.to_map(),
        headers: header_map(&headers),
        status,
    };
    if let Some(delay) = shared.faults.delay() {
        tokio::time::sleep(delay).await;
    }
    let oid = form
        .get("assertion")
        .and_then(user_assertion::peek_oid)
        .or_else(|| {
            form.get("refresh_token")
                .and_then(|token| endpoint.refresh_token_oid(token))
        });
    let response = match endpoint.take_fault(oid.as_deref(), form.get("scope")) {
        Some(TokenFault::Hang) => {
            endpoint.record(record(0));
            endpoint.closed().await;
            return response::html_error(StatusCode::SERVICE_UNAVAILABLE.as_u16(), &ids);
        }
        Some(TokenFault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            answer(&shared, &segment, &form, &headers, &ids)
        }
        Some(fault) => {
            let now = unix_seconds(SystemTime::now());
            let tenant = segment.to_ascii_lowercase();
            let api = &shared.api_client_id;
            faults::answer(&fault, &shared.authority, api, &tenant, now, &ids)
                .unwrap_or_else(|| answer(&shared, &segment, &form, &headers, &ids))
        }
        None => answer(&shared, &segment, &form, &headers, &ids),
    };
    endpoint.record(record(response.status().as_u16()));
    response
}

/// Validates the request and answers a token or Entra's error.
fn answer(
    shared: &Shared,
    segment: &str,
    form: &Form,
    headers: &HeaderMap,
    ids: &RequestIds,
) -> Response {
    match grant(shared, segment, form, headers) {
        Ok(body) => {
            shared.token_endpoint.count_issued();
            if let Some(token) = body.get("access_token").and_then(Value::as_str) {
                shared.token_endpoint.keep_issued_token(token);
            }
            response::json(StatusCode::OK, &body, ids, Caching::NoStore)
        }
        Err(error) => error.into_response(&shared.authority, ids),
    }
}

fn grant(
    shared: &Shared,
    segment: &str,
    form: &Form,
    headers: &HeaderMap,
) -> Result<Value, EntraError> {
    let now = unix_seconds(SystemTime::now());
    let tenant = match Tenant::parse(segment) {
        Some(Tenant::Id(tid)) => tid,
        Some(Tenant::Common | Tenant::Consumers | Tenant::Organizations) => {
            return Err(errors::tenant_required())
        }
        None => return Err(EntraError::invalid_tenant(segment)),
    };
    if let Some(name) = form.duplicate() {
        return Err(errors::malformed(&format!(
            "The request body contains the parameter '{name}' more than once."
        )));
    }
    let cx = Context {
        segment,
        tenant: &tenant,
        now,
    };
    if let Some(answer) = super::agents::grant(shared, form, headers, &cx) {
        return answer;
    }
    match form.get("grant_type") {
        None => Err(errors::missing_parameter("grant_type")),
        Some(JWT_BEARER_GRANT) => on_behalf_of(shared, form, headers, &cx),
        Some("client_credentials") => client_credentials(shared, form, headers, &cx),
        Some("refresh_token") => refresh::grant(shared, form, headers, &cx),
        Some(other) => Err(errors::unsupported_grant_type(other)),
    }
}

/// The OBO grant: `assertion` (the user's token to the API) for a token to `scope`.
fn on_behalf_of(
    shared: &Shared,
    form: &Form,
    headers: &HeaderMap,
    cx: &Context<'_>,
) -> Result<Value, EntraError> {
    if form.get("requested_token_use") != Some("on_behalf_of") {
        return Err(errors::missing_parameter("requested_token_use"));
    }
    let client = authenticate(shared, form, headers, cx)?;
    let assertion = form
        .get("assertion")
        .ok_or_else(|| errors::missing_parameter("assertion"))?;
    let subject = user_assertion::validate(shared, assertion, cx.tenant, cx.now)?;
    let (scopes, claims) = requested(shared, form)?;
    delegated(
        shared,
        form,
        &Delegation {
            subject: &subject,
            scopes: &scopes,
            client,
            now: cx.now,
            granted_at: subject.issued_at,
            claims: &claims,
            refresh_token: scopes.offline_access,
        },
    )
}

/// What a delegated grant (On-Behalf-Of or refresh) asks for: the required `scope`
/// and the optional `claims` request.
pub(super) fn requested(
    shared: &Shared,
    form: &Form,
) -> Result<(ScopeRequest, ClaimsRequest), EntraError> {
    let scope = form
        .get("scope")
        .ok_or_else(|| errors::missing_parameter("scope"))?;
    Ok((
        scopes::parse(shared, scope)?,
        ClaimsRequest::parse(form.get("claims"))?,
    ))
}

/// A delegated token to issue: who, what, for which client, under which claims request.
pub(super) struct Delegation<'a> {
    pub(super) subject: &'a Subject,
    pub(super) scopes: &'a ScopeRequest,
    pub(super) client: ClientAuth,
    pub(super) now: i64,
    /// When the user granted what is redeemed: the assertion's `iat`, or the refresh
    /// token's issue time.
    pub(super) granted_at: i64,
    pub(super) claims: &'a ClaimsRequest,
    /// Whether to issue a refresh token (`offline_access` requested, or a refresh grant).
    pub(super) refresh_token: bool,
}

/// Applies consent, Conditional Access and session revocation, then issues a delegated
/// token (and a refresh token, an ID token and `client_info` when asked).
pub(super) fn delegated(
    shared: &Shared,
    form: &Form,
    d: &Delegation<'_>,
) -> Result<Value, EntraError> {
    let endpoint = &shared.token_endpoint;
    let (subject, scopes) = (d.subject, d.scopes);
    let granted = scopes.granted(shared);
    let uri = &scopes.resource.uri;
    if scopes
        .names
        .iter()
        .chain(&granted)
        .any(|name| endpoint.consent_revoked(uri, name))
    {
        return Err(errors::consent_required(&shared.api_client_id));
    }
    if endpoint.mfa_required(&subject.oid) && !subject.did_mfa() {
        return Err(errors::mfa_required(
            &scopes.resource.app_id,
            mfa_claims(&subject.tid),
        ));
    }
    if let Some(revoked_at) = endpoint
        .session_revoked_at(&subject.oid)
        .filter(|at| d.granted_at < *at)
    {
        return Err(errors::session_revoked(claims::nbf_challenge(revoked_at)));
    }
    let issued_at = d.claims.issue_time(d.now);
    let access_token = issue::access_token(
        shared,
        &Grant {
            subject: Some(subject),
            tid: &subject.tid,
            resource: &scopes.resource,
            scopes: granted,
            client: d.client,
            now: issued_at,
            cp1: d.claims.cp1.as_deref(),
        },
    );
    let refresh_token = d.refresh_token.then(|| {
        let token = issue::refresh_token();
        let grant = RefreshGrant {
            subject: subject.clone(),
            client_id: shared.api_client_id.clone(),
            issued_at: d.now,
            granted_at: d.granted_at,
            serial: endpoint.next_refresh_serial(),
        };
        endpoint.store_refresh_token(token.clone(), grant);
        token
    });
    let id_token = scopes
        .openid
        .then(|| issue::id_token(shared, subject, d.now));
    let client_info = (form.get("client_info") == Some("1")).then(|| issue::client_info(subject));
    Ok(issue::delegated_body(
        shared,
        scopes,
        access_token,
        refresh_token,
        id_token,
        client_info,
    ))
}

/// The client-credentials grant: an app-only token for `{resource}/.default`.
fn client_credentials(
    shared: &Shared,
    form: &Form,
    headers: &HeaderMap,
    cx: &Context<'_>,
) -> Result<Value, EntraError> {
    let client = authenticate(shared, form, headers, cx)?;
    let scope = form
        .get("scope")
        .ok_or_else(|| errors::missing_parameter("scope"))?;
    let resource = scopes::parse_app_only(shared, scope)?;
    let access_token = issue::access_token(
        shared,
        &Grant {
            subject: None,
            tid: cx.tenant,
            resource: &resource,
            scopes: Vec::new(),
            client,
            now: cx.now,
            cp1: None,
        },
    );
    Ok(issue::app_only_body(shared, access_token))
}
