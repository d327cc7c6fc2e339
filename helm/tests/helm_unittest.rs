//! Charts' own expected outputs: their helm-unittest suites, copied unchanged into
//! tests/data/helm-unittest/CHART/ (traefik: github.com/traefik/traefik-helm-chart,
//! traefik/tests/ at a8a66d0098703627b2cf352c66b1725c196a734a; alertmanager and
//! kube-state-metrics: github.com/prometheus-community/helm-charts, charts/NAME/unittests/ at
//! cf408a290aec489277a94450bb3511432477a53a; Apache-2.0), run against skiff's rendering of
//! the same charts (tests/charts/, same commits).
//!
//! Each test sets values (`set`, `values` files), renders the chart as helm-unittest does
//! (release RELEASE-NAME in namespace NAMESPACE, `chart:` overrides of version and
//! appVersion) and checks its assertions on the documents of the suite's templates. This
//! runner implements the assertions the suites use most (`equal`, `notEqual`, `contains`,
//! `notContains`, `exists`, `notExists`, `isNull`, `isNotNull`, `isNullOrEmpty`, `isNotEmpty`,
//! `containsDocument`, `notFailedTemplate`, `isKind`,
//! `isAPIVersion`, `hasDocuments`, `matchRegex`, `notMatchRegex`, `failedTemplate`,
//! `lengthEqual`, `isSubset`, with `not`, `template` and `documentIndex`) and paths with
//! dots, `[N]` and `["key"]`; a test using anything else (capabilities, JSONPath filters,
//! other assertions) is counted as skipped, with the reason. Every test that runs must pass,
//! except those listed in tests/data/helm-unittest/known-failures.txt with a reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value as J;
use skiff_helm::values::{merge_into, parse_values, Table};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/helm-unittest");
const CHARTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/charts");

/// One document of the rendered templates, with the template it came from.
struct Doc {
    template: String,
    object: J,
}

/// A `set:` map: keys may be dotted paths (`ingress.enabled: true`), as helm-unittest reads
/// them.
fn set_values(set: &serde_yaml_ng::Value, into: &mut Table) -> Result<(), String> {
    let serde_yaml_ng::Value::Mapping(m) = set else {
        return Ok(());
    };
    for (k, v) in m {
        let key = k.as_str().ok_or("a non-string key in set")?;
        let mut nested = serde_yaml_ng::Value::Null;
        let mut cur = &mut nested;
        for part in key.split('.') {
            let mut inner = serde_yaml_ng::Mapping::new();
            inner.insert(part.into(), serde_yaml_ng::Value::Null);
            *cur = serde_yaml_ng::Value::Mapping(inner);
            cur = cur
                .as_mapping_mut()
                .and_then(|m| m.get_mut(part))
                .ok_or("set path")?;
        }
        *cur = v.clone();
        let text = serde_yaml_ng::to_string(&nested).map_err(|e| e.to_string())?;
        merge_into(
            into,
            &parse_values(&text, "set").map_err(|e| e.to_string())?,
        );
    }
    Ok(())
}

