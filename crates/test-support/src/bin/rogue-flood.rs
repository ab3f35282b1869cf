//! Floods a Speil node's router with the rogue peer of `test_support::rogue` until killed, for
//! benchmarks that measure the node while it is under attack (bench/flood.sh).
//!
//! ```text
//! rogue-flood ROUTER_ADDR PSK_HEX
//! ```
//!
//! `ROUTER_ADDR` is `IP:PORT`; `PSK_HEX` the private network's key as 64 hex digits (the third
//! line of its swarm.key), or `-` for a node without one. In rounds, without pause: 10,000
//! provider records, 100 new connections, and an announcement of 3,000 listen addresses; every
//! lookup the node makes is answered with 1,000 fake providers on unroutable addresses. One
//! line per round on stdout says what was done.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Instant;

use test_support::rogue::{Answer, Config, Identities, Multiaddr, Rogue, fake_peers, tcp_addr};

fn parse(args: &[String]) -> Result<(SocketAddr, Option<[u8; 32]>), String> {
    let [addr, psk] = args else {
        return Err("usage: rogue-flood ROUTER_ADDR (PSK_HEX | -)".into());
    };
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("ROUTER_ADDR {addr:?}: {e}"))?;
    let psk = if psk == "-" {
        None
    } else {
        let bytes = hex::decode(psk).map_err(|e| format!("PSK_HEX: {e}"))?;
        Some(
            bytes
                .try_into()
                .map_err(|_| "PSK_HEX: not 32 bytes".to_owned())?,
        )
    };
    Ok((addr, psk))
}

/// Addresses in TEST-NET-1: unroutable, never answered.
fn unroutable(i: usize) -> Multiaddr {
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, (i % 250) as u8 + 1));
    tcp_addr(ip, 10_000 + (i / 250) as u16)
}

async fn flood(addr: SocketAddr, psk: Option<[u8; 32]>) -> Result<(), String> {
    let rogue = Rogue::start(Config {
        psk,
        ..Config::default()
    });
    rogue.connect(tcp_addr(addr.ip(), addr.port())).await?;
    rogue.set_answer(Some(Answer::providers(fake_peers(1000, |i| {
        vec![unroutable(i)]
    }))));
    let announced: Vec<Multiaddr> = (0..3000).map(unroutable).collect();
    for round in 1.. {
        let started = Instant::now();
        let records = rogue
            .publish_providers(10_000)
            .await
            .map_err(|e| e.to_string())?;
        let opened = rogue.open_connections(100, Identities::Many).await;
        let pushes = rogue
            .announce_addresses(announced.clone())
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "round {round}: {} records, {} of 100 connections, {} identify pushes in {:?}",
            records.len(),
            opened.established,
            pushes.len(),
            started.elapsed()
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match parse(&args) {
        Ok((addr, psk)) => flood(addr, psk).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rogue-flood: {e}");
            ExitCode::FAILURE
        }
    }
}
