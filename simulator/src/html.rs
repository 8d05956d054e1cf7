//! `report.html`: one self-contained page (inline CSS and SVG, no JavaScript, nothing fetched)
//! so it can be attached to a CI run or mailed and still open years later. Every value from
//! the run goes through [`escape`]: organisation and region ids come from the run, not from us.

use std::fmt::Write as _;

use crate::plots;
use crate::report::Report;
use crate::summary::{self, fmt_ms};

/// How many missing, duplicated or unexpected notices the page lists; `report.json` has all.
const PAGE_LIST_LIMIT: usize = 200;

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1000px; color: #222;
       padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { padding: 0.2rem 0.8rem; border-bottom: 1px solid #ddd; text-align: left;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { padding: 0.8rem 1.2rem; border-radius: 6px; margin: 1rem 0; }
.passed { background: #e6f4ea; border: 2px solid #2e7d32; }
.failed { background: #fdecea; border: 2px solid #c62828; }
.word { font-size: 2rem; font-weight: bold; margin: 0; }
.summary { display: flex; flex-wrap: wrap; gap: 0 2rem; }
.summary h3 { margin-bottom: 0; }
ol.ids { font-family: ui-monospace, monospace; font-size: 0.85rem; }
figure { margin: 1.5rem 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
svg text { font-family: system-ui, sans-serif; }
.error { color: #c62828; }
";

/// Escapes text for HTML element content and quoted attribute values alike.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole page. Writing to a `String` cannot fail, which is the only reason `write!`
/// results are ignored in this module.
pub fn render(report: &Report) -> String {
    let word = summary::verdict_word(report);
    let seed = report.parameters.seed;
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>vix-sim seed {seed}: {word}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>vix simulation, seed {seed}</h1>\n\
         <p>Rerun with <code>vix-sim run --seed {seed}</code> and the parameters below.</p>\n"
    );
    parameters(&mut page, report);
    verdict(&mut page, report);
    summary_tables(&mut page, report);
    plots(&mut page, report);
    page.push_str("</body>\n</html>\n");
    page
}

fn parameters(page: &mut String, report: &Report) {
    let p = &report.parameters;
    let weights: Vec<String> = p
        .region_weights
        .iter()
        .map(|(id, w)| format!("{id}: {w}"))
        .collect();
    let rows = [
        ("seed", p.seed.to_string()),
        ("mode", p.mode.clone()),
        ("regions", p.regions.to_string()),
        ("families", p.families.to_string()),
        ("simulated days", p.days.to_string()),
        ("first day", p.first_day.clone()),
        ("concurrency", p.concurrency.to_string()),
        (
            "fault kinds",
            if p.fault_kinds.is_empty() {
                "none".to_owned()
            } else {
                p.fault_kinds.join(", ")
            },
        ),
        ("region weights", weights.join(", ")),
    ];
    page.push_str("<section id=\"parameters\">\n<h2>Parameters</h2>\n<table>\n");
    for (label, value) in rows {
        let _ = writeln!(
            page,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(label),
            escape(&value)
        );
    }
    page.push_str("</table>\n<h3>Fault schedule</h3>\n");
    if p.schedule.is_empty() {
        page.push_str("<p>No faults scheduled.</p>\n");
    } else {
        page.push_str("<ol>\n");
        for entry in &p.schedule {
            let _ = writeln!(page, "<li>{}</li>", escape(entry));
        }
        page.push_str("</ol>\n");
    }
    page.push_str("</section>\n");
}

fn verdict(page: &mut String, report: &Report) {
    let v = &report.verdict;
    let word = summary::verdict_word(report);
    let class = if report.passed() { "passed" } else { "failed" };
    let _ = write!(
        page,
        "<section id=\"verdict\" class=\"verdict {class}\">\n<h2>Verdict</h2>\n\
         <p class=\"word\">{word}</p>\n<table>\n"
    );
    let counts = [
        ("expected", v.expected),
        ("delivered", v.delivered),
        ("missing", v.missing.len() as u64),
        ("duplicated", v.duplicated.len() as u64),
        ("unexpected", v.unexpected.len() as u64),
        ("files holding a BSN", report.privacy.hits.len() as u64),
    ];
    for (label, n) in counts {
        let _ = writeln!(page, "<tr><th>{label}</th><td class=\"num\">{n}</td></tr>");
    }
    page.push_str("</table>\n");
    for (title, items) in summary::problem_lists(report) {
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(
            page,
            "<h3>{title} ({})</h3>\n<ol class=\"ids\">",
            items.len()
        );
        for item in items.iter().take(PAGE_LIST_LIMIT) {
            let _ = writeln!(page, "<li>{}</li>", escape(item));
        }
        page.push_str("</ol>\n");
        if items.len() > PAGE_LIST_LIMIT {
            let _ = writeln!(
                page,
                "<p>… and {} more in report.json.</p>",
                items.len() - PAGE_LIST_LIMIT
            );
        }
    }
    page.push_str("</section>\n");
}

fn summary_tables(page: &mut String, report: &Report) {
    page.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n<div class=\"summary\">\n");
    // The verdict box above already shows the first section.
    for section in summary::sections(report)
        .into_iter()
        .filter(|s| s.title != summary::VERDICT)
    {
        let _ = writeln!(page, "<div>\n<h3>{}</h3>\n<table>", escape(section.title));
        for (label, value) in &section.rows {
            let _ = writeln!(
                page,
                "<tr><th>{}</th><td class=\"num\">{}</td></tr>",
                escape(label),
                escape(value)
            );
        }
        page.push_str("</table>\n</div>\n");
    }
    page.push_str("</div>\n");
    if !report.faults.is_empty() {
        page.push_str(
            "<h3>Faults as injected</h3>\n<table>\n<tr><th>day</th><th>kind</th><th>target</th>\
             <th>at</th><th>lasted</th><th>converged after healing</th></tr>\n",
        );
        for f in &report.faults {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&f.day),
                escape(&f.kind),
                escape(&f.target),
                fmt_ms(f.at_ms),
                fmt_ms(f.duration_ms),
                fmt_ms(f.convergence_ms),
            );
        }
        page.push_str("</table>\n");
    }
    page.push_str("</section>\n");
}

fn plots(page: &mut String, report: &Report) {
    let figures = [
        (
            "plot-notices",
            "Notices over simulated time",
            "New match notices the oracle expects each day, by type (top), and their running \
             totals (bottom).",
            plots::notices(report),
        ),
        (
            "plot-latency",
            "Delivery latency",
            "Per day, wall time from the day's last acknowledgement until the federation was quiet: \
             an upper bound on the delivery of every notice found that day (top), and how the \
             days spread (bottom).",
            plots::latency(report),
        ),
        (
            "plot-backlog",
            "Backlog during faults",
            "What the regions' outboxes and the hub's notice logs held while faults were on; \
             shaded bands are the fault windows.",
            plots::backlog(report),
        ),
        (
            "plot-load",
            "Load per region",
            "Signals registered in each region, largest first.",
            plots::load(report),
        ),
    ];
    page.push_str("<section id=\"plots\">\n<h2>Plots</h2>\n");
    for (id, title, caption, svg) in figures {
        let _ = write!(
            page,
            "<figure id=\"{id}\">\n<figcaption><h3>{title}</h3><p>{caption}</p></figcaption>\n"
        );
        match svg {
            // plotters escapes the text it writes; the SVG is inserted as markup on purpose.
            Ok(svg) => page.push_str(&svg),
            Err(e) => {
                let _ = write!(
                    page,
                    "<p class=\"error\">This plot could not be drawn: {}</p>",
                    escape(&e)
                );
            }
        }
        page.push_str("\n</figure>\n");
    }
    page.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::tests::{failing_report, sample_report};
    use crate::svg_probe::{lines_in, rects_in};

    type SeriesCheck = fn(&str) -> bool;

    const EVIL: &str = "<script>alert(1)</script>";

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(escape(EVIL), "&lt;script&gt;alert(1)&lt;/script&gt;");
        assert_eq!(escape("a & \"b\" 'c'"), "a &amp; &quot;b&quot; &#39;c&#39;");
        assert_eq!(escape("&lt;"), "&amp;lt;");
        assert_eq!(escape("r01 — Noord"), "r01 — Noord");
    }

    #[test]
    fn page_shows_seed_and_every_parameter() {
        let html = render(&sample_report());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("seed 424242"), "seed missing");
        let params = html
            .split("<section id=\"parameters\">")
            .nth(1)
            .unwrap()
            .split("</section>")
            .next()
            .unwrap();
        for needle in [
            "<td>424242</td>",
            "<td>in-process</td>",
            "<td>5</td>",
            "<td>37</td>",
            "<td>4</td>",
            "<td>2026-03-01</td>",
            "<td>8</td>",
            "<td>outage, partition</td>",
            "<td>r01: 40, r02: 25</td>",
            "<li>day 2: hub-down for 1.5 s</li>",
            "<li>day 3: link-cut r02</li>",
        ] {
            assert!(params.contains(needle), "{needle} missing from\n{params}");
        }
        // The parameters come before the verdict, which comes before the plots.
        let at = |s: &str| html.find(s).unwrap();
        assert!(
            at("id=\"parameters\"") < at("id=\"verdict\"")
                && at("id=\"verdict\"") < at("id=\"plots\"")
        );
    }

    #[test]
    fn page_is_self_contained_with_one_svg_per_plot() {
        let html = render(&sample_report());
        assert_eq!(html.matches("<svg").count(), 4, "one per plot");
        // Each figure holds its own data: a line of the right length or the bars, not just axes.
        let checks: [(&str, SeriesCheck); 4] = [
            ("plot-notices", |svg| {
                lines_in(svg, plots::TOTAL).contains(&4)
            }),
            ("plot-latency", |svg| rects_in(svg, plots::YOUTH).len() == 4),
            ("plot-backlog", |svg| {
                lines_in(svg, plots::HUB).contains(&10)
            }),
            ("plot-load", |svg| rects_in(svg, plots::YOUTH).len() == 5),
        ];
        for (id, has_series) in checks {
            let figure = html
                .split(&format!("<figure id=\"{id}\">"))
                .nth(1)
                .unwrap()
                .split("</figure>")
                .next()
                .unwrap();
            assert_eq!(figure.matches("<svg").count(), 1, "{id}");
            assert!(has_series(figure), "{id} has no series");
        }
        for banned in ["<script", "src=", "href=", "@import", "url("] {
            assert!(
                !html.contains(banned),
                "{banned} found: the page must stand alone"
            );
        }
    }

    #[test]
    fn run_values_are_escaped() {
        let mut report = sample_report();
        report.parameters.region_weights.push((EVIL.to_owned(), 1));
        report.faults[0].target = EVIL.to_owned();
        report.verdict.unexpected = vec![format!("{EVIL} sig-1 counterpart \"x\"")];
        let html = render(&report);
        assert!(
            !html.contains("<script"),
            "raw markup from the run reached the page"
        );
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;: 1"),
            "region weight"
        );
        assert!(
            html.contains("<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>"),
            "fault target"
        );
        assert!(
            html.contains("counterpart &quot;x&quot;"),
            "unexpected list"
        );
    }

    #[test]
    fn summary_and_counts_are_on_the_page() {
        let html = render(&sample_report());
        assert!(
            html.contains("<p class=\"word\">PASSED</p>")
                && html.contains("class=\"verdict passed\"")
        );
        for needle in [
            "<th>expected</th><td class=\"num\">30</td>",
            "<th>delivered</th><td class=\"num\">30</td>",
            "<th>cross-region</th><td class=\"num\">8</td>",
            "<th>p99</th><td class=\"num\">400 ms</td>",
            "<th>longest convergence</th><td class=\"num\">1200 ms</td>",
            "<th>bytes scanned</th><td class=\"num\">3.0 MiB</td>",
            "<th>signals per second</th><td class=\"num\">8.1</td>",
            "<td>hub-down</td>",
        ] {
            assert!(html.contains(needle), "{needle} missing");
        }
        assert!(!html.contains("Missing notices"));
    }

    #[test]
    fn failing_page_says_failed_and_lists_the_missing() {
        let mut report = failing_report();
        report.verdict.missing = (0..250).map(|i| format!("missing-{i:03} org-a")).collect();
        let html = render(&report);
        assert!(
            html.contains("<p class=\"word\">FAILED</p>")
                && html.contains("class=\"verdict failed\"")
        );
        assert!(html.contains("<title>vix-sim seed 424242: FAILED</title>"));
        assert!(html.contains("<th>missing</th><td class=\"num\">250</td>"));
        assert!(html.contains("Missing notices (250)"));
        assert!(
            html.contains("<li>missing-000 org-a</li>")
                && html.contains("<li>missing-199 org-a</li>")
        );
        assert!(
            !html.contains("missing-200 org-a"),
            "the page lists at most 200"
        );
        assert!(html.contains("and 50 more in report.json"));
        assert!(html.contains("<li>dup-1 org-b</li>"));
    }
}