/// The templates a test renders: the test's `template`/`templates`, else the suite's.
fn selected_templates(suite: &serde_yaml_ng::Value, test: &serde_yaml_ng::Value) -> Vec<String> {
    if let Some(t) = test.get("template").and_then(|t| t.as_str()) {
        return vec![t.to_string()];
    }
    test.get("templates")
        .or_else(|| suite.get("templates"))
        .and_then(|t| t.as_sequence())
        .map(|s| {
            s.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Renders as helm-unittest does: only the selected templates (and every `_` partial), so
/// a `fail` in a template the suite does not test does not fail it.
fn render(
    chart_name: &str,
    suite: &serde_yaml_ng::Value,
    test: &serde_yaml_ng::Value,
    dir: &Path,
) -> Result<Result<Vec<Doc>, String>, String> {
    let full = skiff_helm::load(&Path::new(CHARTS).join(chart_name)).map_err(|e| e.to_string())?;
    let mut keep = selected_templates(suite, test);
    // A selected template may `include` another one by its path (a checksum annotation):
    // helm-unittest has every template defined; here the included one is added and the
    // render retried.
    for _ in 0..8 {
        let mut chart = full.clone();
        chart.templates.retain(|(path, _)| {
            let rel = path.strip_prefix("templates/").unwrap_or(path);
            rel.rsplit('/').next().is_some_and(|f| f.starts_with('_'))
                || keep.iter().any(|t| t == rel)
        });
        let r = render_chart(chart, suite, test, dir)?;
        let prefix = format!("undefined template: {chart_name}/templates/");
        match &r {
            Err(e) if e.contains(&prefix) => {
                let missing = e.split(&prefix).nth(1).unwrap_or("");
                let missing = missing.split_whitespace().next().unwrap_or("").to_string();
                if missing.is_empty() || keep.contains(&missing) {
                    return Ok(r);
                }
                keep.push(missing);
            }
            _ => return Ok(r),
        }
    }
    Err("too many included templates".into())
}

fn render_chart(
    mut chart: skiff_helm::Chart,
    suite: &serde_yaml_ng::Value,
    test: &serde_yaml_ng::Value,
    dir: &Path,
) -> Result<Result<Vec<Doc>, String>, String> {
    for src in [suite, test] {
        if let Some(c) = src.get("chart") {
            if let Some(v) = c.get("version").and_then(|v| v.as_str()) {
                chart.metadata.version = v.to_string();
            }
            if let Some(v) = c.get("appVersion").and_then(|v| v.as_str()) {
                chart.metadata.app_version = Some(v.into());
            }
        }
    }
    let mut values = Table::new();
    for src in [suite, test] {
        if let Some(serde_yaml_ng::Value::Sequence(files)) = src.get("values") {
            for f in files {
                let p = dir.join(f.as_str().ok_or("values entry")?);
                let text =
                    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                merge_into(
                    &mut values,
                    &parse_values(&text, "values").map_err(|e| e.to_string())?,
                );
            }
        }
    }
    for src in [suite, test] {
        if let Some(set) = src.get("set") {
            set_values(set, &mut values)?;
        }
    }
    let mut opts = skiff_helm::RenderOptions {
        release_name: "RELEASE-NAME".into(),
        namespace: "NAMESPACE".into(),
        ..Default::default()
    };
    for src in [suite, test] {
        if let Some(r) = src.get("release") {
            if let Some(n) = r.get("name").and_then(|v| v.as_str()) {
                opts.release_name = n.to_string();
            }
            if let Some(n) = r.get("namespace").and_then(|v| v.as_str()) {
                opts.namespace = n.to_string();
            }
        }
    }
    let rendered = match skiff_helm::render(&chart, values, &opts) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.to_string())),
    };
    // In each template's own order (documentIndex counts them so), not Helm's install order.
    let mut docs = Vec::new();
    for t in rendered.iter().filter(|t| t.name.contains("/templates/")) {
        for d in serde_yaml_ng::Deserializer::from_str(&t.text) {
            let v: serde_yaml_ng::Value = match serde::Deserialize::deserialize(d) {
                Ok(v) => v,
                Err(e) => return Ok(Err(format!("{}: {e}", t.name))),
            };
            if v.is_null() {
                continue;
            }
            let object = serde_json::to_value(&v).map_err(|e| e.to_string())?;
            docs.push(Doc {
                template: t.name.clone(),
                object,
            });
        }
    }
    Ok(Ok(docs))
}

/// One step of a helm-unittest path.
enum Step {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            if inner.starts_with('?') || inner == "*" {
                return None;
            }
            let key = inner.trim_matches(|c| c == '"' || c == '\'');
            steps.push(match inner.parse::<usize>() {
                Ok(i) => Step::Index(i),
                Err(_) => Step::Key(key.to_string()),
            });
            rest = r[end + 1..].trim_start_matches('.');
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            steps.push(Step::Key(rest[..end].to_string()));
            rest = rest[end..].strip_prefix('.').unwrap_or(&rest[end..]);
        }
    }
    Some(steps)
}

