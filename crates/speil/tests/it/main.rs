//! Integration tests of the `speil` binary: real processes, real skopeo, real dnsmasq, real
//! signals. One test binary; one module per area.

mod auth;
mod bootstrap;
mod chart;
mod cli;
mod cluster;
mod containerd;
mod health;
mod image;
mod mirror;
mod readme;
mod status;
