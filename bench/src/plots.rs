//! The report's PNG plots, drawn with `plotters` on its bitmap backend.
//!
//! Text is rendered with ab_glyph from DejaVu Sans embedded in the binary (the `dejavu`
//! crate), so drawing needs no font installed on the machine and cannot silently lose labels.
//!
//! Which rows get which plot follows from their unit and names:
//! - a latency CDF for every row in a time unit with at least two samples (allocator rows
//!   excepted: criterion samples are batch means, shown as time against addresses held);
//! - the failover timeline: rows whose scenario or measure says "failover", samples in the
//!   order measured, one point per kill;
//! - memory against number of Services: every row in MiB/KiB whose measure says "RSS",
//!   one line per scenario and measure, the peak (worst) sample at each size;
//! - the allocator: time per assign/release against addresses held (criterion rows).

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::register_font;

use crate::error::BenchError;
use crate::report::{Plot, Row};

const WIDTH: u32 = 960;
const HEIGHT: u32 = 560;

/// Registers the embedded font as plotters' "sans-serif" (idempotent).
fn fonts() -> Result<(), BenchError> {
    register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular()).map_err(|_| {
        BenchError::Draw {
            plot: "any plot".into(),
            message: "the embedded DejaVu Sans font does not parse".into(),
        }
    })
}

fn draw_err(plot: &str) -> impl Fn(&dyn std::fmt::Display) -> BenchError + '_ {
    move |e| BenchError::Draw {
        plot: plot.to_owned(),
        message: e.to_string(),
    }
}

/// Milliseconds per unit for time units, `None` for others.
pub fn time_unit(unit: &str) -> Option<f64> {
    match unit {
        "ns" => Some(1e-6),
        "us" | "µs" => Some(1e-3),
        "ms" => Some(1.0),
        "s" => Some(1e3),
        _ => None,
    }
}

/// MiB per unit for memory units.
pub fn memory_unit(unit: &str) -> Option<f64> {
    match unit {
        "B" => Some(1.0 / 1024.0 / 1024.0),
        "KiB" | "kB" => Some(1.0 / 1024.0),
        "MiB" => Some(1.0),
        "GiB" => Some(1024.0),
        _ => None,
    }
}

/// A file name from free text: lowercase letters and digits, dashes between.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out.truncate(80);
    out
}

pub fn is_failover(r: &Row) -> bool {
    time_unit(&r.unit).is_some()
        && (r.scenario.to_lowercase().contains("failover")
            || r.measure.to_lowercase().contains("failover"))
}

/// A process's peak RSS at a number of Services (the allocator's bytes per held address,
/// also an RSS figure, has its own plot and another unit).
pub fn is_memory(r: &Row) -> bool {
    memory_unit(&r.unit).is_some() && r.measure.to_lowercase().contains("rss") && !is_allocator(r)
}

pub fn is_allocator(r: &Row) -> bool {
    r.scenario == crate::criterion::SCENARIO
}

pub fn wants_cdf(r: &Row) -> bool {
    time_unit(&r.unit).is_some() && !is_allocator(r) && r.samples.len() >= 2
}

