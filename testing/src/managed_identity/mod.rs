//! A stand-in for the managed identity endpoint of Azure App Service, Azure Functions and
//! Azure Container Apps: [`ManagedIdentityStandIn`].
//!
#![doc = include_str!("protocol.md")]

mod faults;
mod server;
mod standin;
mod token;

pub use faults::ManagedIdentityFault;
pub use standin::{ManagedIdentity, ManagedIdentityStandIn};
