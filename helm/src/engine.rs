//! Rendering a chart as Helm's engine does: every template of the chart and its enabled
//! subcharts parsed into one template set (deepest paths first, so a parent's `define`
//! wins), each non-partial template executed with its chart's scope (`.Values`, `.Chart`,
//! `.Files`, `.Release`, `.Capabilities`, `.Template`, `.Subcharts`), `<no value>` removed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use gotmpl::parse::Parser;
use gotmpl::{MapRef, MissingKey, Template, TemplateError, Value, ValueFunc};

use crate::bounds::{
    BoundedWriter, Budget, MAX_NESTING, MAX_OUTPUT_BYTES, MAX_RANGE_ITERATIONS, MAX_TEXT_BYTES,
};
use crate::chart::Chart;
use crate::funcs::{err, go_type, sprig, strval, FResult};
use crate::rewrite::Rewriter;
use crate::value::{map, s};
use crate::values::{coalesce, coalesce_globals, path_value, strip_nulls, Table};
use crate::Error;

/// Release and cluster facts the templates see.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub release_name: String,
    pub namespace: String,
    pub revision: i64,
    pub is_upgrade: bool,
    /// `v1.31.0`
    pub kube_version: String,
    /// group/version strings (and group/version/Kind) for `.Capabilities.APIVersions.Has`.
    pub api_versions: Vec<String>,
    /// What `lookup` reads; `None`: offline, an empty map (as `helm template`).
    pub lookup: Option<Lookup>,
}

/// `lookup apiVersion kind namespace name` against a cluster: the object (or, with an empty
/// name, a list object with `items`) as JSON; an empty map when there is none.
#[derive(Clone)]
pub struct Lookup(pub Arc<LookupFn>);

/// `(apiVersion, kind, namespace, name)` → the object, a list, or `{}`.
pub type LookupFn = dyn Fn(&str, &str, &str, &str) -> serde_json::Value + Send + Sync;

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lookup(..)")
    }
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            release_name: "release-name".into(),
            namespace: "default".into(),
            revision: 1,
            is_upgrade: false,
            kube_version: "v1.31.0".into(),
            api_versions: default_api_versions(),
            lookup: None,
        }
    }
}

/// The built-in API versions of Kubernetes (what `helm template` assumes offline).
pub fn default_api_versions() -> Vec<String> {
    [
        "v1",
        "admissionregistration.k8s.io/v1",
        "apiextensions.k8s.io/v1",
        "apiregistration.k8s.io/v1",
        "apps/v1",
        "authentication.k8s.io/v1",
        "authorization.k8s.io/v1",
        "autoscaling/v1",
        "autoscaling/v2",
        "batch/v1",
        "certificates.k8s.io/v1",
        "coordination.k8s.io/v1",
        "discovery.k8s.io/v1",
        "events.k8s.io/v1",
        "flowcontrol.apiserver.k8s.io/v1",
        "networking.k8s.io/v1",
        "node.k8s.io/v1",
        "policy/v1",
        "rbac.authorization.k8s.io/v1",
        "scheduling.k8s.io/v1",
        "storage.k8s.io/v1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One rendered template file.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// `chart/templates/x.yaml` (subcharts: `chart/charts/sub/templates/x.yaml`).
    pub name: String,
    pub text: String,
}

/// A chart with its enabled subcharts and final values.
struct Scoped<'a> {
    chart: &'a Chart,
    /// Name in the parent (alias or chart name).
    name: String,
    /// `parent/charts/name`.
    full_path: String,
    values: Table,
    subs: Vec<Scoped<'a>>,
}

/// What a receiver object is, for `__method`.
enum Kind {
    Files(Arc<BTreeMap<String, Vec<u8>>>),
    ApiVersions,
}

/// Shared state of one render: the template set (for include/tpl) and method receivers.
struct Ctx {
    /// Shared, not copied, by every `include` (a copy is made only by `tpl`).
    set: Mutex<Option<Arc<Template>>>,
    objects: Mutex<HashMap<usize, (Kind, Value)>>,
    include_depth: Mutex<HashMap<String, usize>>,
    funcs: BTreeSet<String>,
    lookup: Option<Lookup>,
    /// What the render may still cost (`bounds.rs`).
    budget: Budget,
}

impl Ctx {
    fn register(&self, v: Value, kind: Kind) -> Value {
        let key = match &v {
            Value::Map(m) => m.id(),
            Value::List(l) => Arc::as_ptr(l) as *const u8 as usize,
            _ => return v,
        };
        if let Ok(mut o) = self.objects.lock() {
            o.insert(key, (kind, v.clone()));
        }
        v
    }

