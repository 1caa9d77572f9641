//! A stand-in for the Elevate Events API, faithful to `openapi.yaml`, for demos, tests and benchmarks.
//!
//! It serves `GET /v1/events` and `POST /v1/authenticate` on loopback (axum), in-process or as
//! `elevate-archive simulate`. What the public docs leave open is switchable, so tests cover every reading:
//! inclusive or exclusive plain bounds, default order by id or newest first, and what a page past the end
//! returns. Data is generated from a seed ([`data`]), so millions of events cost no memory; faults come on
//! demand ([`faults`]); late arrivals, edits and deletions change the source while it runs ([`source`]).

pub mod data;
pub mod faults;
pub mod query;
mod server;
pub mod source;

use crate::time::Timestamp;
use data::Dataset;
use faults::{FaultRule, Faults};
use query::{Bounds, SortKey};
use rand::{SeedableRng, rngs::StdRng};
use source::Overlay;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Default credentials of the simulated API user.
pub const DEFAULT_USERNAME: &str = "demo";
/// Default password of the simulated API user.
pub const DEFAULT_PASSWORD: &str = "demo";
/// Default token lifetime: the documented 15 minutes.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// The default order of events when a request has no `sort` (the docs do not say which it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DefaultOrder {
    /// By ascending id.
    Id,
    /// Newest first.
    NewestFirst,
}

/// What a page past the last one returns (the docs do not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PastEnd {
    /// An empty array.
    Empty,
    /// 404 with an error body.
    NotFound,
}

/// Everything a simulator is made of.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of generated events.
    pub events: u64,
    /// Start of the generated range.
    pub from: Timestamp,
    /// End of the generated range (exclusive).
    pub to: Timestamp,
    /// Seed of the data and of the faults.
    pub seed: u64,
    /// How plain `createdFrom`/`createdTo` are read.
    pub bounds: Bounds,
    /// Order without `sort`.
    pub default_order: DefaultOrder,
    /// Answer for a page past the end.
    pub past_end: PastEnd,
    /// API user name.
    pub username: String,
    /// API user password.
    pub password: String,
    /// Token lifetime (whole seconds).
    pub token_ttl: Duration,
    /// Share of events with an IPv6 address, per mille.
    pub ipv6_per_mille: u64,
    /// Share of items served malformed, parts per million.
    pub malformed_ppm: u64,
    /// Fault rules for `GET /events`.
    pub faults: Vec<FaultRule>,
    /// Added to every `GET /events`.
    pub latency: Duration,
    /// `Retry-After` sent with 429, seconds.
    pub retry_after_secs: u64,
}

impl SimConfig {
    /// A clean configuration: documented behaviour, no faults.
    pub fn new(events: u64, from: Timestamp, to: Timestamp) -> Self {
        SimConfig {
            events,
            from,
            to,
            seed: 1,
            bounds: Bounds::Inclusive,
            default_order: DefaultOrder::Id,
            past_end: PastEnd::Empty,
            username: DEFAULT_USERNAME.into(),
            password: DEFAULT_PASSWORD.into(),
            token_ttl: DEFAULT_TOKEN_TTL,
            ipv6_per_mille: 30,
            malformed_ppm: 0,
            faults: Vec::new(),
            latency: Duration::ZERO,
            retry_after_secs: 1,
        }
    }
}

/// Counters of what the simulator served.
#[derive(Debug, Default)]
pub struct SimStats {
    /// `GET /events` requests received.
    pub event_requests: AtomicU64,
    /// Faults injected.
    pub faults: AtomicU64,
    /// Tokens issued by `/authenticate`.
    pub tokens_issued: AtomicU64,
    /// Requests refused with 401.
    pub unauthorized: AtomicU64,
    /// Requests refused with 400.
    pub bad_requests: AtomicU64,
}

/// Shared state of a simulator.
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) data: Dataset,
    pub(crate) overlay: RwLock<Overlay>,
    pub(crate) faults: Faults,
    pub(crate) rng: Mutex<StdRng>,
    pub(crate) jwt_secret: [u8; 32],
    pub(crate) stats: SimStats,
}

impl Shared {
    fn default_sort(&self) -> Vec<SortKey> {
        match self.config.default_order {
            DefaultOrder::Id => vec![SortKey {
                field: "id",
                desc: false,
            }],
            DefaultOrder::NewestFirst => vec![
                SortKey {
                    field: "timestamp",
                    desc: true,
                },
                SortKey {
                    field: "id",
                    desc: true,
                },
            ],
        }
    }
}

