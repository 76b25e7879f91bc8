//! Test support for workflow stores and hosts: the store conformance suite.

pub mod conformance;
