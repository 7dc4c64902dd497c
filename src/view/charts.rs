//! The charts as SVG, drawn with `plotters` (its SVG backend): the score timeline
//! with incidents shaded, a latency heatmap per ping target, and the resource use.
//! Each returns one `<svg>` element as text, for inline use in HTML; axis labels
//! carry their units (`0.42 ms`, `37 %`), formatted by `text`.
//!
//! Times on the x axis are UTC, `HH:MM` for a period of a day or less, `MM-DD HH:MM`
//! beyond.

use plotters::coord::types::{RangedCoordf64, RangedCoordi64};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::health::Health;
use super::heatmap::Heatmap;
use super::period::Period;
use super::timeline::Timeline;
use crate::text::{fmt_quantity, fmt_time, fmt_value};

/// Size of every chart, pixels (the SVG scales in the page).
pub const WIDTH: u32 = 900;
pub const HEIGHT: u32 = 260;

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the {chart} chart: {message}")]
pub struct ChartError {
    chart: &'static str,
    message: String,
}

fn err<E: std::fmt::Debug>(chart: &'static str) -> impl Fn(E) -> ChartError {
    move |e| ChartError {
        chart,
        message: format!("{e:?}"),
    }
}

/// `HH:MM`, or `MM-DD HH:MM` when the period is longer than a day.
fn time_label(ms: i64, span_ms: i64) -> String {
    let t = fmt_time(ms); // "YYYY-MM-DD HH:MM:SS UTC"
    let (a, b) = if span_ms > 86_400_000 {
        (5, 16)
    } else {
        (11, 16)
    };
    t.get(a..b).unwrap_or(&t).to_string()
}

fn canvas(svg: &mut String, height: u32) -> DrawingArea<SVGBackend<'_>, Shift> {
    SVGBackend::with_string(svg, (WIDTH, height)).into_drawing_area()
}

/// Every chart here: time along x over the period, `y` up, on a white canvas.
type TimeChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordi64, RangedCoordf64>>;
type DrawError = DrawingAreaErrorKind<std::io::Error>;

fn time_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    period: Period,
    y: std::ops::Range<f64>,
    y_label_area: u32,
) -> Result<TimeChart<'a, 'b>, DrawError> {
    root.fill(&WHITE)?;
    ChartBuilder::on(root)
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(y_label_area)
        .build_cartesian_2d(period.from_ms..period.to_ms, y)
}

/// The series' legend, top left.
fn legend<'a, 'b: 'a>(chart: &mut TimeChart<'a, 'b>) -> Result<(), DrawError> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(RGBColor(200, 200, 200))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
}

const SCORE: RGBColor = RGBColor(31, 90, 170);
const THRESHOLD: RGBColor = RGBColor(200, 40, 40);

