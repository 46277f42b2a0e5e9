//! Minting tokens the way Entra does: [`TokenBuilder`] and [`encode_unsigned`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};

use super::ids::{b64, b64url, derived_guid, random_bytes, random_guid, sha256, unix_seconds};
use super::state::Shared;

/// Default access-token lifetime (Entra's range is 60-90 minutes).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// How far [`TokenBuilder::expired`] and [`TokenBuilder::not_yet_valid`] move a token.
const HOUR: i64 = 3600;
/// The delegated scope of a default token.
const DEFAULT_SCOPE: &str = "access_as_user";
/// The app permission of a default app-only token.
const DEFAULT_APP_ROLE: &str = "Tasks.Read.All";

/// Token format: Entra's v1.0 or v2.0 access tokens (chosen by the API's manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// What the token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A delegated access token for a signed-in user (has `scp`).
    User,
    /// An app-only access token, client-credentials flow (has `roles`, `idtyp = "app"`).
    App,
    /// An ID token issued to the client app (has `nonce`, `aud` = the client).
    Id,
}

/// When the token is valid.
#[derive(Debug, Clone, Copy)]
enum Timing {
    /// Issued when the builder was created.
    Now,
    /// Issued at this time.
    IssuedAt(SystemTime),
    /// `exp` an hour before the builder was created.
    Expired,
    /// `nbf` an hour after the builder was created.
    NotYetValid,
}

/// The random parts of a token, drawn once per builder so that [`TokenBuilder::claims`] and
/// [`TokenBuilder::sign`] agree.
#[derive(Debug, Clone)]
struct Entropy {
    user_oid: String,
    uti: String,
    aio: String,
    rh: String,
    nonce: String,
    sid: String,
}

impl Entropy {
    fn draw() -> Self {
        Entropy {
            user_oid: random_guid(),
            uti: b64url(&random_bytes::<16>()),
            aio: b64(&random_bytes::<72>()),
            rh: format!("0.A{}.", b64url(&random_bytes::<48>())),
            nonce: random_guid(),
            sid: random_guid(),
        }
    }
}

/// Fluent builder for a token signed like Entra signs them (RS256, `kid` = the certificate
/// thumbprint). Obtain one with [`EntraStandIn::token`](super::EntraStandIn::token).
///
/// The default is a v2.0 delegated access token for a fresh random user (a new `oid` per
/// builder) in the home tenant: `aud` = the API's client id, `scp = "access_as_user"`,
/// `azp` = the default client app, valid for one hour from now, signed with the current key.
///
/// Random parts (`oid`, `uti`, `aio`, `rh`, `nonce`, `sid`) and "now" are fixed when the
/// builder is created, so [`claims`](Self::claims) shows exactly what [`sign`](Self::sign)
/// will sign. A builder can be cloned to mint several tokens for the same user.
///
/// The order of the named setters does not matter (the last call of each wins);
/// [`claim`](Self::claim) and [`without_claim`](Self::without_claim) edits are applied last,
/// in the order they were called.
#[derive(Clone)]
pub struct TokenBuilder {
    shared: Arc<Shared>,
    version: Version,
    kind: Kind,
    tenant: String,
    user_oid: Option<String>,
    scopes: Option<Vec<String>>,
    roles: Option<Vec<String>>,
    audience: Option<String>,
    issuer: Option<String>,
    client_app: Option<String>,
    timing: Timing,
    lifetime: Duration,
    edits: Vec<(String, Option<Value>)>,
    signing_kid: Option<String>,
    header_kid: Option<String>,
    created_at: SystemTime,
    entropy: Entropy,
}

impl fmt::Debug for TokenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("claims", &self.claims())
            .field("signing_kid", &self.signing_kid)
            .field("header_kid", &self.header_kid)
            .finish_non_exhaustive()
    }
}

