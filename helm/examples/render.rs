//! Render a chart and print each template's raw output (for debugging a chart).
//! usage: cargo run -p skiff-helm --example render -- CHART [values.yaml]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let chart = skiff_helm::load(std::path::Path::new(&args[1])).unwrap_or_else(|e| panic!("{e}"));
    let mut values = skiff_helm::values::Table::new();
    if let Some(f) = args.get(2) {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{e}"));
        values = skiff_helm::values::parse_values(&text, f).unwrap_or_else(|e| panic!("{e}"));
    }
    match skiff_helm::render(&chart, values, &skiff_helm::RenderOptions::default()) {
        Ok(r) => {
            for t in r {
                println!("=== {} ({} bytes)\n{}", t.name, t.text.len(), t.text);
            }
        }
        Err(e) => println!("error: {e}"),
    }
}
