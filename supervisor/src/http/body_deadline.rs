//! A deadline on reading a request body, as hyper's `header_read_timeout` is for the head: a
//! client that sends its body slowly (or not at all) cannot hold a connection and a handler.
//! [`layer`] wraps every request body in [`DeadlineBody`], whose reading fails with
//! [`BodyTimeout`] once the deadline has passed; handlers answer that with `408`
//! ([`timeout_in`]) and hyper closes the connection, whose body was not read to its end.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use hyper::body::{Frame, SizeHint};

/// The body did not arrive within its deadline.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {}s", .0.as_secs())]
pub struct BodyTimeout(pub Duration);

/// A request body that fails with [`BodyTimeout`] after `limit` from its first read.
pub struct DeadlineBody {
    inner: Body,
    limit: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let limit = self.limit;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps the body of `req` in a [`DeadlineBody`] of `limit`.
pub fn layer(req: Request, limit: Duration) -> Request {
    req.map(|inner| {
        if hyper::body::Body::is_end_stream(&inner) {
            inner
        } else {
            Body::new(DeadlineBody {
                inner,
                limit,
                deadline: None,
            })
        }
    })
}

/// The [`BodyTimeout`] that caused `err` (a body rejection, or any error), if one did.
pub fn timeout_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTimeout> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<BodyTimeout>() {
            return Some(t);
        }
        cur = e.source();
    }
    None
}
