//! Metered usage: the executor's meter prices events and gates model calls.

use super::ToolExecutor;
use crate::error::Result;
use crate::id::TenantId;
use crate::store::{Admission, UsageEvent};

impl ToolExecutor {
    /// Whether usage is priced and gated (a [`UsageMeter`](crate::store::UsageMeter) is set).
    pub fn is_metered(&self) -> bool {
        self.inner.meter.is_some()
    }

    /// Admits a model call with its estimated usage ([`UsageMeter::admit`](crate::store::UsageMeter::admit)); without a meter,
    /// every call is admitted.
    pub async fn admit_model_call(&self, estimate: &[UsageEvent]) -> Result<Admission> {
        match &self.inner.meter {
            Some(meter) => meter.admit(estimate).await,
            None => Ok(Admission::default()),
        }
    }

    /// Prices a model call's usage settling its admission ([`UsageMeter::settle`](crate::store::UsageMeter::settle)) without
    /// writing it (the caller adds the events to its step); a call that failed settles with no
    /// events, which releases the reservation. A pricing error is logged and the events stay
    /// unpriced: usage is never lost.
    pub async fn settle_usage(&self, admission: Admission, events: &mut [UsageEvent]) {
        if let Some(meter) = &self.inner.meter
            && let Err(e) = meter.settle(admission, events).await
        {
            tracing::warn!(error = %e, "usage could not be priced; recording it unpriced");
        }
    }

    /// Prices events with the meter ([`UsageMeter::meter`](crate::store::UsageMeter::meter)) without writing them; an error is
    /// logged and the events stay unpriced.
    pub async fn price_usage(&self, events: &mut [UsageEvent]) {
        if let Some(meter) = &self.inner.meter
            && let Err(e) = meter.meter(events).await
        {
            tracing::warn!(error = %e, "usage could not be priced; recording it unpriced");
        }
    }

    /// [`settle_usage`](Self::settle_usage), then appends the events.
    pub async fn append_settled_usage(
        &self,
        tenant: &TenantId,
        admission: Admission,
        mut events: Vec<UsageEvent>,
    ) -> Result<()> {
        self.settle_usage(admission, &mut events).await;
        if events.is_empty() {
            return Ok(());
        }
        self.inner.store.append_usage(tenant, &events).await
    }

    /// [`price_usage`](Self::price_usage), then appends the events.
    pub async fn append_usage(&self, tenant: &TenantId, mut events: Vec<UsageEvent>) -> Result<()> {
        self.price_usage(&mut events).await;
        self.inner.store.append_usage(tenant, &events).await
    }
}
