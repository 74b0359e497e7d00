//! The cloud inventory as operators see it (`hsmwatch cloud`, `GET /api/cloud`, the dashboard's cloud page): accounts
//! and regions with their last read, clusters with their newest backup and last restore, HSMs with the host they are
//! heard as.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::snapshot::Backup;
use super::watch::RegionState;
use crate::store::{Reader, StoreError};

/// One account's region.
#[derive(Debug, Clone, Serialize)]
pub struct RegionView {
    /// The account id.
    pub account: String,
    /// Its display name.
    pub account_name: Option<String>,
    /// The region.
    pub region: String,
    /// The last successful read.
    pub last_success: Option<DateTime<Utc>>,
    /// The last read.
    pub last_attempt: Option<DateTime<Utc>>,
    /// How long it took, in seconds.
    pub read_seconds: Option<f64>,
    /// Why reads fail now, when they do.
    pub error: Option<String>,
    /// Since when they fail.
    pub failing_since: Option<DateTime<Utc>>,
    /// Its clusters, as last read.
    pub clusters: Vec<ClusterView>,
}

/// One cluster.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// `cluster-…`.
    pub id: String,
    /// Its state.
    pub state: String,
    /// AWS's words about it.
    pub state_message: Option<String>,
    /// HSM type.
    pub hsm_type: Option<String>,
    /// `FIPS` or `NON_FIPS`.
    pub mode: Option<String>,
    /// When it was created.
    pub created: Option<DateTime<Utc>>,
    /// The backup it was restored from: a restore exercised when it was created.
    pub restored_from: Option<String>,
    /// The last restore exercised: its own creation from a backup, or a cluster made from one of its backups.
    pub last_restore: Option<Restore>,
    /// Its newest READY backup.
    pub last_backup: Option<BackupView>,
    /// Backups being made.
    pub backups_in_progress: Vec<BackupView>,
    /// Its HSMs.
    pub hsms: Vec<HsmView>,
}

/// A restore exercised: a cluster created from a backup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Restore {
    /// When (the new cluster's creation).
    pub at: DateTime<Utc>,
    /// The cluster it made.
    pub cluster: String,
    /// The backup it read.
    pub backup: String,
}

/// One backup.
#[derive(Debug, Clone, Serialize)]
pub struct BackupView {
    /// `backup-…`.
    pub id: String,
    /// Its state.
    pub state: String,
    /// When it was made.
    pub created: Option<DateTime<Utc>>,
}

/// One HSM.
#[derive(Debug, Clone, Serialize)]
pub struct HsmView {
    /// `hsm-…`.
    pub id: String,
    /// Its state.
    pub state: String,
    /// Its ENI address.
    pub eni_ip: Option<String>,
    /// Its availability zone.
    pub availability_zone: Option<String>,
    /// The `host.name` its logs arrive as, when they do.
    pub host: Option<String>,
    /// Reported dark: listed by AWS, nothing heard from it.
    pub silent: bool,
}

impl From<&Backup> for BackupView {
    fn from(backup: &Backup) -> BackupView {
        BackupView { id: backup.id.clone(), state: backup.state.clone(), created: backup.created }
    }
}

/// The view of one region's state.
pub fn region_view(account: String, region: String, state: &RegionState) -> RegionView {
    let clusters = state
        .snapshot
        .iter()
        .flat_map(|snapshot| {
            snapshot.clusters.iter().map(move |cluster| ClusterView {
                id: cluster.id.clone(),
                state: cluster.state.clone(),
                state_message: cluster.state_message.clone(),
                hsm_type: cluster.hsm_type.clone(),
                mode: cluster.mode.clone(),
                created: cluster.created,
                restored_from: cluster.source_backup_id.clone(),
                last_restore: None,
                last_backup: snapshot.newest_ready(&cluster.id).map(BackupView::from),
                backups_in_progress: snapshot
                    .backups
                    .iter()
                    .filter(|b| b.cluster_id == cluster.id && b.in_progress())
                    .map(BackupView::from)
                    .collect(),
                hsms: cluster
                    .hsms
                    .iter()
                    .map(|hsm| HsmView {
                        id: hsm.id.clone(),
                        state: hsm.state.clone(),
                        eni_ip: hsm.eni_ip.clone(),
                        availability_zone: hsm.availability_zone.clone(),
                        host: state.hosts.get(&hsm.id).cloned(),
                        silent: state.silent.contains(&hsm.id),
                    })
                    .collect(),
            })
        })
        .collect();
    RegionView {
        account,
        account_name: state.account_name.clone(),
        region,
        last_success: state.last_success,
        last_attempt: state.last_attempt,
        read_seconds: state.last_duration,
        error: state.failing.clone(),
        failing_since: state.failing_since,
        clusters,
    }
}

/// Every account's regions, as last read, ordered by account and region, their restores credited.
pub async fn views(reader: &Reader) -> Result<Vec<RegionView>, StoreError> {
    let states = super::read_states(reader).await?;
    let mut views: Vec<RegionView> =
        states.into_iter().map(|(account, region, state)| region_view(account, region, &state)).collect();
    credit_restores(&mut views);
    Ok(views)
}

/// Sets each cluster's last restore: a cluster created from a backup is a restore exercised, for itself and for the
/// cluster the backup came from (when that backup is one the inventory read: its newest, or one in progress).
pub fn credit_restores(regions: &mut [RegionView]) {
    let mut credits: Vec<((String, String, String), Restore)> = Vec::new();
    for region in regions.iter() {
        for cluster in &region.clusters {
            let (Some(backup), Some(at)) = (&cluster.restored_from, cluster.created) else { continue };
            let restore = Restore { at, cluster: cluster.id.clone(), backup: backup.clone() };
            let own = (region.account.clone(), region.region.clone(), cluster.id.clone());
            credits.push((own, restore.clone()));
            if let Some(origin) = origin_of(regions, backup) {
                credits.push((origin, restore));
            }
        }
    }
    for region in regions.iter_mut() {
        for cluster in &mut region.clusters {
            let key = (region.account.clone(), region.region.clone(), cluster.id.clone());
            let latest = credits.iter().filter(|(k, _)| *k == key).map(|(_, r)| r).max_by_key(|r| r.at);
            cluster.last_restore = latest.cloned();
        }
    }
}

/// The (account, region, cluster) a backup belongs to, among the backups read.
fn origin_of(regions: &[RegionView], backup: &str) -> Option<(String, String, String)> {
    regions.iter().find_map(|region| {
        region
            .clusters
            .iter()
            .find(|c| {
                c.last_backup.as_ref().is_some_and(|b| b.id == backup)
                    || c.backups_in_progress.iter().any(|b| b.id == backup)
            })
            .map(|c| (region.account.clone(), region.region.clone(), c.id.clone()))
    })
}

/// The cloud side of an HSM the inventory hears: its cluster, id, state, account and region.
#[derive(Debug, Clone, Serialize)]
pub struct CloudHsmView {
    /// The account id.
    pub account: String,
    /// The region.
    pub region: String,
    /// Its cluster.
    pub cluster: String,
    /// The HSM.
    #[serde(flatten)]
    pub hsm: HsmView,
}

/// The listed HSMs, each with where it lives.
pub fn hsms(regions: &[RegionView]) -> Vec<CloudHsmView> {
    regions
        .iter()
        .flat_map(|r| {
            r.clusters.iter().flat_map(move |c| {
                c.hsms.iter().map(move |hsm| CloudHsmView {
                    account: r.account.clone(),
                    region: r.region.clone(),
                    cluster: c.id.clone(),
                    hsm: hsm.clone(),
                })
            })
        })
        .collect()
}
