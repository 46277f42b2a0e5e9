//! [`ConfigError`]: a configuration value that could not be accepted, naming the
//! builder field at fault (also when the value came from an environment variable,
//! which the reason then names).

/// A configuration value that could not be accepted. Names the field.
///
/// [`field`](Self::field) is always the name of the [`OboConfigBuilder`](crate::OboConfigBuilder)
/// setter (`tenant_id`, `obo_redis_timeout`, …), whether the value was set in code
/// or read by [`from_env`](crate::OboConfigBuilder::from_env); in the latter case
/// the [`reason`](Self::reason) names the environment variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid axum-obo configuration: `{field}`: {reason}")]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The same error, its reason naming the environment variable `variable` the
    /// value came from.
    pub(crate) fn in_variable(mut self, variable: &str) -> Self {
        self.reason = format!("{} (environment variable {variable})", self.reason);
        self
    }

    /// The configuration field at fault: the builder setter's name.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why it was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}
