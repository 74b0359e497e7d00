//! Counters shared by every stage: what was received (per listener), stored, unparsed, truncated, dropped or refused;
//! how long commits and rule evaluations take; alerts fired and deliveries made.
//!
//! Stages only increment; the summary log line reads a [`Snapshot`] and `GET /metrics` encodes everything (see
//! `http::metrics`). Plain atomics with relaxed ordering: the numbers are for operators, not for synchronisation.
//! Labelled counts that change rarely (alerts per rule, deliveries per notifier) sit behind a mutex.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// The counters of one listener (one bound socket).
#[derive(Debug)]
pub struct ListenerCounters {
    /// `tcp` or `udp`.
    pub transport: &'static str,
    /// The bound address.
    pub address: SocketAddr,
    /// Frames (TCP) and datagrams (UDP) turned into events.
    pub received: AtomicU64,
    /// Bytes read from the socket.
    pub bytes: AtomicU64,
    /// Lines no syslog parser accepted (stored with `log.syslog.format: unparsed`).
    pub unparsed: AtomicU64,
    /// Parsed lines no decoder recognised (stored with `event.dataset: syslog`).
    pub unknown: AtomicU64,
    /// Frames cut at the maximum frame size.
    pub truncated: AtomicU64,
    /// UDP datagrams dropped because the writer queue was full.
    pub udp_dropped: AtomicU64,
    /// TCP connections closed because their framing could not go on (absurd or lying octet counts).
    pub framing_errors: AtomicU64,
    /// TCP connections accepted.
    pub connections_accepted: AtomicU64,
    /// TCP connections open now.
    pub connections_open: AtomicU64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: AtomicU64,
    /// Datagrams and connections from addresses outside the allowlist, dropped unread.
    pub refused_not_allowed: AtomicU64,
    /// Connections refused because the listener or the peer held its maximum.
    pub refused_limit: AtomicU64,
    /// Connections closed after `idle_timeout` without data.
    pub idle_closed: AtomicU64,
    /// Connections closed because a line was not complete within `line_timeout`.
    pub line_timeout_closed: AtomicU64,
    /// Connections closed to make room for a new one while the listener was full: the ones longest without a line.
    pub evicted_stale: AtomicU64,
}

impl ListenerCounters {
    /// Counters at zero for a listener.
    pub fn new(transport: &'static str, address: SocketAddr) -> Self {
        ListenerCounters {
            transport,
            address,
            received: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            unparsed: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            udp_dropped: AtomicU64::new(0),
            framing_errors: AtomicU64::new(0),
            connections_accepted: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
            refused_not_allowed: AtomicU64::new(0),
            refused_limit: AtomicU64::new(0),
            idle_closed: AtomicU64::new(0),
            line_timeout_closed: AtomicU64::new(0),
            evicted_stale: AtomicU64::new(0),
        }
    }
}

/// What became of one delivery attempt, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeliveryResult {
    /// Accepted by the receiver.
    Sent,
    /// Failed; will be retried.
    Failed,
    /// Given up.
    Dead,
}

impl DeliveryResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryResult::Sent => "sent",
            DeliveryResult::Failed => "failed",
            DeliveryResult::Dead => "dead",
        }
    }
}

/// Which collector evaluates rules and sends alerts on a shared database, as one collector last learned it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Leadership {
    /// This collector's name.
    pub collector: String,
    /// Whether this collector leads.
    pub leading: bool,
    /// The leader (collector name and process instance), when known.
    pub leader: Option<String>,
    /// The leader's term, when this collector leads.
    pub term: Option<i64>,
}

