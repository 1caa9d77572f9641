//! Benchmarks, each printing its figures (not timed tests):
//!
//! - `e2e`: sync N events (default 1,000,000) from the in-process simulator into a fresh archive with the real
//!   binary, beside the raw storage bound measured in the same run (the same rows, one prepared statement,
//!   the same schema and pragmas); events/s, the ratio, and the binary's peak RSS. With `--baseline PATH` (another
//!   build of the binary, e.g. of an older commit) and `--rounds N` (default 5), each round measures the bound
//!   once and syncs with both binaries, in alternating order, against it; then the mean ratio and CPU per event
//!   of each, and the difference: what a change costs, without the bound's run-to-run noise.
//! - `memory`: the binary's peak RSS syncing 1M and 10M events.
//! - `latency`: 100 ms, then 200 ms added per page, `--concurrency 8`: throughput against concurrency x pageSize /
//!   latency, and the binary's CPU time.
//! - `dense`: one dense day (50,000 events, a single default 1-day window), 200 ms per page, `--concurrency 8`:
//!   throughput against the same ceiling (8 x 1000 / 0.2 s = 40,000 events/s).
//! - `sparse`: thirty sparse days (500 events a day: each day one short page and the empty one that confirms
//!   it), 200 ms per page, `--concurrency 8`: throughput against the same ceiling.
//! - `queries`: four investigator queries on a 10M-event archive (built once, kept under target/bench/), with
//!   their query plans.
//! - `proofs`: on an archive of N events synced with a signing key (default 10,000,000; `--events N`): `prove`
//!   (in process, and the binary end to end) for events spread over the log, and `verify --checkpoint` of the
//!   whole archive with its wall time and peak RSS (and the log pass alone, in process).
//! - `mirror`: on an archive of N events (default 1,000,000; built once, kept under target/bench/): today's full
//!   Parquet export (`export --format parquet --out DIR`) against a first `export --incremental` to a local
//!   folder (both with wall time and peak RSS), then an incremental run with nothing new; the mirror's peak RSS
//!   also at a quarter of N, to show it flat.
//!
//! Run: `cargo bench --bench sync -- e2e [--events N] [--baseline PATH [--rounds N]]`, `... -- memory`, `... -- latency`, `... -- dense`,
//! `... -- sparse`, `... -- queries`, `... -- proofs [--events N]`, `... -- mirror [--events N]`, or `... -- all`.

use elevate_archive::model::Item;
use elevate_archive::simulator::{SimConfig, Simulator};
use elevate_archive::store::Archive;
use elevate_archive::sync::classify::classify;
use elevate_archive::time::{parse_time_arg, to_api};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FROM: &str = "2024-01-01";

/// The value after `name` in the bench's arguments.
fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let scenario = args.first().map(String::as_str).unwrap_or("all");
    let events = args
        .iter()
        .position(|a| a == "--events")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse::<u64>().expect("--events N"))
        .unwrap_or(if scenario == "proofs" {
            10_000_000
        } else {
            1_000_000
        });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    machine();
    match scenario {
        "e2e" => match flag(&args, "--baseline") {
            Some(baseline) => {
                let rounds = flag(&args, "--rounds").map_or(5, |n| n.parse().expect("--rounds N"));
                e2e_against(&rt, events, Path::new(&baseline), rounds)
            }
            None => e2e(&rt, events),
        },
        "memory" => memory(&rt),
        "latency" => latency(&rt),
        "dense" => shape(&rt, "dense", 50_000, 1),
        "sparse" => shape(&rt, "sparse", 15_000, 30),
        "queries" => queries(&rt),
        "proofs" => proofs(&rt, events),
        "mirror" => mirror(&rt, events),
        "all" => {
            e2e(&rt, events);
            latency(&rt);
            shape(&rt, "dense", 50_000, 1);
            shape(&rt, "sparse", 15_000, 30);
            memory(&rt);
            queries(&rt);
            proofs(&rt, 10_000_000);
            mirror(&rt, 1_000_000);
        }
        other => {
            panic!(
                "unknown scenario {other}: use e2e, memory, latency, dense, sparse, queries, proofs, mirror or all"
            )
        }
    }
}

fn machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!("machine: {cores} cores, {cpu}");
}

