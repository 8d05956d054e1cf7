//! Figures: each with the baseline it is compared to in the same run, printed as a table and
//! written as JSON.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) enum Unit {
    #[serde(rename = "per_s")]
    PerSecond,
    #[serde(rename = "ms")]
    Millis,
    #[serde(rename = "bytes")]
    Bytes,
    #[serde(rename = "MB")]
    Megabytes,
    #[serde(rename = "s")]
    Seconds,
}

impl Unit {
    fn label(self) -> &'static str {
        match self {
            Self::PerSecond => "/s",
            Self::Millis => "ms",
            Self::Bytes => "B",
            Self::Megabytes => "MB",
            Self::Seconds => "s",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Figure {
    pub(crate) name: String,
    /// Stored signals when measured; `None` for figures of the run.
    pub(crate) size: Option<u64>,
    pub(crate) unit: Unit,
    pub(crate) value: f64,
    /// A rate divided by the raw fsync rate; a latency in fsync times (latency × fsync rate).
    pub(crate) vs_fsync: Option<f64>,
    /// The same figure's baseline of this run (e.g. one commit per request), and value/baseline.
    pub(crate) baseline: Option<String>,
    pub(crate) vs_baseline: Option<f64>,
}

#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) fsync_per_s: f64,
    pub(crate) figures: Vec<Figure>,
}

impl Report {
    pub(crate) fn add(&mut self, name: &str, size: Option<u64>, unit: Unit, value: f64) {
        let vs_fsync = match unit {
            _ if self.fsync_per_s <= 0.0 => None,
            Unit::PerSecond => Some(value / self.fsync_per_s),
            Unit::Millis => Some(value / 1000.0 * self.fsync_per_s),
            Unit::Bytes | Unit::Megabytes | Unit::Seconds => None,
        };
        self.figures.push(Figure {
            name: name.to_owned(),
            size,
            unit,
            value,
            vs_fsync,
            baseline: None,
            vs_baseline: None,
        });
    }

    /// Adds `name` and states it against the figure `baseline` of the same size.
    pub(crate) fn add_vs(
        &mut self,
        name: &str,
        size: Option<u64>,
        unit: Unit,
        value: f64,
        baseline: &str,
    ) {
        let base = self
            .figures
            .iter()
            .find(|f| f.name == baseline && f.size == size)
            .map(|f| f.value);
        self.add(name, size, unit, value);
        if let (Some(figure), Some(base)) = (self.figures.last_mut(), base) {
            figure.baseline = Some(baseline.to_owned());
            figure.vs_baseline = (base != 0.0).then(|| value / base);
        }
    }

    /// Each sized figure at the largest size divided by the same figure at the smallest.
    pub(crate) fn size_ratios(&self) -> Vec<serde_json::Value> {
        let mut by_name: BTreeMap<&str, Vec<(u64, f64)>> = BTreeMap::new();
        let mut order = Vec::new();
        for figure in &self.figures {
            if let Some(size) = figure.size {
                if !by_name.contains_key(figure.name.as_str()) {
                    order.push(figure.name.as_str());
                }
                by_name
                    .entry(&figure.name)
                    .or_default()
                    .push((size, figure.value));
            }
        }
        order
            .into_iter()
            .filter_map(|name| {
                let values = by_name.get(name)?;
                let small = values.iter().min_by_key(|(size, _)| *size)?;
                let big = values.iter().max_by_key(|(size, _)| *size)?;
                (big.0 != small.0).then(|| {
                    serde_json::json!({
                        "name": name,
                        "small_size": small.0,
                        "small": small.1,
                        "big_size": big.0,
                        "big": big.1,
                        "big_over_small": if small.1 == 0.0 { None } else { Some(big.1 / small.1) },
                    })
                })
            })
            .collect()
    }

    pub(crate) fn print(&self) {
        println!();
        println!(
            "raw fsync baseline: {:.0} fsyncs/s (4 KiB writes + fdatasync)",
            self.fsync_per_s
        );
        println!();
        println!(
            "{:<44} {:>9} {:>12} {:<3} {:>9} {:>9}  baseline",
            "figure", "signals", "value", "", "÷fsync", "÷base"
        );
        for figure in &self.figures {
            let value = figure.value;
            let opt = |v: Option<f64>| v.map(|v| format!("{v:.2}x")).unwrap_or_default();
            println!(
                "{:<44} {:>9} {:>12.2} {:<3} {:>9} {:>9}  {}",
                figure.name,
                figure.size.map(|s| s.to_string()).unwrap_or_default(),
                value,
                figure.unit.label(),
                opt(figure.vs_fsync),
                opt(figure.vs_baseline),
                figure.baseline.as_deref().unwrap_or(""),
            );
        }
        let ratios = self.size_ratios();
        if !ratios.is_empty() {
            println!();
            println!(
                "{:<44} {:>12} {:>12} {:>10}",
                "figure: big/small", "small", "big", "ratio"
            );
            for ratio in ratios {
                println!(
                    "{:<44} {:>12.2} {:>12.2} {:>10}",
                    ratio["name"].as_str().unwrap_or(""),
                    ratio["small"].as_f64().unwrap_or(0.0),
                    ratio["big"].as_f64().unwrap_or(0.0),
                    ratio["big_over_small"]
                        .as_f64()
                        .map(|r| format!("{r:.2}x"))
                        .unwrap_or_default(),
                );
            }
        }
    }
}
