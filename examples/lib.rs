//! Shared pieces of the httpq examples (none yet; the examples are self-contained).
