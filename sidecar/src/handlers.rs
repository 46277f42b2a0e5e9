//! The container's routes.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Json;
use axum_obo::acquire::{AcquiredToken, Scopes};
use axum_obo::layer::OboContext;
use http::{header, HeaderMap, StatusCode};
use serde_json::{json, Map, Value};

use crate::overrides::{self, Overrides};
use crate::problem::{self, Problem};
use crate::settings::DownstreamApi;
use crate::{Sidecar, MAX_DOWNSTREAM_BODY};

type Pairs = Query<Vec<(String, String)>>;

/// `GET /Validate`: the caller's token (validated by the layer) and its claims.
pub(crate) async fn validate(
    State(s): State<Sidecar>,
    ctx: OboContext,
    headers: HeaderMap,
) -> Result<Json<Value>, Problem> {
    let principal = ctx
        .principal()
        .ok_or_else(|| Problem::bad_request("No token found"))?;
    if !s.required_scopes.is_empty()
        && !s
            .required_scopes
            .iter()
            .any(|r| principal.has_scope(r) || principal.has_role(r))
    {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "The token holds none of the scopes in AzureAd:Scopes.",
        ));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(_, t)| t.trim())
        .ok_or_else(|| Problem::bad_request("No token found"))?;
    Ok(Json(json!({
        "protocol": "Bearer",
        "token": token,
        "claims": Value::Object(principal.claims().clone()),
    })))
}

/// `GET /AuthorizationHeader/{apiName}`.
pub(crate) async fn authorization_header(
    State(s): State<Sidecar>,
    Path(api): Path<String>,
    ctx: OboContext,
    Query(pairs): Pairs,
) -> Result<Json<Value>, Problem> {
    let allow = s.allow.get_authorization_header;
    let (_, token) = acquire(&s, &api, &pairs, allow, Some(&ctx), "AuthorizationHeader").await?;
    Ok(header_answer(&token))
}

/// `GET /AuthorizationHeaderUnauthenticated/{apiName}`.
pub(crate) async fn authorization_header_unauthenticated(
    State(s): State<Sidecar>,
    Path(api): Path<String>,
    Query(pairs): Pairs,
) -> Result<Json<Value>, Problem> {
    let allow = s.allow.get_authorization_header_unauthenticated;
    let (_, token) = acquire(
        &s,
        &api,
        &pairs,
        allow,
        None,
        "AuthorizationHeaderUnauthenticated",
    )
    .await?;
    Ok(header_answer(&token))
}

fn header_answer(token: &AcquiredToken) -> Json<Value> {
    Json(json!({
        "authorizationHeader": format!("Bearer {}", token.access_token().expose()),
    }))
}

/// `POST /DownstreamApi/{apiName}`.
pub(crate) async fn downstream_api(
    State(s): State<Sidecar>,
    Path(api): Path<String>,
    ctx: OboContext,
    Query(pairs): Pairs,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let allow = s.allow.call_downstream_api;
    let (options, token) = acquire(&s, &api, &pairs, allow, Some(&ctx), "DownstreamApi").await?;
    call(&s, &api, &options, &token, &headers, body).await
}

/// `POST /DownstreamApiUnauthenticated/{apiName}`.
pub(crate) async fn downstream_api_unauthenticated(
    State(s): State<Sidecar>,
    Path(api): Path<String>,
    Query(pairs): Pairs,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let allow = s.allow.call_downstream_api_unauthenticated;
    let (options, token) = acquire(
        &s,
        &api,
        &pairs,
        allow,
        None,
        "DownstreamApiUnauthenticated",
    )
    .await?;
    call(&s, &api, &options, &token, &headers, body).await
}

