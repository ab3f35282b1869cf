//! A plain HTTP/1 client for the subcommands that ask a node something, and for the admin
//! server's own probes and measurements.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

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
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    client
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
