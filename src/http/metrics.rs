//! `GET /metrics`: every counter in Prometheus text format, encoded by `prometheus-client` (a collector that reads the
//! server's counters, the outbox and the kernel's UDP drop counts at scrape time).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::AppState;
use crate::metrics::{value, Counters, Labelled, ListenerCounters};
use crate::store::chain::{head_of, Head};
use crate::store::outbox::{outbox_figures, OutboxFigures};

/// Label pairs of one series.
type Labels = Vec<(&'static str, String)>;

/// Which counter of a listener a family reports.
type Pick = fn(&ListenerCounters) -> &AtomicU64;

/// Datagrams the kernel dropped on a UDP socket bound to `port` (its receive buffer was full), from the `drops`
/// column of `/proc/net/udp` and `/proc/net/udp6`; `None` where those files cannot be read.
pub fn kernel_udp_drops(port: u16) -> Option<u64> {
    let wanted = format!("{port:04X}");
    let mut found = None;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let columns: Vec<&str> = line.split_whitespace().collect();
            let port_matches =
                columns.get(1).and_then(|local| local.rsplit_once(':')).is_some_and(|(_, p)| p == wanted);
            if let (true, Some(drops)) = (port_matches, columns.last().and_then(|d| d.parse::<u64>().ok())) {
                *found.get_or_insert(0) += drops;
            }
        }
    }
    found
}

#[derive(Debug)]
struct ServerCollector {
    listeners: Vec<std::sync::Arc<ListenerCounters>>,
    counters: std::sync::Arc<Counters>,
    labelled: Labelled,
    outbox: OutboxFigures,
    head: Option<Head>,
}