impl TokenBuilder {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        TokenBuilder {
            tenant: shared.home_tenant.clone(),
            shared,
            version: Version::V2,
            kind: Kind::User,
            user_oid: None,
            scopes: None,
            roles: None,
            audience: None,
            issuer: None,
            client_app: None,
            timing: Timing::Now,
            lifetime: DEFAULT_LIFETIME,
            edits: Vec::new(),
            signing_kid: None,
            header_kid: None,
            created_at: SystemTime::now(),
            entropy: Entropy::draw(),
        }
    }

    /// A v1.0 token: `iss = https://sts.windows.net/{tid}/`, `aud = api://{api_client_id}`,
    /// `appid`/`appidacr`/`unique_name`/`upn` instead of `azp`/`azpacr`/`preferred_username`,
    /// and an `x5t` header next to `kid`.
    #[must_use]
    pub fn v1(mut self) -> Self {
        self.version = Version::V1;
        self
    }

    /// A v2.0 token (the default): `iss = {authority}/{tid}/v2.0`, `aud` = the API's client id.
    #[must_use]
    pub fn v2(mut self) -> Self {
        self.version = Version::V2;
        self
    }

    /// Issue the token in tenant `tid` (a guest user, another customer's tenant): `tid` and
    /// `iss` follow.
    #[must_use]
    pub fn tenant(mut self, tid: &str) -> Self {
        tid.clone_into(&mut self.tenant);
        self
    }

    /// The user's object id `oid`; `sub` is derived from it (pairwise per app, like Entra's).
    /// For app-only tokens this replaces the service principal's `oid` (and `sub`).
    #[must_use]
    pub fn user(mut self, oid: &str) -> Self {
        self.user_oid = Some(oid.to_owned());
        self
    }

    /// An app-only token (client credentials): no `scp`, `roles` (default
    /// `["Tasks.Read.All"]` unless [`roles`](Self::roles) is given), `idtyp = "app"`,
    /// `oid = sub` = the client app's service principal in the token's tenant, no user names.
    #[must_use]
    pub fn app_only(mut self) -> Self {
        self.kind = Kind::App;
        self
    }

    /// An ID token for the client app instead of an access token: `aud` = the client app,
    /// a `nonce`, no `scp`, `ver` as chosen; still signed by the stand-in's real key.
    #[must_use]
    pub fn id_token(mut self) -> Self {
        self.kind = Kind::Id;
        self
    }

    /// Delegated scopes, rendered as `scp`: ONE space-separated string. An empty slice omits
    /// `scp`. On app-only tokens an explicit `scp` is added as given; ID tokens never have one.
    #[must_use]
    pub fn scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = Some(scopes.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    /// `roles`, a JSON array (app roles of a user, or app permissions of an app-only token).
    /// An empty slice omits the claim.
    #[must_use]
    pub fn roles(mut self, roles: &[&str]) -> Self {
        self.roles = Some(roles.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    /// Overrides `aud`.
    #[must_use]
    pub fn audience(mut self, aud: &str) -> Self {
        self.audience = Some(aud.to_owned());
        self
    }

    /// Overrides `iss` only (`tid` unchanged): for issuer/tenant mismatch tests.
    #[must_use]
    pub fn issuer(mut self, iss: &str) -> Self {
        self.issuer = Some(iss.to_owned());
        self
    }

    /// The calling app's client id: `azp` (v2) / `appid` (v1); for ID tokens, `aud`.
    #[must_use]
    pub fn client_app(mut self, id: &str) -> Self {
        self.client_app = Some(id.to_owned());
        self
    }

    /// Issue the token at `t`: `iat = nbf = t`, `exp = t + lifetime`.
    #[must_use]
    pub fn issued_at(mut self, t: SystemTime) -> Self {
        self.timing = Timing::IssuedAt(t);
        self
    }

    /// The lifetime, `exp - nbf` (default one hour; whole seconds).
    #[must_use]
    pub fn lifetime(mut self, d: Duration) -> Self {
        self.lifetime = d;
        self
    }

    /// A token that expired an hour ago (well beyond any clock-skew leeway).
    #[must_use]
    pub fn expired(mut self) -> Self {
        self.timing = Timing::Expired;
        self
    }

    /// A token whose `nbf` is an hour from now (`iat` stays now).
    #[must_use]
    pub fn not_yet_valid(mut self) -> Self {
        self.timing = Timing::NotYetValid;
        self
    }

    /// Sets (or overrides) any claim, after everything else.
    #[must_use]
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.edits.push((name.to_owned(), Some(value)));
        self
    }

    /// Removes a claim, after everything else.
    #[must_use]
    pub fn without_claim(mut self, name: &str) -> Self {
        self.edits.push((name.to_owned(), None));
        self
    }

    /// Signs with the stand-in's key `kid` (published, retired or
    /// [unpublished](super::EntraStandIn::unpublished_key)) and puts `kid` in the header.
    #[must_use]
    pub fn kid(mut self, kid: &str) -> Self {
        self.signing_kid = Some(kid.to_owned());
        self
    }

    /// Puts `kid` in the header (and `x5t` for v1) but signs with the current key, or with
    /// the key given to [`kid`](Self::kid): for unknown-`kid` and wrong-signature tests
    /// (`.kid(&stand_in.unpublished_key()).header_kid(&stand_in.current_kid())`).
    #[must_use]
    pub fn header_kid(mut self, kid: &str) -> Self {
        self.header_kid = Some(kid.to_owned());
        self
    }

    /// The JOSE header [`sign`](Self::sign) will produce:
    /// `{"typ":"JWT","alg":"RS256","kid":…}`, plus `"x5t"` (same value) for v1 tokens.
    pub fn header(&self) -> Value {
        serde_json::from_str(&self.header_json(&self.header_kid_value()))
            .expect("the header is valid JSON")
    }

    /// The payload [`sign`](Self::sign) will produce.
    pub fn claims(&self) -> Value {
        let mut claims = match self.kind {
            Kind::User => self.user_claims(),
            Kind::App => self.app_claims(),
            Kind::Id => self.id_token_claims(),
        };
        for (name, value) in &self.edits {
            match value {
                Some(value) => claims.insert(name.clone(), value.clone()),
                None => claims.remove(name),
            };
        }
        Value::Object(claims)
    }

    /// The compact JWS (RS256).
    ///
    /// # Panics
    /// If [`kid`](Self::kid) named a key this stand-in does not have.
    pub fn sign(self) -> String {
        let key = match &self.signing_kid {
            Some(kid) => self
                .shared
                .keys()
                .get(kid)
                .unwrap_or_else(|| panic!("the Entra stand-in has no key with kid {kid:?}")),
            None => self.shared.keys().current(),
        };
        let header_kid = self
            .header_kid
            .clone()
            .unwrap_or_else(|| key.kid().to_owned());
        let signing_input = format!(
            "{}.{}",
            b64url(self.header_json(&header_kid).as_bytes()),
            b64url(self.claims().to_string().as_bytes())
        );
        let signature = key.sign_rs256(signing_input.as_bytes());
        format!("{signing_input}.{}", b64url(&signature))
    }

    /// The kid the header will carry.
    fn header_kid_value(&self) -> String {
        self.header_kid
            .clone()
            .or_else(|| self.signing_kid.clone())
            .unwrap_or_else(|| self.shared.keys().current_kid().to_owned())
    }

    /// The header in Entra's field order.
    fn header_json(&self, kid: &str) -> String {
        let kid = Value::from(kid).to_string();
        match self.version {
            Version::V1 => format!(r#"{{"typ":"JWT","alg":"RS256","x5t":{kid},"kid":{kid}}}"#),
            Version::V2 => format!(r#"{{"typ":"JWT","alg":"RS256","kid":{kid}}}"#),
        }
    }

    fn client_app_id(&self) -> &str {
        self.client_app
            .as_deref()
            .unwrap_or(&self.shared.client_app_id)
    }

    fn user_oid(&self) -> &str {
        self.user_oid.as_deref().unwrap_or(&self.entropy.user_oid)
    }

    /// `(iat, nbf, exp)` in seconds.
    fn times(&self) -> (i64, i64, i64) {
        let lifetime = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let now = unix_seconds(self.created_at);
        match self.timing {
            Timing::Now => (now, now, now + lifetime),
            Timing::IssuedAt(t) => {
                let t = unix_seconds(t);
                (t, t, t.saturating_add(lifetime))
            }
            Timing::Expired => {
                let exp = now - HOUR;
                (exp - lifetime, exp - lifetime, exp)
            }
            Timing::NotYetValid => (now, now + HOUR, now + HOUR + lifetime),
        }
    }

    /// Claims every token has: `aud`, `iss`, `iat`, `nbf`, `exp`, `tid`, `uti`, `ver`, `rh`.
    fn base_claims(&self, default_aud: String) -> Map<String, Value> {
        let (iat, nbf, exp) = self.times();
        let iss = self.issuer.clone().unwrap_or_else(|| match self.version {
            Version::V1 => self.shared.issuer_v1(&self.tenant),
            Version::V2 => self.shared.issuer_v2(&self.tenant),
        });
        let ver = match self.version {
            Version::V1 => "1.0",
            Version::V2 => "2.0",
        };
        let claims = json!({
            "aud": self.audience.clone().unwrap_or(default_aud),
            "iss": iss,
            "iat": iat,
            "nbf": nbf,
            "exp": exp,
            "rh": self.entropy.rh,
            "tid": self.tenant,
            "uti": self.entropy.uti,
            "ver": ver,
        });
        match claims {
            Value::Object(map) => map,
            _ => unreachable!("json! of an object literal is an object"),
        }
    }

    /// The `aud` of an access token for the protected API.
    fn api_audience(&self) -> String {
        match self.version {
            Version::V1 => format!("api://{}", self.shared.api_client_id),
            Version::V2 => self.shared.api_client_id.clone(),
        }
    }

    /// Adds who the user is: `oid`, pairwise `sub`, `name`, and the sign-in name.
    fn add_user(&self, claims: &mut Map<String, Value>, sub_app: &str) {
        let oid = self.user_oid();
        let short = |s: &str| s.chars().take(8).collect::<String>();
        let sign_in_name = format!(
            "user-{}@standin-{}.onmicrosoft.com",
            short(oid),
            short(&self.tenant)
        );
        claims.insert("oid".into(), oid.into());
        claims.insert(
            "sub".into(),
            pairwise_sub(oid, sub_app, &self.tenant).into(),
        );
        claims.insert("name".into(), format!("Test User {}", short(oid)).into());
        match self.version {
            Version::V2 => {
                claims.insert("preferred_username".into(), sign_in_name.into());
            }
            Version::V1 => {
                claims.insert("unique_name".into(), sign_in_name.clone().into());
                claims.insert("upn".into(), sign_in_name.into());
            }
        }
    }

    /// Adds the calling app: `azp`/`azpacr` (v2) or `appid`/`appidacr` (v1); `acr` 1 = secret.
    fn add_client(&self, claims: &mut Map<String, Value>) {
        let client = self.client_app_id().to_owned();
        match self.version {
            Version::V2 => {
                claims.insert("azp".into(), client.into());
                claims.insert("azpacr".into(), "1".into());
            }
            Version::V1 => {
                claims.insert("appid".into(), client.into());
                claims.insert("appidacr".into(), "1".into());
            }
        }
    }

    fn add_list(claims: &mut Map<String, Value>, name: &str, list: &[String], joined: bool) {
        if list.is_empty() {
            return;
        }
        let value = if joined {
            Value::from(list.join(" "))
        } else {
            Value::from(list.to_vec())
        };
        claims.insert(name.into(), value);
    }

    fn user_claims(&self) -> Map<String, Value> {
        let mut claims = self.base_claims(self.api_audience());
        claims.insert("aio".into(), self.entropy.aio.clone().into());
        self.add_user(&mut claims, &self.shared.api_client_id);
        self.add_client(&mut claims);
        if self.version == Version::V1 {
            claims.insert("acr".into(), "1".into());
            claims.insert("amr".into(), json!(["pwd"]));
        }
        let default_scopes = [DEFAULT_SCOPE.to_owned()];
        let scopes = self.scopes.as_deref().unwrap_or(&default_scopes);
        Self::add_list(&mut claims, "scp", scopes, true);
        if let Some(roles) = &self.roles {
            Self::add_list(&mut claims, "roles", roles, false);
        }
        claims
    }

    fn app_claims(&self) -> Map<String, Value> {
        let mut claims = self.base_claims(self.api_audience());
        let oid = self.user_oid.clone().unwrap_or_else(|| {
            // The client app's service principal in the token's tenant.
            derived_guid(&["service-principal", &self.tenant, self.client_app_id()])
        });
        claims.insert("aio".into(), self.entropy.aio.clone().into());
        claims.insert("idtyp".into(), "app".into());
        claims.insert("oid".into(), oid.clone().into());
        claims.insert("sub".into(), oid.into());
        self.add_client(&mut claims);
        if self.version == Version::V1 {
            claims.insert("idp".into(), self.shared.issuer_v1(&self.tenant).into());
        }
        let default_roles = [DEFAULT_APP_ROLE.to_owned()];
        let roles = self.roles.as_deref().unwrap_or(&default_roles);
        Self::add_list(&mut claims, "roles", roles, false);
        if let Some(scopes) = &self.scopes {
            Self::add_list(&mut claims, "scp", scopes, true);
        }
        claims
    }

    fn id_token_claims(&self) -> Map<String, Value> {
        let client = self.client_app_id().to_owned();
        let mut claims = self.base_claims(client.clone());
        self.add_user(&mut claims, &client);
        claims.insert("nonce".into(), self.entropy.nonce.clone().into());
        match self.version {
            Version::V2 => {
                claims.insert("aio".into(), self.entropy.aio.clone().into());
                claims.insert("sid".into(), self.entropy.sid.clone().into());
            }
            Version::V1 => {
                claims.insert("amr".into(), json!(["pwd"]));
            }
        }
        if let Some(roles) = &self.roles {
            Self::add_list(&mut claims, "roles", roles, false);
        }
        claims
    }
}

/// Entra's pairwise `sub`: stable per user and app, 43 base64url characters.
fn pairwise_sub(oid: &str, app: &str, tenant: &str) -> String {
    b64url(&sha256(format!("{oid}\n{app}\n{tenant}").as_bytes()))
}

/// Encodes `header` and `claims` as a compact JWS with the given raw `signature` bytes
/// (base64url-encoded here): for forged tokens, e.g. `alg: none` with an empty signature,
/// or HS256 with an HMAC computed by the test.
pub fn encode_unsigned(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes()),
        b64url(signature)
    )
}
