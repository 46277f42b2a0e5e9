//! The federated token file of workload identity (`AZURE_FEDERATED_TOKEN_FILE`):
//! re-read for every exchange, so a token rotated on disk is used at once. Holds
//! only the path; an unreadable or empty file fails that exchange as misconfigured.

use std::path::PathBuf;

use super::CredentialError;
use crate::secret::SecretString;

/// A federated token read from a file (`AZURE_FEDERATED_TOKEN_FILE`, e.g. AKS
/// workload identity). The file is re-read for every exchange, so a token
/// rotated on disk is picked up at once.
#[derive(Debug, Clone)]
pub(crate) struct FederatedTokenFile {
    path: PathBuf,
}

impl FederatedTokenFile {
    /// Reads assertions from `path`.
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The current assertion in the file.
    pub(crate) async fn read(&self) -> Result<SecretString, CredentialError> {
        let text = tokio::fs::read_to_string(&self.path).await.map_err(|e| {
            CredentialError::new(format!(
                "cannot read the federated token file {}: {}",
                self.path.display(),
                e.kind()
            ))
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(CredentialError::new(format!(
                "the federated token file {} is empty",
                self.path.display()
            )));
        }
        Ok(SecretString::new(token))
    }
}
