//! Render time of a chart: loads it once, renders it N times (values from an optional
//! file), prints the rendered size and the fastest and median render times.
//! usage: cargo run --release -p skiff-helm --example bench -- CHART [values.yaml] [N]
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let chart = skiff_helm::load(std::path::Path::new(&args[1])).unwrap_or_else(|e| panic!("{e}"));
    let mut values = skiff_helm::values::Table::new();
    if let Some(f) = args.get(2).filter(|f| !f.is_empty()) {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{e}"));
        values = skiff_helm::values::parse_values(&text, f).unwrap_or_else(|e| panic!("{e}"));
    }
    let n: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(20);
    let opts = skiff_helm::RenderOptions::default();
    let mut times = Vec::new();
    let mut size = 0;
    let mut docs = 0;
    for _ in 0..n {
        let start = Instant::now();
        let rendered =
            skiff_helm::render(&chart, values.clone(), &opts).unwrap_or_else(|e| panic!("{e}"));
        let out = skiff_helm::template_output(&rendered).unwrap_or_else(|e| panic!("{e}"));
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        size = out.len();
        docs =
            out.matches("\n# Source: ").count() + usize::from(out.starts_with("---\n# Source: "));
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{}: {docs} documents, {size} bytes; {n} renders: min {:.1} ms, median {:.1} ms",
        args[1],
        times[0],
        times[n / 2]
    );
}
