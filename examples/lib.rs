//! Shared pieces of the httpq examples: the message types and the service of the `grpc`
//! example, so that its test can call it with a real tonic client.

#[path = "greeter.rs"]
pub mod greeter;
