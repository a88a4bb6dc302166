//! The decision log as the gateway uses it: real files, real threads, a real `kill -9`.
//! One test binary, so the crash test can run itself as the child it kills.

mod archive;
mod chain;
mod crash;
mod failure;
mod fleet;
mod reports;
mod support;
mod tamper;
