//! Runs the lifecycle (DOMAIN.md section 4) once per Europe/Amsterdam day, before the first
//! request of that day is served and from a periodic tick, so nothing is ever shown or matched
//! past its date. Every transition is due at the start of a day, so one complete sweep a day is
//! exact.

use std::future::Future;
use std::time::Duration;

use jiff::civil::Date;
use tokio::sync::Mutex;

use crate::store::{StoreError, SweepReport};

/// Signals changed per transaction: a yearly expiry wave is swept in bounded steps.
pub const SWEEP_BATCH_MAX: u32 = 500;
/// How often the tick checks for a new day.
pub const SWEEP_TICK: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct DailySweep {
    /// The day of the last complete sweep. Held while sweeping, so concurrent requests wait
    /// for the sweep instead of reading yesterday's states.
    swept_on: Mutex<Option<Date>>,
}

impl DailySweep {
    /// Sweeps until nothing is due on `today`, unless that was done already.
    pub async fn ensure<F, Fut>(&self, today: Date, mut sweep: F) -> Result<SweepReport, StoreError>
    where
        F: FnMut(Date, u32) -> Fut,
        Fut: Future<Output = Result<SweepReport, StoreError>>,
    {
        let mut swept_on = self.swept_on.lock().await;
        let mut total = SweepReport::default();
        if *swept_on == Some(today) {
            return Ok(total);
        }
        loop {
            let step = sweep(today, SWEEP_BATCH_MAX).await?;
            total.expired += step.expired;
            total.deleted += step.deleted;
            if step.is_empty() {
                break;
            }
        }
        *swept_on = Some(today);
        if !total.is_empty() {
            tracing::info!(%today, expired = total.expired, deleted = total.deleted, "lifecycle swept");
        }
        Ok(total)
    }
}
