//! Pulls images through containerd's CRI, the way kubelet does, for benchmarks that need a real
//! client (bench/cluster/run.sh). Debian has no `crictl`; this is its `crictl pull`, nothing more.
//!
//! ```text
//! cri-pull SOCKET IMAGE...   # ImageService/PullImage of each IMAGE in turn (it also unpacks)
//! ```
//!
//! Prints one line per image: the milliseconds the call took (from sending the request to its
//! answer; connecting to the socket is not counted), the image id containerd returned (the
//! image's config digest), and the image. Exits 1 at the first pull that fails, naming it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use containerd_api::cri::v1::image_service_client::ImageServiceClient;
use containerd_api::cri::v1::{ImageSpec, PullImageRequest};
use test_support::containerd::grpc_channel;
use tonic::transport::Channel;

/// One PullImage call: its duration in milliseconds and the image id.
async fn pull(
    client: &mut ImageServiceClient<Channel>,
    image: &str,
) -> Result<(f64, String), String> {
    let request = PullImageRequest {
        image: Some(ImageSpec {
            image: image.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let started = Instant::now();
    let response = client
        .pull_image(request)
        .await
        .map_err(|status| format!("PullImage {image}: {status}"))?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok((ms, response.into_inner().image_ref))
}

async fn run(socket: PathBuf, images: &[String]) -> Result<(), String> {
    // Pulls of large images take minutes on a shaped link: no client-side deadline.
    let mut client =
        ImageServiceClient::new(grpc_channel(&socket).await?).max_decoding_message_size(16 << 20);
    for image in images {
        let (ms, id) = pull(&mut client, image).await?;
        println!("{ms:.1} {id} {image}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, images @ ..] = args.as_slice() else {
        eprintln!("usage: cri-pull SOCKET IMAGE...");
        return ExitCode::from(2);
    };
    if images.is_empty() {
        eprintln!("usage: cri-pull SOCKET IMAGE...");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cri-pull: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(PathBuf::from(socket), images)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cri-pull: {e}");
            ExitCode::FAILURE
        }
    }
}
