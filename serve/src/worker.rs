//! The inference thread: owns the loaded policy and one episode per connection, and runs one
//! request at a time, off the I/O threads.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::Instant;
use tokio::sync::oneshot;
use vjx_runtime::policy::{Noise, Observation, PolicyEpisode, PolicyRunner, Prediction};

/// Loads the export on the inference thread (backends need not move between threads).
pub type Loader = Box<dyn FnOnce() -> Result<Box<dyn PolicyRunner>, String> + Send>;

/// What a connection asks of the policy.
pub struct Job {
    pub connection: u64,
    pub reset: bool,
    pub observation: Option<Observation>,
    pub reply: oneshot::Sender<Result<Outcome, String>>,
}

/// A job done: the chunk predicted (none for a bare reset) and the time inference took.
pub struct Outcome {
    pub prediction: Option<Prediction>,
    /// Chunks the connection's episode has predicted, this one included.
    pub chunks: usize,
    pub infer_ms: f64,
}

enum Message {
    Job(Job),
    Closed(u64),
}

/// The inference thread's mailbox.
#[derive(Clone)]
pub struct Worker {
    tx: mpsc::Sender<Message>,
}

impl Worker {
    /// Starts the thread and loads the export there; returns once it is loaded, with `describe`'s
    /// view of the policy, or the load error.
    pub fn start<T: Send + 'static>(
        loader: Loader,
        seed: u64,
        describe: impl FnOnce(&dyn PolicyRunner) -> T + Send + 'static,
    ) -> Result<(Worker, T), String> {
        let (tx, rx) = mpsc::channel::<Message>();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("vjx-inference".into())
            .spawn(move || {
                let runner = match loader() {
                    Ok(runner) => runner,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(describe(runner.as_ref())));
                serve_jobs(runner.as_ref(), seed, rx);
            })
            .map_err(|e| format!("starting the inference thread: {e}"))?;
        let described = ready_rx
            .recv()
            .map_err(|_| "the inference thread stopped while loading".to_string())??;
        Ok((Worker { tx }, described))
    }

    /// Queues `job`; its reply arrives on the job's channel.
    pub fn submit(&self, job: Job) {
        if let Err(mpsc::SendError(Message::Job(job))) = self.tx.send(Message::Job(job)) {
            let _ = job
                .reply
                .send(Err("the inference thread has stopped".into()));
        }
    }

    /// Frees the episode of a connection that ended.
    pub fn closed(&self, connection: u64) {
        let _ = self.tx.send(Message::Closed(connection));
    }
}

fn serve_jobs(runner: &dyn PolicyRunner, seed: u64, rx: mpsc::Receiver<Message>) {
    let mut episodes: HashMap<u64, Box<dyn PolicyEpisode + '_>> = HashMap::new();
    while let Ok(message) = rx.recv() {
        let job = match message {
            Message::Closed(connection) => {
                episodes.remove(&connection);
                continue;
            }
            Message::Job(job) => job,
        };
        if job.reply.is_closed() {
            continue;
        }
        let episode = episodes
            .entry(job.connection)
            .or_insert_with(|| runner.start_episode(Noise::Seeded(seed)));
        let start = Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if job.reset {
                episode.reset();
            }
            job.observation
                .as_ref()
                .map(|obs| episode.predict_chunk(obs))
                .transpose()
                .map_err(|e| e.to_string())
        }));
        let outcome = match result {
            Ok(Ok(prediction)) => Ok(Outcome {
                prediction,
                chunks: episode.chunks(),
                infer_ms: start.elapsed().as_secs_f64() * 1e3,
            }),
            Ok(Err(e)) => Err(e),
            Err(panic) => {
                episodes.remove(&job.connection);
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(format!(
                    "internal error while predicting ({what}); the connection's episode was reset"
                ))
            }
        };
        let _ = job.reply.send(outcome);
    }
}
