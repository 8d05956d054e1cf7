//! The report's plots as inline SVG, drawn with `plotters`. Text goes out as SVG `<text>` (the
//! crate's built-in font estimate, no font files), which plotters escapes itself; the page sets
//! the typeface. A plot that cannot be drawn becomes an error string, never a panic: a broken
//! chart must not cost the rest of the report.

use std::error::Error;
use std::panic::AssertUnwindSafe;

use plotters::chart::SeriesAnno;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::Report;
use crate::summary::ms_f64;

const WIDTH: u32 = 960;
pub(crate) const YOUTH: RGBColor = RGBColor(31, 119, 180);
pub(crate) const FAMILY: RGBColor = RGBColor(255, 127, 14);
pub(crate) const TOTAL: RGBColor = RGBColor(60, 60, 60);
pub(crate) const OUTBOX: RGBColor = RGBColor(44, 160, 44);
pub(crate) const HUB: RGBColor = RGBColor(148, 103, 189);
pub(crate) const FAULT: RGBColor = RGBColor(214, 39, 40);
/// Plotters' default label size is too small to read once the SVG is scaled to the page.
const LABEL: (&str, u32) = ("sans-serif", 14);
/// Markers on every point while there are few enough to see, so a one-day run still shows.
const MARKER_LIMIT: usize = 60;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Outcome = Result<(), Box<dyn Error>>;

/// Draws into a fresh SVG string of the given height. plotters has arithmetic that can panic
/// on edge-case ranges (seen with zero light lines); such a panic is caught and reported like
/// any drawing error, because the run's verdict matters more than one chart.
fn svg(height: u32, draw: impl FnOnce(&Area<'_>) -> Outcome) -> Result<String, String> {
    let attempt = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            draw(&root).map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(out)
    }));
    attempt.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(format!("the plotting library panicked: {why}"))
    })
}

/// The margins every chart shares; the right one leaves room for the last x label.
fn frame<'a, 'b>(area: &'a Area<'b>, y_label_width: u32) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(12)
        .margin_right(48)
        .x_label_area_size(34)
        .y_label_area_size(y_label_width);
    builder
}

fn day_label(report: &Report) -> impl Fn(&u32) -> String + '_ {
    |i| {
        report
            .days
            .get(*i as usize)
            .map(|d| d.day.clone())
            .unwrap_or_default()
    }
}

/// The x range of a per-day plot: at least one day wide so an empty run still draws axes.
fn day_range(report: &Report) -> std::ops::Range<u32> {
    0..u32::try_from(report.days.len().saturating_sub(1))
        .unwrap_or(u32::MAX)
        .max(1)
}

fn legend<'a, DB: DrawingBackend + 'a>(
    series: &mut SeriesAnno<'a, DB>,
    label: &str,
    color: RGBColor,
) {
    series
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
}

