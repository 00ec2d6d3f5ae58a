//! The `ami` service: persists each transition of the `ami-core` engine in one
//! transaction and exposes it as a JSON API with per-agency tokens.

pub mod auth;
pub mod cli;
pub mod demo;
pub mod demo_files;
pub mod export;
pub mod files;
pub mod http;
pub mod mail;
pub mod store;
pub mod web;