fn lookup<'a>(v: &'a J, steps: &[Step]) -> Option<&'a J> {
    steps.iter().try_fold(v, |cur, s| match s {
        Step::Key(k) => cur.get(k.as_str()),
        Step::Index(i) => cur.get(*i),
    })
}

/// `a` holds everything in `b` (maps: every key of b, recursively; else equal).
fn is_subset(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Object(a), J::Object(b)) => b
            .iter()
            .all(|(k, bv)| a.get(k).is_some_and(|av| is_subset(av, bv))),
        _ => json_eq(a, b),
    }
}

/// Equality with numbers compared by value (YAML 1 and 1.0).
fn json_eq(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Number(x), J::Number(y)) => x.as_f64() == y.as_f64(),
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

const SUPPORTED: &[&str] = &[
    "equal",
    "notEqual",
    "contains",
    "notContains",
    "exists",
    "notExists",
    "isNull",
    "isNotNull",
    "isNullOrEmpty",
    "isNotEmpty",
    "containsDocument",
    "notFailedTemplate",
    "isKind",
    "isAPIVersion",
    "hasDocuments",
    "matchRegex",
    "notMatchRegex",
    "failedTemplate",
    "lengthEqual",
    "isSubset",
];

/// One assertion on the selected documents.
fn check(kind: &str, args: &J, docs: &[&J]) -> Result<bool, String> {
    let path = args.get("path").and_then(|p| p.as_str());
    let steps = match path {
        Some(p) => Some(parse_path(p).ok_or_else(|| format!("path {p} (JSONPath filters)"))?),
        None => None,
    };
    let at = |d: &J| -> Option<J> {
        match &steps {
            Some(s) => lookup(d, s).cloned(),
            None => Some(d.clone()),
        }
    };
    let each = |f: &dyn Fn(Option<J>) -> bool| docs.iter().all(|d| f(at(d)));
    let arg = |k: &str| args.get(k).cloned().unwrap_or(J::Null);
    Ok(match kind {
        "hasDocuments" => json_eq(&J::from(docs.len()), &arg("count")),
        "equal" => !docs.is_empty() && each(&|v| v.is_some_and(|v| json_eq(&v, &arg("value")))),
        "notEqual" => each(&|v| !v.is_some_and(|v| json_eq(&v, &arg("value")))),
        "exists" => !docs.is_empty() && each(&|v| v.is_some()),
        "notExists" => each(&|v| v.is_none()),
        "isNull" => each(&|v| v.is_none_or(|v| v.is_null())),
        "isNotNull" => !docs.is_empty() && each(&|v| v.is_some_and(|v| !v.is_null())),
        "isNullOrEmpty" => each(&|v| {
            v.is_none_or(|v| match v {
                J::Null => true,
                J::String(s) => s.is_empty(),
                J::Array(a) => a.is_empty(),
                J::Object(o) => o.is_empty(),
                J::Bool(b) => !b,
                J::Number(n) => n.as_f64() == Some(0.0),
            })
        }),
        "isNotEmpty" => {
            !docs.is_empty()
                && each(&|v| {
                    v.is_some_and(|v| match v {
                        J::Null => false,
                        J::String(s) => !s.is_empty(),
                        J::Array(a) => !a.is_empty(),
                        J::Object(o) => !o.is_empty(),
                        _ => true,
                    })
                })
        }
        "containsDocument" => {
            let field = |d: &J, k: &str, at: &[&str]| {
                args.get(k)
                    .is_none_or(|want| at.iter().try_fold(d, |c, s| c.get(*s)) == Some(want))
            };
            let n = docs
                .iter()
                .filter(|d| {
                    field(d, "kind", &["kind"])
                        && field(d, "apiVersion", &["apiVersion"])
                        && field(d, "name", &["metadata", "name"])
                        && field(d, "namespace", &["metadata", "namespace"])
                })
                .count();
            args.get("count")
                .and_then(|c| c.as_u64())
                .map_or(n > 0, |c| n as u64 == c)
        }
        "isKind" => !docs.is_empty() && docs.iter().all(|d| d["kind"] == arg("of")),
        "isAPIVersion" => !docs.is_empty() && docs.iter().all(|d| d["apiVersion"] == arg("of")),
        "lengthEqual" => {
            let want = arg("count");
            !docs.is_empty()
                && each(&|v| {
                    v.is_some_and(|v| match v {
                        J::Array(a) => json_eq(&J::from(a.len()), &want),
                        J::Object(o) => json_eq(&J::from(o.len()), &want),
                        _ => false,
                    })
                })
        }
        "isSubset" => {
            !docs.is_empty() && each(&|v| v.is_some_and(|v| is_subset(&v, &arg("content"))))
        }
        "matchRegex" | "notMatchRegex" => {
            let re = regex::Regex::new(arg("pattern").as_str().unwrap_or_default())
                .map_err(|e| e.to_string())?;
            let m = |v: Option<J>| v.and_then(|v| v.as_str().map(|s| re.is_match(s)));
            if kind == "matchRegex" {
                !docs.is_empty() && each(&|v| m(v) == Some(true))
            } else {
                each(&|v| m(v) != Some(true))
            }
        }
        "contains" | "notContains" => {
            let content = arg("content");
            let any = arg("any") == J::Bool(true);
            let count = args.get("count").and_then(|c| c.as_u64());
            let has = |v: Option<J>| -> usize {
                match v {
                    Some(J::Array(items)) => items
                        .iter()
                        .filter(|i| {
                            if any {
                                is_subset(i, &content)
                            } else {
                                json_eq(i, &content)
                            }
                        })
                        .count(),
                    _ => 0,
                }
            };
            if kind == "contains" {
                !docs.is_empty()
                    && each(&|v| {
                        let n = has(v);
                        count.map_or(n > 0, |c| n as u64 == c)
                    })
            } else {
                each(&|v| has(v) == 0)
            }
        }
        other => return Err(format!("assertion {other}")),
    })
}