fn bench_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fresh(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn sim_config(events: u64, days: i64) -> SimConfig {
    let from = parse_time_arg(FROM).unwrap();
    SimConfig::new(events, from, from + chrono::TimeDelta::days(days))
}

/// What one run of the binary did.
struct Measured {
    seconds: f64,
    /// The binary's CPU time, user and system.
    cpu_seconds: f64,
    peak_rss_mib: f64,
    summary: serde_json::Value,
}

/// Runs the release binary's `sync` against a simulator and measures wall time and peak RSS.
fn run_sync(
    rt: &tokio::runtime::Runtime,
    config: SimConfig,
    db: &Path,
    extra: &[&str],
) -> Measured {
    run_sync_with(
        rt,
        Path::new(env!("CARGO_BIN_EXE_elevate-archive")),
        config,
        db,
        extra,
    )
}

/// [`run_sync`] with the binary at `binary`.
fn run_sync_with(
    rt: &tokio::runtime::Runtime,
    binary: &Path,
    config: SimConfig,
    db: &Path,
    extra: &[&str],
) -> Measured {
    let to = to_api(config.to);
    let sim = Simulator::new(config);
    let running = rt.block_on(sim.serve(([127, 0, 0, 1], 0).into())).unwrap();
    fresh(db);
    let base = running.base_url();
    let args = [
        "sync",
        "--json",
        "--base-url",
        &base,
        "--from",
        FROM,
        "--to",
        &to,
    ];
    run_binary_at(binary, db, &[&args[..], extra].concat())
}

/// Runs the release binary on `db` with `args`, and measures wall time and peak RSS; it must exit 0 and print
/// one JSON object.
fn run_binary(db: &Path, args: &[&str]) -> Measured {
    run_binary_at(Path::new(env!("CARGO_BIN_EXE_elevate-archive")), db, args)
}

/// [`run_binary`] with the binary at `binary`.
// The child is reaped with `wait4`, not `Child::wait`, because only `wait4` reports its peak RSS.
#[allow(clippy::zombie_processes)]
fn run_binary_at(binary: &Path, db: &Path, args: &[&str]) -> Measured {
    let started = Instant::now();
    let child = std::process::Command::new(binary)
        .env_clear()
        .env("ELEVATE_USERNAME", "demo")
        .env("ELEVATE_PASSWORD", "demo")
        .env("ELEVATE_NOW", "2030-01-01T00:00:00Z")
        .args(["--db", db.to_str().unwrap()])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child and fills a zeroed rusage.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{args:?} failed: {out}"
    );
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Measured {
        seconds,
        cpu_seconds: cpu(usage.ru_utime) + cpu(usage.ru_stime),
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        // `export` to a folder prints nothing on stdout.
        summary: if out.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(out.trim()).unwrap()
        },
    }
}

