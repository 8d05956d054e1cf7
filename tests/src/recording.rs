//! A `FederationService` that records every request message before the real hub handles it, so
//! a test can inspect exactly what crossed the wire into the hub.

use std::sync::{Arc, Mutex};

use prost::Message;
use tonic::{Request, Response, Status};
use vix_protocol::federation::v1 as pb;
use vix_protocol::federation::v1::federation_service_server::FederationService;

pub(crate) struct Recording<T> {
    inner: T,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl<T> Recording<T> {
    pub(crate) fn new(inner: T, received: Arc<Mutex<Vec<Vec<u8>>>>) -> Self {
        Self { inner, received }
    }

    fn record(&self, message: &impl Message) {
        self.received
            .lock()
            .expect("recorder lock")
            .push(message.encode_to_vec());
    }
}

#[tonic::async_trait]
impl<T: FederationService> FederationService for Recording<T> {
    async fn submit_signals(
        &self,
        request: Request<pb::SubmitSignalsRequest>,
    ) -> Result<Response<pb::SubmitSignalsResponse>, Status> {
        self.record(request.get_ref());
        self.inner.submit_signals(request).await
    }

    type StreamNoticesStream = T::StreamNoticesStream;

    async fn stream_notices(
        &self,
        request: Request<pb::StreamNoticesRequest>,
    ) -> Result<Response<Self::StreamNoticesStream>, Status> {
        self.record(request.get_ref());
        self.inner.stream_notices(request).await
    }

    async fn submit_coordination(
        &self,
        request: Request<pb::SubmitCoordinationRequest>,
    ) -> Result<Response<pb::SubmitCoordinationResponse>, Status> {
        self.record(request.get_ref());
        self.inner.submit_coordination(request).await
    }

    async fn ack_notices(
        &self,
        request: Request<pb::AckNoticesRequest>,
    ) -> Result<Response<pb::AckNoticesResponse>, Status> {
        self.record(request.get_ref());
        self.inner.ack_notices(request).await
    }
}
