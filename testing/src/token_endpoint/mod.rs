//! The OAuth 2.0 token endpoint, `POST /{tenant}/oauth2/v2.0/token`, as Entra's v2 endpoint
//! answers confidential clients.
//!
//! Grants: On-Behalf-Of (`urn:ietf:params:oauth:grant-type:jwt-bearer` with
//! `requested_token_use=on_behalf_of`), `client_credentials` and `refresh_token`. Client
//! authentication: `client_secret` (form or HTTP Basic), a certificate-signed client
//! assertion (PS256 with `x5t#S256`, or RS256 with `x5t`), or a federated assertion.
//!
//! A request is validated in Entra's order and the first failure answered with Entra's JSON
//! error (`AADSTSnnnnn`, trace and correlation ids):
//!
//! 1. the tenant segment: a tenant id (`common`, `organizations`, `consumers`:
//!    AADSTS9001023; anything else: AADSTS90002);
//! 2. `grant_type` (AADSTS900144, AADSTS70003) and `requested_token_use` (AADSTS900144);
//! 3. `client_id`, the API's (AADSTS700016);
//! 4. exactly one client credential (AADSTS7000218, AADSTS7000215, AADSTS700027,
//!    AADSTS700024, AADSTS700021, AADSTS700023, AADSTS700211/700212/700213);
//! 5. the user `assertion` (AADSTS50027, AADSTS50013, AADSTS500133);
//! 6. `scope` (AADSTS70011, AADSTS28000);
//! 7. the `claims` parameter (AADSTS9002313 when it is not a JSON object);
//! 8. consent (AADSTS65001), Conditional Access (AADSTS50076 with `claims`) and a session
//!    revoked for good (AADSTS50133 with `claims`).
//!
//! Refresh tokens (issued with `offline_access`, rotated on every use, revocable and
//! expirable) are described in the `refresh` module; client capabilities (`cp1`), `nbf`
//! claims requests and session revocation in the `claims` module.
//!
//! Issued access tokens are v1.0 tokens shaped like Microsoft Graph's, signed by the
//! stand-in's current key, with a refresh token when `offline_access` is requested and a v2.0
//! ID token (for the API) when `openid` is; see [`EntraStandIn`](super::EntraStandIn) for
//! the knobs.

mod agents;
mod api;
mod claims;
mod client_auth;
mod errors;
mod faults;
mod form;
mod handler;
mod issue;
mod jws;
mod refresh;
mod scopes;
mod state;
mod user_assertion;
mod x509;

pub(super) use api::random_secret;
pub use faults::TokenFault;
pub(super) use handler::token;
pub use refresh::RefreshTokenExpiry;
pub(super) use state::TokenEndpoint;
pub use state::TokenRequestRecord;
