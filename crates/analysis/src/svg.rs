//! Small SVG charts for the report: lines (with an optional band), and a heatmap.

use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 300.0;
const PAD: f64 = 48.0;
const COLORS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// One line of a chart.
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Optional ± band around each point.
    pub band: Option<Vec<f64>>,
    /// Drawn against the right axis (scaled separately).
    pub right_axis: bool,
}

fn bounds(points: impl Iterator<Item = (f64, f64)>) -> (f64, f64, f64, f64) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for (x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        return (0.0, 1.0, 0.0, 1.0);
    }
    if x1 == x0 {
        x1 = x0 + 1.0;
    }
    if y1 == y0 {
        y0 -= 1.0;
        y1 += 1.0;
    }
    (x0, x1, y0, y1)
}

/// A line chart; `x_labels` are (x, text) ticks.
pub fn lines(title: &str, lines: &[Line], x_labels: &[(f64, String)], zero_line: bool) -> String {
    let left: Vec<&Line> = lines.iter().filter(|l| !l.right_axis).collect();
    let right: Vec<&Line> = lines.iter().filter(|l| l.right_axis).collect();
    let lb = bounds(left.iter().flat_map(|l| {
        let band = l.band.clone().unwrap_or_default();
        l.points.iter().enumerate().flat_map(move |(i, p)| {
            let h = band.get(i).copied().filter(|v| v.is_finite()).unwrap_or(0.0);
            [(p.0, p.1 - h), (p.0, p.1 + h)]
        })
    }));
    let rb = bounds(right.iter().flat_map(|l| l.points.iter().copied()));
    let (x0, x1) = (lb.0.min(rb.0), lb.1.max(rb.1));
    let sx = |x: f64| PAD + (x - x0) / (x1 - x0) * (W - 2.0 * PAD);
    let sy = |y: f64, b: (f64, f64, f64, f64)| H - PAD - (y - b.2) / (b.3 - b.2) * (H - 2.0 * PAD);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        s,
        r#"<rect width="{W}" height="{H}" fill="white"/><text x="{}" y="18" text-anchor="middle" font-size="13">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    let _ = write!(
        s,
        r##"<line x1="{PAD}" y1="{}" x2="{}" y2="{}" stroke="#999"/><line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{}" stroke="#999"/>"##,
        H - PAD,
        W - PAD,
        H - PAD,
        H - PAD
    );
    for k in 0..=4 {
        let v = lb.2 + (lb.3 - lb.2) * k as f64 / 4.0;
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end" fill="#555">{}</text>"##,
            PAD - 4.0,
            sy(v, lb) + 4.0,
            fmt(v)
        );
    }
    if !right.is_empty() {
        for k in 0..=4 {
            let v = rb.2 + (rb.3 - rb.2) * k as f64 / 4.0;
            let _ = write!(s, r##"<text x="{}" y="{}" fill="#555">{}</text>"##, W - PAD + 4.0, sy(v, rb) + 4.0, fmt(v));
        }
    }
    for (x, t) in x_labels {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
            sx(*x),
            H - PAD + 16.0,
            esc(t)
        );
    }
    if zero_line && lb.2 < 0.0 && lb.3 > 0.0 {
        let _ = write!(
            s,
            r##"<line x1="{PAD}" y1="{y}" x2="{}" y2="{y}" stroke="#bbb" stroke-dasharray="4 3"/>"##,
            W - PAD,
            y = sy(0.0, lb)
        );
    }
    for (i, l) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let b = if l.right_axis { rb } else { lb };
        if let Some(band) = &l.band {
            let upper: Vec<String> = l
                .points
                .iter()
                .zip(band)
                .map(|(p, h)| format!("{:.1},{:.1}", sx(p.0), sy(p.1 + h.max(0.0), b)))
                .collect();
            let lower: Vec<String> = l
                .points
                .iter()
                .zip(band)
                .rev()
                .map(|(p, h)| format!("{:.1},{:.1}", sx(p.0), sy(p.1 - h.max(0.0), b)))
                .collect();
            let _ = write!(
                s,
                r#"<polygon points="{} {}" fill="{color}" fill-opacity="0.18" stroke="none"/>"#,
                upper.join(" "),
                lower.join(" ")
            );
        }
        let pts: Vec<String> =
            l.points.iter().filter(|p| p.1.is_finite()).map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.1, b))).collect();
        let _ = write!(s, r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.5"/>"#, pts.join(" "));
        let _ = write!(
            s,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            PAD + 8.0,
            PAD + 4.0 + 14.0 * i as f64,
            PAD + 22.0,
            PAD + 13.0 + 14.0 * i as f64,
            esc(&l.label)
        );
    }
    s.push_str("</svg>");
    s
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// A heatmap of values in [−vmax, vmax] (blue negative, red positive).
pub fn heatmap(title: &str, rows: &[String], cols: &[String], values: &[Vec<f64>]) -> String {
    let vmax = values.iter().flatten().filter(|v| v.is_finite()).fold(1e-12f64, |m, v| m.max(v.abs()));
    let cw = ((W - 2.0 * PAD - 40.0) / cols.len().max(1) as f64).max(8.0);
    let ch = 16.0;
    let h = PAD + 30.0 + ch * rows.len() as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" width="{W}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        s,
        r#"<rect width="{W}" height="{h}" fill="white"/><text x="{}" y="18" text-anchor="middle" font-size="13">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    for (j, c) in cols.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            PAD + 40.0 + cw * (j as f64 + 0.5),
            PAD + 10.0,
            esc(c)
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = PAD + 18.0 + ch * i as f64;
        let _ = write!(s, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, PAD + 36.0, y + 12.0, esc(r));
        for (j, v) in values[i].iter().enumerate() {
            let t = if v.is_finite() { (v / vmax).clamp(-1.0, 1.0) } else { 0.0 };
            let (rr, gg, bb) = if t >= 0.0 {
                (255.0, 255.0 * (1.0 - t), 255.0 * (1.0 - t))
            } else {
                (255.0 * (1.0 + t), 255.0 * (1.0 + t), 255.0)
            };
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{y}" width="{:.1}" height="{}" fill="rgb({:.0},{:.0},{:.0})"><title>{} lag {}: {:.4}</title></rect>"#,
                PAD + 40.0 + cw * j as f64,
                cw - 1.0,
                ch - 1.0,
                rr,
                gg,
                bb,
                esc(r),
                esc(&cols[j]),
                v
            );
        }
    }
    s.push_str("</svg>");
    s
}