/// The raw storage bound: the same rows as the sync stores, inserted with one prepared statement into a fresh
/// archive of the same schema and pragmas, 10,000 rows per transaction. Row preparation is not timed.
fn storage_bound(config: &SimConfig, db: &Path) -> f64 {
    fresh(db);
    drop(Archive::open(db, chrono::Utc::now()).unwrap());
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
    conn.execute_batch(elevate_archive::store::WRITER_PRAGMAS)
        .unwrap();
    conn.execute(
        "INSERT INTO runs (started_at, status, range_from, range_to, base_url, tool_version) VALUES ('x', 'ok', 'a', 'b', 'c', 'd')",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO windows (run_id, window_start, window_end, created_from, created_to, status, started_at)
         VALUES (1, 'a', 'b', 'c', 'd', 'complete', 'e')",
        [],
    )
    .unwrap();
    let data = config.dataset();
    let window = (
        chrono::DateTime::UNIX_EPOCH,
        parse_time_arg("2100-01-01").unwrap(),
    );
    let mut timed = Duration::ZERO;
    let chunk = 10_000u64;
    let mut i = 0;
    while i < data.count {
        let rows: Vec<elevate_archive::model::Event> = (i..(i + chunk).min(data.count))
            .map(|n| {
                let raw = serde_json::value::RawValue::from_string(data.render(n)).unwrap();
                match classify(&raw, window) {
                    Item::Event(e) => e,
                    Item::Reject(r) => panic!("{r:?}"),
                }
            })
            .collect();
        let started = Instant::now();
        let tx = conn.unchecked_transaction().unwrap();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (id, timestamp, category, action, description, username, ip_address, raw, fetched_at, window_id, digest)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, '2030-01-01T00:00:00.000Z', 1, ?9)",
                )
                .unwrap();
            for e in &rows {
                insert
                    .execute(rusqlite::params![
                        e.id,
                        e.timestamp,
                        e.category,
                        e.action,
                        e.description,
                        e.username,
                        e.ip_address,
                        e.raw,
                        e.digest
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        timed += started.elapsed();
        i += chunk;
    }
    // The sync also indexes its events for search at the end of the run: so does the bound.
    let started = Instant::now();
    conn.execute_batch(
        "INSERT INTO events_fts (rowid, description, username) SELECT id, description, username FROM events;
         UPDATE search_state SET indexed_window_id = 1;",
    )
    .unwrap();
    timed += started.elapsed();
    data.count as f64 / timed.as_secs_f64()
}

fn e2e(rt: &tokio::runtime::Runtime, events: u64) {
    let config = sim_config(events, 365);
    let dir = bench_dir();
    let bound = storage_bound(&config, &dir.join("bound.db"));
    let m = run_sync(rt, config, &dir.join("e2e.db"), &[]);
    let rate = events as f64 / m.seconds;
    println!(
        "e2e: {events} events synced in {:.2}s = {:.0} events/s; storage bound {:.0} events/s; sync reaches {:.0}% of the bound; peak RSS {:.1} MiB; the binary used {:.1} s of CPU ({:.1} µs per event)",
        m.seconds,
        rate,
        bound,
        100.0 * rate / bound,
        m.peak_rss_mib,
        m.cpu_seconds,
        m.cpu_seconds * 1e6 / events as f64
    );
    println!("e2e summary: {}", m.summary);
}

/// `e2e` for this build and `baseline`: each round measures the bound once, then syncs with both binaries (in
/// alternating order) against it; then each one's mean ratio and CPU per event, and the differences.
fn e2e_against(rt: &tokio::runtime::Runtime, events: u64, baseline: &Path, rounds: u32) {
    assert!(
        baseline.is_file(),
        "--baseline {}: no such binary",
        baseline.display()
    );
    let this = PathBuf::from(env!("CARGO_BIN_EXE_elevate-archive"));
    let dir = bench_dir();
    let config = sim_config(events, 365);
    // (ratio %, CPU µs per event) of each round, for the baseline and this build.
    let (mut base, mut ours) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let bound = storage_bound(&config, &dir.join("bound.db"));
        let mut order = [(baseline, "baseline"), (this.as_path(), "this build")];
        if round % 2 == 1 {
            order.reverse();
        }
        for (binary, name) in order {
            let m = run_sync_with(rt, binary, config.clone(), &dir.join("e2e.db"), &[]);
            let rate = events as f64 / m.seconds;
            let (ratio, cpu) = (100.0 * rate / bound, m.cpu_seconds * 1e6 / events as f64);
            println!(
                "e2e round {}: {name}: {rate:.0} events/s against the bound's {bound:.0} = {ratio:.1}%; {cpu:.1} µs of CPU per event; peak RSS {:.1} MiB",
                round + 1,
                m.peak_rss_mib
            );
            if name == "baseline" {
                base.push((ratio, cpu));
            } else {
                ours.push((ratio, cpu));
            }
        }
    }
    let mean =
        |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let (base_ratio, our_ratio) = (mean(&base, |x| x.0), mean(&ours, |x| x.0));
    let (base_cpu, our_cpu) = (mean(&base, |x| x.1), mean(&ours, |x| x.1));
    println!(
        "e2e over {rounds} rounds of {events} events: baseline {base_ratio:.1}% of the bound, {base_cpu:.2} µs of CPU per event; this build {our_ratio:.1}%, {our_cpu:.2} µs; the ratio moves by {:+.1} points, the CPU per event by {:+.1}%",
        our_ratio - base_ratio,
        100.0 * (our_cpu / base_cpu - 1.0)
    );
}

