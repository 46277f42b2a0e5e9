//! Fixtures shared by `axum-obo`'s hostile-input tests (`tests/hostile.rs`) and its fuzz
//! targets (`fuzz/`): a scripted upstream whose answers a test chooses, and the decoders
//! that turn fuzz input bytes into requests and answers (so that `cargo test` replays the
//! fuzz regressions exactly as the fuzzer ran them).
//!
//! Not a stable API: hidden from the docs, changed with the tests that use it.

mod fuzz_input;
mod upstream;

pub use fuzz_input::{
    authorization_header, graph_response, jwt, token_response, GRAPH_STATUSES, TOKEN_STATUSES,
};
pub use upstream::{loopback, runtime, serve_scripted, Answer, BodyMode, Scripted, Upstreams};