/// A simulator: build it, then [`Simulator::serve`] it.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

/// A simulator serving on a socket; dropping it stops the server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    /// The API base URL, `http://ADDR/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl SimConfig {
    /// The generated data this configuration describes.
    pub fn dataset(&self) -> Dataset {
        Dataset {
            count: self.events,
            from_ms: self.from.timestamp_millis(),
            to_ms: self.to.timestamp_millis(),
            seed: self.seed,
            ipv6_per_mille: self.ipv6_per_mille,
            malformed_ppm: self.malformed_ppm,
        }
    }
}

impl Simulator {
    /// Builds a simulator from its configuration.
    pub fn new(config: SimConfig) -> Self {
        let data = config.dataset();
        let shared = Shared {
            faults: Faults::new(config.faults.clone(), config.seed),
            rng: Mutex::new(StdRng::seed_from_u64(config.seed ^ 0x5EED)),
            jwt_secret: rand::random(),
            overlay: RwLock::new(Overlay::default()),
            stats: SimStats::default(),
            data,
            config,
        };
        Simulator {
            shared: Arc::new(shared),
        }
    }

    /// Starts serving on `addr` (port 0 picks a free port) in the current tokio runtime.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<Running> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(Arc::clone(&self.shared));
        tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!("the simulator stopped: {e}");
            }
        });
        Ok(Running {
            addr,
            shutdown: Some(tx),
        })
    }

    /// A token for the configured user, valid for the configured lifetime from now.
    pub fn issue_token(&self) -> String {
        server::issue_token(&self.shared)
    }

    /// What the simulator has served.
    pub fn stats(&self) -> &SimStats {
        &self.shared.stats
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Every archivable event the source holds now, `(id, JSON)` by id.
    pub fn expected(&self) -> Vec<(i64, String)> {
        self.shared
            .overlay
            .read()
            .expect("overlay lock")
            .expected(&self.shared.data)
    }

    /// `(id, timestamp in ms)` of every archivable event the source holds now, by id (ids and times ascend
    /// together for generated events; late arrivals follow with older times).
    pub fn expected_times(&self) -> Vec<(i64, i64)> {
        let d = &self.shared.data;
        let overlay = self.shared.overlay.read().expect("overlay lock");
        let mut out: Vec<(i64, i64)> = (0..d.count)
            .filter(|i| !d.is_malformed(*i) && !overlay.deleted.contains(i))
            .map(|i| (d.id(i), d.millis(i)))
            .collect();
        out.extend(overlay.late.iter().map(|l| (l.id, l.millis)));
        out
    }

    /// Ids of the generated events served malformed.
    pub fn malformed_ids(&self) -> Vec<i64> {
        let d = &self.shared.data;
        (0..d.count)
            .filter(|i| d.is_malformed(*i))
            .map(|i| d.id(i))
            .collect()
    }

    /// Inserts `n` events that arrive late, with timestamps inside the generated range; returns their ids.
    pub fn insert_late_events(&self, n: usize) -> Vec<i64> {
        let d = &self.shared.data;
        self.insert_late_events_between(n, d.from_ms, d.to_ms)
    }

    /// Inserts `n` late events with timestamps in `[from_ms, to_ms)`; returns their ids.
    pub fn insert_late_events_between(&self, n: usize, from_ms: i64, to_ms: i64) -> Vec<i64> {
        let mut rng = self.shared.rng.lock().expect("rng lock");
        self.shared
            .overlay
            .write()
            .expect("overlay lock")
            .insert_late(&self.shared.data, n, from_ms, to_ms, &mut rng)
    }

    /// Edits `n` events at the source; returns their ids.
    pub fn edit_events(&self, n: usize) -> Vec<i64> {
        let mut rng = self.shared.rng.lock().expect("rng lock");
        self.shared
            .overlay
            .write()
            .expect("overlay lock")
            .edit(&self.shared.data, n, &mut rng)
    }

    /// Deletes `n` events at the source; returns their ids.
    pub fn delete_events(&self, n: usize) -> Vec<i64> {
        let mut rng = self.shared.rng.lock().expect("rng lock");
        self.shared
            .overlay
            .write()
            .expect("overlay lock")
            .delete(&self.shared.data, n, &mut rng)
    }
}
