//! Extractors: the validated [`Principal`] and the [`Require`] guard.

use std::fmt;
use std::marker::PhantomData;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::layer::LayerContext;
use crate::policy::{check_requirement, Requirement};
use crate::rejection::AuthRejection;
use crate::validate::Principal;

fn context(parts: &Parts) -> Result<&LayerContext, AuthRejection> {
    parts
        .extensions
        .get::<LayerContext>()
        .ok_or(AuthRejection::MissingLayer)
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match &context(parts)?.auth {
            Some(a) => Ok(a.principal.clone()),
            None => Err(AuthRejection::MissingToken),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(context(parts)?.auth.as_ref().map(|a| a.principal.clone()))
    }
}

/// A guard extractor: the route runs only if the caller meets `R`
/// (otherwise 403 `insufficient_scope`). Derefs to the [`Principal`].
///
/// ```
/// use axum::{routing::get, Router};
/// use axum_obo::{Require, Requirement};
///
/// struct ReadTasks;
/// impl Requirement for ReadTasks {
///     const SCOPES: &'static [&'static str] = &["Tasks.Read"];
///     const ROLES: &'static [&'static str] = &["Tasks.Read.All"];
/// }
///
/// async fn tasks(caller: Require<ReadTasks>) -> String {
///     format!("tasks of {}", caller.oid())
/// }
/// let app: Router = Router::new().route("/tasks", get(tasks));
/// ```
pub struct Require<R: Requirement>(pub Principal, PhantomData<fn() -> R>);

impl<R: Requirement> Require<R> {
    /// The caller.
    pub fn into_inner(self) -> Principal {
        self.0
    }
}

impl<R: Requirement> std::ops::Deref for Require<R> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<R: Requirement> fmt::Debug for Require<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Require").field(&self.0).finish()
    }
}

impl<S: Send + Sync, R: Requirement> FromRequestParts<S> for Require<R> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = <Principal as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        check_requirement::<R>(&principal).map_err(|f| {
            tracing::debug!(oid = principal.oid(), "route requirement not met: {f}");
            AuthRejection::Forbidden(f)
        })?;
        Ok(Require(principal, PhantomData))
    }
}
