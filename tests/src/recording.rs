//! A `FederationService` that records every request message before the real hub handles it, so
//! a test can inspect exactly what crossed the wire into the hub; and that can alter the notice
//! log entries the hub sends (a fault on the wire: what a node must survive).

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use prost::Message;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use vix_protocol::federation::v1 as pb;
use vix_protocol::federation::v1::federation_service_server::FederationService;

/// Changes a notice-log entry on its way to a region.
pub type Tamper = Arc<Mutex<Option<Box<dyn FnMut(&mut pb::NoticeLogEntry) + Send>>>>;

pub(crate) struct Recording<T> {
    inner: T,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    tamper: Tamper,
}

impl<T> Recording<T> {
    pub(crate) fn new(inner: T, received: Arc<Mutex<Vec<Vec<u8>>>>, tamper: Tamper) -> Self {
        Self {
            inner,
            received,
            tamper,
        }
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

    type StreamNoticesStream =
        Pin<Box<dyn Stream<Item = Result<pb::NoticeLogEntry, Status>> + Send>>;

    async fn stream_notices(
        &self,
        request: Request<pb::StreamNoticesRequest>,
    ) -> Result<Response<Self::StreamNoticesStream>, Status> {
        self.record(request.get_ref());
        let stream = self.inner.stream_notices(request).await?.into_inner();
        let tamper = Arc::clone(&self.tamper);
        Ok(Response::new(Box::pin(stream.map(move |entry| {
            entry.map(|mut entry| {
                if let Some(change) = tamper.lock().expect("tamper lock").as_mut() {
                    change(&mut entry);
                }
                entry
            })
        }))))
    }

    async fn submit_coordination(
        &self,
        request: Request<pb::SubmitCoordinationRequest>,
    ) -> Result<Response<pb::SubmitCoordinationResponse>, Status> {
        self.record(request.get_ref());
        self.inner.submit_coordination(request).await
    }

    async fn hand_over_signals(
        &self,
        request: Request<pb::HandOverSignalsRequest>,
    ) -> Result<Response<pb::HandOverSignalsResponse>, Status> {
        self.record(request.get_ref());
        self.inner.hand_over_signals(request).await
    }

    async fn ack_notices(
        &self,
        request: Request<pb::AckNoticesRequest>,
    ) -> Result<Response<pb::AckNoticesResponse>, Status> {
        self.record(request.get_ref());
        self.inner.ack_notices(request).await
    }
}
