//! A plain HTTP/1 client for the subcommands that ask a node something, and for the admin
//! server's own probes and measurements: one client per process, so connections to a node are
//! reused (`speil status --cluster` asks hundreds of nodes; the debug page pulls every part of
//! an image from the node's own registry).

use std::sync::LazyLock;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The process's client. A process runs one async runtime, whose tasks the pool's
/// housekeeping runs on.
static CLIENT: LazyLock<Client<HttpConnector, Empty<Bytes>>> =
    LazyLock::new(|| Client::builder(TokioExecutor::new()).build_http());

/// `GET url`, the response with its body unread.
pub(crate) async fn get(url: &str) -> Result<hyper::Response<hyper::body::Incoming>, String> {
    get_with(url, &[]).await
}

/// `GET url` with extra `headers`, the response with its body unread.
pub(crate) async fn get_with(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<hyper::Response<hyper::body::Incoming>, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("is not a URL: {e}"))?;
    let mut request = hyper::Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("is not a valid request: {e}"))?;
    CLIENT
        .request(request)
        .await
        .map_err(|e| format!("is unreachable: {}", root_cause(&e)))
}

/// The innermost error, which says what actually went wrong (connection refused, …).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut source = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}
