//! The debug page (`--debug-web`): `/debug/web/` is one self-contained HTML page (no external
//! asset, so it works air-gapped) that reads `/debug/checks` (checks and status document) and
//! `/debug/images`, and runs `/debug/measure`, which looks a reference up in the DHT and pulls it through this node's own
//! registry, timing each part and saying where it came from.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http_body_util::BodyExt as _;
use oci::ImageReference;
use serde::Serialize;
use serde_json::json;

use super::node::Admin;
use super::providers;
use crate::status::checks::{self, Verdict};

const PAGE: &str = include_str!("debug_web.html");
/// How long the measure action collects providers from the DHT.
const LOOKUP_WINDOW: Duration = Duration::from_secs(1);
/// How long one part of a measured pull may take in all.
const PART_TIMEOUT: Duration = Duration::from_secs(300);
/// What the measure action accepts as a manifest.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// The debug routes, merged into the admin router.
pub(crate) fn routes() -> axum::Router<Arc<Admin>> {
    axum::Router::new()
        .route(
            "/debug/web",
            // Relative, so the redirect also works behind a path prefix (kubectl proxy).
            get(|| async { Redirect::permanent("web/") }),
        )
        .route("/debug/web/", get(page))
        .route("/debug/checks", get(checks_handler))
        .route("/debug/images", get(images))
        .route("/debug/measure", get(measure_handler))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

/// The checks `speil status` prints, worked out by the node, with the status document they
/// come from (one status per page refresh, so host files are probed once).
async fn checks_handler(State(admin): State<Arc<Admin>>) -> Response {
    let doc = admin.status().await;
    let checks = checks::evaluate(&doc);
    let verdict = Verdict::of(&checks);
    Json(json!({"verdict": verdict, "checks": checks, "status": doc})).into_response()
}

/// The images of the local store: name, digest and how many digests each holds here.
async fn images(State(admin): State<Arc<Admin>>) -> Response {
    match admin.store.images().await {
        Ok(mut images) => {
            images.sort_by_key(|i| i.name.as_ref().map(ToString::to_string));
            let list: Vec<_> = images
                .iter()
                .map(|i| {
                    json!({
                        "name": i.name.as_ref().map(ToString::to_string),
                        "digest": i.digest.to_string(),
                        "contents": i.contents.len(),
                    })
                })
                .collect();
            Json(json!({ "images": list })).into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": format!("listing the store failed: {e}")})),
        )
            .into_response(),
    }
}

/// One part of a measured pull.
#[derive(Debug, Serialize)]
struct Part {
    /// `index`, `manifest`, `config` or `layer`.
    kind: &'static str,
    digest: String,
    status: u16,
    bytes: u64,
    ms: f64,
    /// `local`, `peer <id>`, or empty when nothing was served.
    source: String,
}

/// What measuring a reference found.
#[derive(Debug, Serialize)]
struct Measurement {
    reference: String,
    /// The DHT key looked up: the digest or `registry/repository:tag`.
    key: String,
    /// Other nodes that provide the key, as found within a second.
    providers: Vec<String>,
    /// When the first provider was found, in milliseconds; `null` when none was.
    first_provider_ms: Option<f64>,
    parts: Vec<Part>,
    total_bytes: u64,
    total_ms: f64,
    /// Why the pull stopped early.
    error: Option<String>,
}

async fn measure_handler(
    State(admin): State<Arc<Admin>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let bad = |msg: String| (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response();
    let Some(raw) = params
        .get("ref")
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
    else {
        return bad("expected ?ref=<registry>/<repository>:<tag> or …@sha256:<digest>".into());
    };
    let reference: ImageReference = match raw.parse() {
        Ok(r) => r,
        Err(e) => {
            return bad(format!(
                "{raw:?} is not a full image reference ({e}); expected <registry>/<repository>:<tag> or …@sha256:<digest>, e.g. docker.io/library/alpine:3.20"
            ));
        }
    };
    let Ok(_permit) = admin.measuring.try_acquire() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": "another measurement is running on this node; try again when it ends"})),
        )
            .into_response();
    };
    Json(measure(&admin, &reference).await).into_response()
}

async fn measure(admin: &Admin, reference: &ImageReference) -> Measurement {
    let key = reference
        .digest
        .as_ref()
        .map(ToString::to_string)
        .or_else(|| reference.tag_key())
        .unwrap_or_default();
    let found = providers::collect(&admin.router, &key, LOOKUP_WINDOW).await;
    let first_provider_ms = found.first().map(|f| f.after.as_secs_f64() * 1000.0);
    let providers = found
        .into_iter()
        .map(|f| f.provider.peer.to_string())
        .collect();

    let pulled = Instant::now();
    let target = Target {
        base: format!("http://{}", loopback(admin.registry_addr)),
        name: reference.repository.to_string(),
        ns: reference.registry.to_string(),
        authorization: admin.basic_auth.as_ref().map(oci::BasicAuth::header_value),
    };
    let mut parts = Vec::new();
    let top = reference
        .digest
        .as_ref()
        .map(ToString::to_string)
        .or_else(|| reference.tag.as_ref().map(ToString::to_string))
        .unwrap_or_default();
    let error = pull(&target, &top, &mut parts).await.err();
    Measurement {
        reference: reference.to_string(),
        key,
        providers,
        first_provider_ms,
        total_bytes: parts.iter().map(|p| p.bytes).sum(),
        total_ms: pulled.elapsed().as_secs_f64() * 1000.0,
        parts,
        error,
    }
}