/// Draws every plot the rows call for into `dir` (`<dir>/<file>.png`); the returned files are
/// relative to `dir`'s parent, as the report links them (`plots/x.png`).
pub fn draw_all(rows: &[Row], dir: &Path) -> Result<Vec<Plot>, BenchError> {
    fonts()?;
    std::fs::create_dir_all(dir).map_err(|source| BenchError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let rel = |name: &str| {
        let d = dir.file_name().and_then(|d| d.to_str()).unwrap_or("plots");
        format!("{d}/{name}")
    };
    let mut plots = Vec::new();

    let failover: Vec<&Row> = rows.iter().filter(|r| is_failover(r)).collect();
    for r in &failover {
        let name = format!(
            "failover-{}.png",
            slug(&format!("{}-{}", r.scenario, r.size))
        );
        let title = format!(
            "Failover timeline: {} ({} kills)",
            r.measure,
            r.samples.len()
        );
        timeline(r, &title, &dir.join(&name))?;
        plots.push(Plot {
            file: rel(&name),
            title,
        });
    }

    let memory: Vec<&Row> = rows.iter().filter(|r| is_memory(r)).collect();
    if !memory.is_empty() {
        let name = "memory-vs-services.png";
        let title = "Peak RSS against number of Services".to_owned();
        memory_plot(&memory, &title, &dir.join(name))?;
        plots.push(Plot {
            file: rel(name),
            title,
        });
    }

    let alloc: Vec<&Row> = rows
        .iter()
        .filter(|r| is_allocator(r) && time_unit(&r.unit) == Some(1e-3))
        .collect();
    if !alloc.is_empty() {
        let name = "allocator.png";
        let title = "Allocator: time per operation against addresses held (p50)".to_owned();
        allocator_plot(&alloc, &title, &dir.join(name))?;
        plots.push(Plot {
            file: rel(name),
            title,
        });
    }

    for r in rows.iter().filter(|r| wants_cdf(r)) {
        let name = format!(
            "cdf-{}.png",
            slug(&format!("{}-{}-{}", r.scenario, r.measure, r.size))
        );
        let title = format!(
            "CDF: {} – {} (n={})",
            r.scenario,
            r.measure,
            r.samples.len()
        );
        cdf(r, &title, &dir.join(&name))?;
        plots.push(Plot {
            file: rel(&name),
            title,
        });
    }
    Ok(plots)
}

/// The sorted samples as the steps of an empirical CDF.
pub fn cdf_points(samples: &[f64]) -> Vec<(f64, f64)> {
    let s = ferrolb_e2e::benchjson::sorted(samples);
    let n = s.len() as f64;
    let mut pts = Vec::with_capacity(2 * s.len());
    for (i, x) in s.iter().enumerate() {
        pts.push((*x, i as f64 / n));
        pts.push((*x, (i + 1) as f64 / n));
    }
    pts
}

/// A range around `lo..hi` with a margin, never empty.
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let span = (hi - lo).abs().max(hi.abs() * 0.05).max(1e-9);
    (lo - span * 0.05).max(if lo >= 0.0 { 0.0 } else { f64::MIN })..hi + span * 0.08
}

fn cdf(r: &Row, title: &str, path: &Path) -> Result<(), BenchError> {
    let e = draw_err(title);
    let pts = cdf_points(&r.samples);
    let lo = pts.first().map_or(0.0, |p| p.0);
    let mut hi = pts.last().map_or(1.0, |p| p.0);
    // A target within reach is drawn; one far off the scale would flatten the curve.
    let targets: Vec<_> = r
        .targets
        .iter()
        .filter(|t| t.value <= hi * 3.0)
        .copied()
        .collect();
    for t in &targets {
        hi = hi.max(t.value);
    }
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(padded(lo, hi), 0f64..1.02)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc(format!("{} ({})", r.measure, r.unit))
        .y_desc("fraction of samples ≤ x")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(|x| e(&x))?;
    chart
        .draw_series(LineSeries::new(pts, BLUE.stroke_width(2)))
        .map_err(|x| e(&x))?
        .label(format!(
            "samples (p50 {}, p99 {}, worst {} {})",
            fmt(r.p50()),
            fmt(r.p99()),
            fmt(r.worst()),
            r.unit
        ))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    for (i, t) in targets.iter().enumerate() {
        let color = target_color(i);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(t.value, 0.0), (t.value, 1.0)],
                color.stroke_width(2),
            )))
            .map_err(|x| e(&x))?
            .label(format!(
                "target {} ≤ {} {}",
                t.stat,
                ferrolb_e2e::benchjson::format_value(t.value),
                r.unit
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))
}

