//! The registry's HTTP API, end to end over TCP: every endpoint and status code, and the hostile
//! inputs that must never cause a 500, a panic or a read outside the store.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use oci::Digest;
use store::OciDir;
use test_support::http::{Response, get, request};
use test_support::image::{self, Written};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Server {
    base: String,
    image: Written,
    index: Written,
    _dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start_with(readiness: registry::Readiness) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let image =
        image::write_image(dir.path(), "example.com/team/app:1.0", &[3000, 70_000], 1).unwrap();
    let index = image::write_index(dir.path(), "example.com/team/multi:2.0", &[1000], 2).unwrap();
    let shutdown = CancellationToken::new();
    let store = OciDir::open(
        dir.path(),
        Duration::from_millis(100),
        &TaskTracker::new(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let mut metrics = prometheus_client::registry::Registry::default();
    let router = registry::Registry::new(
        Arc::new(store),
        registry::Metrics::register(&mut metrics),
        readiness,
    )
    .router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(registry::serve(listener, router, shutdown.clone()));
    Server {
        base,
        image,
        index,
        _dir: dir,
        shutdown,
    }
}

async fn start() -> Server {
    start_with(Arc::new(|| Ok(()))).await
}

fn assert_oci_error(r: &Response, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "body: {:?}", r.body);
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.oci_code(), code, "body: {:?}", r.body);
    assert!(r.json()["errors"][0]["message"].is_string());
}

