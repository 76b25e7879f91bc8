//! Test support for workflow stores and hosts: the store conformance suite, and what the
//! backends' crash tests share.

pub mod conformance;
pub mod crash;
