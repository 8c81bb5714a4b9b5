//! End-to-end tests of entraid-rs live in `tests/tests/`: each starts its own emulator and redis-server processes
//! (through `entraid-testkit`) on free ports and stops them afterwards.
//!
//! This library part is empty; shared helpers for the end-to-end tests go here as they are written.

#![forbid(unsafe_code)]