/// Every counter of the server, cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Counters {
    listeners: Mutex<Vec<Arc<ListenerCounters>>>,
    /// Events committed to the database.
    pub stored: AtomicU64,
    /// Batches whose commit failed and was retried.
    pub store_retries: AtomicU64,
    /// Lines another collector had stored already (PostgreSQL): this collector was added to their observers.
    pub stored_copies: AtomicU64,
    /// Which collector leads, as this one last learned (PostgreSQL; none on SQLite).
    pub leadership: Mutex<Option<Leadership>>,
    /// Whether the writer's last commit failed (it is retrying).
    pub store_failing: std::sync::atomic::AtomicBool,
    /// Whether commits fail for lack of space (the disk, `storage.max_size` or `storage.min_free`).
    pub storage_full: std::sync::atomic::AtomicBool,
    /// Events the writer holds while its commits fail (the batch being retried and what it carries).
    pub held_events: AtomicU64,
    /// Events waiting in the writer queue (a gauge, set by the writer).
    pub queue_depth: AtomicU64,
    /// Bytes held by events queued for the writer or in the batches it is writing (a gauge, kept by the queue).
    pub queue_bytes: AtomicU64,
    /// Events in complete blocks the search index has not taken in yet (a gauge, set by the search task).
    pub search_waiting: AtomicU64,
    /// Rules evaluated now, disabled ones left out (a gauge, set at start and by every successful reload).
    pub rules_loaded: AtomicU64,
    /// Seconds per committed batch.
    pub batch_seconds: Histogram,
    /// Events stored per `event.dataset`.
    pub datasets: Mutex<BTreeMap<String, u64>>,
    /// Events the rules evaluated.
    pub events_evaluated: AtomicU64,
    /// Seconds per rule evaluation of a batch (or a timer tick).
    pub evaluation_seconds: Histogram,
    /// Alerts recorded per (rule, severity).
    pub alerts: Mutex<BTreeMap<(String, String), u64>>,
    /// Delivery attempts per (notifier, result).
    pub deliveries: Mutex<BTreeMap<(String, DeliveryResult), u64>>,
    /// Delivery workers started again after they died, per notifier.
    pub worker_restarts: Mutex<BTreeMap<String, u64>>,
    /// Notifiers whose delivery worker is not running (it could not start, or died and waits to start again).
    pub workers_down: Mutex<std::collections::BTreeSet<String>>,
    /// What the SNMP poller last learned of each target, by name.
    pub snmp: Mutex<BTreeMap<String, SnmpFigures>>,
    /// What the cloud inventory last read of each (account, region).
    pub cloud: Mutex<BTreeMap<(String, String), CloudFigures>>,
}

/// The figures of one account's region, as its last read left them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CloudFigures {
    /// The last read succeeded.
    pub up: bool,
    /// How long the last read took, in seconds.
    pub read_seconds: f64,
    /// Reads that succeeded.
    pub reads_ok: u64,
    /// Reads that failed.
    pub reads_failed: u64,
    /// Clusters per state, as last read.
    pub clusters: BTreeMap<String, u64>,
    /// HSMs per state, as last read.
    pub hsms: BTreeMap<String, u64>,
    /// Each cluster's newest READY backup, as last read.
    pub newest_backup: BTreeMap<String, Option<chrono::DateTime<chrono::Utc>>>,
}

/// The figures of one SNMP target, as its last poll left them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnmpFigures {
    /// The last poll succeeded.
    pub up: bool,
    /// How long the last poll took, in seconds.
    pub poll_seconds: f64,
    /// Polls that succeeded.
    pub polls_ok: u64,
    /// Polls that failed.
    pub polls_failed: u64,
    /// Clients connected over NTLS.
    pub ntls_clients: Option<f64>,
    /// The highest storage use of its HSMs and partitions, in percent.
    pub storage_used_pct: Option<f64>,
    /// The fullest of the appliance's disks, in percent.
    pub disk_used_pct: Option<f64>,
    /// The appliance's own count of HSM operations requested.
    pub operation_requests: Option<f64>,
    /// The appliance's own count of HSM operations that failed.
    pub operation_errors: Option<f64>,
}

impl Default for Counters {
    fn default() -> Self {
        // 100 µs .. ~3.3 s, doubling.
        let buckets = || exponential_buckets(0.0001, 2.0, 16);
        Counters {
            listeners: Mutex::default(),
            stored: AtomicU64::new(0),
            store_retries: AtomicU64::new(0),
            stored_copies: AtomicU64::new(0),
            leadership: Mutex::default(),
            store_failing: std::sync::atomic::AtomicBool::new(false),
            storage_full: std::sync::atomic::AtomicBool::new(false),
            held_events: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            queue_bytes: AtomicU64::new(0),
            search_waiting: AtomicU64::new(0),
            rules_loaded: AtomicU64::new(0),
            batch_seconds: Histogram::new(buckets()),
            datasets: Mutex::default(),
            events_evaluated: AtomicU64::new(0),
            evaluation_seconds: Histogram::new(buckets()),
            alerts: Mutex::default(),
            deliveries: Mutex::default(),
            worker_restarts: Mutex::default(),
            workers_down: Mutex::default(),
            snmp: Mutex::default(),
            cloud: Mutex::default(),
        }
    }
}

