//! Sink metrics: records in and out, batch sizes, retries, the journal backlog, outages.

use cashtag_telemetry::prometheus::{GaugeVec, HistogramVec, IntCounterVec};

#[derive(Clone)]
pub struct SinkMetrics {
    pub records_in: IntCounterVec,
    pub records_out: IntCounterVec,
    pub duplicates: IntCounterVec,
    pub rejected: IntCounterVec,
    pub retries: IntCounterVec,
    pub batch_size: HistogramVec,
    pub backlog_bytes: GaugeVec,
    pub down_seconds: GaugeVec,
    pub up: GaugeVec,
}

impl SinkMetrics {
    pub fn register(t: &cashtag_telemetry::Telemetry) -> Self {
        let l = &["sink"];
        SinkMetrics {
            records_in: t.counter_vec("sink_records_in_total", "records read from the journal for a sink", l),
            records_out: t.counter_vec("sink_records_out_total", "records written by a sink (duplicates included)", l),
            duplicates: t.counter_vec("sink_duplicates_total", "records a sink already had", l),
            rejected: t.counter_vec("sink_rejected_total", "records a sink refused for good", l),
            retries: t.counter_vec("sink_retries_total", "write retries", l),
            batch_size: t.histogram_vec(
                "sink_batch_size",
                "records per write",
                l,
                vec![1.0, 10.0, 50.0, 100.0, 250.0, 500.0],
            ),
            backlog_bytes: t.gauge_vec("sink_backlog_bytes", "journal bytes a sink has not written yet", l),
            down_seconds: t.gauge_vec("sink_down_seconds", "how long a sink has been down (0 while up)", l),
            up: t.gauge_vec("sink_up", "1 while the sink accepts writes", l),
        }
    }
}
