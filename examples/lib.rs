//! Shared pieces of the httpq examples: the message types and the service of the `grpc`
//! example, so that its test can call it with a real tonic client; and the `Router` of the
//! `axum` example, so that `bench/` can serve the same app on hyper.

#[path = "greeter.rs"]
pub mod greeter;

#[path = "axum_app.rs"]
pub mod axum_app;