/// A copy of the totals at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Frames and datagrams received, every listener.
    pub received: u64,
    /// Bytes read, every listener.
    pub bytes: u64,
    /// See [`Counters::stored`].
    pub stored: u64,
    /// Unparsed lines, every listener.
    pub unparsed: u64,
    /// Truncated frames, every listener.
    pub truncated: u64,
    /// UDP datagrams dropped for a full queue.
    pub udp_dropped: u64,
    /// TCP connections closed for framing errors.
    pub framing_errors: u64,
    /// TCP connections accepted.
    pub connections_accepted: u64,
    /// See [`Counters::store_retries`].
    pub store_retries: u64,
}

/// Reads a counter.
pub fn value(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Counters {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n` from a gauge.
    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    /// The counters of a newly bound listener.
    pub fn listener(&self, transport: &'static str, address: SocketAddr) -> Arc<ListenerCounters> {
        let counters = Arc::new(ListenerCounters::new(transport, address));
        lock(&self.listeners).push(counters.clone());
        counters
    }

    /// Every listener's counters.
    pub fn listeners(&self) -> Vec<Arc<ListenerCounters>> {
        lock(&self.listeners).clone()
    }

    /// Counts stored events by dataset (once per batch).
    pub fn count_datasets<'a>(&self, datasets: impl Iterator<Item = &'a str>) {
        let mut local: BTreeMap<&str, u64> = BTreeMap::new();
        for dataset in datasets {
            *local.entry(dataset).or_default() += 1;
        }
        let mut totals = lock(&self.datasets);
        for (dataset, n) in local {
            match totals.get_mut(dataset) {
                Some(total) => *total += n,
                None => {
                    totals.insert(dataset.to_owned(), n);
                }
            }
        }
    }

    /// Counts a recorded alert.
    pub fn count_alert(&self, rule: &str, severity: &str) {
        *lock(&self.alerts).entry((rule.to_owned(), severity.to_owned())).or_default() += 1;
    }

    /// Counts delivery attempts.
    pub fn count_delivery(&self, notifier: &str, result: DeliveryResult, n: u64) {
        *lock(&self.deliveries).entry((notifier.to_owned(), result)).or_default() += n;
    }

    /// Records whether a notifier's delivery worker runs.
    pub fn set_worker_running(&self, notifier: &str, running: bool) {
        let mut down = lock(&self.workers_down);
        if running {
            down.remove(notifier);
        } else {
            down.insert(notifier.to_owned());
        }
    }

    /// Counts a delivery worker started again after it died.
    pub fn count_worker_restart(&self, notifier: &str) {
        *lock(&self.worker_restarts).entry(notifier.to_owned()).or_default() += 1;
    }

    /// The notifiers whose delivery worker is not running.
    /// Says which collector leads.
    pub fn set_leadership(&self, leadership: Leadership) {
        *lock(&self.leadership) = Some(leadership);
    }

    /// Which collector leads, when the store is shared.
    pub fn leadership(&self) -> Option<Leadership> {
        lock(&self.leadership).clone()
    }

    /// The notifiers whose delivery worker is not running.
    pub fn workers_down(&self) -> Vec<String> {
        lock(&self.workers_down).iter().cloned().collect()
    }

    /// A copy of the labelled counts, for encoding.
    pub fn labelled(&self) -> Labelled {
        Labelled {
            datasets: lock(&self.datasets).clone(),
            alerts: lock(&self.alerts).clone(),
            deliveries: lock(&self.deliveries).clone(),
            worker_restarts: lock(&self.worker_restarts).clone(),
        }
    }

    /// Reads the totals.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot =
            Snapshot { stored: value(&self.stored), store_retries: value(&self.store_retries), ..Snapshot::default() };
        for l in lock(&self.listeners).iter() {
            snapshot.received += value(&l.received);
            snapshot.bytes += value(&l.bytes);
            snapshot.unparsed += value(&l.unparsed);
            snapshot.truncated += value(&l.truncated);
            snapshot.udp_dropped += value(&l.udp_dropped);
            snapshot.framing_errors += value(&l.framing_errors);
            snapshot.connections_accepted += value(&l.connections_accepted);
        }
        snapshot
    }
}

/// The labelled counts at one moment.
#[derive(Debug, Clone, Default)]
pub struct Labelled {
    /// Events stored per dataset.
    pub datasets: BTreeMap<String, u64>,
    /// Alerts per (rule, severity).
    pub alerts: BTreeMap<(String, String), u64>,
    /// Delivery attempts per (notifier, result).
    pub deliveries: BTreeMap<(String, DeliveryResult), u64>,
    /// Delivery workers started again after they died, per notifier.
    pub worker_restarts: BTreeMap<String, u64>,
}
