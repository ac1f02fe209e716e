//! Read-only queries over the market's records, for the node to expose (RPC
//! `aicf.listProviders`, `aicf.getJob`, …). All results are in key order.

use super::records::{
    self as r, EpochSummary, Fund, Job, JobState, Kind, PayoutRecord, Provider, ReceiptRecord,
    SlashRecord,
};
use crate::state::StateRead;
use tb_primitives::{Address, Id};

fn id_from(k: &[u8]) -> [u8; 32] {
    let mut a = [0u8; 32];
    a.copy_from_slice(&k[2..34]);
    a
}

/// Every registered provider.
pub fn providers<S: StateRead + ?Sized>(s: &S) -> Vec<(Address, Provider)> {
    s.scan_prefix(&r::prefix(Kind::Provider))
        .into_iter()
        .filter_map(|(k, _)| r::get::<Provider, _>(s, &k).map(|p| (Address(id_from(&k)), p)))
        .collect()
}

/// Every job in `state` (all states when `None`).
pub fn jobs<S: StateRead + ?Sized>(s: &S, state: Option<JobState>) -> Vec<(Id, Job)> {
    s.scan_prefix(&r::prefix(Kind::Job))
        .into_iter()
        .filter_map(|(k, _)| r::get::<Job, _>(s, &k).map(|j| (Id(id_from(&k)), j)))
        .filter(|(_, j)| state.is_none_or(|st| j.state == st))
        .collect()
}

/// The receipts accepted for a job.
pub fn receipts<S: StateRead + ?Sized>(s: &S, task: &Id) -> Vec<ReceiptRecord> {
    r::job(s, task).map(|j| j.receipts).unwrap_or_default()
}

/// The payouts of an epoch, in settlement order.
pub fn payouts<S: StateRead + ?Sized>(s: &S, epoch: u64) -> Vec<PayoutRecord> {
    s.scan_prefix(&r::key(Kind::Payout, &[&epoch.to_be_bytes()]))
        .into_iter()
        .filter_map(|(k, _)| r::get(s, &k))
        .collect()
}

/// An epoch's summary, once settled.
pub fn epoch_summary<S: StateRead + ?Sized>(s: &S, epoch: u64) -> Option<EpochSummary> {
    r::get(s, &r::key(Kind::Epoch, &[&epoch.to_be_bytes()]))
}

/// Every slash (the SLA history), oldest first; `provider` filters.
pub fn slashes<S: StateRead + ?Sized>(s: &S, provider: Option<&Address>) -> Vec<SlashRecord> {
    s.scan_prefix(&r::prefix(Kind::Slash))
        .into_iter()
        .filter_map(|(k, _)| r::get::<SlashRecord, _>(s, &k))
        .filter(|x| provider.is_none_or(|p| x.provider == *p))
        .collect()
}

/// The fund and the market's running totals.
pub fn fund<S: StateRead + ?Sized>(s: &S) -> Fund {
    r::fund(s)
}