/// The anomaly score against its threshold, incidents shaded. Log scale (a spike can
/// be a thousand times the threshold): the axis runs in log10 units, so labels fall
/// evenly whatever the range, and shows the values.
pub fn score_chart(t: &Timeline) -> Result<String, ChartError> {
    let e = err("score");
    let p = t.period;
    let positive = |v: f64| v.is_finite() && v > 0.0;
    let hi = t
        .points
        .iter()
        .flat_map(|x| [x.score, x.threshold])
        .filter(|v| positive(*v))
        .fold(0.0, f64::max);
    let threshold_lo = t
        .points
        .iter()
        .map(|x| x.threshold)
        .filter(|v| positive(*v))
        .fold(f64::INFINITY, f64::min);
    let score_lo = t
        .points
        .iter()
        .map(|x| x.score)
        .filter(|v| positive(*v))
        .fold(f64::INFINITY, f64::min);
    // The floor: a hundredth of the lowest threshold (scores under it read as it), or
    // of the lowest score when every threshold is 0 (a host whose training rows all
    // stayed within the model's floors).
    let floor = if threshold_lo.is_finite() {
        threshold_lo
    } else {
        score_lo
    };
    let (lo, hi) = if hi > 0.0 && floor.is_finite() {
        (floor / 100.0, hi * 1.5)
    } else {
        (0.01, 1.0)
    };
    let mut svg = String::new();
    {
        let root = canvas(&mut svg, HEIGHT);
        let mut chart = time_chart(&root, p, lo.log10()..hi.log10(), 56).map_err(&e)?;
        let span = p.span_ms();
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&|x| time_label(*x, span))
            .y_label_formatter(&|y| fmt_value(10f64.powf(*y)))
            .y_desc("anomaly score (log scale)")
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(&e)?;
        chart
            .draw_series(t.incidents.iter().map(|s| {
                Rectangle::new(
                    [
                        (s.from_ms, lo.log10()),
                        (s.to_ms.max(s.from_ms + 1), hi.log10()),
                    ],
                    RGBColor(230, 120, 40).mix(0.25).filled(),
                )
            }))
            .map_err(&e)?;
        chart
            .draw_series(LineSeries::new(
                t.points
                    .iter()
                    .map(|x| (x.ts_ms, x.threshold.max(lo).log10())),
                THRESHOLD.stroke_width(1),
            ))
            .map_err(&e)?
            .label("threshold")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], THRESHOLD));
        chart
            .draw_series(LineSeries::new(
                t.points.iter().map(|x| (x.ts_ms, x.score.max(lo).log10())),
                SCORE.stroke_width(1),
            ))
            .map_err(&e)?
            .label("score")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], SCORE));
        legend(&mut chart).map_err(&e)?;
        root.present().map_err(&e)?;
    }
    Ok(svg)
}

/// A cell's colour: pale for few observations, dark blue for the most.
fn density(f: f64) -> RGBColor {
    let f = f.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * f).round() as u8;
    RGBColor(mix(222.0, 8.0), mix(235.0, 48.0), mix(247.0, 107.0))
}

/// One target's heatmap: density cells, the median line, loss marked in red along
/// the top (the deeper the red, the more was lost). The RTT axis is logarithmic, in
/// natural-log units, labelled with the RTTs.
pub fn heatmap_chart(h: &Heatmap) -> Result<String, ChartError> {
    let e = err("latency heatmap");
    let p = h.period;
    let (lo, hi) = (h.edges[0], h.edges[h.edges.len() - 1]);
    let max = f64::from(h.max_count().max(1));
    let mut svg = String::new();
    {
        let root = canvas(&mut svg, HEIGHT);
        let mut chart = time_chart(&root, p, lo.ln()..hi.ln(), 64).map_err(&e)?;
        let span = p.span_ms();
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&|x| time_label(*x, span))
            .y_label_formatter(&|y| fmt_quantity("rtt_seconds", y.exp()))
            // No rotated axis title: the labels ("0.0749 ms") fill the label area, a
            // title would overlap them, and the target's name heads the chart.
            .disable_mesh()
            .draw()
            .map_err(&e)?;
        let col_start = |c: usize| p.from_ms + c as i64 * h.column_ms;
        let mut cells = Vec::new();
        for (c, column) in h.counts.iter().enumerate() {
            for (b, &n) in column.iter().enumerate() {
                if n > 0 {
                    cells.push(Rectangle::new(
                        [
                            (col_start(c), h.edges[b].ln()),
                            ((col_start(c + 1)).min(p.to_ms), h.edges[b + 1].ln()),
                        ],
                        density(0.15 + 0.85 * f64::from(n) / max).filled(),
                    ));
                }
            }
        }
        chart.draw_series(cells).map_err(&e)?;
        // Loss: the top bucket's height in red, its opacity the loss ratio.
        let (top, hi) = (h.edges[h.edges.len() - 2].ln(), hi.ln());
        chart
            .draw_series(h.loss.iter().enumerate().filter_map(|(c, l)| {
                let l = (*l)?;
                (l > 0.0).then(|| {
                    Rectangle::new(
                        [(col_start(c), top), (col_start(c + 1).min(p.to_ms), hi)],
                        RGBColor(220, 30, 30).mix(0.3 + 0.7 * l.min(1.0)).filled(),
                    )
                })
            }))
            .map_err(&e)?;
        let mid = h.column_ms / 2;
        chart
            .draw_series(LineSeries::new(
                h.median
                    .iter()
                    .enumerate()
                    .filter_map(|(c, m)| m.map(|m| (col_start(c) + mid, m.ln()))),
                RGBColor(20, 140, 60).stroke_width(2),
            ))
            .map_err(&e)?;
        root.present().map_err(&e)?;
    }
    Ok(svg)
}

