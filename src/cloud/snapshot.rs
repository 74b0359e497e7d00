//! What one read of an account's region says: its CloudHSM clusters with their HSMs, and the backups that matter
//! (each cluster's newest `READY` one, and those still being made). Plain data, without the SDK's types, so that the
//! comparison with the state last known ([`super::watch`]) is tested without AWS, and the state is saved as JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// `cluster-…`.
    pub id: String,
    /// `ACTIVE`, `DEGRADED`, `UNINITIALIZED`…
    pub state: String,
    /// AWS's words about the state.
    #[serde(default)]
    pub state_message: Option<String>,
    /// `hsm2m.medium`…
    #[serde(default)]
    pub hsm_type: Option<String>,
    /// `FIPS` or `NON_FIPS`.
    #[serde(default)]
    pub mode: Option<String>,
    /// When it was created.
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
    /// The backup it was restored from, when it was (a restore exercised at `created`).
    #[serde(default)]
    pub source_backup_id: Option<String>,
    /// Its HSMs.
    pub hsms: Vec<Hsm>,
}

/// One HSM of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hsm {
    /// `hsm-…`.
    pub id: String,
    /// `ACTIVE`, `DEGRADED`, `CREATE_IN_PROGRESS`…
    pub state: String,
    /// Its network interface's address: where its syslog comes from when it is not relayed.
    #[serde(default)]
    pub eni_ip: Option<String>,
    /// Its availability zone.
    #[serde(default)]
    pub availability_zone: Option<String>,
}

/// One backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    /// `backup-…`.
    pub id: String,
    /// Its cluster.
    pub cluster_id: String,
    /// `READY`, `CREATE_IN_PROGRESS`, `PENDING_DELETION`, `DELETED`.
    pub state: String,
    /// When it was made (for a copy from another region: when it was copied).
    pub created: Option<DateTime<Utc>>,
}

/// What one read of a region found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Its clusters.
    pub clusters: Vec<Cluster>,
    /// The backups read: newest first, at least each cluster's newest `READY` one and every one still being made.
    pub backups: Vec<Backup>,
}

impl Backup {
    /// It is usable for a restore.
    pub fn ready(&self) -> bool {
        self.state == "READY"
    }

    /// It ended without becoming usable, or is going away.
    pub fn gone(&self) -> bool {
        matches!(self.state.as_str(), "DELETED" | "PENDING_DELETION")
    }

    /// It is still being made.
    pub fn in_progress(&self) -> bool {
        !self.ready() && !self.gone()
    }
}

impl Snapshot {
    /// The newest `READY` backup of a cluster among those read.
    pub fn newest_ready(&self, cluster_id: &str) -> Option<&Backup> {
        self.backups.iter().filter(|b| b.cluster_id == cluster_id && b.ready()).max_by_key(|b| b.created)
    }

    /// A cluster by id.
    pub fn cluster(&self, id: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.id == id)
    }
}
