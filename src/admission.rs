//! Admission hooks: the app's own check after a token has been validated (is this
//! tenant a paying customer? is this user suspended?), set with
//! [`OboLayer::admit_with`](crate::OboLayer::admit_with) — what
//! Microsoft.Identity.Web's `OnTokenValidated` event is for.
//!
//! # Where it sits
//!
//! The layer runs it after the token is validated and the layer-wide policy
//! admits it, before the request reaches your routes. Its refusal is the
//! request's answer ([`AuthRejection::NotAdmitted`](crate::AuthRejection::NotAdmitted)).
//!
//! # When it runs
//!
//! - [`Admission::every_request`]: on every request with a valid token, also when
//!   the token was validated before (a validated-token cache hit). Each request
//!   then takes the layer's boxed path and waits for the hook: keep it cheap, or
//!   cache inside it.
//! - [`Admission::per_tenant`]: the decision is about the tenant (`tid`) alone
//!   and is cached per tenant for a time to live: the hook runs once per tenant
//!   per TTL (concurrent first requests of a tenant share one run), and a request
//!   of an admitted tenant whose token is in the validated-token cache keeps the
//!   layer's fast path. Refusals are cached too (a refused tenant cannot hammer
//!   your database); failures ([`Refusal::unavailable`]) are not. A tenant stays
//!   admitted up to a TTL after you stop admitting it.
//!
//! # How it fails
//!
//! [`Refusal::unauthorized`] answers 401 `invalid_token`, [`Refusal::forbidden`]
//! 403 `insufficient_scope` (both with the RFC 6750 challenge and your
//! description, which the client sees: never put a secret in it),
//! [`Refusal::unavailable`] 503 `temporarily_unavailable` with `Retry-After: 5`
//! (your cause is logged at warn level, the client sees a fixed description): a
//! failing database is the server's trouble, not the caller's, and never a 500.
//! The hook is not given a time limit by the layer: bound your own calls.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use moka::future::Cache;

use crate::validate::Principal;

/// Most tenants whose decision a [`Admission::per_tenant`] hook keeps.
const MAX_TENANTS: u64 = 100_000;

/// Longest a [`Admission::per_tenant`] decision is kept: a longer `ttl` (e.g.
/// `Duration::MAX` for "until restart") is this (moka refuses over 1,000 years).
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Why an admission hook refused a caller (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{description}")]
pub struct Refusal {
    kind: RefusalKind,
    description: Cow<'static, str>,
}

/// The answer a [`Refusal`] is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalKind {
    /// 401 `invalid_token`: the caller should sign in again (e.g. elsewhere).
    Unauthorized,
    /// 403 `insufficient_scope`: the caller is known and may not use this API.
    Forbidden,
    /// 503 `temporarily_unavailable`: the check itself failed; try again later.
    Unavailable,
}

impl Refusal {
    /// 401 `invalid_token` with `description` (sent to the client).
    pub fn unauthorized(description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind: RefusalKind::Unauthorized,
            description: description.into(),
        }
    }

    /// 403 `insufficient_scope` with `description` (sent to the client), e.g.
    /// "your organization has no subscription".
    pub fn forbidden(description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind: RefusalKind::Forbidden,
            description: description.into(),
        }
    }

    /// 503 with `Retry-After`: the check could not be made (a database down).
    /// `cause` is logged at warn level, never sent; never cached.
    pub fn unavailable(cause: impl fmt::Display) -> Self {
        tracing::warn!(error = %cause, "the admission hook failed; answering 503");
        Self {
            kind: RefusalKind::Unavailable,
            description: "the service cannot admit callers right now; try again later".into(),
        }
    }

    /// Which answer this is.
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    /// The client-facing description.
    pub fn description(&self) -> &str {
        &self.description
    }
}

type EveryRequest = dyn Fn(Principal) -> BoxFuture<'static, Result<(), Refusal>> + Send + Sync;
type PerTenant = dyn Fn(String) -> BoxFuture<'static, Result<(), Refusal>> + Send + Sync;

/// An admission hook for [`OboLayer::admit_with`](crate::OboLayer::admit_with).
#[derive(Clone)]
pub struct Admission {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    EveryRequest(Arc<EveryRequest>),
    PerTenant {
        hook: Arc<PerTenant>,
        /// Every decision (admit or refuse) per tenant, within its TTL.
        decisions: Cache<String, Result<(), Refusal>>,
        /// The admitted tenants among them, for the layer's fast path (whose
        /// lookup cannot wait). Written only when the hook admits.
        admitted: Cache<String, ()>,
    },
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::EveryRequest(_) => f.write_str("Admission::EveryRequest"),
            Kind::PerTenant { decisions, .. } => f
                .debug_struct("Admission::PerTenant")
                .field("tenants", &decisions.entry_count())
                .finish_non_exhaustive(),
        }
    }
}

