//! Reading a node's metrics and status in tests.

use std::net::SocketAddr;

/// The text of `/metrics` at `addr`.
pub async fn scrape(addr: SocketAddr) -> String {
    let r = crate::http::get(&format!("http://{addr}/metrics")).await;
    String::from_utf8(r.body.to_vec()).unwrap()
}

/// The value of the series written exactly as `series` (name and labels, e.g.
/// `speil_p2p_self_dials_total` or `speil_bootstrap_state{state="connected"}`); 0 when absent.
pub fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `/status` at `addr` as JSON.
pub async fn status(addr: SocketAddr) -> serde_json::Value {
    crate::http::get(&format!("http://{addr}/status"))
        .await
        .json()
}

/// The peer ids `/debug/lookup` at `addr` finds for `key`.
pub async fn lookup(addr: SocketAddr, key: &str) -> Vec<String> {
    let url = format!(
        "http://{addr}/debug/lookup?key={}",
        key.replace(':', "%3A").replace('/', "%2F")
    );
    let v = crate::http::get(&url).await.json();
    v["providers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["peer"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