/// Draws one line per series over the day index, with markers while they are few.
fn day_lines(
    area: &Area<'_>,
    report: &Report,
    y_desc: &str,
    series: &[(&str, RGBColor, Vec<u64>)],
) -> Outcome {
    let top = series
        .iter()
        .flat_map(|s| s.2.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let label = day_label(report);
    let mut chart = frame(area, 64)
        .build_cartesian_2d(day_range(report), 0..top.saturating_add(top / 10 + 1))?;
    chart
        .configure_mesh()
        .label_style(LABEL)
        .axis_desc_style(LABEL)
        .max_light_lines(2)
        .x_desc("simulated day")
        .y_desc(y_desc)
        .x_label_formatter(&label)
        .draw()?;
    for (name, color, values) in series {
        let points = (0u32..).zip(values.iter().copied());
        let anno = chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?;
        legend(anno, name, *color);
        if values.len() <= MARKER_LIMIT {
            chart.draw_series(points.map(|p| Circle::new(p, 3, color.filled())))?;
        }
    }
    // Counts mostly grow over a run, so the upper left is where the lines are not.
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// (a) Notices the oracle expects per simulated day, by type, and their running totals.
pub fn notices(report: &Report) -> Result<String, String> {
    let youth: Vec<u64> = report.days.iter().map(|d| d.youth_notices).collect();
    let family: Vec<u64> = report.days.iter().map(|d| d.family_notices).collect();
    let running = |values: &[u64]| -> Vec<u64> {
        values
            .iter()
            .scan(0u64, |sum, v| Some(*sum + *v).inspect(|s| *sum = *s))
            .collect()
    };
    let total: Vec<u64> = youth.iter().zip(&family).map(|(y, f)| y + f).collect();
    svg(640, |root| {
        let panels = root.split_evenly((2, 1));
        let (Some(upper), Some(lower)) = (panels.first(), panels.get(1)) else {
            return Err("drawing area did not split".into());
        };
        day_lines(
            upper,
            report,
            "notices that day",
            &[
                ("youth", YOUTH, youth.clone()),
                ("family", FAMILY, family.clone()),
            ],
        )?;
        day_lines(
            lower,
            report,
            "notices, cumulative",
            &[
                ("youth", YOUTH, running(&youth)),
                ("family", FAMILY, running(&family)),
                ("all", TOTAL, running(&total)),
            ],
        )
    })
}

/// (b) Delivery latency: the settle time per day as a line, and how the days spread over it.
pub fn latency(report: &Report) -> Result<String, String> {
    let settle: Vec<u64> = report.days.iter().map(|d| d.settle_ms).collect();
    let buckets = histogram(&settle, 20);
    svg(640, |root| {
        let panels = root.split_evenly((2, 1));
        let (Some(upper), Some(lower)) = (panels.first(), panels.get(1)) else {
            return Err("drawing area did not split".into());
        };
        day_lines(
            upper,
            report,
            "settle ms",
            &[("settle time", YOUTH, settle.clone())],
        )?;
        let x_end = buckets.last().map_or(1, |b| b.1).max(1);
        let y_top = buckets.iter().map(|b| b.2).max().unwrap_or(0).max(1);
        let mut chart = frame(lower, 64).build_cartesian_2d(0..x_end, 0..y_top + 1)?;
        chart
            .configure_mesh()
            .label_style(LABEL)
            .axis_desc_style(LABEL)
            .max_light_lines(2)
            .x_desc("settle ms")
            .y_desc("days")
            .draw()?;
        chart.draw_series(
            buckets
                .iter()
                .filter(|b| b.2 > 0)
                .map(|&(lo, hi, n)| Rectangle::new([(lo, 0), (hi, n)], YOUTH.mix(0.7).filled())),
        )?;
        Ok(())
    })
}

/// Equal-width buckets `[lo, hi)` with their counts, covering zero to the largest value.
fn histogram(values: &[u64], max_buckets: u64) -> Vec<(u64, u64, u64)> {
    let Some(&max) = values.iter().max() else {
        return Vec::new();
    };
    let width = max.saturating_add(1).div_ceil(max_buckets.max(1)).max(1);
    let count = (max / width) + 1;
    (0..count)
        .map(|i| {
            let (lo, hi) = (i * width, (i + 1).saturating_mul(width));
            (
                lo,
                hi,
                values.iter().filter(|v| (lo..hi).contains(*v)).count() as u64,
            )
        })
        .collect()
}

/// (c) The backlog while faults were on, with each fault's window shaded and named.
pub fn backlog(report: &Report) -> Result<String, String> {
    let seconds = |ms: u64| ms_f64(ms) / 1000.0;
    let sample_end = report.backlog.iter().map(|b| b.at_ms).max().unwrap_or(0);
    let fault_end = report
        .faults
        .iter()
        .map(|f| f.at_ms.saturating_add(f.duration_ms))
        .max()
        .unwrap_or(0);
    let x_end = seconds(sample_end.max(fault_end)).max(1.0) * 1.03;
    let y_top = report
        .backlog
        .iter()
        .map(|b| b.outbox.max(b.hub_unacked))
        .max()
        .unwrap_or(0)
        .max(1);
    let y_top = y_top.saturating_add(y_top / 10 + 1);
    svg(420, |root| {
        let mut chart = frame(root, 64).build_cartesian_2d(0.0..x_end, 0..y_top)?;
        chart
            .configure_mesh()
            .label_style(LABEL)
            .axis_desc_style(LABEL)
            .max_light_lines(2)
            .x_desc("wall seconds since start")
            .y_desc("held, not yet delivered")
            .draw()?;
        let windows = report.faults.iter().map(|f| {
            let span = [
                (seconds(f.at_ms), 0),
                (seconds(f.at_ms.saturating_add(f.duration_ms)), y_top),
            ];
            Rectangle::new(span, FAULT.mix(0.15).filled())
        });
        chart
            .draw_series(windows)?
            .label("fault window")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], FAULT.mix(0.15).filled())
            });
        let names = report.faults.iter().map(|f| {
            let text = format!("{} {}", f.kind, f.target);
            Text::new(
                text,
                (seconds(f.at_ms), y_top - y_top / 20),
                ("sans-serif", 11).into_font().color(&FAULT),
            )
        });
        chart.draw_series(names)?;
        for (name, color, pick) in [
            (
                "region outboxes",
                OUTBOX,
                (|b| b.outbox) as fn(&crate::report::Backlog) -> u64,
            ),
            ("hub unacknowledged", HUB, |b| b.hub_unacked),
        ] {
            let points: Vec<(f64, u64)> = report
                .backlog
                .iter()
                .map(|b| (seconds(b.at_ms), pick(b)))
                .collect();
            legend(
                chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?,
                name,
                color,
            );
            if points.len() <= MARKER_LIMIT {
                chart.draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// (d) Signals per region, largest at the top, so skew in the region sizes is visible at once.
pub fn load(report: &Report) -> Result<String, String> {
    let mut load = report.load.clone();
    // Largest first, ties by id so the same run draws the same picture.
    load.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let n = u32::try_from(load.len()).map_err(|e| e.to_string())?;
    let x_top = load.first().map_or(0, |l| l.1).max(1);
    let height = n.max(2).saturating_mul(18).saturating_add(90);
    // Segment n-1 is drawn at the top, so the largest region takes it.
    // plotters asks for a label past the last segment too; that one stays blank.
    let region_at = |i: u32| {
        n.checked_sub(i.saturating_add(1))
            .and_then(|rank| load.get(rank as usize))
    };
    svg(height, |root| {
        let mut chart = frame(root, 160).build_cartesian_2d(
            0..x_top.saturating_add(x_top / 8 + 1),
            (0..n.max(1)).into_segmented(),
        )?;
        let name = |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) => region_at(*i).map(|l| l.0.clone()).unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .label_style(LABEL)
            .axis_desc_style(LABEL)
            .max_light_lines(2)
            .disable_y_mesh()
            .y_labels(load.len().max(1))
            .y_label_formatter(&name)
            .x_desc("signals registered")
            .draw()?;
        let bars = (0..n).filter_map(|i| region_at(i).map(|l| (i, l.1)));
        chart.draw_series(
            Histogram::horizontal(&chart)
                .style(YOUTH.mix(0.8).filled())
                .margin(3)
                .data(bars.clone()),
        )?;
        let values = bars.map(|(i, v)| {
            Text::new(
                format!(" {v}"),
                (v, SegmentValue::CenterOf(i)),
                TextStyle::from(("sans-serif", 12).into_font())
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            )
        });
        chart.draw_series(values)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::tests::sample_report;
    use crate::svg_probe::{has_text, lines_in, rects_in, texts};

    #[test]
    fn histogram_covers_every_value_once() {
        let values = [0, 5, 19, 20, 199];
        let buckets = histogram(&values, 20);
        assert_eq!(
            buckets.iter().map(|b| b.2).sum::<u64>(),
            values.len() as u64
        );
        assert_eq!(buckets.first().map(|b| b.0), Some(0));
        assert!(buckets.last().is_some_and(|b| b.1 > 199));
        assert!(buckets.len() <= 20);
        assert!(histogram(&[], 20).is_empty());
        assert_eq!(histogram(&[0, 0], 20), vec![(0, 1, 2)]);
    }

    #[test]
    fn notices_draw_per_day_and_cumulative_lines() {
        let svg = notices(&sample_report()).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        // Per day and cumulative, four days each, plus a legend sample per panel.
        assert_eq!(lines_in(&svg, YOUTH), vec![4, 2, 4, 2], "{svg}");
        assert_eq!(lines_in(&svg, FAMILY), vec![4, 2, 4, 2]);
        assert_eq!(lines_in(&svg, TOTAL), vec![4, 2]);
        assert!(has_text(&svg, "2026-03-04"), "day labels missing");
        for label in [
            "youth",
            "family",
            "all",
            "notices that day",
            "notices, cumulative",
        ] {
            assert!(has_text(&svg, label), "{label} missing");
        }
    }

    #[test]
    fn latency_draws_a_line_and_bars() {
        let svg = latency(&sample_report()).unwrap();
        assert_eq!(lines_in(&svg, YOUTH), vec![4, 2], "{svg}");
        // Four distinct settle times (100..400 ms), each in a bucket of its own.
        assert_eq!(rects_in(&svg, YOUTH).len(), 4, "{svg}");
        assert!(has_text(&svg, "settle ms"));
    }

    #[test]
    fn backlog_shades_each_fault() {
        let svg = backlog(&sample_report()).unwrap();
        assert_eq!(lines_in(&svg, OUTBOX), vec![10, 2], "{svg}");
        assert_eq!(lines_in(&svg, HUB), vec![10, 2], "{svg}");
        assert!(
            has_text(&svg, "hub-down hub") && has_text(&svg, "link-cut r02"),
            "{svg}"
        );
        // Two windows and the legend sample.
        assert_eq!(rects_in(&svg, FAULT).len(), 3, "{svg}");
    }

    #[test]
    fn load_bars_sorted_and_escaped() {
        let svg = load(&sample_report()).unwrap();
        assert_eq!(rects_in(&svg, YOUTH).len(), 5, "{svg}");
        assert!(
            has_text(&svg, "&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{svg}"
        );
        assert!(!svg.contains("<script"), "{svg}");
        // Top to bottom: r01 (40), r03 (30), r04 (15), r05 (10), then the 5-signal region.
        let y_of = |s: &str| texts(&svg).into_iter().find(|t| t.1 == s).unwrap().0;
        let order = [
            "r01",
            "r03",
            "r04",
            "r05",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
        ]
        .map(y_of);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert!(
            has_text(&svg, " 40") && has_text(&svg, " 5"),
            "value labels"
        );
    }

    #[test]
    fn a_panicking_plot_becomes_an_error() {
        let result = svg(100, |_| panic!("boom"));
        assert_eq!(
            result,
            Err("the plotting library panicked: boom".to_owned())
        );
        let result = svg(100, |_| Err("no room".into()));
        assert_eq!(result, Err("no room".to_owned()));
    }

    #[test]
    fn empty_report_still_draws() {
        let empty = Report::default();
        for svg in [
            notices(&empty),
            latency(&empty),
            backlog(&empty),
            load(&empty),
        ] {
            assert!(svg.unwrap().starts_with("<svg"));
        }
    }
}
