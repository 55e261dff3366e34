//! SVG bar chart: fota vs best peer patch size, % of the new image, per category.

use std::path::Path;

use plotters::prelude::*;

/// Draws grouped bars (fota, best peer) per category into an SVG file.
///
/// `sizes` holds (category, fota %, best peer %) as computed by the summary.
pub fn draw(sizes: &[(String, Option<f64>, Option<f64>)], path: &Path) -> anyhow::Result<()> {
    let n = sizes.len().max(1);
    let width = (160 * n as u32 + 160).max(640);
    let top = sizes
        .iter()
        .flat_map(|(_, a, b)| [*a, *b])
        .flatten()
        .fold(1.0f64, f64::max)
        * 1.25;
    let root = SVGBackend::new(path, (width, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Patch size, % of the new image (geometric mean; lower is better)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|_| String::new())
        .y_desc("% of new image")
        .label_style(("sans-serif", 13))
        .draw()?;
    let fota_color = RGBColor(0x1f, 0x77, 0xb4);
    let peer_color = RGBColor(0xbb, 0xbb, 0xbb);
    for (i, (_, fota, peer)) in sizes.iter().enumerate() {
        let x = i as f64;
        for (k, v, color) in [(0, fota, fota_color), (1, peer, peer_color)] {
            let Some(v) = *v else { continue };
            let x0 = x + 0.12 + 0.38 * k as f64;
            let x1 = x0 + 0.36;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0, 0.0), (x1, v)],
                color.filled(),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{v:.1}%"),
                (x0 + 0.04, v + top * 0.02),
                ("sans-serif", 12),
            )))?;
        }
    }
    // Category names under the bar groups (centred, in pixels).
    for (i, (name, _, _)) in sizes.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        let style = TextStyle::from(("sans-serif", 14).into_font()).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Top,
            ),
        );
        root.draw(&Text::new(name.clone(), (px, py + 8), style))?;
    }
    // Legend, drawn by hand (the legend API needs more plotters features).
    for (k, (name, color)) in [("fota", fota_color), ("best peer tool", peer_color)]
        .into_iter()
        .enumerate()
    {
        let y = 40 + 18 * k as i32;
        let x = width as i32 - 170;
        root.draw(&Rectangle::new([(x, y), (x + 12, y + 12)], color.filled()))?;
        root.draw(&Text::new(name, (x + 18, y), ("sans-serif", 13)))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_svg() {
        let path = std::env::temp_dir().join(format!("fota-chart-{}.svg", std::process::id()));
        let sizes = vec![
            ("elf-x86_64".to_string(), Some(3.2), Some(4.0)),
            ("all".to_string(), Some(5.0), None),
        ];
        draw(&sizes, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("elf-x86_64") && svg.contains("3.2%"));
        let _ = std::fs::remove_file(&path);
    }
}
