//! Shared helpers for the ami integration tests.
