//! Adapts a `tower::Service` to the engine's request-queue receiver.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use httpq_server::{
    AppFuture, AppHandle, AppQueue, AppRequest, BoxError, RequestBody, ResponseBody,
};
use tower_service::Service;

/// The receiver of the embedded queue: the app's service, cloned per connection.
pub(crate) struct TowerQueue<S> {
    service: Mutex<S>,
}

impl<S> TowerQueue<S> {
    pub(crate) fn new(service: S) -> Arc<Self> {
        Arc::new(TowerQueue {
            service: Mutex::new(service),
        })
    }
}

impl<S, B> AppQueue for TowerQueue<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    fn handle(&self) -> Box<dyn AppHandle> {
        let service = self
            .service
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Box::new(TowerHandle { service })
    }
}

struct TowerHandle<S> {
    service: S,
}

impl<S, B> AppHandle for TowerHandle<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.service.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: AppRequest) -> AppFuture {
        let fut = self.service.call(request.into_request());
        Box::pin(async move {
            let response = fut.await.map_err(Into::into)?;
            Ok(response.map(ResponseBody::stream))
        })
    }
}
