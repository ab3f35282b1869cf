//! A response body that holds something until the body is done: a slot of a limit (a request
//! in flight, a mirror transfer) or a connection's note that a request is being answered. A
//! limit that let go when the handler returned would count a 1 GiB blob as finished before its
//! first byte was sent; hyper drops a body once its last byte is written or the client is gone,
//! so holding the slot in the body frees it exactly then.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

/// `inner`, with `held` dropped when the body is.
pub(crate) struct Held<T> {
    inner: Body,
    _held: T,
}

/// `response` with `held` kept until its body is done.
pub(crate) fn hold<T: Send + Unpin + 'static>(response: Response, held: T) -> Response {
    response.map(|inner| Body::new(Held { inner, _held: held }))
}

impl<T: Unpin> hyper::body::Body for Held<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
