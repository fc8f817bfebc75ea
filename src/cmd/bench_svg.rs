//! Two small SVG charts for the benchmark report, written by hand so the report needs no
//! plotting library: a strip chart of latency samples and a line chart over categories.

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 30.0;
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" upper bound for an axis holding values up to `max`.
fn axis_max(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|bound| *bound >= max)
        .unwrap_or(10.0 * magnitude)
}

fn header(svg: &mut String, height: f64, title: &str) {
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="20" font-size="14" text-anchor="middle">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
}

fn x_axis(svg: &mut String, y: f64, max: f64, unit: &str) {
    let plot = WIDTH - LEFT - RIGHT;
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="black"/>"#,
        LEFT + plot
    );
    for i in 0..=5 {
        let value = max * i as f64 / 5.0;
        let x = LEFT + plot * i as f64 / 5.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{x}" y1="{y}" x2="{x}" y2="{}" stroke="black"/><text x="{x}" y="{}" text-anchor="middle">{value:.0} {unit}</text>"#,
            y + 4.0,
            y + 18.0
        );
    }
}

/// One row of dots per series (every sample), with the median marked by a bar.
pub fn strip_chart(title: &str, unit: &str, series: &[(&str, &[f64])]) -> String {
    let row = 50.0;
    let top = 40.0;
    let height = top + row * series.len() as f64 + 40.0;
    let max = axis_max(
        series
            .iter()
            .flat_map(|(_, s)| s.iter().copied())
            .fold(0.0, f64::max),
    );
    let plot = WIDTH - LEFT - RIGHT;
    let mut svg = String::new();
    header(&mut svg, height, title);
    for (i, (label, samples)) in series.iter().enumerate() {
        let y = top + row * i as f64 + row / 2.0;
        let colour = COLOURS[i % COLOURS.len()];
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LEFT - 10.0,
            y + 4.0,
            escape(label)
        );
        for (j, value) in samples.iter().enumerate() {
            // A small vertical spread keeps equal samples visible.
            let dy = ((j % 7) as f64 - 3.0) * 3.0;
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}" fill-opacity="0.5"/>"#,
                LEFT + plot * value / max,
                y + dy
            );
        }
        if let Some(median) = median(samples) {
            let x = LEFT + plot * median / max;
            let _ = writeln!(
                svg,
                r#"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="black" stroke-width="2"/>"#,
                y - 16.0,
                y + 16.0
            );
        }
    }
    x_axis(&mut svg, top + row * series.len() as f64, max, unit);
    svg.push_str("</svg>\n");
    svg
}

/// Lines over the categories `x` (equally spaced), one per series; `None` leaves a gap.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_unit: &str,
    x: &[String],
    series: &[(&str, Vec<Option<f64>>)],
) -> String {
    let top = 40.0;
    let plot_height = 260.0;
    let height = top + plot_height + 90.0;
    let plot = WIDTH - LEFT - RIGHT;
    let max = axis_max(
        series
            .iter()
            .flat_map(|(_, s)| s.iter().flatten().copied())
            .fold(0.0, f64::max),
    );
    let bottom = top + plot_height;
    let x_at = |i: usize| LEFT + plot * (i as f64 + 0.5) / x.len().max(1) as f64;
    let y_at = |v: f64| bottom - plot_height * v / max;
    let mut svg = String::new();
    header(&mut svg, height, title);
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}" stroke="black"/><line x1="{LEFT}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="black"/>"#,
        LEFT + plot
    );
    for i in 0..=5 {
        let value = max * i as f64 / 5.0;
        let y = y_at(value);
        let _ = writeln!(
            svg,
            r#"<line x1="{}" y1="{y:.1}" x2="{LEFT}" y2="{y:.1}" stroke="black"/><text x="{}" y="{:.1}" text-anchor="end">{value:.2} {}</text>"#,
            LEFT - 4.0,
            LEFT - 8.0,
            y + 4.0,
            escape(y_unit)
        );
    }
    for (i, label) in x.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x_at(i),
            bottom + 18.0,
            escape(label)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + plot / 2.0,
        bottom + 38.0,
        escape(x_label)
    );
    for (k, (label, values)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x_at(i), y_at(v))))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            points.join(" ")
        );
        for point in &points {
            if let Some((px, py)) = point.split_once(',') {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{px}" cy="{py}" r="4" fill="{colour}"/>"#
                );
            }
        }
        let ly = bottom + 58.0 + 0.0 * k as f64;
        let lx = LEFT + 170.0 * k as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{ly}">{}</text>"#,
            ly - 10.0,
            lx + 16.0,
            escape(label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn median(samples: &[f64]) -> Option<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_bounds_round_up_to_a_readable_value() {
        assert_eq!(axis_max(0.0), 1.0);
        assert_eq!(axis_max(3.2), 5.0);
        assert_eq!(axis_max(91.8), 100.0);
        assert_eq!(axis_max(135.2), 200.0);
        assert!((axis_max(0.03) - 0.05).abs() < 1e-12);
    }

    #[test]
    fn charts_hold_every_sample_and_escape_labels() {
        let svg = strip_chart("start <ms>", "ms", &[("a&b", &[1.0, 2.0, 3.0])]);
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("a&amp;b") && svg.contains("start &lt;ms&gt;"));
        let svg = line_chart(
            "memory",
            "containers",
            "MiB",
            &["10".into(), "100".into()],
            &[
                ("wasm", vec![Some(1.0), None]),
                ("runc", vec![Some(3.0), Some(3.5)]),
            ],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 3);
    }
}