const USAGE_COLOURS: [(&str, RGBColor); 4] = [
    ("cpu", RGBColor(31, 90, 170)),
    ("memory", RGBColor(120, 60, 160)),
    ("disk_io", RGBColor(200, 120, 20)),
    ("bandwidth", RGBColor(20, 140, 60)),
];

/// The use ratio of each health part over the period, 0–100 %.
pub fn usage_chart(h: &Health, period: Period) -> Result<String, ChartError> {
    let e = err("resource use");
    let mut svg = String::new();
    {
        let root = canvas(&mut svg, HEIGHT);
        let hi = h
            .usage
            .iter()
            .flat_map(|u| u.points.iter().map(|p| p.1))
            .fold(1.0, f64::max);
        let mut chart = time_chart(&root, period, 0f64..hi, 56).map_err(&e)?;
        let span = period.span_ms();
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&|x| time_label(*x, span))
            .y_label_formatter(&|y| fmt_quantity("use_ratio", *y))
            .y_desc("use")
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(&e)?;
        for u in &h.usage {
            let colour = USAGE_COLOURS
                .iter()
                .find(|(n, _)| *n == u.name)
                .map_or(BLACK, |(_, c)| *c);
            chart
                .draw_series(LineSeries::new(
                    u.points.iter().copied(),
                    colour.stroke_width(1),
                ))
                .map_err(&e)?
                .label(u.name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour));
        }
        legend(&mut chart).map_err(&e)?;
        root.present().map_err(&e)?;
    }
    Ok(svg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::Tier;
    use crate::view::timeline::{ScorePoint, Shade};

    const PERIOD: Period = Period {
        from_ms: 1_700_000_000_000,
        to_ms: 1_700_003_600_000,
        tier: Tier::Raw,
    };

    #[test]
    fn the_score_chart_is_one_svg_with_the_incident_shaded_and_units_on_axes() {
        let points = (0..60)
            .map(|i| ScorePoint {
                ts_ms: PERIOD.from_ms + i * 60_000,
                score: if (20..30).contains(&i) { 5.0 } else { 0.05 },
                threshold: 0.2,
            })
            .collect();
        let t = Timeline {
            period: PERIOD,
            points,
            incidents: vec![Shade {
                id: "INC-1".into(),
                label: "cpu".into(),
                severity: "P3".into(),
                title: "x".into(),
                from_ms: PERIOD.from_ms + 20 * 60_000,
                to_ms: PERIOD.from_ms + 35 * 60_000,
                open: false,
            }],
            samples: 60,
            above: 10,
        };
        let svg = score_chart(&t).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(svg.contains("threshold") && svg.contains("22:13"), "{svg}");
    }

    #[test]
    fn the_heatmap_draws_a_cell_per_filled_bucket_and_rtt_in_ms() {
        let rtts: Vec<(i64, f64, bool)> = (0..3600)
            .map(|s| {
                (
                    PERIOD.from_ms + s * 1000,
                    0.0004 + 0.0001 * (s % 3) as f64,
                    true,
                )
            })
            .collect();
        let h = super::super::heatmap::matrix("gw".into(), PERIOD, 60, &rtts, &[]);
        let cells: usize = h.counts.iter().flatten().filter(|n| **n > 0).count();
        let svg = heatmap_chart(&h).unwrap();
        assert!(svg.matches("<rect").count() >= cells, "{cells}");
        assert!(svg.contains(" ms\n</text>"), "{svg}");
        assert!(!svg.contains("0.000\n"));
        // No y-axis title over the tick labels (it overlapped them).
        assert!(!svg.contains("RTT to"), "{svg}");
    }
}
