//! The websocket endpoint: openpi's protocol on `/`, `GET /healthz`, API-key checks, and a
//! shutdown that drains the requests in flight.

use crate::msgpack_numpy::{encode, f32_ndarray};
use crate::request::{decode_request, KeyMap, Limits};
use crate::worker::{Job, Outcome, Worker};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rmpv::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// WebSocket close code: the server is going away (shutdown).
const GOING_AWAY: u16 = 1001;

pub(crate) struct Shared {
    pub worker: Worker,
    pub keys: KeyMap,
    pub limits: Limits,
    pub metadata: Vec<u8>,
    pub api_key: Option<String>,
    pub max_message_bytes: usize,
    pub shutdown: CancellationToken,
    pub connections: TaskTracker,
    pub next_connection: AtomicU64,
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(upgrade))
        .route("/healthz", get(|| async { "OK\n" }))
        .with_state(shared)
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(key) = &shared.api_key else {
        return true;
    };
    let expected = format!("Api-Key {key}");
    let given = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    given.ct_eq(expected.as_bytes()).into()
}

async fn upgrade(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !authorized(&shared, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            "missing or wrong API key: send `Authorization: Api-Key <key>`\n",
        )
            .into_response();
    }
    let Ok(ws) = ws else {
        return (
            StatusCode::BAD_REQUEST,
            "this is vjx's websocket policy endpoint (openpi protocol); GET /healthz for health\n",
        )
            .into_response();
    };
    let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
    let tracker = shared.connections.clone();
    ws.max_message_size(shared.max_message_bytes)
        .max_frame_size(shared.max_message_bytes)
        .on_upgrade(move |socket| tracker.track_future(connection(socket, shared, id)))
}

async fn connection(mut socket: WebSocket, shared: Arc<Shared>, id: u64) {
    if socket
        .send(Message::Binary(shared.metadata.clone().into()))
        .await
        .is_ok()
    {
        exchange(&mut socket, &shared, id).await;
    }
    shared.worker.closed(id);
}

/// One request → one response until the client leaves or the server shuts down.
async fn exchange(socket: &mut WebSocket, shared: &Shared, id: u64) {
    let mut prev_total_ms = None;
    loop {
        // A request already received is answered before a shutdown closes the connection.
        let message = tokio::select! {
            biased;
            message = socket.recv() => message,
            _ = shared.shutdown.cancelled() => {
                let close = CloseFrame { code: GOING_AWAY, reason: "server shutting down".into() };
                let _ = socket.send(Message::Close(Some(close))).await;
                return;
            }
        };
        let start = Instant::now();
        let bytes = match message {
            None | Some(Ok(Message::Close(_))) => return,
            Some(Err(e)) => {
                // The transport failed (e.g. a message past --max-message-bytes): say why, then
                // end this connection only.
                let _ = socket.send(error_frame(&format!("{e}"))).await;
                return;
            }
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Text(_))) => {
                let reply = error_frame("requests are msgpack maps in binary frames, not text");
                if socket.send(reply).await.is_err() {
                    return;
                }
                continue;
            }
            Some(Ok(_)) => continue,
        };
        let reply = match respond(shared, id, &bytes, prev_total_ms).await {
            Ok(value) => Message::Binary(encode(&value).into()),
            Err(e) => error_frame(&e),
        };
        if socket.send(reply).await.is_err() {
            return;
        }
        prev_total_ms = Some(start.elapsed().as_secs_f64() * 1e3);
    }
}

/// openpi's clients raise a text frame as the server's error.
fn error_frame(text: &str) -> Message {
    Message::Text(format!("error: {text}").into())
}

async fn respond(
    shared: &Shared,
    id: u64,
    bytes: &[u8],
    prev_total_ms: Option<f64>,
) -> Result<Value, String> {
    let request = decode_request(&shared.keys, shared.limits, bytes).map_err(|e| e.to_string())?;
    let (reply, outcome) = oneshot::channel();
    shared.worker.submit(Job {
        connection: id,
        reset: request.reset,
        observation: request.observation,
        reply,
    });
    let outcome = outcome
        .await
        .map_err(|_| "the inference thread dropped the request".to_string())??;
    Ok(response(outcome, prev_total_ms))
}

fn response(outcome: Outcome, prev_total_ms: Option<f64>) -> Value {
    let mut timing = vec![(Value::from("infer_ms"), Value::from(outcome.infer_ms))];
    if let Some(ms) = prev_total_ms {
        timing.push((Value::from("prev_total_ms"), Value::from(ms)));
    }
    let mut map = vec![
        (Value::from("server_timing"), Value::Map(timing)),
        (Value::from("chunks"), Value::from(outcome.chunks as u64)),
    ];
    let Some(prediction) = outcome.prediction else {
        map.push((Value::from("reset"), Value::Boolean(true)));
        return Value::Map(map);
    };
    map.insert(
        0,
        (
            Value::from("actions"),
            f32_ndarray(
                &[prediction.chunk_size, prediction.action_dim],
                &prediction.actions,
            ),
        ),
    );
    let stages = prediction
        .timings_ms
        .iter()
        .map(|(stage, ms)| (Value::from(stage.as_str()), Value::from(*ms)))
        .collect();
    map.push((Value::from("policy_timing"), Value::Map(stages)));
    if let Some(reasoning) = prediction.reasoning {
        map.push((Value::from("reasoning"), Value::from(reasoning.text)));
    }
    Value::Map(map)
}
