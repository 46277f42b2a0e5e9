//! What the crate records through the `metrics` facade (feature `metrics`), read
//! from a thread-local debugging recorder.
//!
//! A recorder set with `metrics::set_default_local_recorder` hears only its own
//! thread: tests using it run on tokio's default current-thread runtime, where
//! every task (the layer's, the stand-ins' connections, background refreshes)
//! runs on the test's thread. Tests in parallel threads never see each other's
//! metrics.

use std::collections::BTreeMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;

/// One metric: its kind, name, labels (sorted by key) and value.
#[derive(Debug)]
pub struct Metric {
    pub kind: MetricKind,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: DebugValue,
}

/// The recorder and what it has recorded since the last [`Recorder::take`].
pub struct Recorder {
    recorder: DebuggingRecorder,
    snapshotter: Snapshotter,
}

impl Recorder {
    pub fn new() -> Self {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        Self {
            recorder,
            snapshotter,
        }
    }

    /// Makes this the recorder of the current thread while the guard lives.
    pub fn install(&self) -> metrics::LocalRecorderGuard<'_> {
        metrics::set_default_local_recorder(&self.recorder)
    }

    /// Everything recorded since the last call (counters and histograms are
    /// reset by reading; gauges are read as last set, and reset too).
    pub fn take(&self) -> Recorded {
        Recorded(
            self.snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .map(|(key, _, _, value)| {
                    let (kind, key) = key.into_parts();
                    let labels = key
                        .labels()
                        .map(|l| (l.key().to_owned(), l.value().to_owned()))
                        .collect();
                    Metric {
                        kind,
                        name: key.name().to_owned(),
                        labels,
                        value,
                    }
                })
                .collect(),
        )
    }
}

/// A snapshot of metrics.
#[derive(Debug)]
pub struct Recorded(pub Vec<Metric>);

fn same_labels(m: &Metric, labels: &[(&str, &str)]) -> bool {
    m.labels.len() == labels.len()
        && labels
            .iter()
            .all(|(k, v)| m.labels.get(*k).map(String::as_str) == Some(*v))
}

impl Recorded {
    /// The counter `name` with exactly `labels` (0 if not recorded).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.0
            .iter()
            .filter(|m| m.name == name && same_labels(m, labels))
            .map(|m| match m.value {
                DebugValue::Counter(n) => n,
                _ => panic!("{name} is not a counter"),
            })
            .sum()
    }

    /// Every counter `name`, whatever its labels, added up.
    pub fn total(&self, name: &str) -> u64 {
        self.0
            .iter()
            .filter(|m| m.name == name)
            .map(|m| match m.value {
                DebugValue::Counter(n) => n,
                _ => panic!("{name} is not a counter"),
            })
            .sum()
    }

    /// The non-zero counters `name`, as (labels, value), sorted.
    pub fn counters(&self, name: &str) -> Vec<(BTreeMap<String, String>, u64)> {
        let mut all: Vec<_> = self
            .0
            .iter()
            .filter(|m| m.name == name)
            .filter_map(|m| match m.value {
                DebugValue::Counter(0) => None,
                DebugValue::Counter(n) => Some((m.labels.clone(), n)),
                _ => panic!("{name} is not a counter"),
            })
            .collect();
        all.sort();
        all
    }

    /// The values recorded into histogram `name` with exactly `labels`.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.0
            .iter()
            .filter(|m| m.name == name && same_labels(m, labels))
            .flat_map(|m| match &m.value {
                DebugValue::Histogram(v) => v.iter().map(|f| f.into_inner()).collect::<Vec<_>>(),
                _ => panic!("{name} is not a histogram"),
            })
            .collect()
    }

    /// The gauge `name` (no labels), if set.
    pub fn gauge(&self, name: &str) -> Option<f64> {
        self.0
            .iter()
            .find(|m| m.name == name && m.labels.is_empty())
            .map(|m| match m.value {
                DebugValue::Gauge(g) => g.into_inner(),
                _ => panic!("{name} is not a gauge"),
            })
    }

    /// Every label value of every metric, with its metric and label names.
    pub fn label_values(&self) -> Vec<(String, String, String)> {
        self.0
            .iter()
            .flat_map(|m| {
                m.labels
                    .iter()
                    .map(|(k, v)| (m.name.clone(), k.clone(), v.clone()))
            })
            .collect()
    }

    /// Adds `other` (a later snapshot) to this one.
    pub fn extend(&mut self, other: Recorded) {
        self.0.extend(other.0);
    }
}
