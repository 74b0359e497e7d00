//! Which collectors hear each HSM (`host_collectors`, kept by every collector's batches): for the inventory.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::store::StoreError;

/// One collector's view of a host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Heard {
    /// The collector's name.
    pub collector: String,
    /// When it received the host's first line.
    pub first_seen: DateTime<Utc>,
    /// When it received the host's latest line.
    pub last_seen: DateTime<Utc>,
    /// Lines it received from the host (copies another collector stored included).
    pub events: u64,
}

/// Every host with the collectors that hear it, by host name ('' for lines that name none), each host's collectors
/// by name.
pub(crate) async fn heard(pool: &sqlx::PgPool) -> Result<BTreeMap<String, Vec<Heard>>, StoreError> {
    let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT host, collector, first_seen, last_seen, events FROM host_collectors ORDER BY host, collector",
    )
    .fetch_all(pool)
    .await?;
    let time = |micros: i64| DateTime::from_timestamp_micros(micros).unwrap_or_default();
    let mut hosts: BTreeMap<String, Vec<Heard>> = BTreeMap::new();
    for (host, collector, first, last, events) in rows {
        let heard = Heard {
            collector,
            first_seen: time(first),
            last_seen: time(last),
            events: u64::try_from(events).unwrap_or(0),
        };
        hosts.entry(host).or_default().push(heard);
    }
    Ok(hosts)
}
