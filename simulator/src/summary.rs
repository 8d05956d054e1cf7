//! The summary of a run as rows, and those rows as a plain-text table for the terminal. The HTML
//! page renders the same rows ([`sections`]), so the terminal and the page cannot disagree.

use std::fmt::Write as _;

use crate::report::Report;

/// How many missing, duplicated or unexpected notices the terminal lists; the rest are counted,
/// and `report.json` holds them all.
const TERMINAL_LIST_LIMIT: usize = 50;

/// The title of the first section, which the page shows in its own box.
pub const VERDICT: &str = "Verdict";

/// A titled group of (label, value) rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub title: &'static str,
    pub rows: Vec<(String, String)>,
}

/// The verdict in words, for people and for `grep`.
pub fn verdict_word(report: &Report) -> &'static str {
    if report.passed() { "PASSED" } else { "FAILED" }
}

/// Delivery latency over the run's days, from `days[].settle_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

/// `None` when the run had no days, so the table says so rather than showing a zero latency.
pub fn settle_latency(report: &Report) -> Option<Latency> {
    let mut values: Vec<u64> = report.days.iter().map(|d| d.settle_ms).collect();
    values.sort_unstable();
    Some(Latency {
        p50: percentile(&values, 50)?,
        p99: percentile(&values, 99)?,
        max: *values.last()?,
    })
}

