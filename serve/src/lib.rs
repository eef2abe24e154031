//! `vjx serve`: a loaded export behind openpi's websocket policy protocol, so that robot
//! programs using `openpi_client.websocket_client_policy.WebsocketClientPolicy` talk to vjx
//! unmodified.
//!
//! On connect the server sends a metadata map; each request map (cameras, state, task; see
//! [`request`]) gets one response map `{"actions": (chunk, action_dim) float32,
//! "server_timing": {...}, "policy_timing": {...}}`, or a text frame `error: ...` that leaves
//! the connection open. Every connection has its own episode (LingBot-VA's caches, the noise
//! stream); `reset: true` starts it over. Inference runs on one thread, one request at a time.

mod metadata;
mod msgpack_numpy;
pub mod request;
mod server;
mod worker;

pub use request::{KeyMap, Limits};
pub use worker::Loader;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("loading the export: {0}")]
    Load(String),
    #[error("{0}")]
    Config(String),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub host: String,
    pub port: u16,
    /// When set, every websocket connection must send `Authorization: Api-Key <key>`.
    pub api_key: Option<String>,
    /// Largest request message, in bytes.
    pub max_message_bytes: usize,
    pub limits: Limits,
    /// `(request key, target)` aliases on top of the defaults ([`KeyMap::alias`]).
    pub key_aliases: Vec<(String, String)>,
    /// Chunk k of a connection's episode draws its noise from `seed + k`.
    pub seed: u64,
}

/// What the server tells its caller once it listens.
pub struct Listening {
    pub addr: SocketAddr,
    /// The metadata frame every client receives, as JSON.
    pub metadata: serde_json::Value,
}

/// Loads the export on the inference thread, listens, and serves until SIGTERM or SIGINT, then
/// finishes the requests in flight, closes every connection and returns.
pub fn serve(
    config: ServeConfig,
    loader: Loader,
    on_listening: impl FnOnce(&Listening),
) -> Result<(), ServeError> {
    let aliases = config.key_aliases.clone();
    let max_message_bytes = config.max_message_bytes;
    let (worker, described) = worker::Worker::start(loader, config.seed, move |runner| {
        let mut keys = KeyMap::for_export(runner.manifest());
        for (from, to) in &aliases {
            keys.alias(from, to).map_err(|e| e.to_string())?;
        }
        let metadata = metadata::metadata(runner, &keys, max_message_bytes);
        Ok::<_, String>((keys, metadata))
    })
    .map_err(ServeError::Load)?;
    let (keys, metadata) = described.map_err(ServeError::Config)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let addr = format!("{}:{}", config.host, config.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let shared = Arc::new(server::Shared {
            worker,
            keys,
            limits: config.limits,
            metadata: msgpack_numpy::encode(&metadata::to_msgpack(&metadata)),
            api_key: config.api_key.clone(),
            max_message_bytes,
            shutdown: CancellationToken::new(),
            connections: TaskTracker::new(),
            next_connection: AtomicU64::new(0),
        });
        on_listening(&Listening {
            addr: listener.local_addr()?,
            metadata,
        });
        let shutdown = shared.shutdown.clone();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        axum::serve(listener, server::router(shared.clone()))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        shared.connections.close();
        shared.connections.wait().await;
        Ok(())
    })
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    shutdown.cancel();
}
