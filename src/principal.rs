//! Who is calling: the validated [`Principal`] and the kind and version of the
//! access token it came from.

pub use crate::validate::{Principal, TokenKind, TokenVersion};