/// Nearest-rank percentile of sorted values: always a value that occurred, never interpolated,
/// so a p99 over few days is honestly the worst of them.
pub fn percentile(sorted: &[u64], pct: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct.min(100) * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Milliseconds for people: exact below ten seconds, where the small numbers matter.
pub fn fmt_ms(ms: u64) -> String {
    match ms {
        0..10_000 => format!("{ms} ms"),
        10_000..600_000 => format!("{:.1} s", ms_f64(ms) / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

pub fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = ms_f64(bytes);
    let mut unit = "B";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// A display conversion; precision beyond 2^53 does not matter on a page.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn ms_f64(value: u64) -> f64 {
    value as f64
}

/// The summary, in the order the table and the page show it.
pub fn sections(report: &Report) -> Vec<Section> {
    let p = &report.parameters;
    let ops = &report.operations;
    let v = &report.verdict;
    let row = |label: &str, value: String| (label.to_owned(), value);
    let latency = settle_latency(report);
    let lat =
        |pick: fn(&Latency) -> u64| latency.as_ref().map_or("–".to_owned(), |l| fmt_ms(pick(l)));
    vec![
        Section {
            title: VERDICT,
            rows: vec![
                row("result", verdict_word(report).to_owned()),
                row("notices expected", v.expected.to_string()),
                row("notices delivered", v.delivered.to_string()),
                row("missing", v.missing.len().to_string()),
                row("duplicated", v.duplicated.len().to_string()),
                row("unexpected", v.unexpected.len().to_string()),
                row("privacy hits", report.privacy.hits.len().to_string()),
            ],
        },
        Section {
            title: "Workload",
            rows: vec![
                row("seed", p.seed.to_string()),
                row("regions", p.regions.to_string()),
                row("families", p.families.to_string()),
                row("persons", report.persons.to_string()),
                row("simulated days", p.days.to_string()),
                row("signals", report.signals.to_string()),
            ],
        },
        Section {
            title: "Operations",
            rows: vec![
                row("registrations", ops.registrations.to_string()),
                row("re-registrations", ops.re_registrations.to_string()),
                row("updates", ops.updates.to_string()),
                row(
                    "withdrawals, risk gone",
                    ops.withdrawals_risk_gone.to_string(),
                ),
                row(
                    "withdrawals, unjustified",
                    ops.withdrawals_unjustified.to_string(),
                ),
                row("erasure orders", ops.erasure_orders.to_string()),
                row("deaths", ops.deaths.to_string()),
                row("purged at 23", ops.birthdays.to_string()),
                row("expired", ops.expired.to_string()),
            ],
        },
        Section {
            title: "Matches",
            rows: vec![
                row("youth", v.youth_matches.to_string()),
                row("family", v.family_matches.to_string()),
                row("history", v.history_notices.to_string()),
                row("local", v.local.to_string()),
                row("cross-region", v.cross_region.to_string()),
            ],
        },
        Section {
            title: "Delivery (settle per day)",
            rows: vec![
                row("p50", lat(|l| l.p50)),
                row("p99", lat(|l| l.p99)),
                row("max", lat(|l| l.max)),
            ],
        },
        Section {
            title: "Faults",
            rows: vec![
                row("injected", report.faults.len().to_string()),
                row("longest convergence", fmt_ms(report.convergence_ms)),
            ],
        },
        Section {
            title: "Run",
            rows: vec![
                row("wall time", fmt_ms(report.wall_ms)),
                row(
                    "signals per second",
                    format!("{:.1}", report.signals_per_second()),
                ),
            ],
        },
        Section {
            title: "Privacy scan",
            rows: vec![
                row("files scanned", report.privacy.files_scanned.to_string()),
                row("bytes scanned", fmt_bytes(report.privacy.bytes_scanned)),
                row("files with a BSN", report.privacy.hits.len().to_string()),
            ],
        },
    ]
}

/// The lists the verdict rests on, titled, in the order both renderings show them.
pub fn problem_lists(report: &Report) -> [(&'static str, &[String]); 4] {
    [
        ("Missing notices", &report.verdict.missing),
        ("Duplicated notices", &report.verdict.duplicated),
        ("Unexpected notices", &report.verdict.unexpected),
        ("Files holding a BSN", &report.privacy.hits),
    ]
}

/// The summary as aligned plain text, then the faults and the first lines of each problem list.
pub fn table(report: &Report) -> String {
    let sections = sections(report);
    let label_width = width(
        sections
            .iter()
            .flat_map(|s| s.rows.iter().map(|r| r.0.as_str())),
    );
    let value_width = width(
        sections
            .iter()
            .flat_map(|s| s.rows.iter().map(|r| r.1.as_str())),
    );
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason only.
    for section in &sections {
        let _ = writeln!(out, "{}", section.title);
        for (label, value) in &section.rows {
            let _ = writeln!(out, "  {label:<label_width$}  {value:>value_width$}");
        }
    }
    if !report.faults.is_empty() {
        let _ = writeln!(out, "Fault schedule as injected");
        let rows: Vec<[String; 6]> = report
            .faults
            .iter()
            .map(|f| {
                [
                    f.day.clone(),
                    f.kind.clone(),
                    f.target.clone(),
                    format!("at {}", fmt_ms(f.at_ms)),
                    format!("for {}", fmt_ms(f.duration_ms)),
                    format!("converged {}", fmt_ms(f.convergence_ms)),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..6)
            .map(|i| width(rows.iter().map(|r| r[i].as_str())))
            .collect();
        for r in &rows {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
        }
    }
    for (title, items) in problem_lists(report) {
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{title} ({})", items.len());
        for item in items.iter().take(TERMINAL_LIST_LIMIT) {
            let _ = writeln!(out, "  {item}");
        }
        if items.len() > TERMINAL_LIST_LIMIT {
            let _ = writeln!(
                out,
                "  ... and {} more in report.json",
                items.len() - TERMINAL_LIST_LIMIT
            );
        }
    }
    out
}

/// Display width in characters, not bytes: labels such as "–" are multi-byte.
fn width<'a>(cells: impl Iterator<Item = &'a str>) -> usize {
    cells.map(|c| c.chars().count()).max().unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::{Backlog, Day, Fault, Parameters, Privacy, Verdict};

    /// A small run with every part filled, shared with the HTML tests.
    pub(crate) fn sample_report() -> Report {
        let days = (1..=4)
            .map(|d| Day {
                day: format!("2026-03-0{d}"),
                registrations: 10 * d,
                changes: d,
                youth_notices: 2 * d,
                family_notices: d,
                settle_ms: 100 * d,
            })
            .collect();
        let fault = |kind: &str, target: &str, at_ms, convergence_ms| Fault {
            kind: kind.to_owned(),
            target: target.to_owned(),
            day: "2026-03-02".to_owned(),
            at_ms,
            duration_ms: 1500,
            convergence_ms,
        };
        Report {
            parameters: Parameters {
                seed: 424_242,
                mode: "in-process".to_owned(),
                regions: 5,
                families: 37,
                days: 4,
                first_day: "2026-03-01".to_owned(),
                concurrency: 8,
                fault_kinds: vec!["outage".to_owned(), "partition".to_owned()],
                schedule: vec![
                    "day 2: hub-down for 1.5 s".to_owned(),
                    "day 3: link-cut r02".to_owned(),
                ],
                region_weights: vec![("r01".to_owned(), 40), ("r02".to_owned(), 25)],
            },
            persons: 91,
            signals: 100,
            operations: crate::report::Operations {
                registrations: 100,
                updates: 7,
                deaths: 1,
                ..Default::default()
            },
            verdict: Verdict {
                expected: 30,
                delivered: 30,
                youth_matches: 20,
                family_matches: 10,
                history_notices: 3,
                local: 22,
                cross_region: 8,
                ..Default::default()
            },
            faults: vec![
                fault("hub-down", "hub", 1000, 700),
                fault("link-cut", "r02", 5000, 1200),
            ],
            convergence_ms: 1200,
            days,
            backlog: (0..10)
                .map(|i| Backlog {
                    at_ms: 800 + 500 * i,
                    outbox: 3 * i,
                    hub_unacked: 20 - 2 * i,
                })
                .collect(),
            load: vec![
                ("r01".to_owned(), 40),
                ("<script>alert(1)</script>".to_owned(), 5),
                ("r03".to_owned(), 30),
                ("r04".to_owned(), 15),
                ("r05".to_owned(), 10),
            ],
            privacy: Privacy {
                files_scanned: 12,
                bytes_scanned: 3 * 1024 * 1024,
                hits: vec![],
            },
            wall_ms: 12_345,
        }
    }

    pub(crate) fn failing_report() -> Report {
        let mut report = sample_report();
        report.verdict.delivered = 27;
        report.verdict.missing = (0..60)
            .map(|i| format!("missing-{i:02} org-a sig-{i}"))
            .collect();
        report.verdict.duplicated = vec!["dup-1 org-b".to_owned()];
        report
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[1, 2, 3], 99), Some(3));
        assert_eq!(percentile(&[1, 2, 3], 0), Some(1));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn latency_comes_from_the_days() {
        let latency = settle_latency(&sample_report());
        assert_eq!(
            latency,
            Some(Latency {
                p50: 200,
                p99: 400,
                max: 400
            })
        );
        assert_eq!(settle_latency(&Report::default()), None);
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(fmt_ms(850), "850 ms");
        assert_eq!(fmt_ms(12_345), "12.3 s");
        assert_eq!(fmt_ms(754_000), "12 min 34 s");
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn table_has_the_counts_aligned() {
        let text = table(&sample_report());
        assert!(text.contains("PASSED"), "{text}");
        for needle in [
            "424242",
            "notices expected",
            "cross-region",
            "3.0 MiB",
            "12.3 s",
            "hub-down",
            "r02",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
        let line = |label: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(label))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(line("notices expected").ends_with(" 30"), "{text}");
        assert!(line("signals per second").ends_with(" 8.1"), "{text}");
        // Every row of the summary ends in the same column.
        let ends: std::collections::BTreeSet<usize> = text
            .lines()
            .filter(|l| l.starts_with("  ") && !l.contains("at "))
            .map(|l| l.chars().count())
            .collect();
        assert_eq!(ends.len(), 1, "ragged columns:\n{text}");
        assert!(!text.contains("Missing notices"), "{text}");
    }

    #[test]
    fn failing_table_lists_the_first_fifty() {
        let text = table(&failing_report());
        assert!(text.contains("FAILED"), "{text}");
        assert!(text.contains("Missing notices (60)"), "{text}");
        assert!(text.contains("missing-49 org-a"), "{text}");
        assert!(!text.contains("missing-50 org-a"), "{text}");
        assert!(text.contains("... and 10 more"), "{text}");
        assert!(
            text.contains("Duplicated notices (1)\n  dup-1 org-b"),
            "{text}"
        );
        assert!(
            line_value(&text, "missing").as_deref() == Some("60"),
            "{text}"
        );
    }

    fn line_value(text: &str, label: &str) -> Option<String> {
        text.lines()
            .map(str::trim)
            .find(|l| {
                l.strip_prefix(label)
                    .is_some_and(|rest| rest.starts_with("  "))
            })
            .and_then(|l| l.split_whitespace().last().map(str::to_owned))
    }
}
