//! `[server] query_timeout` for every endpoint, in one place: a physical optimizer rule puts
//! [`DeadlineExec`] on top of every plan a server session runs. Its stream fails with a clear
//! error once the query has run longer than the timeout, and counts the rows it hands out
//! (`floe_sql_rows_total{endpoint}`).
//!
//! It sits in the plan rather than around the protocol handlers because datafusion-postgres
//! runs the Postgres wire's queries itself (its `statement_timeout` covers planning only), and
//! because a result streams to the client long after the handler has returned.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use datafusion::common::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties};
use futures::StreamExt;

/// What the error of a query cancelled by its deadline says; endpoints match on it.
pub const TIMED_OUT: &str = "the query ran longer than [server] query_timeout";

/// Whether `e` is a query cancelled by its deadline.
pub fn timed_out(e: &DataFusionError) -> bool {
    e.to_string().contains(TIMED_OUT)
}

/// Puts a [`DeadlineExec`] of `timeout` on top of every plan, for `endpoint`'s metrics.
#[derive(Debug)]
pub struct Deadline {
    pub timeout: Duration,
    pub endpoint: &'static str,
}

impl PhysicalOptimizerRule for Deadline {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if plan.as_any().is::<DeadlineExec>() {
            return Ok(plan);
        }
        // One partition, so the deadline and the count are the whole query's.
        let input: Arc<dyn ExecutionPlan> = match plan.output_partitioning().partition_count() {
            1 => plan,
            _ => Arc::new(CoalescePartitionsExec::new(plan)),
        };
        Ok(Arc::new(DeadlineExec { properties: input.properties().clone(), input, timeout: self.timeout, endpoint: self.endpoint }))
    }

    fn name(&self) -> &str {
        "floe_query_deadline"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Its input's batches, until `timeout` after it started; then an error.
#[derive(Debug)]
pub struct DeadlineExec {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    timeout: Duration,
    endpoint: &'static str,
}

impl DisplayAs for DeadlineExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DeadlineExec: timeout={:?}", self.timeout)
    }
}

impl ExecutionPlan for DeadlineExec {
    fn name(&self) -> &str {
        "DeadlineExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children).map_err(|_| DataFusionError::Internal("DeadlineExec has one input".into()))?;
        Ok(Arc::new(DeadlineExec { properties: input.properties().clone(), input, timeout: self.timeout, endpoint: self.endpoint }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let endpoint = self.endpoint;
        let limited = futures::stream::unfold(Some(input), move |input| async move {
            let mut input = input?;
            // A batch finished after the deadline counts as late too: a stage that never
            // waits (all in memory) is only seen when it hands a batch over.
            let next = tokio::time::timeout_at(deadline, input.next()).await.ok().filter(|_| tokio::time::Instant::now() < deadline);
            match next.ok_or(()) {
                Ok(Some(Ok(batch))) => {
                    metrics::counter!("floe_sql_rows_total", "endpoint" => endpoint).increment(batch.num_rows() as u64);
                    Some((Ok(batch), Some(input)))
                }
                Ok(Some(Err(e))) => Some((Err(e), None)),
                Ok(None) => None,
                Err(_) => Some((Err(DataFusionError::Execution(TIMED_OUT.into())), None)),
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, limited)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    fn session(timeout: Duration) -> SessionContext {
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(Deadline { timeout, endpoint: "test" }))
            .build();
        SessionContext::new_with_state(state)
    }

    #[tokio::test]
    async fn a_query_within_its_time_answers_and_one_beyond_it_fails_with_the_setting_named() {
        let quick = session(Duration::from_secs(60)).sql("SELECT count(*) FROM generate_series(1, 1000)").await.unwrap();
        assert_eq!(quick.collect().await.unwrap()[0].num_rows(), 1);
        let slow = "SELECT sum(a.value * b.value) FROM generate_series(1, 3000) a CROSS JOIN generate_series(1, 3000) b";
        let err = session(Duration::from_millis(1)).sql(slow).await.unwrap().collect().await.unwrap_err();
        assert!(timed_out(&err), "{err}");
    }
}
