//! The scenario library: CNI- and provider-agnostic scenarios that suites pick from.

pub mod canary;
pub mod egress;
