//! Integration tests of the `speil` binary: real processes, real skopeo, real dnsmasq, real
//! signals. One test binary; one module per area.

/// Runs `async fn $test(version: test_support::containerd::Version)` once per containerd Speil is
/// tested on, as the tests `$test::containerd_1_6` and `$test::containerd_2`: one body, and a
/// failure names the version it failed on (a loop inside one test would stop at the first
/// version and hide whether the other passes).
macro_rules! on_each_containerd {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test]
            async fn containerd_1_6() {
                super::$test(test_support::containerd::Version::V1_6).await;
            }
            #[tokio::test]
            async fn containerd_2() {
                super::$test(test_support::containerd::Version::V2).await;
            }
        }
    )+};
}

mod auth;
mod bootstrap;
mod chart;
mod cli;
mod cluster;
mod containerd;
mod containerd2;
mod dead_holders;
mod guard;
mod health;
mod http_abuse;
mod image;
mod in_flight;
mod mirror;
mod private_network;
mod readme;
mod rogue;
mod status;