fn counter_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, n) in series {
        ConstCounter::new(*n).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, f64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, n) in series {
        ConstGauge::new(*n).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

impl ServerCollector {
    fn per_listener(&self, pick: Pick, only: Option<&str>) -> Vec<(Labels, u64)> {
        self.listeners
            .iter()
            .filter(|l| match only {
                None => true,
                // TCP and TLS listeners share the connection families.
                Some("stream") => l.transport != "udp",
                Some(transport) => l.transport == transport,
            })
            .map(|l| (vec![("transport", l.transport.to_owned()), ("listener", l.address.to_string())], value(pick(l))))
            .collect()
    }

    fn encode_listeners(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let families: [(&str, &str, Pick, Option<&str>); 15] = [
            ("hsmwatch_messages_received", "Frames (TCP) and datagrams (UDP) received.", |l| &l.received, None),
            ("hsmwatch_bytes_received", "Bytes read from syslog sockets.", |l| &l.bytes, None),
            ("hsmwatch_frames_truncated", "Frames cut at max_frame (stored, marked).", |l| &l.truncated, None),
            ("hsmwatch_lines_unparsed", "Lines no syslog parser accepted (stored raw).", |l| &l.unparsed, None),
            ("hsmwatch_lines_unknown", "Parsed lines no decoder recognised.", |l| &l.unknown, None),
            (
                "hsmwatch_udp_dropped",
                "UDP datagrams dropped because the writer queue was full.",
                |l| &l.udp_dropped,
                Some("udp"),
            ),
            (
                "hsmwatch_tcp_framing_errors",
                "TCP connections closed for impossible framing.",
                |l| &l.framing_errors,
                Some("stream"),
            ),
            (
                "hsmwatch_tcp_connections_accepted",
                "TCP connections accepted.",
                |l| &l.connections_accepted,
                Some("stream"),
            ),
            ("hsmwatch_tcp_connections_open", "TCP/TLS connections open now.", |l| &l.connections_open, Some("stream")),
            (
                "hsmwatch_refused_not_allowed",
                "Datagrams and connections from outside the allowlist, dropped unread.",
                |l| &l.refused_not_allowed,
                None,
            ),
            (
                "hsmwatch_refused_connection_limit",
                "Connections refused: the listener or the address held its maximum.",
                |l| &l.refused_limit,
                Some("stream"),
            ),
            ("hsmwatch_idle_closed", "Connections closed after idle_timeout.", |l| &l.idle_closed, Some("stream")),
            (
                "hsmwatch_line_timeout_closed",
                "Connections closed: a line not complete within line_timeout.",
                |l| &l.line_timeout_closed,
                Some("stream"),
            ),
            (
                "hsmwatch_evicted_stale",
                "Connections closed to make room while the listener was full: those longest without a complete line.",
                |l| &l.evicted_stale,
                Some("stream"),
            ),
            (
                "hsmwatch_tls_handshake_failures",
                "TLS handshakes that failed or timed out.",
                |l| &l.tls_handshake_failures,
                Some("tls"),
            ),
        ];
        for (name, help, pick, only) in families {
            let series = self.per_listener(pick, only);
            if name == "hsmwatch_tcp_connections_open" {
                let gauges: Vec<(Labels, f64)> = series.into_iter().map(|(l, n)| (l, n as f64)).collect();
                gauge_family(encoder, name, help, &gauges)?;
            } else {
                counter_family(encoder, name, help, &series)?;
            }
        }
        let kernel: Vec<(Labels, u64)> = self
            .listeners
            .iter()
            .filter(|l| l.transport == "udp")
            .filter_map(|l| kernel_udp_drops(l.address.port()).map(|n| (vec![("listener", l.address.to_string())], n)))
            .collect();
        counter_family(
            encoder,
            "hsmwatch_udp_kernel_drops",
            "UDP datagrams the kernel dropped on the socket (receive buffer full), from /proc/net/udp.",
            &kernel,
        )
    }

    fn encode_pipeline(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = &self.counters;
        let plain = |n: &AtomicU64| vec![(Labels::new(), value(n))];
        counter_family(encoder, "hsmwatch_events_stored", "Events committed to the database.", &plain(&c.stored))?;
        counter_family(
            encoder,
            "hsmwatch_log_write_errors",
            "Log lines dropped because stderr was closed, full or refused them (the server carried on).",
            &[(Labels::new(), crate::telemetry::write_errors())],
        )?;
        counter_family(
            encoder,
            "hsmwatch_store_retries",
            "Commits that failed and were retried.",
            &plain(&c.store_retries),
        )?;
        if let Some(leadership) = c.leadership() {
            counter_family(
                encoder,
                "hsmwatch_events_stored_copies",
                "Lines another collector had stored already: this collector was added to their observers.",
                &plain(&c.stored_copies),
            )?;
            gauge_family(
                encoder,
                "hsmwatch_leader",
                "1 while this collector leads (evaluates rules, records and sends alerts), else 0.",
                &[(vec![("collector", leadership.collector.clone())], f64::from(u8::from(leadership.leading)))],
            )?;
            gauge_family(
                encoder,
                "hsmwatch_leader_term",
                "The leader's term while this collector leads: one more at each change of leader.",
                &[(Labels::new(), leadership.term.unwrap_or(0) as f64)],
            )?;
        }
        gauge_family(
            encoder,
            "hsmwatch_writer_queue_depth",
            "Events waiting for the writer.",
            &[(Labels::new(), value(&c.queue_depth) as f64)],
        )?;
        gauge_family(
            encoder,
            "hsmwatch_storage_full",
            "1 while commits fail for lack of space (disk, storage.max_size, storage.min_free), else 0.",
            &[(Labels::new(), f64::from(u8::from(c.storage_full.load(std::sync::atomic::Ordering::Relaxed))))],
        )?;
        gauge_family(
            encoder,
            "hsmwatch_writer_held_events",
            "Events the writer holds while its commits fail.",
            &[(Labels::new(), value(&c.held_events) as f64)],
        )?;
        gauge_family(
            encoder,
            "hsmwatch_writer_queue_bytes",
            "Bytes held by events waiting for the writer or in the batches it is writing (bounded by queue_bytes).",
            &[(Labels::new(), value(&c.queue_bytes) as f64)],
        )?;
        gauge_family(
            encoder,
            "hsmwatch_search_index_waiting_events",
            "Stored events not yet in the search index (contains and word searches read them directly meanwhile).",
            &[(Labels::new(), value(&c.search_waiting) as f64)],
        )?;
        let batch = encoder.encode_descriptor(
            "hsmwatch_writer_batch_seconds",
            "Time to commit one batch.",
            None,
            c.batch_seconds.metric_type(),
        )?;
        c.batch_seconds.encode(batch)?;
        let datasets: Vec<(Labels, u64)> =
            self.labelled.datasets.iter().map(|(d, n)| (vec![("dataset", d.clone())], *n)).collect();
        counter_family(
            encoder,
            "hsmwatch_events_by_dataset",
            "Events stored per event.dataset (decoder hits; `syslog` is what no decoder recognised).",
            &datasets,
        )?;
        counter_family(
            encoder,
            "hsmwatch_rule_evaluated_events",
            "Events the rules evaluated.",
            &plain(&c.events_evaluated),
        )?;
        let evaluation = encoder.encode_descriptor(
            "hsmwatch_rule_evaluation_seconds",
            "Time to evaluate one committed batch and write its alerts.",
            None,
            c.evaluation_seconds.metric_type(),
        )?;
        c.evaluation_seconds.encode(evaluation)
    }

    fn encode_alerting(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let alerts: Vec<(Labels, u64)> = self
            .labelled
            .alerts
            .iter()
            .map(|((rule, severity), n)| (vec![("rule", rule.clone()), ("severity", severity.clone())], *n))
            .collect();
        counter_family(
            encoder,
            "hsmwatch_alerts",
            "Alerts recorded (firing and resolved), per rule and severity.",
            &alerts,
        )?;
        let deliveries: Vec<(Labels, u64)> = self
            .labelled
            .deliveries
            .iter()
            .map(|((notifier, result), n)| {
                (vec![("notifier", notifier.clone()), ("result", result.as_str().to_owned())], *n)
            })
            .collect();
        counter_family(
            encoder,
            "hsmwatch_deliveries",
            "Delivery attempts per notifier: sent, failed (will retry), dead (given up).",
            &deliveries,
        )?;
        let restarts: Vec<(Labels, u64)> =
            self.labelled.worker_restarts.iter().map(|(n, count)| (vec![("notifier", n.clone())], *count)).collect();
        counter_family(
            encoder,
            "hsmwatch_delivery_worker_restarts",
            "Delivery workers started again after they died, per notifier.",
            &restarts,
        )?;
        let pending: Vec<(Labels, f64)> =
            self.outbox.0.iter().map(|(n, depth, _)| (vec![("notifier", n.clone())], *depth as f64)).collect();
        gauge_family(encoder, "hsmwatch_outbox_pending", "Deliveries waiting in the outbox.", &pending)?;
        let oldest: Vec<(Labels, f64)> =
            self.outbox.0.iter().map(|(n, _, age)| (vec![("notifier", n.clone())], *age)).collect();
        gauge_family(encoder, "hsmwatch_outbox_oldest_pending_seconds", "Age of the oldest pending delivery.", &oldest)
    }
}

impl ServerCollector {
    /// Per SNMP target: up, the last poll's duration, polls by outcome, and what the appliance said.
    fn encode_snmp(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let targets = self.counters.snmp.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let label = |name: &String| vec![("target", name.clone())];
        let gauge = |pick: fn(&crate::metrics::SnmpFigures) -> Option<f64>| -> Vec<(Labels, f64)> {
            targets.iter().filter_map(|(name, f)| pick(f).map(|v| (label(name), v))).collect()
        };
        gauge_family(
            encoder,
            "hsmwatch_snmp_up",
            "1 when the last SNMP poll of the target succeeded.",
            &gauge(|f| Some(f64::from(u8::from(f.up)))),
        )?;
        gauge_family(
            encoder,
            "hsmwatch_snmp_poll_seconds",
            "How long the last SNMP poll of the target took.",
            &gauge(|f| Some(f.poll_seconds)),
        )?;
        let polls: Vec<(Labels, u64)> = targets
            .iter()
            .flat_map(|(name, f)| {
                [("success", f.polls_ok), ("failure", f.polls_failed)]
                    .map(|(outcome, n)| (vec![("target", name.clone()), ("outcome", outcome.to_owned())], n))
            })
            .collect();
        counter_family(encoder, "hsmwatch_snmp_polls", "SNMP polls of the target, by outcome.", &polls)?;
        gauge_family(
            encoder,
            "hsmwatch_snmp_ntls_clients",
            "Clients connected over NTLS (ntlsConnectedClients).",
            &gauge(|f| f.ntls_clients),
        )?;
        gauge_family(
            encoder,
            "hsmwatch_snmp_storage_used_percent",
            "The highest storage use of the target's HSMs and partitions, in percent.",
            &gauge(|f| f.storage_used_pct),
        )?;
        gauge_family(
            encoder,
            "hsmwatch_snmp_disk_used_percent",
            "The fullest of the appliance's disks, in percent (UCD-SNMP-MIB dskPercent).",
            &gauge(|f| f.disk_used_pct),
        )?;
        gauge_family(
            encoder,
            "hsmwatch_snmp_hsm_operation_requests",
            "HSM operations requested, as the appliance counts them (hsmOperationRequests; falls when it restarts).",
            &gauge(|f| f.operation_requests),
        )?;
        gauge_family(
            encoder,
            "hsmwatch_snmp_hsm_operation_errors",
            "HSM operations that failed, as the appliance counts them (hsmOperationErrors).",
            &gauge(|f| f.operation_errors),
        )
    }
}

impl ServerCollector {
    /// Per account and region: read up, duration and outcomes; clusters and HSMs per state; each cluster's newest
    /// READY backup's age.
    fn encode_cloud(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let regions = self.counters.cloud.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let label =
            |(account, region): &(String, String)| vec![("account", account.clone()), ("region", region.clone())];
        let up: Vec<(Labels, f64)> = regions.iter().map(|(k, f)| (label(k), f64::from(u8::from(f.up)))).collect();
        gauge_family(
            encoder,
            "hsmwatch_cloud_read_up",
            "1 when the last read of the account's region succeeded.",
            &up,
        )?;
        let took: Vec<(Labels, f64)> = regions.iter().map(|(k, f)| (label(k), f.read_seconds)).collect();
        gauge_family(encoder, "hsmwatch_cloud_read_seconds", "How long the last read of the region took.", &took)?;
        let reads: Vec<(Labels, u64)> = regions
            .iter()
            .flat_map(|(k, f)| {
                [("success", f.reads_ok), ("failure", f.reads_failed)].map(|(outcome, n)| {
                    let mut labels = label(k);
                    labels.push(("outcome", outcome.to_owned()));
                    (labels, n)
                })
            })
            .collect();
        counter_family(encoder, "hsmwatch_cloud_reads", "Reads of the account's region, by outcome.", &reads)?;
        let per_state = |pick: fn(&crate::metrics::CloudFigures) -> &BTreeMap<String, u64>| -> Vec<(Labels, f64)> {
            regions
                .iter()
                .flat_map(|(k, f)| {
                    pick(f).iter().map(move |(state, n)| {
                        let mut labels = label(k);
                        labels.push(("state", state.clone()));
                        (labels, *n as f64)
                    })
                })
                .collect()
        };
        gauge_family(encoder, "hsmwatch_cloud_clusters", "CloudHSM clusters per state.", &per_state(|f| &f.clusters))?;
        gauge_family(encoder, "hsmwatch_cloud_hsms", "CloudHSM HSMs per state.", &per_state(|f| &f.hsms))?;
        let now = chrono::Utc::now();
        let ages: Vec<(Labels, f64)> = regions
            .iter()
            .flat_map(|(k, f)| {
                f.newest_backup.iter().filter_map(move |(cluster, at)| {
                    let mut labels = label(k);
                    labels.push(("cluster", cluster.clone()));
                    at.map(|at| (labels, (now - at).num_milliseconds() as f64 / 1000.0))
                })
            })
            .collect();
        gauge_family(
            encoder,
            "hsmwatch_cloud_newest_backup_age_seconds",
            "Age of the cluster's newest READY backup (absent: none).",
            &ages,
        )
    }
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_listeners(&mut encoder)?;
        self.encode_pipeline(&mut encoder)?;
        self.encode_alerting(&mut encoder)?;
        self.encode_snmp(&mut encoder)?;
        self.encode_cloud(&mut encoder)?;
        // The head's hash is a label: a scraper that keeps history keeps a copy of the chain's head outside the
        // database. The value is the head record's id.
        let head: Vec<(Labels, f64)> =
            self.head.iter().map(|head| (vec![("hash", head.hash.clone())], head.record as f64)).collect();
        gauge_family(
            &mut encoder,
            "hsmwatch_chain_head",
            "The tamper-evident chain's newest record: its id, its hash in the label.",
            &head,
        )
    }
}