fn run_test(
    chart: &str,
    suite: &serde_yaml_ng::Value,
    test: &serde_yaml_ng::Value,
    dir: &Path,
) -> Outcome {
    if suite.get("capabilities").is_some() || test.get("capabilities").is_some() {
        return Outcome::Skip("capabilities (a Kubernetes version or API list of its own)".into());
    }
    if test.get("kubernetesProvider").is_some() || suite.get("kubernetesProvider").is_some() {
        return Outcome::Skip("kubernetesProvider (lookup against a fake cluster)".into());
    }
    let asserts = match test.get("asserts") {
        Some(serde_yaml_ng::Value::Sequence(a)) => a.clone(),
        _ => return Outcome::Skip("no asserts".into()),
    };
    for a in &asserts {
        let Some(m) = a.as_mapping() else {
            return Outcome::Skip("an assertion that is not a map".into());
        };
        for (k, _) in m {
            let k = k.as_str().unwrap_or("");
            if !["not", "template", "documentIndex", "documentSelector"].contains(&k)
                && !SUPPORTED.contains(&k)
            {
                return Outcome::Skip(format!("assertion {k}"));
            }
            if k == "documentSelector" {
                return Outcome::Skip("documentSelector".into());
            }
        }
    }
    let rendered = match render(chart, suite, test, dir) {
        Ok(r) => r,
        Err(e) => return Outcome::Fail(format!("setup: {e}")),
    };
    let suite_templates = selected_templates(suite, test);
    for a in &asserts {
        let m = a.as_mapping().unwrap();
        let negate = a.get("not").and_then(|n| n.as_bool()).unwrap_or(false);
        let (kind, args) = m
            .iter()
            .find_map(|(k, v)| {
                let k = k.as_str()?;
                SUPPORTED.contains(&k).then_some((k, v))
            })
            .unwrap();
        let args: J = serde_json::to_value(args).unwrap_or(J::Null);
        if kind == "notFailedTemplate" {
            if rendered.is_ok() == negate {
                return Outcome::Fail(format!("notFailedTemplate: {:?}", rendered.as_ref().err()));
            }
            continue;
        }
        if kind == "failedTemplate" {
            let ok = match &rendered {
                Err(e) => {
                    let msg = args.get("errorMessage").and_then(|m| m.as_str());
                    let pat = args.get("errorPattern").and_then(|m| m.as_str());
                    msg.is_none_or(|m| e.contains(m))
                        && pat.is_none_or(|p| regex::Regex::new(p).is_ok_and(|r| r.is_match(e)))
                }
                Ok(_) => false,
            };
            if ok == negate {
                return Outcome::Fail(format!(
                    "failedTemplate {args}: {}",
                    match &rendered {
                        Err(e) => format!("error {e}"),
                        Ok(_) => "rendered without error".into(),
                    }
                ));
            }
            continue;
        }
        let docs = match &rendered {
            Ok(d) => d,
            Err(e) => return Outcome::Fail(format!("render error: {e}")),
        };
        let templates: Vec<String> = match a.get("template").and_then(|t| t.as_str()) {
            Some(t) => vec![t.to_string()],
            None => suite_templates.clone(),
        };
        let mut selected: Vec<&J> = docs
            .iter()
            .filter(|d| {
                templates
                    .iter()
                    .any(|t| d.template == format!("{chart}/templates/{t}"))
            })
            .map(|d| &d.object)
            .collect();
        if let Some(i) = a
            .get("documentIndex")
            .or_else(|| test.get("documentIndex"))
            .and_then(|i| i.as_u64())
        {
            selected = selected.get(i as usize).copied().into_iter().collect();
        }
        match check(kind, &args, &selected) {
            Ok(ok) if ok != negate => {}
            Ok(_) => {
                let path = args.get("path").and_then(|p| p.as_str()).unwrap_or("");
                let got: Vec<String> = selected
                    .iter()
                    .map(|d| {
                        parse_path(path)
                            .and_then(|s| lookup(d, &s).cloned())
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "(absent)".into())
                    })
                    .collect();
                let got = got.join(" | ");
                return Outcome::Fail(format!(
                    "{}{kind} {args}: got {}",
                    if negate { "not " } else { "" },
                    &got[..got.len().min(300)]
                ));
            }
            Err(what) => return Outcome::Skip(what),
        }
    }
    Outcome::Pass
}

