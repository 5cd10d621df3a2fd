//! Sending spans: OTLP over HTTP/protobuf through ureq (the project's one
//! HTTP client, behind `opentelemetry-http`'s `HttpClient`), from the SDK's
//! batch processor, which queues a bounded number of spans and exports them
//! on its own thread. A span that is not delivered (a full queue, a receiver
//! that is down, slow or refuses it) is counted, never retried by the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue, StringValue};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};

use super::fold::{Kind, SpanRecord, Value};

/// The most of a receiver's answer read back (it is only checked for success).
const ANSWER_LIMIT: u64 = 64 * 1024;

/// `HttpClient` over a ureq agent with a global timeout: the exporter's
/// requests and nothing else.
#[derive(Debug)]
pub(super) struct Ureq(ureq::Agent);

impl Ureq {
    pub(super) fn new(timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build();
        Ureq(config.into())
    }
}

impl HttpClient for Ureq {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: Request<Bytes>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        // Blocking is right here: the batch processor's own thread waits.
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let mut answer = self.0.run(Request::from_parts(parts, body.to_vec()))?;
            let bytes = answer.body_mut().with_config().limit(ANSWER_LIMIT).read_to_vec()?;
            let (parts, _) = answer.into_parts();
            Ok(Response::from_parts(parts, Bytes::from(bytes)))
        })
    }
}

/// What became of the spans given to the processor.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub submitted: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

/// The OTLP exporter, counting what it delivered and what it could not.
pub(super) struct Counting<E> {
    pub inner: E,
    pub counters: Arc<Counters>,
    /// Called with the number of spans of each failed export.
    pub on_failure: Arc<dyn Fn(u64) + Send + Sync>,
}

impl<E: std::fmt::Debug> std::fmt::Debug for Counting<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counting")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        let result = self.inner.export(batch).await;
        if result.is_ok() {
            self.counters.delivered.fetch_add(n, Ordering::Relaxed);
        } else {
            self.counters.failed.fetch_add(n, Ordering::Relaxed);
            (self.on_failure)(n);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

fn key_value(key: &'static str, value: Value) -> KeyValue {
    match value {
        Value::Str(s) => KeyValue::new(key, s),
        Value::Int(n) => KeyValue::new(key, n),
        Value::Bool(b) => KeyValue::new(key, b),
        Value::Strs(list) => KeyValue::new(
            key,
            opentelemetry::Value::Array(opentelemetry::Array::String(
                list.into_iter().map(StringValue::from).collect(),
            )),
        ),
    }
}

/// A folded span as the SDK's exporters take it.
pub(super) fn span_data(span: SpanRecord, scope: &InstrumentationScope) -> SpanData {
    let context = SpanContext::new(
        TraceId::from(span.trace_id),
        SpanId::from(span.span_id),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    let events = span
        .events
        .into_iter()
        .map(|e| {
            let attributes = e.attributes.into_iter().map(|(k, v)| key_value(k, v)).collect();
            opentelemetry::trace::Event::new(e.name, e.at, attributes, 0)
        })
        .collect();
    let mut span_events = SpanEvents::default();
    span_events.events = events;
    SpanData {
        span_context: context,
        parent_span_id: span.parent.map_or(SpanId::INVALID, SpanId::from),
        parent_span_is_remote: false,
        span_kind: match span.kind {
            Kind::Internal => SpanKind::Internal,
            Kind::Client => SpanKind::Client,
        },
        name: span.name.into(),
        start_time: span.start,
        end_time: span.end,
        attributes: span.attributes.into_iter().map(|(k, v)| key_value(k, v)).collect(),
        dropped_attributes_count: 0,
        events: span_events,
        links: SpanLinks::default(),
        status: match span.error {
            Some(description) => Status::error(description),
            None => Status::Unset,
        },
        instrumentation_scope: scope.clone(),
    }
}