fn memory(rt: &tokio::runtime::Runtime) {
    let dir = bench_dir();
    for events in [1_000_000u64, 10_000_000] {
        let db = dir.join(format!("memory-{events}.db"));
        let m = run_sync(rt, sim_config(events, 365), &db, &[]);
        println!(
            "memory: {events} events in {:.1}s ({:.0} events/s): peak RSS {:.1} MiB",
            m.seconds,
            events as f64 / m.seconds,
            m.peak_rss_mib
        );
        if events == 10_000_000 {
            std::fs::rename(&db, dir.join("queries-10m.db")).unwrap();
        }
    }
}

/// Throughput against the latency ceiling, at 100 ms per page and at 200 ms. At 100 ms the ceiling
/// (80,000 events/s) is close to what a 2-core machine stores per second while it also runs the simulator, so
/// that figure shows the machine as much as the API; at 200 ms (40,000 events/s) the API is the bound.
fn latency(rt: &tokio::runtime::Runtime) {
    let dir = bench_dir();
    let (events, days, concurrency, page) = (512_000u64, 32i64, 8u32, 1000u32);
    for latency_ms in [100u64, 200] {
        let config = SimConfig {
            latency: Duration::from_millis(latency_ms),
            ..sim_config(events, days)
        };
        let m = run_sync(
            rt,
            config,
            &dir.join("latency.db"),
            &["--concurrency", "8", "--window", "1d"],
        );
        let ceiling = f64::from(concurrency * page) / (latency_ms as f64 / 1000.0);
        let rate = events as f64 / m.seconds;
        println!(
            "latency: {events} events, {latency_ms} ms per page, concurrency {concurrency}: {:.0} events/s = {:.0}% of the {:.0} events/s ceiling (concurrency x pageSize / latency); {} requests for {} pages, {} windows (each window's end confirmed by an empty page); the binary used {:.1} s of CPU in {:.1} s",
            rate,
            100.0 * rate / ceiling,
            ceiling,
            m.summary["requests"],
            m.summary["pages"],
            m.summary["windows_completed"],
            m.cpu_seconds,
            m.seconds,
        );
    }
}

/// One range shape at 200 ms per page, `--concurrency 8`, the default 1-day `--window`: `events` spread over
/// `days` days, against the ceiling concurrency x pageSize / latency (40,000 events/s). Wall time is the
/// binary's whole run (start, token, every page, the search index at the end).
fn shape(rt: &tokio::runtime::Runtime, name: &str, events: u64, days: i64) {
    let dir = bench_dir();
    let (latency_ms, concurrency, page) = (200u64, 8u32, 1000u32);
    let config = SimConfig {
        latency: Duration::from_millis(latency_ms),
        ..sim_config(events, days)
    };
    let m = run_sync(
        rt,
        config,
        &dir.join(format!("{name}.db")),
        &["--concurrency", "8"],
    );
    let ceiling = f64::from(concurrency * page) / (latency_ms as f64 / 1000.0);
    let rate = events as f64 / m.seconds;
    println!(
        "{name}: {events} events over {days} day(s), {latency_ms} ms per page, concurrency {concurrency}: {:.0} events/s = {:.0}% of the {:.0} events/s ceiling (concurrency x pageSize / latency); {:.2} s; {} requests for {} pages, {} windows; the binary used {:.1} s of CPU",
        rate,
        100.0 * rate / ceiling,
        ceiling,
        m.seconds,
        m.summary["requests"],
        m.summary["pages"],
        m.summary["windows_completed"],
        m.cpu_seconds,
    );
}

