//! [`Harness`]: the Entra and Graph stand-ins started together and wired to each other, and
//! an `axum-obo` configuration pointing at them.

use axum_obo::{OboConfig, OboConfigBuilder};

use crate::{EntraStandIn, GraphStandIn};

/// An [`EntraStandIn`] and a [`GraphStandIn`] that trusts its keys
/// ([`EntraStandIn::jwks_url`]), both on loopback.
///
/// [`config`](Self::config) is an [`OboConfigBuilder`] already set with the tenant, the
/// API's client id and secret, the authority host and the Graph URL: add your own policy and
/// `build()` it.
///
/// ```
/// use axum_obo_testing::Harness;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let harness = Harness::start().await;
/// let config = harness.config().build().unwrap();
/// assert_eq!(config.tenant_id(), harness.entra().home_tenant());
/// # }
/// ```
///
/// Cheap to clone; the stand-ins stop when the last clone of each is dropped.
#[derive(Debug, Clone)]
pub struct Harness {
    entra: EntraStandIn,
    graph: GraphStandIn,
}

impl Harness {
    /// Starts an Entra stand-in with random ids and a Graph stand-in trusting it.
    pub async fn start() -> Harness {
        Harness::with_entra(EntraStandIn::start().await).await
    }

    /// Starts a Graph stand-in trusting `entra` (e.g. one built with
    /// [`EntraStandIn::builder`]).
    pub async fn with_entra(entra: EntraStandIn) -> Harness {
        let graph = GraphStandIn::start(&entra.jwks_url()).await;
        Harness { entra, graph }
    }

    /// The Entra ID stand-in: tokens, keys, the token endpoint and its faults.
    pub fn entra(&self) -> &EntraStandIn {
        &self.entra
    }

    /// The Graph stand-in.
    pub fn graph(&self) -> &GraphStandIn {
        &self.graph
    }

    /// A configuration of the API under test against the stand-ins: tenant, client id,
    /// client secret, authority host and Graph URL set.
    pub fn config(&self) -> OboConfigBuilder {
        OboConfig::builder()
            .tenant_id(self.entra.home_tenant())
            .client_id(self.entra.api_client_id())
            .client_secret(self.entra.client_secret())
            .authority_host(self.entra.authority_host())
            .graph_url(self.graph.url())
    }
}

#[cfg(test)]
mod tests {
    /// The first `rust` code block of a Markdown text.
    fn rust_block(markdown: &str) -> &str {
        let start = markdown.find("```rust\n").expect("a rust code block") + "```rust\n".len();
        let end = markdown[start..].find("```").expect("a closed code block");
        &markdown[start..start + end]
    }

    /// The root README's "Testing your own app offline" snippet is the one the crate docs
    /// compile and run (`testing/README.md`).
    #[test]
    fn the_root_readme_shows_the_tested_snippet() {
        let root = include_str!("../../README.md");
        let section = &root[root
            .find("## Testing your own app offline")
            .expect("the section")..];
        assert_eq!(
            rust_block(section),
            rust_block(include_str!("../README.md"))
        );
    }
}