impl Admission {
    /// A hook run on every request with a valid token (see the [module docs](self)).
    ///
    /// ```
    /// use axum_obo::admission::{Admission, Refusal};
    ///
    /// let suspended = std::sync::Arc::new(std::collections::HashSet::from(["a-user-oid".to_owned()]));
    /// let admission = Admission::every_request(move |caller| {
    ///     let suspended = suspended.clone();
    ///     async move {
    ///         if suspended.contains(caller.oid()) {
    ///             return Err(Refusal::forbidden("this account is suspended"));
    ///         }
    ///         Ok(())
    ///     }
    /// });
    /// # let _ = admission;
    /// ```
    pub fn every_request<F, Fut>(hook: F) -> Self
    where
        F: Fn(Principal) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Refusal>> + Send + 'static,
    {
        Self {
            kind: Kind::EveryRequest(Arc::new(move |p| Box::pin(hook(p)))),
        }
    }

    /// A hook deciding per tenant (it is given the `tid`), its decisions cached
    /// for `ttl` (see the [module docs](self)); a `ttl` over 100 years, such as
    /// `Duration::MAX`, keeps them 100 years.
    ///
    /// ```
    /// use std::time::Duration;
    /// use axum_obo::admission::{Admission, Refusal};
    ///
    /// # async fn subscription_of(_: &str) -> Result<bool, std::io::Error> { Ok(true) }
    /// let admission = Admission::per_tenant(Duration::from_secs(300), |tid| async move {
    ///     match subscription_of(&tid).await {
    ///         Ok(true) => Ok(()),
    ///         Ok(false) => Err(Refusal::forbidden("your organization has no subscription")),
    ///         Err(e) => Err(Refusal::unavailable(e)),
    ///     }
    /// });
    /// # let _ = admission;
    /// ```
    pub fn per_tenant<F, Fut>(ttl: Duration, hook: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Refusal>> + Send + 'static,
    {
        Self {
            kind: Kind::PerTenant {
                hook: Arc::new(move |tid| Box::pin(hook(tid))),
                decisions: tenant_cache(ttl),
                admitted: tenant_cache(ttl),
            },
        }
    }

    /// Whether `caller` is admitted without waiting: a tenant admitted within
    /// the TTL of a per-tenant hook. `false` means "ask [`check`](Self::check)".
    pub(crate) fn admitted_now(&self, caller: &Principal) -> bool {
        match &self.kind {
            Kind::EveryRequest(_) => false,
            Kind::PerTenant { admitted, .. } => admitted.contains_key(caller.tid()),
        }
    }

    /// Runs the hook for `caller`, or answers from the per-tenant cache.
    pub(crate) async fn check(&self, caller: &Principal) -> Result<(), Refusal> {
        match &self.kind {
            Kind::EveryRequest(hook) => hook(caller.clone()).await,
            Kind::PerTenant {
                hook,
                decisions,
                admitted,
            } => {
                let tid = caller.tid().to_owned();
                let decide = async {
                    let decision = hook(tid.clone()).await;
                    match &decision {
                        Ok(()) => admitted.insert(tid.clone(), ()).await,
                        Err(r) if r.kind == RefusalKind::Unavailable => return Err(r.clone()),
                        Err(_) => {}
                    }
                    Ok(decision)
                };
                match decisions.try_get_with(tid.clone(), decide).await {
                    Ok(decision) => decision,
                    Err(unavailable) => Err((*unavailable).clone()),
                }
            }
        }
    }
}

/// A cache of per-tenant values living `ttl`.
fn tenant_cache<V: Clone + Send + Sync + 'static>(ttl: Duration) -> Cache<String, V> {
    Cache::builder()
        .max_capacity(MAX_TENANTS)
        .time_to_live(ttl.min(MAX_TTL))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Forever" (`Duration::MAX`) is a TTL an app may well write: it must not
    /// panic (moka refuses TTLs over 1,000 years), and decisions are kept.
    #[test]
    fn a_ttl_of_forever_is_accepted_and_keeps_decisions() {
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        let admission = Admission::per_tenant(Duration::MAX, move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Ok(()) }
        });
        let caller = Principal::for_tests("a", &["access_as_user"], &[]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for _ in 0..3 {
                assert_eq!(admission.check(&caller).await, Ok(()));
            }
        });
        assert!(admission.admitted_now(&caller));
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