fn fmt(v: Option<f64>) -> String {
    v.map(ferrolb_e2e::benchjson::format_value)
        .unwrap_or_else(|| "-".into())
}

fn target_color(i: usize) -> RGBColor {
    [RED, MAGENTA, RGBColor(230, 120, 0)][i % 3]
}

fn timeline(r: &Row, title: &str, path: &Path) -> Result<(), BenchError> {
    let e = draw_err(title);
    let n = r.samples.len().max(1);
    let mut hi = r.worst().unwrap_or(1.0);
    for t in &r.targets {
        hi = hi.max(t.value);
    }
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.5f64..n as f64 + 0.5, 0f64..hi * 1.1)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("kill number, in the order run")
        .y_desc(format!("{} ({})", r.measure, r.unit))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(|x| e(&x))?;
    let pts: Vec<(f64, f64)> = r
        .samples
        .iter()
        .enumerate()
        .map(|(i, v)| ((i + 1) as f64, *v))
        .collect();
    chart
        .draw_series(LineSeries::new(pts.clone(), BLUE.mix(0.5)))
        .map_err(|x| e(&x))?;
    chart
        .draw_series(pts.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))
        .map_err(|x| e(&x))?
        .label(format!(
            "one kill (p50 {}, worst {} {})",
            fmt(r.p50()),
            fmt(r.worst()),
            r.unit
        ))
        .legend(|(x, y)| Circle::new((x + 10, y), 4, BLUE.filled()));
    for (i, t) in r.targets.iter().enumerate() {
        let color = target_color(i);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.5, t.value), (n as f64 + 0.5, t.value)],
                color.stroke_width(2),
            )))
            .map_err(|x| e(&x))?
            .label(format!(
                "target {} ≤ {} {}",
                t.stat,
                ferrolb_e2e::benchjson::format_value(t.value),
                r.unit
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))
}

/// One series of the memory plot: (size, peak MiB) points and the targets at sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct MemorySeries {
    pub label: String,
    pub points: Vec<(u64, f64)>,
    pub targets: Vec<(u64, f64)>,
}

/// Groups memory rows by scenario and measure; each point is the row's peak in MiB.
pub fn memory_series(rows: &[&Row]) -> Vec<MemorySeries> {
    let mut out: Vec<MemorySeries> = Vec::new();
    for r in rows {
        let Some(scale) = memory_unit(&r.unit) else {
            continue;
        };
        let label = format!("{}: {}", r.scenario, r.measure);
        let i = match out.iter().position(|s| s.label == label) {
            Some(i) => i,
            None => {
                out.push(MemorySeries {
                    label,
                    points: vec![],
                    targets: vec![],
                });
                out.len() - 1
            }
        };
        if let Some(w) = r.worst() {
            out[i].points.push((r.size, w * scale));
        }
        for t in &r.targets {
            out[i].targets.push((r.size, t.value * scale));
        }
    }
    for s in &mut out {
        s.points
            .sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    }
    out
}