/// The options of `name` (with the overrides when `allow`) and a token for
/// them: the caller's (with `ctx`) or the app's own, or an agent's.
async fn acquire(
    s: &Sidecar,
    name: &str,
    pairs: &[(String, String)],
    allow: bool,
    ctx: Option<&OboContext>,
    route: &'static str,
) -> Result<(DownstreamApi, AcquiredToken), Problem> {
    let configured = s.apis.get(&name.to_lowercase());
    let (overrides, agent) = overrides::parse(pairs);
    let empty = DownstreamApi::default();
    let mut options = configured.unwrap_or(&empty).clone();
    let overrides = if overrides.has_any && !allow {
        tracing::warn!(
            route,
            "optionsOverride parameters ignored on this route (Sidecar__AllowOverrides)"
        );
        Overrides::default()
    } else {
        overrides
    };
    if allow {
        options = overrides.merge(&options);
    }
    if options.scopes.is_empty() {
        let detail = if configured.is_none() {
            format!("Not able to resolve '{name}'.")
        } else {
            format!("No scopes found for the API '{name}' or in optionsOverride. 'scopes' needs to be either a single value or a list of values.")
        };
        return Err(Problem::bad_request(detail));
    }
    let scopes = Scopes::new(&options.scopes)
        .map_err(|e| Problem::bad_request(format!("The scopes of '{name}' are refused: {e}.")))?;
    let agent = if allow {
        agent.resolve()
    } else {
        if agent.any() {
            tracing::warn!(
                route,
                "agent parameters ignored on this route (Sidecar__AllowOverrides)"
            );
        }
        None
    };
    if let Some((_, Some(axum_obo::agent::AgentUser::Upn(upn)))) = &agent {
        // The caller's input: refused here, not sent to Entra or cached.
        if upn.len() > 256 || upn.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Problem::bad_request(
                "AgentUsername is not a user principal name.",
            ));
        }
    }
    let tenant = overrides.tenant.as_deref().map(str::trim);
    // The caller's input, not this sidecar's configuration: a 400 before any
    // request to Entra (`common`, a domain name, a path are refused).
    if tenant.is_some_and(|t| !overrides::is_guid(t)) {
        return Err(Problem::bad_request(
            "optionsOverride.AcquireTokenOptions.Tenant is not a GUID.",
        ));
    }
    let tid = tenant.unwrap_or(&s.tenant);
    let app_only = ctx.is_none() || options.request_app_token;
    let token = match agent {
        Some((id, user)) => {
            let agent = s.layer.agent(&id).map_err(|e| problem::from_agent(&e))?;
            let result = match (&user, ctx) {
                (Some(user), _) => agent.as_user_for(tid, user, &scopes).await,
                (None, Some(ctx)) if !options.request_app_token => {
                    let r = agent.on_behalf_of_for(ctx, &scopes).await;
                    return r
                        .map(|t| (options, t))
                        .map_err(|e| problem::from_agent_rejection(&e));
                }
                (None, _) => agent.app_token_for(tid, &scopes).await,
            };
            result.map_err(|e| problem::from_agent(&e))?
        }
        None if app_only => s
            .layer
            .app_token(&scopes, tenant)
            .await
            .map_err(|e| problem::from_obo(&e))?,
        None => ctx
            .expect("not app-only: a context")
            .token_for(&scopes)
            .await
            .map_err(|e| problem::from_auth(&e))?,
    };
    tracing::debug!(route, api = name, "token acquired");
    Ok((options, token))
}

/// Calls the downstream API with `token`, relaying `body` (with its content
/// type); the answer, its content headers and its text, bounded.
async fn call(
    s: &Sidecar,
    name: &str,
    options: &DownstreamApi,
    token: &AcquiredToken,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let base = options.base_url.as_deref().ok_or_else(|| {
        Problem::bad_request(format!("No BaseUrl is configured for the API '{name}'."))
    })?;
    let mut url = base.trim_end_matches('/').to_owned();
    if let Some(rel) = options.relative_path.as_deref().filter(|r| !r.is_empty()) {
        url.push('/');
        url.push_str(rel.trim_start_matches('/'));
    }
    let method = options
        .http_method
        .as_deref()
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| Problem::bad_request("optionsOverride.HttpMethod is not an HTTP method."))?;
    let mut request = s
        .http
        .request(method, &url)
        .bearer_auth(token.access_token().expose());
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        request = request.header(header::CONTENT_TYPE, ct.clone()).body(body);
    }
    let mut response = request.send().await.map_err(|e| {
        tracing::warn!(api = name, error = %e.without_url(), "downstream API unreachable");
        Problem::new(
            StatusCode::BAD_GATEWAY,
            "The downstream API could not be reached.",
        )
    })?;
    let status = response.status().as_u16();
    let mut content_headers: Map<String, Value> = Map::new();
    for (k, v) in response.headers() {
        let key = k.as_str();
        if key.starts_with("content-") || key == "expires" || key == "last-modified" {
            let entry = content_headers
                .entry(canonical(key))
                .or_insert_with(|| Value::Array(Vec::new()));
            if let (Value::Array(list), Ok(v)) = (entry, v.to_str()) {
                list.push(Value::String(v.to_owned()));
            }
        }
    }
    let mut content = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if content.len() + chunk.len() > MAX_DOWNSTREAM_BODY {
                    return Err(Problem::new(
                        StatusCode::BAD_GATEWAY,
                        "The downstream API's answer is larger than the sidecar relays.",
                    ));
                }
                content.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => {
                return Err(Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "The downstream API's answer could not be read.",
                ))
            }
        }
    }
    tracing::info!(api = name, status, "downstream API called");
    let content = if content.is_empty() {
        Value::Null
    } else {
        Value::String(String::from_utf8_lossy(&content).into_owned())
    };
    Ok(Json(json!({
        "statusCode": status,
        "headers": content_headers,
        "content": content,
    })))
}

/// `content-type` → `Content-Type`, as .NET names headers.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// `GET /openapi/v1.json`.
pub(crate) async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}