#[test]
fn charts_own_helm_unittest_suites() {
    for chart in ["traefik", "alertmanager", "kube-state-metrics"] {
        run_suites(chart);
    }
}

/// Every suite of one chart; known failures are `CHART/file #N` lines.
fn run_suites(chart: &str) {
    let dir = Path::new(DATA).join(chart);
    let known_text = std::fs::read_to_string(Path::new(DATA).join("known-failures.txt")).unwrap();
    let known: BTreeSet<String> = known_text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("_test.yaml"))
        .collect();
    files.sort();
    let (mut pass, mut fail, mut skipped) = (0, 0, 0);
    let mut skip_reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut stale = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let suite: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let Some(tests) = suite.get("tests").and_then(|t| t.as_sequence()) else {
            continue;
        };
        for (i, t) in tests.iter().enumerate() {
            let id = format!("{chart}/{name} #{}", i + 1);
            let it = t.get("it").and_then(|s| s.as_str()).unwrap_or("");
            match run_test(chart, &suite, t, &dir) {
                Outcome::Pass => {
                    pass += 1;
                    if known.contains(&id) {
                        stale.push(id);
                    }
                }
                Outcome::Fail(why) => {
                    fail += 1;
                    if !known.contains(&id) {
                        unexpected.push(format!("{id}\t{it}\t{why}"));
                    }
                }
                Outcome::Skip(why) => {
                    skipped += 1;
                    *skip_reasons.entry(why).or_default() += 1;
                }
            }
        }
    }
    println!("{chart} helm-unittest: {pass} passed, {fail} failed, {skipped} skipped");
    for (why, n) in &skip_reasons {
        println!("  skipped {n}: {why}");
    }
    assert!(pass > 0);
    assert!(
        unexpected.is_empty(),
        "failing tests not in known-failures.txt:\n{}",
        unexpected.join("\n")
    );
    assert!(
        stale.is_empty(),
        "tests in known-failures.txt that now pass (remove them):\n{}",
        stale.join("\n")
    );
}
