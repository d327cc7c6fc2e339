//! Helm's own `helm template` golden tests (pkg/cmd/template_test.go): the test charts from
//! pkg/cmd/testdata/testcharts and the expected outputs from pkg/cmd/testdata/output, copied
//! from github.com/helm/helm at commit e9b85e4de16ad45805843fb121748018cf89094b. Each case
//! is rendered as `helm template` would with the same flags and compared byte for byte.

use std::path::Path;

use skiff_helm::values::{apply_set, merge_into, parse_values, Table};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/helm-template");

struct Case {
    golden: &'static str,
    chart: &'static str,
    values: &'static [&'static str],
    set: &'static [&'static str],
    kube_version: Option<&'static str>,
    api_versions: &'static [&'static str],
}

const fn case(golden: &'static str, chart: &'static str) -> Case {
    Case {
        golden,
        chart,
        values: &[],
        set: &[],
        kube_version: None,
        api_versions: &[],
    }
}

fn cases() -> Vec<Case> {
    vec![
        case("template", "subchart"),
        Case {
            set: &["service.name=apache"],
            ..case("template-set", "subchart")
        },
        Case {
            values: &["subchart/charts/subchartA/values.yaml"],
            ..case("template-values-files", "subchart")
        },
        case("template-lib-chart", "lib-chart"),
        case(
            "template-chart-with-template-lib-dep",
            "chart-with-template-lib-dep",
        ),
        case(
            "template-chart-with-template-lib-archive-dep",
            "chart-with-template-lib-archive-dep",
        ),
        Case {
            kube_version: Some("v1.16.0"),
            ..case("template-with-kube-version", "subchart")
        },
        Case {
            api_versions: &["helm.k8s.io/test", "helm.k8s.io/test2"],
            ..case("template-with-api-version", "subchart")
        },
        case("object-order", "object-order"),
        case("issue-9027", "issue-9027"),
        Case {
            set: &["configmap.enabled=true", "subchartb.enabled=true"],
            ..case("template-subchart-cm", "subchart")
        },
        Case {
            set: &[
                "configmap.enabled=true",
                "subchartb.enabled=true",
                "configmap.value=baz",
            ],
            ..case("template-subchart-cm-set", "subchart")
        },
        Case {
            values: &["subchart/extra_values.yaml"],
            ..case("template-subchart-cm-set-file", "subchart")
        },
    ]
}

/// Helm's defaults for `helm template` without a cluster (chartutil.DefaultCapabilities).
fn options(c: &Case) -> skiff_helm::RenderOptions {
    // Helm's tests run with its testing capabilities: Kubernetes v1.20.0.
    let mut o = skiff_helm::RenderOptions {
        kube_version: c.kube_version.unwrap_or("v1.20.0").to_string(),
        ..Default::default()
    };
    o.api_versions
        .extend(c.api_versions.iter().map(|s| s.to_string()));
    o
}

#[test]
fn helm_template_goldens() {
    let mut failed = Vec::new();
    let all = cases();
    for c in &all {
        let chart = match skiff_helm::load(&Path::new(DIR).join("testcharts").join(c.chart)) {
            Ok(chart) => chart,
            Err(e) => {
                let want = std::fs::read_to_string(
                    Path::new(DIR)
                        .join("output")
                        .join(format!("{}.txt", c.golden)),
                )
                .unwrap();
                // Helm refuses these too (its golden holds the error): both must refuse.
                if want.starts_with("Error: ") {
                    println!(
                        "{}: refused as helm refuses it: helm: {} skiff: {e}",
                        c.golden,
                        want.trim()
                    );
                } else {
                    failed.push(format!("{}: {e}", c.golden));
                }
                continue;
            }
        };
        let mut values = Table::new();
        for f in c.values {
            let text = std::fs::read_to_string(Path::new(DIR).join("testcharts").join(f)).unwrap();
            merge_into(&mut values, &parse_values(&text, f).unwrap());
        }
        for s in c.set {
            apply_set(&mut values, s, false).unwrap();
        }
        let want = std::fs::read_to_string(
            Path::new(DIR)
                .join("output")
                .join(format!("{}.txt", c.golden)),
        )
        .unwrap();
        let got = skiff_helm::render(&chart, values, &options(c))
            .map_err(|e| e.to_string())
            .and_then(|r| skiff_helm::template_output(&r).map_err(|e| e.to_string()));
        match got {
            Ok(g) if g == want => println!("{}: same as helm", c.golden),
            Ok(g) => failed.push(format!(
                "{}: differs\n--- helm\n{want}\n--- skiff\n{g}",
                c.golden
            )),
            Err(e) => failed.push(format!("{}: {e}", c.golden)),
        }
    }
    println!(
        "{} passed, {} failed",
        all.len() - failed.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