/// The Prometheus text of the server's metrics now.
pub fn render(
    counters: &std::sync::Arc<Counters>,
    outbox: OutboxFigures,
    head: Option<Head>,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ServerCollector {
        listeners: counters.listeners(),
        counters: counters.clone(),
        labelled: counters.labelled(),
        outbox,
        head,
    }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// `GET /metrics`.
pub async fn handler(State(state): State<AppState>) -> Response {
    // An unreadable outbox must not hide every other metric: it is reported in the log and left out.
    let outbox = outbox_figures(&state.pool).await.unwrap_or_else(|error| {
        tracing::warn!(%error, "cannot read the outbox for /metrics");
        OutboxFigures::default()
    });
    let head = head_of(&state.pool).await.unwrap_or_else(|error| {
        // PostgreSQL's store has no chain yet: nothing to say, at every scrape.
        if !matches!(error, crate::store::StoreError::NotOnPostgres) {
            tracing::warn!(%error, "cannot read the chain's head for /metrics");
        }
        None
    });
    match render(&state.counters, outbox, head) {
        Ok(text) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_encode_with_labels() {
        let counters = std::sync::Arc::new(Counters::default());
        let udp = counters.listener("udp", "127.0.0.1:5514".parse().unwrap());
        Counters::add(&udp.received, 3);
        counters.count_alert("luna.hsm.tamper", "critical");
        let text = render(&counters, OutboxFigures(vec![("hook".into(), 2, 1.5)]), None).unwrap();
        assert!(
            text.contains("hsmwatch_messages_received_total{transport=\"udp\",listener=\"127.0.0.1:5514\"} 3"),
            "{text}"
        );
        assert!(text.contains("hsmwatch_alerts_total{rule=\"luna.hsm.tamper\",severity=\"critical\"} 1"), "{text}");
        assert!(text.contains("hsmwatch_outbox_pending{notifier=\"hook\"} 2"), "{text}");
        assert!(text.contains("hsmwatch_writer_batch_seconds_bucket"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
