//! httpq-test-support
