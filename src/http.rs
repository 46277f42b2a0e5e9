//! HTTP plumbing shared by discovery, the token endpoint and the downstream client:
//! reading response bodies under a size cap while they stream in.

/// Largest discovery or JWKS document accepted.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Largest token-endpoint answer accepted (a token response is a few KB).
pub(crate) const MAX_TOKEN_RESPONSE_BYTES: usize = 256 * 1024;

/// Largest downstream API answer accepted (a Graph page or `$batch` answer).
pub(crate) const MAX_DOWNSTREAM_BYTES: usize = 16 << 20;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body grew past the cap; reading stopped there.
    TooLarge,
    /// The connection failed or timed out while reading.
    Transport(reqwest::Error),
}

/// Reads `response`'s body chunk by chunk, giving up as soon as it exceeds
/// `max` bytes (a `Content-Length` over `max` is refused before reading), so a
/// hostile or broken server cannot make us buffer more than `max`.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
