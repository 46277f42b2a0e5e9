//! The token endpoint's errors, worded as Entra words them: one constructor per AADSTS code,
//! so that every code the stand-in can answer is listed here.

use http::StatusCode;

use super::super::response::EntraError;

const BAD_REQUEST: StatusCode = StatusCode::BAD_REQUEST;
const UNAUTHORIZED: StatusCode = StatusCode::UNAUTHORIZED;
const CERTIFICATE_DOCS: &str =
    "Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .";
const FEDERATION_DOCS: &str = "Please note that the matching is done using a case-sensitive \
     comparison. Check your federated identity credential Subject, Audience and Issuer against \
     the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation";

/// AADSTS900144: a required form field is missing.
pub(super) fn missing_parameter(name: &str) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_request",
        900_144,
        format!("The request body must contain the following parameter: '{name}'."),
    )
}

/// AADSTS9002313: the request is malformed (duplicate fields, conflicting credentials, …).
pub(super) fn malformed(detail: &str) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_request",
        9_002_313,
        format!("Invalid request. Request is malformed or invalid. - {detail}"),
    )
}

/// AADSTS9001023: the grant needs a tenant, not `/common`, `/consumers` or `/organizations`.
pub(super) fn tenant_required() -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_request",
        9_001_023,
        "The grant type is not supported over the /common or /consumers endpoints. Please use \
         the /organizations or tenant-specific endpoint.",
    )
}

/// AADSTS70003: a grant type the stand-in does not serve.
pub(super) fn unsupported_grant_type(grant_type: &str) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "unsupported_grant_type",
        70_003,
        format!("The app requested an unsupported grant type '{grant_type}'."),
    )
}

/// AADSTS700016: the client id is not an application of the directory.
pub(super) fn unknown_application(client_id: &str, tenant: &str) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "unauthorized_client",
        700_016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory \
             '{tenant}'. This can happen if the application has not been installed by the \
             administrator of the tenant or consented to by any user in the tenant. You may have \
             sent your authentication request to the wrong tenant."
        ),
    )
}

/// AADSTS7000218: no client credential at all.
pub(super) fn credential_missing() -> EntraError {
    EntraError::new(
        UNAUTHORIZED,
        "invalid_client",
        7_000_218,
        "The request body must contain the following parameter: 'client_assertion' or \
         'client_secret'.",
    )
}

/// AADSTS7000215: wrong client secret.
pub(super) fn invalid_secret(client_id: &str) -> EntraError {
    EntraError::new(
        UNAUTHORIZED,
        "invalid_client",
        7_000_215,
        format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the \
             client secret value, not the client secret ID, for a secret added to app \
             '{client_id}'."
        ),
    )
}

/// AADSTS700027: the client assertion's key is not registered, or its signature is wrong.
pub(super) fn assertion_signature(detail: &str) -> EntraError {
    EntraError::new(
        UNAUTHORIZED,
        "invalid_client",
        700_027,
        format!(
            "Client assertion failed signature validation. [Reason - {detail}] {CERTIFICATE_DOCS}"
        ),
    )
}

/// AADSTS700027: the certificate named by the assertion is not registered on the app.
pub(super) fn certificate_not_registered(thumbprint: &str, client_id: &str) -> EntraError {
    EntraError::new(
        UNAUTHORIZED,
        "invalid_client",
        700_027,
        format!(
            "The certificate with identifier used to sign the client assertion is not \
             registered on application. [Reason - The key was not found., Thumbprint of key \
             used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or \
             directly use MS Graph to see configured keys for app Id '{client_id}'.]"
        ),
    )
}

/// AADSTS700027 family: a client assertion that is malformed, lacks a claim, or was replayed.
pub(super) fn assertion_invalid(detail: &str) -> EntraError {
    EntraError::new(
        UNAUTHORIZED,
        "invalid_client",
        700_027,
        format!("Client assertion contains an invalid claim or is malformed. [Reason - {detail}] {CERTIFICATE_DOCS}"),
    )
}

/// AADSTS700024: the client assertion is expired or not yet valid.
pub(super) fn assertion_time(now: &str, nbf: &str, exp: &str) -> EntraError {
    EntraError::new(
        UNAUTHORIZED,
        "invalid_client",
        700_024,
        format!(
            "Client assertion is not within its valid time range. Current time: {now}, \
             assertion valid from {nbf}, expiry time of assertion {exp}. {CERTIFICATE_DOCS}"
        ),
    )
}

/// AADSTS700021: the client assertion's `iss`/`sub` is not the client id.
pub(super) fn assertion_client_mismatch() -> EntraError {
    EntraError::new(
        UNAUTHORIZED,
        "invalid_client",
        700_021,
        format!("Client assertion application identifier doesn't match 'client_id' parameter. {CERTIFICATE_DOCS}"),
    )
}

/// AADSTS700023: the client assertion's `aud` is not this token endpoint.
pub(super) fn assertion_audience(aud: &str, expected: &str) -> EntraError {
    EntraError::new(
        UNAUTHORIZED,
        "invalid_client",
        700_023,
        format!(
            "Client assertion audience claim does not match Realm issuer. The audience in the \
             assertion was '{aud}' and the expected audience is '{expected}'. {CERTIFICATE_DOCS}"
        ),
    )
}

/// AADSTS700211: no federated credential trusts the assertion's issuer.
pub(super) fn federated_issuer(iss: &str) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_request",
        700_211,
        format!("No matching federated identity record found for presented assertion issuer '{iss}'. {FEDERATION_DOCS}"),
    )
}

