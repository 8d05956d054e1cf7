//! Test support: reads what plotters wrote into an SVG, so the tests can check that a plot
//! holds its data and not just its axes. Relies on plotters-svg writing one element per line.

use plotters::style::RGBColor;

fn hex(color: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2)
}

/// The point counts of the data lines drawn in a colour (2 px wide, unlike the axes); a
/// legend sample has two points.
pub(crate) fn lines_in(svg: &str, color: RGBColor) -> Vec<usize> {
    let stroke = format!("stroke=\"{}\" stroke-width=\"2\" points=\"", hex(color));
    let points = |l: &str| {
        Some(
            l.split_once(&stroke)?
                .1
                .split('"')
                .next()?
                .split_whitespace()
                .count(),
        )
    };
    svg.lines()
        .filter(|l| l.starts_with("<polyline"))
        .filter_map(points)
        .collect()
}

/// Filled rectangles in a colour: bars and shaded windows, not the white background.
pub(crate) fn rects_in(svg: &str, color: RGBColor) -> Vec<&str> {
    let fill = format!("fill=\"{}\"", hex(color));
    svg.lines()
        .filter(|l| l.starts_with("<rect") && l.contains(&fill))
        .collect()
}

/// Every `<text>` with its y coordinate; plotters puts the content on its own line.
pub(crate) fn texts(svg: &str) -> Vec<(f64, &str)> {
    let lines: Vec<&str> = svg.lines().collect();
    let y = |l: &str| l.split_once(" y=\"")?.1.split('"').next()?.parse().ok();
    lines
        .windows(2)
        .filter(|w| w[0].starts_with("<text"))
        .map(|w| (y(w[0]).unwrap(), w[1]))
        .collect()
}

pub(crate) fn has_text(svg: &str, text: &str) -> bool {
    texts(svg).iter().any(|t| t.1 == text)
}
