//! Live event streams (SSE) share their polling: one poller per run, however many streams
//! follow it, and one validity check per token, however many streams it holds open. Open
//! streams are capped per token and in all, and each lasts at most a while (the client
//! reconnects with `Last-Event-ID`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use byoc_model::{RunId, RunStatus};
use byoc_stacks::{Database, DbError};
use tokio::sync::watch;

/// What a stream needs to know of its run: the last event's seq and the run's status.
pub type Progress = Result<(i64, RunStatus), String>;

/// Caps on live streams.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    pub per_token: usize,
    pub total: usize,
    /// A stream ends after this; the client reconnects where it left off.
    pub max_duration: Duration,
    /// How often a run's poller reads its progress.
    pub poll: Duration,
    /// How often a token holding streams is checked (revoked, expired).
    pub token_check: Duration,
}

impl Default for StreamLimits {
    fn default() -> StreamLimits {
        StreamLimits {
            per_token: 20,
            total: 2_000,
            max_duration: Duration::from_secs(3600),
            poll: Duration::from_millis(200),
            token_check: Duration::from_secs(2),
        }
    }
}

/// The live streams of this process.
pub struct Streams {
    limits: StreamLimits,
    runs: Pollers<RunId, Progress>,
    tokens: Pollers<String, bool>,
    /// Open streams by token.
    open: Mutex<HashMap<String, usize>>,
}

/// Held by an open stream: its slot is freed when it is dropped.
pub struct Slot {
    streams: Arc<Streams>,
    token: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().expect("not poisoned");
        if let Some(n) = open.get_mut(&self.token) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.token);
            }
        }
    }
}

/// Why a stream cannot be opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    PerToken(usize),
    Total(usize),
}

impl Streams {
    pub fn new(limits: StreamLimits) -> Streams {
        Streams {
            limits,
            runs: Pollers::default(),
            tokens: Pollers::default(),
            open: Mutex::default(),
        }
    }

    pub fn limits(&self) -> StreamLimits {
        self.limits
    }

    /// A slot for one more stream of `token`, within the caps.
    pub fn open(self: &Arc<Streams>, token: &str) -> Result<Slot, Refused> {
        let mut open = self.open.lock().expect("not poisoned");
        if open.values().sum::<usize>() >= self.limits.total {
            return Err(Refused::Total(self.limits.total));
        }
        let n = open.entry(token.to_string()).or_default();
        if *n >= self.limits.per_token {
            return Err(Refused::PerToken(self.limits.per_token));
        }
        *n += 1;
        Ok(Slot {
            streams: self.clone(),
            token: token.to_string(),
        })
    }

    /// The progress of `run`, from the one poller all its streams share.
    pub fn run(&self, db: &Database, run: &RunId) -> watch::Receiver<Option<Progress>> {
        let db = db.clone();
        let run_id = run.clone();
        self.runs.watch(run.clone(), self.limits.poll, move || {
            let (db, run_id) = (db.clone(), run_id.clone());
            async move {
                db.run_progress(&run_id)
                    .await
                    .map_err(|e: DbError| e.to_string())
            }
        })
    }

    /// Whether `token` is still valid, from the one check its streams share.
    pub fn token(&self, db: &Database, token: &str) -> watch::Receiver<Option<bool>> {
        let db = db.clone();
        let id = token.to_string();
        self.tokens
            .watch(id.clone(), self.limits.token_check, move || {
                let (db, id) = (db.clone(), id.clone());
                async move {
                    match db.token(&id).await {
                        Ok(t) => {
                            let expired =
                                t.expires_at.is_some_and(|at| at <= byoc_stacks::now_ms());
                            t.revoked_at.is_none() && !expired
                        }
                        Err(DbError::NotFound(_)) => false,
                        // The store is down: the run's poller says so; keep the stream.
                        Err(_) => true,
                    }
                }
            })
    }
}

/// One polling task per key, while anyone watches it.
struct Pollers<K, V> {
    senders: Arc<Mutex<HashMap<K, watch::Sender<Option<V>>>>>,
}

impl<K, V> Default for Pollers<K, V> {
    fn default() -> Pollers<K, V> {
        Pollers {
            senders: Arc::default(),
        }
    }
}

impl<K, V> Pollers<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: PartialEq + Clone + Send + Sync + 'static,
{
    /// The latest value polled for `key` (`None` until the first poll answers).
    fn watch<F, Fut>(&self, key: K, every: Duration, poll: F) -> watch::Receiver<Option<V>>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = V> + Send,
    {
        let mut senders = self.senders.lock().expect("not poisoned");
        if let Some(tx) = senders.get(&key) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(None);
        senders.insert(key.clone(), tx.clone());
        let all = self.senders.clone();
        tokio::spawn(async move {
            loop {
                let value = poll().await;
                tx.send_if_modified(|v| {
                    let changed = v.as_ref() != Some(&value);
                    *v = Some(value);
                    changed
                });
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = tx.closed() => {}
                }
                let mut senders = all.lock().expect("not poisoned");
                // Nobody watches (a new watcher would have subscribed under this lock).
                if tx.receiver_count() == 0 {
                    senders.remove(&key);
                    return;
                }
            }
        });
        rx
    }
}