fn queries(rt: &tokio::runtime::Runtime) {
    let dir = bench_dir();
    let db = dir.join("queries-10m.db");
    if !db.exists() {
        println!(
            "queries: building a 10,000,000-event archive (once; kept at {})",
            db.display()
        );
        run_sync(rt, sim_config(10_000_000, 365), &db, &[]);
    }
    // The queries a user types into `query` or the sqlite3 shell, timed on a plain read-only connection.
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let user: String = conn
        .query_row("SELECT username FROM events WHERE id >= (SELECT max(id) / 2 FROM events) ORDER BY id LIMIT 1", [], |r| r.get(0))
        .unwrap();
    let cases = [
        ("events of one day", "SELECT * FROM events WHERE timestamp >= '2024-06-10' AND timestamp < '2024-06-11'".to_string()),
        (
            "counts per action for a month",
            "SELECT action, count(*) FROM events WHERE timestamp >= '2024-06-01' AND timestamp < '2024-07-01' GROUP BY action".to_string(),
        ),
        (
            "one user's events over a year",
            format!("SELECT * FROM events WHERE username = '{user}' AND timestamp >= '2024-01-01' AND timestamp < '2025-01-01'"),
        ),
        (
            "failed logins per IP over a week",
            "SELECT ip_address, count(*) AS failures FROM events WHERE action = 'user-login-failure' \
             AND timestamp >= '2024-06-01' AND timestamp < '2024-06-08' GROUP BY ip_address ORDER BY failures DESC LIMIT 20"
                .to_string(),
        ),
        (
            "failed logins per IP over the whole year (1.4M failures; no time bound)",
            "SELECT ip_address, count(*) AS failures FROM events WHERE action = 'user-login-failure' GROUP BY ip_address ORDER BY failures DESC LIMIT 20".to_string(),
        ),
    ];
    for (name, sql) in cases {
        let mut stmt = conn.prepare(&sql).unwrap();
        let columns = stmt.column_count();
        let mut best = f64::MAX;
        let mut rows = 0;
        for _ in 0..5 {
            let started = Instant::now();
            let mut r = stmt.query([]).unwrap();
            rows = 0;
            while let Some(row) = r.next().unwrap() {
                for c in 0..columns {
                    let _ = row.get_ref(c).unwrap();
                }
                rows += 1;
            }
            best = best.min(started.elapsed().as_secs_f64() * 1000.0);
        }
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        println!(
            "query: {name}: {rows} rows in {best:.1} ms (best of 5); plan: {}",
            plan.join(" | ")
        );
    }
}