/// Where a measured pull goes: this node's own registry, with its credentials when it has some.
struct Target<'a> {
    base: String,
    name: String,
    ns: String,
    authorization: Option<&'a str>,
}

impl Target<'_> {
    fn url(&self, kind: &str, reference: &str) -> String {
        format!(
            "{}/v2/{}/{kind}/{reference}?ns={}",
            self.base, self.name, self.ns
        )
    }
}

/// Pulls `name:top` from `target` as containerd would: the manifest (and, for an index, the
/// manifest of this machine's platform), then the config and every layer.
async fn pull(target: &Target<'_>, top: &str, parts: &mut Vec<Part>) -> Result<(), String> {
    let url = |kind: &str, reference: &str| target.url(kind, reference);
    let auth = target.authorization;
    let body = keep(
        parts,
        fetch(&url("manifests", top), "manifest", auth).await?,
    )?;
    let mut manifest =
        oci::manifest::Manifest::parse(&body).map_err(|e| format!("the manifest: {e}"))?;
    if oci::media_type::is_index(&manifest.media_type) {
        if let Some(p) = parts.last_mut() {
            p.kind = "index";
        }
        let chosen = platform_manifest(&body).ok_or("the index lists no manifest")?;
        let body = keep(
            parts,
            fetch(&url("manifests", &chosen), "manifest", auth).await?,
        )?;
        manifest =
            oci::manifest::Manifest::parse(&body).map_err(|e| format!("the manifest: {e}"))?;
    }
    for (i, d) in manifest.references.iter().enumerate() {
        let kind = if i == 0 { "config" } else { "layer" };
        keep(
            parts,
            fetch(&url("blobs", &d.digest.to_string()), kind, auth).await?,
        )?;
    }
    Ok(())
}

/// Records a fetched part; its body when it was served, why not otherwise.
fn keep(parts: &mut Vec<Part>, (part, body): (Part, Vec<u8>)) -> Result<Vec<u8>, String> {
    let status = part.status;
    let what = format!("the {} {}", part.kind, part.digest);
    parts.push(part);
    if status == 200 {
        Ok(body)
    } else {
        Err(format!(
            "{what} was answered {status}: neither this node nor a peer has it (containerd would go to the registry)"
        ))
    }
}

/// GETs `url` (with `authorization`, when given), timing it to the last byte; the body is kept
/// only for manifests.
async fn fetch(
    url: &str,
    kind: &'static str,
    authorization: Option<&str>,
) -> Result<(Part, Vec<u8>), String> {
    let started = Instant::now();
    let keep = kind == "manifest";
    let digest_of = |url: &str| {
        url.rsplit('/')
            .next()
            .and_then(|r| r.split('?').next())
            .unwrap_or_default()
            .to_owned()
    };
    let fetched = tokio::time::timeout(PART_TIMEOUT, async {
        let mut headers = vec![("accept", ACCEPT)];
        headers.extend(authorization.map(|a| ("authorization", a)));
        let response = crate::http_client::get_with(url, &headers).await?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let source = header(registry::mirror::SOURCE_HEADER);
        let digest = header("docker-content-digest");
        let mut body = response.into_body();
        let mut bytes = 0u64;
        let mut kept = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| format!("the transfer broke after {bytes} bytes: {e}"))?;
            if let Some(data) = frame.data_ref() {
                bytes += data.len() as u64;
                if keep && kept.len() < oci::manifest::MAX_MANIFEST_SIZE as usize {
                    kept.extend_from_slice(data);
                }
            }
        }
        Ok::<_, String>((status, source, digest, bytes, kept))
    })
    .await
    .map_err(|_| format!("{kind} took longer than {}s", PART_TIMEOUT.as_secs()))??;
    let (status, source, digest, bytes, kept) = fetched;
    let part = Part {
        kind,
        digest: if digest.is_empty() {
            digest_of(url)
        } else {
            digest
        },
        status: status.as_u16(),
        bytes,
        ms: started.elapsed().as_secs_f64() * 1000.0,
        source,
    };
    Ok((part, kept))
}

/// The digest of the index entry for this machine's platform (linux and this architecture), or
/// the first entry.
fn platform_manifest(index: &[u8]) -> Option<String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let value: serde_json::Value = serde_json::from_slice(index).ok()?;
    let list = value.get("manifests")?.as_array()?;
    let digest = |m: &serde_json::Value| m.get("digest")?.as_str().map(str::to_owned);
    list.iter()
        .find(|m| {
            m.pointer("/platform/os")
                .and_then(serde_json::Value::as_str)
                == Some("linux")
                && m.pointer("/platform/architecture")
                    .and_then(serde_json::Value::as_str)
                    == Some(arch)
        })
        .and_then(digest)
        .or_else(|| list.first().and_then(digest))
}

/// `addr` with an unspecified IP replaced by loopback, so this node can reach its own listener.
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}
