//! A plain HTTP/1 client for the subcommands that ask a node something.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// `GET url`, the response with its body unread.
pub(crate) async fn get(url: &str) -> Result<hyper::Response<hyper::body::Incoming>, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("is not a URL: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    client
        .get(uri)
        .await
        .map_err(|e| format!("is unreachable: {e}"))
}