#[tokio::test]
async fn api_version_and_health() {
    let s = start().await;
    for path in ["/v2/", "/v2"] {
        let r = get(&format!("{}{path}", s.base)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("docker-distribution-api-version"), "registry/2.0");
    }
    let r = request(Method::HEAD, &format!("{}/v2/", s.base), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        get(&format!("{}/livez", s.base)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&format!("{}/readyz", s.base)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn readyz_reports_why_not_ready() {
    let s = start_with(Arc::new(|| Err("bootstrap state is isolated".into()))).await;
    let r = get(&format!("{}/readyz", s.base)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&r.body).contains("isolated"));
    assert_eq!(
        get(&format!("{}/livez", s.base)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn manifest_by_tag_and_digest_in_both_name_forms() {
    let s = start().await;
    let top = &s.image.top;
    for url in [
        format!("{}/v2/example.com/team/app/manifests/1.0", s.base),
        format!("{}/v2/team/app/manifests/1.0?ns=example.com", s.base),
        format!(
            "{}/v2/team/app/manifests/{}?ns=example.com",
            s.base, top.digest
        ),
    ] {
        let r = get(&url).await;
        assert_eq!(r.status, StatusCode::OK, "{url}");
        assert_eq!(r.header("content-type"), oci::media_type::OCI_MANIFEST);
        assert_eq!(r.header("content-length"), top.size.to_string());
        assert_eq!(r.header("docker-content-digest"), top.digest.to_string());
        assert_eq!(Digest::sha256_of(&r.body), top.digest);

        let h = request(Method::HEAD, &url, &[]).await;
        assert_eq!(h.status, StatusCode::OK);
        assert!(h.body.is_empty());
        assert_eq!(h.header("content-length"), top.size.to_string());
        assert_eq!(h.header("docker-content-digest"), top.digest.to_string());
    }
}

#[tokio::test]
async fn image_index_is_served_as_is() {
    let s = start().await;
    let r = get(&format!(
        "{}/v2/team/multi/manifests/2.0?ns=example.com",
        s.base
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), oci::media_type::OCI_INDEX);
    assert_eq!(Digest::sha256_of(&r.body), s.index.top.digest);
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn blobs_whole_and_ranged() {
    let s = start().await;
    let layer = &s.image.layers[1];
    let url = format!(
        "{}/v2/team/app/blobs/{}?ns=example.com",
        s.base, layer.digest
    );
    let r = get(&url).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("accept-ranges"), "bytes");
    assert_eq!(r.header("content-type"), "application/octet-stream");
    assert_eq!(r.header("docker-content-digest"), layer.digest.to_string());
    assert_eq!(r.body.len() as u64, layer.size);
    assert_eq!(Digest::sha256_of(&r.body), layer.digest);
    let whole = r.body;

    let size = layer.size;
    for (range, first, last) in [
        ("bytes=0-99".to_owned(), 0, 99),
        ("bytes=1000-".to_owned(), 1000, size - 1),
        ("bytes=-10".to_owned(), size - 10, size - 1),
        (format!("bytes=5-{}", u64::MAX), 5, size - 1),
        ("bytes=7-99999999999999999999999999".to_owned(), 7, size - 1),
    ] {
        let r = request(Method::GET, &url, &[("range", &range)]).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            r.header("content-range"),
            format!("bytes {first}-{last}/{size}")
        );
        assert_eq!(r.header("content-length"), (last - first + 1).to_string());
        assert_eq!(
            &r.body[..],
            &whole[first as usize..=last as usize],
            "{range}"
        );
    }

    for range in [
        format!("bytes={size}-"),
        "bytes=99999999999999999999999-".into(),
        "bytes=-0".into(),
    ] {
        let r = request(Method::GET, &url, &[("range", &range)]).await;
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(r.header("content-range"), format!("bytes */{size}"));
        assert_eq!(r.oci_code(), "SIZE_INVALID");
    }

    for range in ["bytes=0-1,5-6", "bytes=x-y", "lines=1-2", "bytes=9-3"] {
        let r = request(Method::GET, &url, &[("range", range)]).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{range} is ignored, as RFC 9110 allows"
        );
        assert_eq!(r.body, whole);
    }

    let h = request(Method::HEAD, &url, &[("range", "bytes=0-9")]).await;
    assert_eq!(h.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h.header("content-length"), "10");
    assert!(h.body.is_empty());
}

#[tokio::test]
async fn misses_are_404_with_the_right_code() {
    let s = start().await;
    let missing = Digest::sha256_of(b"nobody has this");
    let cases = [
        (
            "/v2/team/app/manifests/2.0?ns=example.com".to_owned(),
            "MANIFEST_UNKNOWN",
        ),
        (
            "/v2/team/other/manifests/1.0?ns=example.com".to_owned(),
            "MANIFEST_UNKNOWN",
        ),
        (
            "/v2/example.org/team/app/manifests/1.0".to_owned(),
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/team/app/manifests/{missing}"),
            "MANIFEST_UNKNOWN",
        ),
        (format!("/v2/team/app/blobs/{missing}"), "BLOB_UNKNOWN"),
        // A layer asked for as a manifest.
        (
            format!("/v2/team/app/manifests/{}", s.image.layers[0].digest),
            "MANIFEST_UNKNOWN",
        ),
        ("/v2/team/app/tags/list".to_owned(), "NAME_UNKNOWN"),
        ("/v2/_catalog".to_owned(), "NAME_UNKNOWN"),
        ("/anything/else".to_owned(), "NAME_UNKNOWN"),
    ];
    for (path, code) in cases {
        let r = get(&format!("{}{path}", s.base)).await;
        assert_oci_error(&r, StatusCode::NOT_FOUND, code);
        let h = request(Method::HEAD, &format!("{}{path}", s.base), &[]).await;
        assert_eq!(h.status, StatusCode::NOT_FOUND, "HEAD {path}");
    }
}

#[tokio::test]
async fn writes_are_405_unsupported() {
    let s = start().await;
    let d = &s.image.top.digest;
    for (method, path) in [
        (Method::POST, "/v2/team/app/blobs/uploads/".to_owned()),
        (Method::PUT, "/v2/team/app/manifests/1.0".to_owned()),
        (Method::PATCH, "/v2/team/app/blobs/uploads/x".to_owned()),
        (Method::DELETE, format!("/v2/team/app/manifests/{d}")),
        (Method::DELETE, format!("/v2/team/app/blobs/{d}")),
    ] {
        let r = request(method.clone(), &format!("{}{path}", s.base), &[]).await;
        assert_oci_error(&r, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
        assert_eq!(r.header("allow"), "GET, HEAD");
    }
}

#[tokio::test]
async fn hostile_requests_get_oci_errors_never_500() {
    let s = start().await;
    let long = "a".repeat(10 * 1024);
    let cases: Vec<(String, u16, &str)> = vec![
        (
            "/v2/team/app/blobs/sha256:../../etc/passwd".into(),
            400,
            "DIGEST_INVALID",
        ),
        (
            "/v2/team/app/manifests/sha256:../../etc/passwd".into(),
            400,
            "DIGEST_INVALID",
        ),
        (
            "/v2/team/app/blobs/sha256%3A..%2F..%2Fetc%2Fpasswd".into(),
            400,
            "DIGEST_INVALID",
        ),
        ("/v2/team%2Fapp/manifests/1.0".into(), 400, "NAME_INVALID"),
        (
            "/v2/..%2F..%2Fetc/manifests/passwd".into(),
            400,
            "NAME_INVALID",
        ),
        ("/v2/../../etc/manifests/passwd".into(), 400, "NAME_INVALID"),
        ("/v2/team/app/manifests/..".into(), 400, "MANIFEST_INVALID"),
        (format!("/v2/{long}/manifests/1.0"), 400, "NAME_INVALID"),
        // Longer than any valid path: rejected before it is split.
        (
            format!("/v2/team/app/manifests/{long}"),
            400,
            "NAME_INVALID",
        ),
        (
            format!("/v2/team/app/blobs/sha256:{long}"),
            400,
            "NAME_INVALID",
        ),
        (
            format!("/v2/team/app/blobs/sha256:{}", "a".repeat(999)),
            400,
            "DIGEST_INVALID",
        ),
        (
            format!("/v2/team/app/manifests/{}", "a".repeat(999)),
            400,
            "MANIFEST_INVALID",
        ),
        (
            format!("/v2/team/app/manifests/1.0?ns={long}"),
            400,
            "NAME_INVALID",
        ),
        (
            "/v2/team/app/manifests/1.0?ns=..%2F..".into(),
            400,
            "NAME_INVALID",
        ),
        (
            "/v2/team/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e".into(),
            400,
            "DIGEST_INVALID",
        ),
    ];
    for (path, status, code) in cases {
        let r = get(&format!("{}{path}", s.base)).await;
        let shown: String = path.chars().take(80).collect();
        assert_eq!(r.status.as_u16(), status, "{shown}: {:?}", r.body);
        assert_eq!(r.oci_code(), code, "{shown}");
    }
    // The server is still answering normally afterwards.
    let r = get(&format!(
        "{}/v2/team/app/manifests/1.0?ns=example.com",
        s.base
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK);
}
