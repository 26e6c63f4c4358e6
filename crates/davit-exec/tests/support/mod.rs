//! Test support shared by the SSH test binaries.
#![allow(dead_code)]

pub mod http;
pub mod sshd;