/// `prove` and `verify --checkpoint` on an archive of `events` events synced with a signing key (built once,
/// kept under target/bench/).
fn proofs(rt: &tokio::runtime::Runtime, events: u64) {
    let dir = bench_dir();
    let db = dir.join(format!("proofs-{events}.db"));
    let key = dir.join(format!("proofs-{events}.key"));
    let shipped = dir.join(format!("proofs-{events}.checkpoint"));
    if !db.exists() || !shipped.exists() {
        println!(
            "proofs: building a {events}-event archive signed with a new key (once; kept at {})",
            db.display()
        );
        let _ = std::fs::remove_file(&key);
        let (skey, _) = elevate_archive::tlog::note::generate_key("bench").unwrap();
        std::fs::write(&key, secrecy::ExposeSecret::expose_secret(&skey)).unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let m = run_sync(
            rt,
            sim_config(events, 365),
            &db,
            &[
                "--signing-key",
                key.to_str().unwrap(),
                "--checkpoint-out",
                shipped.to_str().unwrap(),
            ],
        );
        println!(
            "proofs: synced {events} events with the log in {:.1}s ({:.0} events/s), peak RSS {:.1} MiB",
            m.seconds,
            events as f64 / m.seconds,
            m.peak_rss_mib
        );
    }
    let text = std::fs::read_to_string(&key).unwrap();
    let verifier = elevate_archive::tlog::note::SigningKey::parse(&text.into(), "the bench key")
        .unwrap()
        .verifier_key();
    let reader = elevate_archive::store::ArchiveReader::open(&db).unwrap();
    let ids: Vec<i64> = reader_ids(&db);
    let mut worst = 0f64;
    for id in &ids {
        let started = Instant::now();
        let bundle = reader.prove(*id, None).unwrap();
        worst = worst.max(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(bundle.event_id, *id);
    }
    let m = run_binary(&db, &["prove", &ids[ids.len() / 2].to_string()]);
    println!(
        "proofs: prove, in process: worst {worst:.2} ms over {} events spread over the log; the binary end to end (open, prove, print): {:.1} ms",
        ids.len(),
        m.seconds * 1000.0
    );
    let started = Instant::now();
    let facts =
        elevate_archive::tlog::note::parse_checkpoint(&std::fs::read_to_string(&shipped).unwrap())
            .unwrap();
    let claim = elevate_archive::store::verify::log::Claim {
        label: "shipped".into(),
        size: facts.size,
        root: facts.root,
        trusted: true,
        unsigned_prunes: facts.unsigned_prunes,
    };
    let report = reader.check_log(&[claim], &[], false).unwrap();
    assert!(report.holds(), "{:?}", report.findings);
    println!(
        "proofs: the log pass alone (in process): {:.1}s for {} leaves",
        started.elapsed().as_secs_f64(),
        report.size
    );
    let m = run_binary(
        &db,
        &[
            "verify",
            "--format",
            "json",
            "--checkpoint",
            shipped.to_str().unwrap(),
            "--key",
            &verifier,
        ],
    );
    println!(
        "proofs: verify --checkpoint (every check, the log pass included) of {events} events: {:.1}s, peak RSS {:.1} MiB, log holds: {}",
        m.seconds,
        m.peak_rss_mib,
        m.summary["log"]["findings"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    let m = run_binary(
        &db,
        &[
            "verify",
            "--format",
            "json",
            "--log-only",
            "--checkpoint",
            shipped.to_str().unwrap(),
            "--key",
            &verifier,
        ],
    );
    println!(
        "proofs: verify --checkpoint --log-only of {events} events: {:.1}s, peak RSS {:.1} MiB, log holds: {}",
        m.seconds,
        m.peak_rss_mib,
        m.summary["log"]["findings"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

/// Event ids spread over the archive (every 1/100 of the id range).
/// An archive of `events` simulated events over a year at `target/bench/NAME`, synced once and kept.
fn kept_archive(rt: &tokio::runtime::Runtime, name: &str, events: u64) -> PathBuf {
    let db = bench_dir().join(name);
    if !db.exists() {
        println!(
            "building a {events}-event archive (once; kept at {})",
            db.display()
        );
        run_sync(rt, sim_config(events, 365), &db, &[]);
    }
    db
}

/// Mirroring against today's full Parquet export, and an incremental run with nothing new.
fn mirror(rt: &tokio::runtime::Runtime, events: u64) {
    let dir = bench_dir();
    for n in [events / 4, events] {
        let db = kept_archive(rt, &format!("mirror-{n}.db"), n);
        let export_dir = dir.join(format!("mirror-export-{n}"));
        let lake = dir.join(format!("mirror-lake-{n}"));
        let _ = std::fs::remove_dir_all(&export_dir);
        let _ = std::fs::remove_dir_all(&lake);
        // A copy of the kept archive, so that its export ledger starts empty on every run of the bench.
        let copy = dir.join(format!("mirror-run-{n}.db"));
        fresh(&copy);
        std::fs::copy(&db, &copy).unwrap();
        let (export_dir, lake) = (export_dir.to_str().unwrap(), lake.to_str().unwrap());
        let full = run_binary(
            &copy,
            &["export", "--format", "parquet", "--out", export_dir],
        );
        let first = run_binary(
            &copy,
            &[
                "export",
                "--format",
                "parquet",
                "--incremental",
                "--out",
                lake,
                "--json",
            ],
        );
        let again = run_binary(
            &copy,
            &[
                "export",
                "--format",
                "parquet",
                "--incremental",
                "--out",
                lake,
                "--json",
            ],
        );
        assert_eq!(first.summary["rows"], n, "{}", first.summary);
        assert_eq!(again.summary["seals"], 0, "{}", again.summary);
        println!(
            "mirror: {n} events: full Parquet export {:.2}s ({:.0} events/s, peak RSS {:.1} MiB); first \
             incremental mirror {:.2}s ({:.0} events/s, peak RSS {:.1} MiB, {} objects); \
             incremental run with nothing new {:.3}s (peak RSS {:.1} MiB)",
            full.seconds,
            n as f64 / full.seconds,
            full.peak_rss_mib,
            first.seconds,
            n as f64 / first.seconds,
            first.peak_rss_mib,
            first.summary["objects_added"],
            again.seconds,
            again.peak_rss_mib
        );
    }
}

fn reader_ids(db: &Path) -> Vec<i64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let (lo, hi): (i64, i64) = conn
        .query_row("SELECT min(id), max(id) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    (0..100)
        .map(|i| {
            let at = lo + (hi - lo) / 100 * i;
            conn.query_row("SELECT min(id) FROM events WHERE id >= ?1", [at], |r| {
                r.get(0)
            })
            .unwrap()
        })
        .collect()
}