/// AADSTS700212: no federated credential names the assertion's audience.
pub(super) fn federated_audience(aud: &str) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_request",
        700_212,
        format!("No matching federated identity record found for presented assertion audience '{aud}'. {FEDERATION_DOCS}"),
    )
}

/// AADSTS700213: no federated credential names the assertion's subject.
pub(super) fn federated_subject(sub: &str) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_request",
        700_213,
        format!("No matching federated identity record found for presented assertion subject '{sub}'. {FEDERATION_DOCS}"),
    )
}

/// AADSTS50027: the user assertion is not a JWT.
pub(super) fn malformed_jwt() -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_request",
        50_027,
        "JWT token is invalid or malformed.",
    )
}

/// AADSTS50013: the user assertion failed validation (signature, issuer, audience, kind,
/// tenant).
pub(super) fn bad_assertion(detail: &str) -> EntraError {
    EntraError::new(BAD_REQUEST, "invalid_grant", 50_013, detail)
}

/// AADSTS500133: the user assertion is expired (or not yet valid).
pub(super) fn assertion_expired(now: &str, exp: &str) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_grant",
        500_133,
        format!(
            "Assertion is not within its valid time range. Ensure that the access token is not \
             expired before using it for user assertion, or request a new token. Current time: \
             {now}, expiry time of assertion {exp}."
        ),
    )
}

/// AADSTS70011: an invalid scope.
pub(super) fn invalid_scope(detail: &str) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_scope",
        70_011,
        format!("The provided value for the input parameter 'scope' is not valid. {detail}"),
    )
}

/// AADSTS28000: scopes of more than one resource.
pub(super) fn several_resources(scope: &str) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_scope",
        28_000,
        format!(
            "Provided value for the input parameter scope is not valid because it contains more \
             than one resource. Scope {scope} is not valid."
        ),
    )
}

/// AADSTS1002012: client credentials need exactly one `<resource>/.default` scope.
pub(super) fn client_credentials_scope(scope: &str) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_scope",
        1_002_012,
        format!(
            "The provided value for scope {scope} is not valid. Client credential flows must \
             have a scope value with /.default suffixed to the resource identifier (application \
             ID URI)."
        ),
    )
}

/// AADSTS65001: no consent for the scopes.
pub(super) fn consent_required(client_id: &str) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_grant",
        65_001,
        format!(
            "The user or administrator has not consented to use the application with ID \
             '{client_id}' named 'Entra stand-in API'. Send an interactive authorization \
             request for this user and resource."
        ),
    )
    .with_suberror("consent_required")
}

/// AADSTS50076: Conditional Access requires MFA; `claims` is the challenge (a JSON string).
pub(super) fn mfa_required(resource_app: &str, claims: String) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "interaction_required",
        50_076,
        format!(
            "Due to a configuration change made by your administrator, or because you moved to \
             a new location, you must use multi-factor authentication to access \
             '{resource_app}'."
        ),
    )
    .with_claims(claims)
}

/// AADSTS9002313 (as `invalid_grant`): an unknown, foreign or malformed refresh token.
pub(super) fn bad_refresh_token(detail: &str) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_grant",
        9_002_313,
        format!("Invalid request. Request is malformed or invalid. - {detail}"),
    )
}

/// AADSTS50196: throttled (a client asking the same thing too often).
pub(super) fn throttled() -> EntraError {
    EntraError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        50_196,
        "The server terminated an operation because it encountered a client request loop. \
         Please contact your app vendor.",
    )
}

/// AADSTS90055: the application is throttled in the tenant (429), whoever the user.
pub(super) fn tenant_throttled() -> EntraError {
    EntraError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        90_055,
        "There are too many incoming requests. This exception is thrown for blocked tenants.",
    )
}

/// AADSTS90033: a transient failure (503).
pub(super) fn unavailable() -> EntraError {
    EntraError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        90_033,
        "A transient error has occurred. Please try again.",
    )
}

/// AADSTS50000: an internal failure (500).
pub(super) fn server_error() -> EntraError {
    EntraError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        50_000,
        "There was an error issuing a token or an issue with our sign-in service.",
    )
}

/// AADSTS50173: the refresh token was revoked (password reset, `revokeSignInSessions`).
pub(super) fn refresh_token_revoked(issued: &str, valid_from: &str) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_grant",
        50_173,
        format!(
            "The provided grant has expired due to it being revoked, a fresh auth token is \
             needed. The user might have changed or reset their password. The grant was \
             issued on '{issued}' and the TokensValidFrom date (before which tokens are not \
             valid) for this user is '{valid_from}'."
        ),
    )
}

/// AADSTS700082: the refresh token expired after a period of inactivity.
pub(super) fn refresh_token_inactive(issued: &str, idle: &str) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_grant",
        700_082,
        format!(
            "The refresh token has expired due to inactivity. The token was issued on \
             {issued} and was inactive for {idle}."
        ),
    )
}

/// AADSTS70008: the grant (refresh token) expired.
pub(super) fn refresh_token_expired() -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "invalid_grant",
        70_008,
        "The provided authorization code or refresh token has expired due to inactivity. \
         Send a new interactive authorization request for this user and resource.",
    )
}

/// AADSTS50133: the user's session was revoked; `claims` is the challenge to relay.
pub(super) fn session_revoked(claims: String) -> EntraError {
    EntraError::new(
        BAD_REQUEST,
        "interaction_required",
        50_133,
        "Session is invalid due to expiration or recent password change.",
    )
    .with_claims(claims)
}