fn memory_plot(rows: &[&Row], title: &str, path: &Path) -> Result<(), BenchError> {
    let e = draw_err(title);
    let series = memory_series(rows);
    let mut sizes: Vec<u64> = series
        .iter()
        .flat_map(|s| {
            s.points
                .iter()
                .map(|p| p.0)
                .chain(s.targets.iter().map(|t| t.0))
        })
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let idx = |size: u64| sizes.iter().position(|s| *s == size).unwrap_or(0);
    let hi = series
        .iter()
        .flat_map(|s| {
            s.points
                .iter()
                .map(|p| p.1)
                .chain(s.targets.iter().map(|t| t.1))
        })
        .fold(1.0f64, f64::max);
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        // plotters' integer ranges include their end: 0..last is one segment per size.
        .build_cartesian_2d(
            (0..sizes.len().saturating_sub(1)).into_segmented(),
            0f64..hi * 1.15,
        )
        .map_err(|x| e(&x))?;
    let labels = sizes.clone();
    chart
        .configure_mesh()
        .x_desc("Services at that moment (sizes evenly spaced, not to scale)")
        .y_desc("peak RSS (MiB)")
        .x_labels(sizes.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).map(|s| s.to_string()).unwrap_or_default(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(SegmentValue<usize>, f64)> = s
            .points
            .iter()
            .map(|(size, v)| (SegmentValue::CenterOf(idx(*size)), *v))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(|x| e(&x))?;
        // One legend entry for every target (below): a legend line per target hid the
        // figures it is about.
        chart
            .draw_series(s.targets.iter().map(|(size, v)| {
                Cross::new(
                    (SegmentValue::CenterOf(idx(*size)), *v),
                    7,
                    color.stroke_width(3),
                )
            }))
            .map_err(|x| e(&x))?;
    }
    if series.iter().any(|s| !s.targets.is_empty()) {
        chart
            .draw_series(std::iter::empty::<Circle<(SegmentValue<usize>, f64), i32>>())
            .map_err(|x| e(&x))?
            .label("target (upper bound), in the colour of its measure")
            .legend(|(x, y)| Cross::new((x + 10, y), 6, BLACK.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))
}

fn allocator_plot(rows: &[&Row], title: &str, path: &Path) -> Result<(), BenchError> {
    let e = draw_err(title);
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in rows {
        let Some(p50) = r.p50() else { continue };
        match series.iter_mut().find(|(m, _)| *m == r.measure) {
            Some((_, pts)) => pts.push((r.size as f64, p50)),
            None => series.push((r.measure.clone(), vec![(r.size as f64, p50)])),
        }
    }
    let lo = rows.iter().map(|r| r.size).min().unwrap_or(1).max(1) as f64;
    let hi_x = rows.iter().map(|r| r.size).max().unwrap_or(10).max(2) as f64;
    let mut hi = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let targets: Vec<(f64, f64)> = rows
        .iter()
        .flat_map(|r| r.targets.iter().map(|t| (r.size as f64, t.value)))
        .collect();
    for t in &targets {
        hi = hi.max(t.1);
    }
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (lo / 2.0..hi_x * 2.0).log_scale(),
            0f64..hi.max(1e-9) * 1.15,
        )
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("addresses held (log scale)")
        .y_desc("time per operation, p50 of criterion samples (µs)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, (label, mut pts)) in series.into_iter().enumerate() {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(|x| e(&x))?;
    }
    if !targets.is_empty() {
        chart
            .draw_series(
                targets
                    .iter()
                    .map(|p| Cross::new(*p, 7, RED.stroke_width(3))),
            )
            .map_err(|x| e(&x))?
            .label("target (upper bound)")
            .legend(|(x, y)| Cross::new((x + 10, y), 6, RED.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_e2e::benchjson::{Stat, Target};

    fn row(scenario: &str, measure: &str, unit: &str, size: u64, samples: Vec<f64>) -> Row {
        Row {
            scenario: scenario.into(),
            measure: measure.into(),
            unit: unit.into(),
            size,
            samples,
            targets: vec![],
            run_p50s: vec![],
            programs: vec![],
        }
    }

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(
            slug("l2_failover-kill → entry moved (ms)"),
            "l2-failover-kill-entry-moved-ms"
        );
        assert_eq!(slug("--a--"), "a");
    }

    #[test]
    fn cdf_steps_reach_one_at_the_worst_sample() {
        let pts = cdf_points(&[3.0, 1.0, 2.0]);
        assert_eq!(
            pts,
            vec![
                (1.0, 0.0),
                (1.0, 1.0 / 3.0),
                (2.0, 1.0 / 3.0),
                (2.0, 2.0 / 3.0),
                (3.0, 2.0 / 3.0),
                (3.0, 1.0)
            ]
        );
    }

    #[test]
    fn rows_are_classified_by_unit_and_name() {
        assert!(is_failover(&row(
            "l2_failover",
            "kill to move",
            "ms",
            20,
            vec![1.0]
        )));
        assert!(!is_failover(&row(
            "l2_failover",
            "kills",
            "count",
            20,
            vec![1.0]
        )));
        assert!(is_memory(&row(
            "x",
            "controller peak RSS",
            "MiB",
            1,
            vec![1.0]
        )));
        assert!(!is_memory(&row("x", "idle CPU", "%", 1, vec![1.0])));
        assert!(
            !is_memory(&row(
                crate::criterion::SCENARIO,
                "bytes per held address, RSS growth (ipv4)",
                "B",
                100_000,
                vec![170.0]
            )),
            "the allocator's bytes per address are not a process's RSS"
        );
        assert!(wants_cdf(&row(
            "x",
            "create → status",
            "ms",
            1,
            vec![1.0, 2.0]
        )));
        assert!(
            !wants_cdf(&row("x", "bulk", "s", 1, vec![1.0])),
            "one sample is no curve"
        );
        assert!(!wants_cdf(&row(
            crate::criterion::SCENARIO,
            "assign",
            "µs",
            1,
            vec![1.0, 2.0]
        )));
    }

    #[test]
    fn memory_series_take_the_peak_per_size_in_mib() {
        let mut a = row("sys", "speaker peak RSS", "MiB", 1000, vec![20.0]);
        a.targets.push(Target {
            stat: Stat::Worst,
            value: 40.0,
        });
        let b = row("sys", "speaker peak RSS", "MiB", 100, vec![12.0, 13.0]);
        let c = row("ctl", "controller RSS", "KiB", 10_000, vec![2048.0]);
        let s = memory_series(&[&a, &b, &c]);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].label, "sys: speaker peak RSS");
        assert_eq!(s[0].points, vec![(100, 13.0), (1000, 20.0)]);
        assert_eq!(s[0].targets, vec![(1000, 40.0)]);
        assert_eq!(s[1].points, vec![(10_000, 2.0)]);
    }

    #[test]
    fn every_kind_of_plot_is_drawn_to_a_png() {
        let dir = std::env::temp_dir().join(format!("flb-bench-plots-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut lat = row(
            "controller_idle",
            "Service created → status written",
            "ms",
            200,
            (1..=200).map(|i| f64::from(i) * 0.3).collect(),
        );
        lat.targets.push(Target {
            stat: Stat::P99,
            value: 100.0,
        });
        let fo = row(
            "l2_failover",
            "kill → client neighbour entry moved",
            "ms",
            20,
            (1..=20).map(|i| 700.0 + f64::from(i) * 13.0).collect(),
        );
        let mem = row(
            "system_memory",
            "controller peak RSS",
            "MiB",
            1000,
            vec![30.0],
        );
        let mem0 = row("system_memory", "controller peak RSS", "MiB", 0, vec![10.0]);
        let alloc = row(
            crate::criterion::SCENARIO,
            "assign (ipv4)",
            "µs",
            1000,
            vec![1.0, 1.2],
        );
        let alloc2 = row(
            crate::criterion::SCENARIO,
            "assign (ipv4)",
            "µs",
            100_000,
            vec![2.0],
        );
        let rows = vec![lat, fo, mem, mem0, alloc, alloc2];
        let plots = draw_all(&rows, &dir.join("plots")).unwrap();
        let files: Vec<&str> = plots.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(
            files,
            vec![
                "plots/failover-l2-failover-20.png",
                "plots/memory-vs-services.png",
                "plots/allocator.png",
                "plots/cdf-controller-idle-service-created-status-written-200.png",
                "plots/cdf-l2-failover-kill-client-neighbour-entry-moved-20.png",
            ]
        );
        for p in &plots {
            let bytes = std::fs::read(dir.join(&p.file)).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{}", p.file);
            assert!(bytes.len() > 5_000, "{} has content", p.file);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
