//! Downstream scopes as types.

/// A set of downstream scopes requested together in one On-Behalf-Of exchange.
///
/// Use full scope URIs (`https://graph.microsoft.com/User.Read`); that is what is
/// sent to the token endpoint. Declare one with [`scope!`](crate::scope):
/// ```
/// axum_obo::scope!(
///     /// Read the user's mail.
///     pub MailRead => ["https://graph.microsoft.com/Mail.Read"]
/// );
/// use axum_obo::Scope;
/// assert_eq!(MailRead::SCOPES, ["https://graph.microsoft.com/Mail.Read"]);
/// ```
pub trait Scope: Send + Sync + 'static {
    /// The scopes, as sent (space-joined) in the `scope` field.
    const SCOPES: &'static [&'static str];
}

/// Declares a unit struct implementing [`Scope`].
#[macro_export]
macro_rules! scope {
    ($(#[$meta:meta])* $vis:vis $name:ident => [$($scope:expr),+ $(,)?]) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $name;
        impl $crate::Scope for $name {
            const SCOPES: &'static [&'static str] = &[$($scope),+];
        }
    };
}

scope!(
    /// Microsoft Graph `User.Read`: the signed-in user's profile.
    pub GraphUserRead => ["https://graph.microsoft.com/User.Read"]
);
scope!(
    /// Microsoft Graph `.default`: every Graph permission granted to this API.
    pub GraphDefault => ["https://graph.microsoft.com/.default"]
);

/// The scope set as sent (space-joined, in declared order) and its normalized
/// form for cache keys (lowercased, sorted, deduplicated).
pub(crate) fn scope_strings(scopes: &[&str]) -> (String, String) {
    let sent = scopes.join(" ");
    let mut norm: Vec<String> = scopes
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_ascii_lowercase)
        .collect();
    norm.sort();
    norm.dedup();
    (sent, norm.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_ignores_order_case_and_duplicates() {
        let (sent, a) = scope_strings(&["https://graph.microsoft.com/User.Read", "B", "a"]);
        assert_eq!(sent, "https://graph.microsoft.com/User.Read B a");
        let (_, b) = scope_strings(&["A", "https://graph.microsoft.com/user.read", "b", "a"]);
        assert_eq!(a, b);
        assert_ne!(a, scope_strings(&["a"]).1);
    }
}