    /// Runs `run` (an `include`) one level deeper, in the render's template set.
    fn nested(
        &self,
        name: &str,
        run: impl FnOnce(&Template, &mut BoundedWriter<'_>) -> Result<(), TemplateError>,
    ) -> Result<String, TemplateError> {
        let set = self.template_set()?;
        self.nested_in(&set, name, run)
    }

    /// Runs `run` (an `include` or a `tpl`) in `set`, one level deeper: refused past
    /// [`MAX_NESTING`] levels or when the render's time is up; its text bounded.
    fn nested_in(
        &self,
        set: &Template,
        name: &str,
        run: impl FnOnce(&Template, &mut BoundedWriter<'_>) -> Result<(), TemplateError>,
    ) -> Result<String, TemplateError> {
        use std::sync::atomic::Ordering;
        self.budget.check_time(name).map_err(err)?;
        let level = self.budget.nesting.fetch_add(1, Ordering::SeqCst) + 1;
        let result = if level > MAX_NESTING {
            Err(err(self.budget.exceed(format!(
                "include/tpl calls nested more than {MAX_NESTING} levels deep (skiff's bound), at {name}"
            ))))
        } else {
            let mut writer = BoundedWriter::new(
                &self.budget,
                name,
                MAX_TEXT_BYTES,
                "the text of this include/tpl",
            );
            run(set, &mut writer).map(|()| writer.text)
        };
        self.budget.nesting.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn kind_of(&self, v: &Value) -> Option<usize> {
        let key = match v {
            Value::Map(m) => m.id(),
            Value::List(l) => Arc::as_ptr(l) as *const u8 as usize,
            _ => return None,
        };
        self.objects
            .lock()
            .ok()
            .and_then(|o| o.contains_key(&key).then_some(key))
    }

    fn template_set(&self) -> Result<Arc<Template>, TemplateError> {
        self.set
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .ok_or_else(|| err("template set is not ready"))
    }

    /// A `.Files`-like object over these files.
    fn files_object(&self, files: Arc<BTreeMap<String, Vec<u8>>>) -> Value {
        let v = Value::Map(MapRef::new(
            files
                .iter()
                .map(|(k, v)| {
                    (
                        Arc::from(k.as_str()),
                        s(String::from_utf8_lossy(v).into_owned()),
                    )
                })
                .collect(),
        ));
        self.register(v, Kind::Files(files))
    }
}

/// Parse one source into the set (after the rewrite pass).
fn add_source(
    set: Template,
    name: &str,
    src: &str,
    funcs: &BTreeSet<String>,
) -> Result<Template, Error> {
    let parser =
        Parser::with_name(Some(name), src, "{{", "}}").map_err(|e| Error::Parse(e.to_string()))?;
    let (mut tree, defines) = parser.parse().map_err(|e| Error::Parse(e.to_string()))?;
    let mut rw = Rewriter {
        name,
        src,
        funcs,
        error: None,
    };
    rw.list(&mut tree);
    let mut set = set.add_parse_tree(name, tree);
    for mut d in defines {
        rw.list(&mut d.body);
        // An empty body does not replace an existing definition (Go's associate rule).
        if d.body.is_empty_tree() && set.lookup(&d.name).is_some() {
            continue;
        }
        set = set.add_parse_tree(&d.name, d.body);
    }
    if let Some(e) = rw.error {
        return Err(Error::Parse(e));
    }
    Ok(set)
}

fn files_method(
    files: &BTreeMap<String, Vec<u8>>,
    ctx: &Ctx,
    method: &str,
    args: &[Value],
) -> FResult {
    let one = |what: &str| -> Result<String, TemplateError> {
        match args {
            [Value::String(s)] => Ok(s.to_string()),
            _ => Err(err(format!("{method}: wants one string argument ({what})"))),
        }
    };
    match method {
        "Get" => Ok(s(files
            .get(&one("path")?)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default())),
        "GetBytes" => Ok(Value::List(
            files
                .get(&one("path")?)
                .map(|b| {
                    b.iter()
                        .map(|x| Value::Int(i64::from(*x)))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
                .into(),
        )),
        "Lines" => {
            let text = files
                .get(&one("path")?)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            if text.is_empty() {
                return Ok(Value::List(Vec::new().into()));
            }
            let text = text.strip_suffix('\n').unwrap_or(&text);
            Ok(Value::List(
                text.split('\n').map(s).collect::<Vec<_>>().into(),
            ))
        }
        "Glob" => {
            let pattern = one("pattern")?;
            let p =
                glob::Pattern::new(&pattern).map_err(|e| err(format!("Glob {pattern:?}: {e}")))?;
            let opts = glob::MatchOptions {
                case_sensitive: true,
                require_literal_separator: true,
                require_literal_leading_dot: false,
            };
            let matched: BTreeMap<String, Vec<u8>> = files
                .iter()
                .filter(|(k, _)| p.matches_with(k, opts) || double_star(&pattern, k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Ok(ctx.files_object(Arc::new(matched)))
        }
        "AsConfig" | "AsSecrets" => {
            if !args.is_empty() {
                return Err(err(format!("{method} takes no arguments")));
            }
            let mut out = serde_json::Map::new();
            for (k, v) in files {
                let base = k.rsplit('/').next().unwrap_or(k).to_string();
                let val = if method == "AsSecrets" {
                    base64::engine::general_purpose::STANDARD.encode(v)
                } else {
                    String::from_utf8_lossy(v).into_owned()
                };
                out.insert(base, serde_json::Value::String(val));
            }
            if out.is_empty() {
                return Ok(s(""));
            }
            Ok(s(crate::goyaml::to_yaml(&crate::value::from_json(
                &serde_json::Value::Object(out),
            ))))
        }
        other => Err(err(format!("can't call method {other} on Files"))),
    }
}

/// gobwas/glob as Helm uses it: `**` crosses folders.
fn double_star(pattern: &str, path: &str) -> bool {
    if !pattern.contains("**") {
        return false;
    }
    glob::Pattern::new(pattern)
        .map(|p| {
            p.matches_with(
                path,
                glob::MatchOptions {
                    case_sensitive: true,
                    require_literal_separator: false,
                    require_literal_leading_dot: false,
                },
            )
        })
        .unwrap_or(false)
}

/// The functions that need the render's context.
fn context_funcs(ctx: &Arc<Ctx>, strict: bool) -> BTreeMap<String, ValueFunc> {
    let mut m: BTreeMap<String, ValueFunc> = BTreeMap::new();
    let c = Arc::clone(ctx);
    m.insert(
        "include".into(),
        Arc::new(move |a: &[Value]| {
            let (name, data) = match a {
                [Value::String(n), d] => (n.to_string(), d.clone()),
                [Value::String(n)] => (n.to_string(), Value::Nil),
                _ => return Err(err("include wants a template name and a value")),
            };
            {
                let mut depth = c.include_depth.lock().map_err(|_| err("lock"))?;
                let d = depth.entry(name.clone()).or_insert(0);
                if *d > 1000 {
                    return Err(err(format!(
                        "rendering template has a nested reference name: {name}: unable to execute template"
                    )));
                }
                *d += 1;
            }
            let out = c.nested(&name, |set, writer| {
                set.execute_template_fmt(writer, &name, &data)
            });
            if let Ok(mut depth) = c.include_depth.lock() {
                if let Some(d) = depth.get_mut(&name) {
                    *d -= 1;
                }
            }
            match out {
                Ok(text) => Ok(s(text)),
                Err(e) => Err(err(format!("error calling include: {}", e))),
            }
        }),
    );
    let c = Arc::clone(ctx);
    m.insert(
        "tpl".into(),
        Arc::new(move |a: &[Value]| {
            let (text, data) = match a {
                [Value::String(t), d] => (t.to_string(), d.clone()),
                [other, _] => {
                    return Err(err(format!(
                        "error calling tpl: wrong type for value; expected string; got {}",
                        go_type(other)
                    )))
                }
                _ => return Err(err("tpl wants a template text and a value")),
            };
            let name = data
                .field("Template")
                .and_then(|t| t.field("Name"))
                .map(|n| strval(&n))
                .unwrap_or_else(|| "tpl".to_string());
            let set = (*c.template_set()?).clone();
            let set = add_source(set, &name, &text, &c.funcs)
                .map_err(|e| err(format!("cannot parse template {text:?}: {e}")))?;
            let set = Arc::new(set);
            let out = c
                .nested_in(&set, &name, |set, writer| {
                    set.execute_template_fmt(writer, &name, &data)
                })
                .map_err(|e| {
                    err(format!(
                        "error during tpl function execution for {text:?}: {e}"
                    ))
                })?;
            Ok(s(out.replace("<no value>", "")))
        }),
    );
    let c = Arc::clone(ctx);
    m.insert(
        "__method".into(),
        Arc::new(move |a: &[Value]| {
            let [recv, Value::String(method), args @ ..] = a else {
                return Err(err("__method: bad call"));
            };
            if let Some(key) = c.kind_of(recv) {
                let objects = c.objects.lock().map_err(|_| err("lock"))?;
                if let Some((kind, _)) = objects.get(&key) {
                    match kind {
                        Kind::Files(files) => {
                            let files = Arc::clone(files);
                            drop(objects);
                            return files_method(&files, &c, method, args);
                        }
                        Kind::ApiVersions => {
                            if &**method == "Has" {
                                let [Value::String(want)] = args else {
                                    return Err(err("Has wants one string argument"));
                                };
                                let Value::List(l) = recv else {
                                    return Ok(Value::Bool(false));
                                };
                                return Ok(Value::Bool(
                                    l.iter().any(|v| v.as_str() == Some(&**want)),
                                ));
                            }
                        }
                    }
                }
            }
            // Not an object with methods: a field, as Go reads it.
            if !args.is_empty() {
                return Err(err(format!("{method} is not a method but has arguments")));
            }
            match recv {
                Value::Map(m) => Ok(m.get(method).unwrap_or(Value::Nil)),
                Value::Nil => Ok(Value::Nil),
                other => Err(err(format!(
                    "can't evaluate field {method} in type {}",
                    go_type(other)
                ))),
            }
        }),
    );
    m.insert(
        "__required".into(),
        Arc::new(move |a: &[Value]| {
            let [Value::String(at), Value::String(msg), val] = a else {
                return Err(err("required wants a message and a value"));
            };
            let missing = match val {
                Value::Nil => true,
                Value::String(s) => s.is_empty(),
                _ => false,
            };
            if missing && !strict {
                return Err(err(format!("execution error at ({at}): {msg}")));
            }
            Ok(val.clone())
        }),
    );
    m.insert(
        "__fail".into(),
        Arc::new(move |a: &[Value]| {
            let [Value::String(at), msg] = a else {
                return Err(err("fail wants a message"));
            };
            Err(err(format!("execution error at ({at}): {}", strval(msg))))
        }),
    );
    // Offline (as `helm template`): an empty map; with a cluster, what it answers.
    let c = Arc::clone(ctx);
    m.insert(
        "lookup".into(),
        Arc::new(move |a: &[Value]| {
            let Some(lookup) = &c.lookup else {
                return Ok(Value::Map(MapRef::new(BTreeMap::new())));
            };
            let [api_version, kind, namespace, name] = a else {
                return Err(err("lookup wants apiVersion, kind, namespace and name"));
            };
            Ok(crate::value::from_json(&(lookup.0)(
                &strval(api_version),
                &strval(kind),
                &strval(namespace),
                &strval(name),
            )))
        }),
    );
    m
}

/// Go's text/template builtins.
const GO_BUILTINS: &[&str] = &[
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];

/// All the functions a chart sees (Sprig, Helm's, the context ones).
pub fn function_names() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = GO_BUILTINS.iter().map(|s| s.to_string()).collect();
    names.extend(sprig().into_keys());
    for n in [
        "include",
        "tpl",
        "__method",
        "__required",
        "__fail",
        "lookup",
        "required",
        "fail",
    ] {
        names.insert(n.to_string());
    }
    names
}

fn scope<'a>(
    chart: &'a Chart,
    name: String,
    full_path: String,
    mut values: Table,
    top: &Table,
) -> Result<Scoped<'a>, Error> {
    coalesce(&mut values, &strip_nulls(&chart.values));
    let mut subs = Vec::new();
    let mut declared = BTreeSet::new();
    for dep in &chart.metadata.dependencies {
        declared.insert(dep.name.clone());
        let Some(sub) = chart.subcharts.iter().find(|c| c.name() == dep.name) else {
            return Err(Error::Chart(format!(
                "{full_path}: dependency {:?} is in Chart.yaml but missing in charts/",
                dep.name
            )));
        };
        let sub_name = if dep.alias.is_empty() {
            dep.name.clone()
        } else {
            dep.alias.clone()
        };
        if !enabled(dep, &values, top) {
            continue;
        }
        subs.push((sub, sub_name));
    }
    for sub in &chart.subcharts {
        if !declared.contains(sub.name()) {
            subs.push((sub, sub.name().to_string()));
        }
    }
    // import-values (Helm's processImportValues): tables of a subchart's defaults copied into
    // the parent's values, below the parent's own defaults and the user's values.
    let mut imported = Table::new();
    for dep in &chart.metadata.dependencies {
        let key = if dep.alias.is_empty() {
            &dep.name
        } else {
            &dep.alias
        };
        let Some((sub, _)) = subs.iter().find(|(_, n)| n == key) else {
            continue;
        };
        let mut child_defaults = match chart.values.get(key.as_str()) {
            Some(Value::Map(m)) => m.snapshot(),
            _ => Table::new(),
        };
        coalesce(&mut child_defaults, &strip_nulls(&sub.values));
        for (child, parent) in dep.import_values().into_iter().flatten() {
            let Some(Value::Map(table)) = path_value(&child_defaults, &child) else {
                continue;
            };
            let mut at = Value::Map(MapRef::new(table.snapshot()));
            for part in parent
                .split('.')
                .filter(|p| !p.is_empty() && *p != ".")
                .rev()
            {
                at = Value::Map(MapRef::new(BTreeMap::from([(Arc::from(part), at)])));
            }
            if let Value::Map(m) = at {
                coalesce(&mut imported, &m.snapshot());
            }
        }
    }
    if !imported.is_empty() {
        coalesce(&mut values, &imported);
    }

    let mut scoped_subs = Vec::new();
    for (sub, sub_name) in subs {
        let mut sub_vals = match values.get(sub_name.as_str()) {
            Some(Value::Map(m)) => m.snapshot(),
            _ => Table::new(),
        };
        coalesce_globals(&mut sub_vals, &values);
        let scoped = scope(
            sub,
            sub_name.clone(),
            format!("{full_path}/charts/{sub_name}"),
            sub_vals,
            top,
        )?;
        values.insert(
            sub_name.as_str().into(),
            Value::Map(MapRef::new(scoped.values.clone())),
        );
        scoped_subs.push(scoped);
    }
    // What is left of the users' nulls (they met no default) is dropped.
    let values = strip_nulls(&values);
    Ok(Scoped {
        chart,
        name,
        full_path,
        values,
        subs: scoped_subs,
    })
}

/// Helm's condition/tags rule: the first condition path that is a bool decides; otherwise
/// any tag set true enables, all tags false disables; otherwise enabled.
fn enabled(dep: &crate::chart::Dependency, parent_values: &Table, top: &Table) -> bool {
    for path in dep
        .condition
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        if let Some(Value::Bool(b)) = path_value(parent_values, path) {
            return b;
        }
    }
    if !dep.tags.is_empty() {
        let tags = top.get("tags");
        let mut any_set = false;
        for t in &dep.tags {
            if let Some(Value::Bool(b)) = tags.and_then(|tg| tg.field(t)) {
                if b {
                    return true;
                }
                any_set = true;
            }
        }
        if any_set {
            return false;
        }
    }
    dep.enabled.unwrap_or(true)
}

fn chart_object(chart: &Chart, name: &str, is_root: bool) -> Value {
    let md = &chart.metadata;
    let strs =
        |v: &[String]| Value::List(v.iter().map(|x| s(x.as_str())).collect::<Vec<_>>().into());
    let deps = md
        .dependencies
        .iter()
        .map(|d| {
            map([
                ("Name", s(d.name.as_str())),
                ("Version", s(d.version.as_str())),
                ("Repository", s(d.repository.as_str())),
                ("Condition", s(d.condition.as_str())),
                ("Tags", strs(&d.tags)),
                ("Enabled", Value::Bool(d.enabled.unwrap_or(false))),
                ("ImportValues", Value::Nil),
                ("Alias", s(d.alias.as_str())),
            ])
        })
        .collect::<Vec<_>>();
    let maint = md
        .maintainers
        .iter()
        .map(|m| {
            map([
                ("Name", s(m.name.as_str())),
                ("Email", s(m.email.as_str())),
                ("URL", s(m.url.as_str())),
            ])
        })
        .collect::<Vec<_>>();
    map([
        ("Name", s(name)),
        ("Home", s(md.home.as_str())),
        ("Sources", strs(&md.sources)),
        ("Version", s(md.version.as_str())),
        ("Description", s(md.description.as_str())),
        ("Keywords", strs(&md.keywords)),
        ("Maintainers", Value::List(maint.into())),
        ("Icon", s(md.icon.as_str())),
        ("APIVersion", s(md.api_version.as_str())),
        ("Condition", s(md.condition.as_str())),
        ("Tags", s(md.tags.as_str())),
        ("AppVersion", s(md.app_version())),
        ("Deprecated", Value::Bool(md.deprecated)),
        (
            "Annotations",
            map(md
                .annotations
                .iter()
                .map(|(k, v)| (k.as_str(), s(v.as_str())))),
        ),
        ("KubeVersion", s(md.kube_version.as_str())),
        ("Dependencies", Value::List(deps.into())),
        ("Type", s(md.chart_type.as_str())),
        ("IsRoot", Value::Bool(is_root)),
    ])
}

struct Job {
    name: String,
    base_path: String,
    src: String,
    /// The chart's data map, shared by its templates (as in Helm, a change one template
    /// makes to it, or to `.Values`, is seen by the templates rendered after it).
    data: MapRef,
    partial: bool,
}

fn collect(
    sc: &Scoped<'_>,
    values: MapRef,
    ctx: &Ctx,
    release: &Value,
    caps: &Value,
    is_root: bool,
    jobs: &mut Vec<Job>,
) -> Value {
    let mut subcharts = BTreeMap::new();
    for sub in &sc.subs {
        // The subchart's .Values is the very map under its name in the parent's values.
        let sub_values = match values.get(&sub.name) {
            Some(Value::Map(m)) => m,
            _ => {
                let m = MapRef::default();
                values
                    .write()
                    .insert(sub.name.as_str().into(), Value::Map(m.clone()));
                m
            }
        };
        let v = collect(sub, sub_values, ctx, release, caps, false, jobs);
        subcharts.insert(Arc::from(sub.name.as_str()), v);
    }
    let files = ctx.files_object(Arc::new(sc.chart.files.clone()));
    let data = MapRef::new(
        [
            ("Chart", chart_object(sc.chart, &sc.name, is_root)),
            ("Files", files),
            ("Release", release.clone()),
            ("Capabilities", caps.clone()),
            ("Values", Value::Map(values)),
            ("Subcharts", Value::Map(MapRef::new(subcharts))),
        ]
        .into_iter()
        .map(|(k, v)| (Arc::from(k), v))
        .collect(),
    );
    let base_path = format!("{}/templates", sc.full_path);
    for (rel, src) in &sc.chart.templates {
        let name = format!("{}/{}", sc.full_path, rel);
        let base = name.rsplit('/').next().unwrap_or(&name);
        let partial = base.starts_with('_');
        if sc.chart.is_library() && !partial {
            continue;
        }
        jobs.push(Job {
            name,
            base_path: base_path.clone(),
            src: src.clone(),
            data: data.clone(),
            partial,
        });
    }
    Value::Map(data)
}

/// Every enabled chart's values against its `values.schema.json`, as Helm checks them before
/// rendering; all violations of all charts in one error.
fn check_schemas(scoped: &Scoped) -> Result<(), Error> {
    fn walk(s: &Scoped, out: &mut Vec<String>) {
        let v = crate::schema::violations(s.chart, &s.values);
        if !v.is_empty() {
            out.push(format!("{}:\n{}", s.chart.name(), v.join("\n")));
        }
        for sub in &s.subs {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(scoped, &mut out);
    if out.is_empty() {
        return Ok(());
    }
    Err(Error::Values(format!(
        "values don't meet the specifications of the schema(s) in the following chart(s):\n{}",
        out.join("\n")
    )))
}

/// Render a chart with user values (already merged from `-f` and `--set`).
pub fn render(
    chart: &Chart,
    user_values: Table,
    opts: &RenderOptions,
) -> Result<Vec<Rendered>, Error> {
    let top = user_values.clone();
    let scoped = scope(
        chart,
        chart.name().to_string(),
        chart.name().to_string(),
        user_values,
        &top,
    )?;
    check_schemas(&scoped)?;

    let ctx = Arc::new(Ctx {
        set: Mutex::new(None),
        objects: Mutex::new(HashMap::new()),
        include_depth: Mutex::new(HashMap::new()),
        funcs: function_names(),
        lookup: opts.lookup.clone(),
        budget: Budget::new(),
    });
    let kv = opts.kube_version.trim_start_matches('v');
    let mut parts = kv.split('.');
    let major = parts.next().unwrap_or("1").to_string();
    let minor = parts.next().unwrap_or("0").to_string();
    let api = ctx.register(
        Value::List(
            opts.api_versions
                .iter()
                .map(|v| s(v.as_str()))
                .collect::<Vec<_>>()
                .into(),
        ),
        Kind::ApiVersions,
    );
    let caps = map([
        (
            "KubeVersion",
            map([
                ("Version", s(opts.kube_version.as_str())),
                ("GitVersion", s(opts.kube_version.as_str())),
                ("Major", s(major)),
                ("Minor", s(minor)),
            ]),
        ),
        ("APIVersions", api),
        (
            "HelmVersion",
            map([
                ("Version", s("v3.16.0")),
                ("GitCommit", s("")),
                ("GitTreeState", s("")),
                ("GoVersion", s("")),
            ]),
        ),
    ]);
    let release = map([
        ("Name", s(opts.release_name.as_str())),
        ("Namespace", s(opts.namespace.as_str())),
        ("IsUpgrade", Value::Bool(opts.is_upgrade)),
        ("IsInstall", Value::Bool(!opts.is_upgrade)),
        ("Revision", Value::Int(opts.revision)),
        ("Service", s("Helm")),
    ]);
    let mut jobs = Vec::new();
    let root_values = match crate::value::deep_copy(&Value::Map(MapRef::new(scoped.values.clone())))
    {
        Value::Map(m) => m,
        _ => MapRef::default(),
    };
    collect(&scoped, root_values, &ctx, &release, &caps, true, &mut jobs);

    // Helm's order: deepest paths first, then reverse by name, so a parent's define wins.
    jobs.sort_by(|a, b| {
        let (ca, cb) = (a.name.matches('/').count(), b.name.matches('/').count());
        cb.cmp(&ca).then_with(|| b.name.cmp(&a.name))
    });

    let mut funcs = sprig();
    funcs.extend(context_funcs(&ctx, false));
    let mut set = Template::new("gotpl")
        .missing_key(MissingKey::ZeroValue)
        .max_range_iters(MAX_RANGE_ITERATIONS)
        .funcs(funcs);
    for job in &jobs {
        set = add_source(set, &job.name, &job.src, &ctx.funcs)?;
    }
    if let Ok(mut cell) = ctx.set.lock() {
        *cell = Some(Arc::new(set.clone()));
    }

    let mut out = Vec::new();
    let mut result = Ok(());
    let mut output_bytes = 0usize;
    for job in &jobs {
        if job.partial {
            continue;
        }
        job.data.write().insert(
            "Template".into(),
            map([
                ("Name", s(job.name.as_str())),
                ("BasePath", s(job.base_path.as_str())),
            ]),
        );
        let mut writer = BoundedWriter::new(
            &ctx.budget,
            &job.name,
            MAX_OUTPUT_BYTES - output_bytes,
            "the rendered output of the chart",
        );
        match set.execute_template_fmt(&mut writer, &job.name, &Value::Map(job.data.clone())) {
            Ok(()) => {
                output_bytes += writer.text.len();
                out.push(Rendered {
                    name: job.name.clone(),
                    text: writer.text.replace("<no value>", ""),
                })
            }
            Err(e) => {
                result = Err(Error::Render {
                    template: job.name.clone(),
                    // A bound hit is the reason, whatever gotmpl made of it.
                    message: ctx
                        .budget
                        .exceeded()
                        .unwrap_or_else(|| clean_error(&e.to_string())),
                });
                break;
            }
        }
    }
    // Break the set ↔ functions cycle so the render's memory is freed.
    if let Ok(mut cell) = ctx.set.lock() {
        *cell = None;
    }
    if let Ok(mut o) = ctx.objects.lock() {
        o.clear();
    }
    result?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// gotmpl wraps a function's error as "execution error: ..." at each level; keep one.
fn clean_error(msg: &str) -> String {
    let mut m = msg.to_string();
    while let Some(rest) = m.strip_prefix("execution error: ") {
        m = rest.to_string();
    }
    m.replace("execution error: execution error at", "execution error at")
}

/// Parse and execute one template text on `data`, outside a chart (the ground-truth tests
/// run the upstream cases this way). With `helm_funcs`, Sprig's and Helm's functions are
/// there; `extra` adds (or replaces) functions. Missing keys print `<no value>`, as in a
/// plain Go template.
pub fn render_string(
    src: &str,
    data: &Value,
    extra: BTreeMap<String, ValueFunc>,
    helm_funcs: bool,
) -> Result<String, Error> {
    let mut funcs = BTreeMap::new();
    let mut names = function_names();
    if !helm_funcs {
        names.retain(|n| GO_BUILTINS.contains(&n.as_str()));
    }
    names.extend(extra.keys().cloned());
    let ctx = Arc::new(Ctx {
        set: Mutex::new(None),
        objects: Mutex::new(HashMap::new()),
        include_depth: Mutex::new(HashMap::new()),
        funcs: names,
        lookup: None,
        budget: Budget::new(),
    });
    if helm_funcs {
        funcs.extend(sprig());
        funcs.extend(context_funcs(&ctx, false));
    }
    funcs.extend(extra);
    let set = Template::new("test")
        .max_range_iters(MAX_RANGE_ITERATIONS)
        .funcs(funcs);
    let set = add_source(set, "test", src, &ctx.funcs)?;
    if let Ok(mut cell) = ctx.set.lock() {
        *cell = Some(Arc::new(set.clone()));
    }
    let mut writer =
        BoundedWriter::new(&ctx.budget, "test", MAX_OUTPUT_BYTES, "the rendered output");
    let out = set
        .execute_template_fmt(&mut writer, "test", data)
        .map(|()| std::mem::take(&mut writer.text))
        .map_err(|e| Error::Render {
            template: "test".into(),
            message: ctx
                .budget
                .exceeded()
                .unwrap_or_else(|| clean_error(&e.to_string())),
        });
    if let Ok(mut cell) = ctx.set.lock() {
        *cell = None;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::from_files;

    fn chart(files: &[(&str, &str)]) -> Chart {
        let mut m: BTreeMap<String, Vec<u8>> = files
            .iter()
            .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
            .collect();
        m.entry("Chart.yaml".into())
            .or_insert_with(|| b"apiVersion: v2\nname: c\nversion: 0.1.0\n".to_vec());
        from_files(m, "test").unwrap()
    }

    fn render_one(files: &[(&str, &str)], values: &str) -> Result<String, Error> {
        let c = chart(files);
        let v = crate::values::parse_values(values, "values").unwrap();
        let out = render(&c, v, &RenderOptions::default())?;
        Ok(out
            .into_iter()
            .find(|r| r.name == "c/templates/t.yaml")
            .map(|r| r.text)
            .unwrap_or_default())
    }

    #[test]
    fn values_are_float64_and_print_as_go() {
        let out = render_one(
            &[(
                "templates/t.yaml",
                "{{ .Values.big }} {{ .Values.n }} {{ .Values.n | int }} {{ toYaml .Values.big }}",
            )],
            "big: 1000000\nn: 3\n",
        )
        .unwrap();
        assert_eq!(out, "1e+06 3 3 1000000");
    }

    #[test]
    fn set_changes_values_for_later_includes_and_templates() {
        let files = [
            ("templates/_h.tpl", "{{- define \"h\" -}}{{ .Values.extra }}{{- end -}}"),
            ("templates/a.yaml", "{{- $_ := set .Values \"extra\" \"from-a\" -}}"),
            ("templates/t.yaml", "{{ include \"h\" . }}|{{ $_ := mergeOverwrite .Values (dict \"x\" 2) }}{{ .Values.x }}"),
        ];
        // a.yaml renders before t.yaml (same depth, later name first: Helm's order is by
        // reverse name), so t.yaml does not see "from-a"; its own merge is seen at once.
        assert_eq!(render_one(&files, "x: 1\n").unwrap(), "|2");
    }

    #[test]
    fn files_and_capabilities_methods() {
        let files = [
            ("files/a.conf", "A=1\n"),
            ("files/b.conf", "B=2\n"),
            (
                "templates/t.yaml",
                "{{ .Files.Get \"files/a.conf\" | trim }}|{{ range $p, $_ := .Files.Glob \"files/*.conf\" }}{{ $p }},{{ end }}|{{ (.Files.Glob \"files/b.conf\").AsConfig }}|{{ (.Files.Glob \"files/a.conf\").AsSecrets }}|{{ .Files.Lines \"files/a.conf\" }}|{{ .Capabilities.APIVersions.Has \"apps/v1\" }} {{ .Capabilities.APIVersions.Has \"nope/v1\" }}",
            ),
        ];
        assert_eq!(
            render_one(&files, "").unwrap(),
            "A=1|files/a.conf,files/b.conf,|b.conf: |\n  B=2|a.conf: QT0xCg==|[A=1]|true false"
        );
    }

    #[test]
    fn required_fail_and_tpl() {
        let files = [(
            "templates/t.yaml",
            "a: {{ tpl .Values.t . }}\nb: {{ required \"b is required\" .Values.b }}",
        )];
        let err = render_one(&files, "t: \"{{ .Release.Name }}\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("execution error at (c/templates/t.yaml:2:7): b is required"),
            "{err}"
        );
        assert_eq!(
            render_one(&files, "t: \"{{ .Release.Name }}\"\nb: x\n").unwrap(),
            "a: release-name\nb: x"
        );
        let fail = [("templates/t.yaml", "{{ fail \"stop here\" }}")];
        let err = render_one(&fail, "").unwrap_err().to_string();
        assert!(
            err.contains("execution error at (c/templates/t.yaml:1:4): stop here"),
            "{err}"
        );
    }

    /// Renders a hostile template on a thread with a 2 MiB stack (a tokio blocking thread's
    /// size): the error, and how long it took.
    fn hostile(template: &'static str) -> (String, std::time::Duration) {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let started = std::time::Instant::now();
                let e = render_one(&[("templates/t.yaml", template)], "").unwrap_err();
                (e.to_string(), started.elapsed())
            })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn recursive_include_is_refused_by_the_nesting_bound() {
        let (e, took) =
            hostile(r#"{{- define "r" -}}x{{ include "r" . }}{{- end -}}{{ include "r" . }}"#);
        assert!(
            e.contains("nested more than 100 levels") && e.contains("c/templates/t.yaml"),
            "{e}"
        );
        assert!(took.as_secs() < 5, "{took:?}");
    }

    #[test]
    fn huge_sequences_and_strings_are_refused_before_allocating() {
        for (t, bound) in [
            (
                "{{ range until 100000000 }}x{{ end }}",
                "until: it would produce 100000000 items",
            ),
            (
                "{{ untilStep 0 1000000000 1 | len }}",
                "untilStep: it would produce",
            ),
            ("{{ seq 1 1000000000 }}", "seq: it would produce"),
            (
                "{{ repeat 1000000000 \"abc\" }}",
                "repeat: the result would be 3000000000 bytes",
            ),
            (
                "{{ randAlphaNum 1000000000 }}",
                "randAlphaNum: the result would be",
            ),
            (
                "{{ \"a\\nb\" | indent 1000000000 }}",
                "indent: the result would be",
            ),
        ] {
            let (e, took) = hostile(t);
            assert!(e.contains(bound), "{t}: {e}");
            assert!(took.as_secs() < 2, "{t}: {took:?}");
        }
        // Under the bounds, the same functions work as before.
        let out = render_one(&[("templates/t.yaml", "{{ until 3 }} {{ seq 3 }} {{ repeat 2 \"ab\" }} {{ untilStep 0 10 3 }} {{ seq 5 -2 1 }}")], "").unwrap();
        assert_eq!(out, "[0 1 2] 1 2 3 abab [0 3 6 9] 5 3 1");
    }

    #[test]
    fn output_bound_names_the_template() {
        // 40 × 1 MiB: every string is under the bounds, the whole output is not.
        let (e, took) =
            hostile(r#"{{ $s := repeat 1048576 "x" }}{{ range until 40 }}{{ $s }}{{ end }}"#);
        assert!(
            e.contains("the rendered output of the chart would exceed 32 MiB")
                && e.contains("c/templates/t.yaml"),
            "{e}"
        );
        assert!(took.as_secs() < 5, "{took:?}");
    }

    #[test]
    fn range_iterations_are_bounded() {
        let (e, took) =
            hostile("{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}");
        assert!(e.to_lowercase().contains("range"), "{e}");
        assert!(took.as_secs() < 20, "{took:?}");
    }
}
