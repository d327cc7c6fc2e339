//! Ground truth for the renderer: the expected-output tables of Go's text/template
//! (exec_test.go's execTests), Sprig's function tests and Helm's engine function tests,
//! carried over as data in tests/data/ (with their provenance), run through skiff-helm.
//!
//! Every case is run; the pass counts are printed. A case listed in
//! tests/data/known-failures.txt (with the reason) may fail; any other failing case fails
//! this test, and so does a listed case that now passes (so the list stays exact).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gotmpl::{MapRef, TemplateError, Value, ValueFunc};
use skiff_helm::engine::render_string;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(MapRef::new(
        pairs.into_iter().map(|(k, v)| (Arc::from(k), v)).collect(),
    ))
}

fn ints(v: &[i64]) -> Value {
    Value::List(v.iter().map(|i| Value::Int(*i)).collect::<Vec<_>>().into())
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn func(f: impl Fn(&[Value]) -> Result<Value, TemplateError> + Send + Sync + 'static) -> Value {
    Value::Function(Arc::new(f))
}

fn err(m: &str) -> TemplateError {
    TemplateError::Exec(m.into())
}

fn strings(args: &[Value]) -> Result<Vec<&str>, TemplateError> {
    args.iter()
        .map(|a| {
            a.as_str()
                .ok_or_else(|| err("wrong type for value; expected string"))
        })
        .collect()
}

/// The test's `tVal`, as far as template data can hold it: fields and maps with string keys,
/// func-typed fields as function values. Go methods, Stringers, complex numbers, maps with
/// integer keys and unsafe pointers cannot be represented and are left out.
fn t_val() -> Value {
    map(vec![
        ("True", Value::Bool(true)),
        ("I", Value::Int(17)),
        ("U16", Value::Uint(16)),
        ("X", s("x")),
        ("S", s("xyz")),
        ("FloatZero", Value::Float(0.0)),
        ("U", map(vec![("V", s("v"))])),
        ("SI", ints(&[3, 4, 5])),
        ("SIEmpty", ints(&[])),
        ("SICap", ints(&[0, 0, 0, 0, 0])),
        ("AI", ints(&[3, 4, 5])),
        (
            "SB",
            Value::List(vec![Value::Bool(true), Value::Bool(false)].into()),
        ),
        (
            "MSI",
            map(vec![
                ("one", Value::Int(1)),
                ("two", Value::Int(2)),
                ("three", Value::Int(3)),
            ]),
        ),
        ("MSIone", map(vec![("one", Value::Int(1))])),
        ("MSIEmpty", map(vec![])),
        ("MXI", map(vec![("one", Value::Int(1))])),
        (
            "SMSI",
            Value::List(
                vec![
                    map(vec![("one", Value::Int(1)), ("two", Value::Int(2))]),
                    map(vec![("eleven", Value::Int(11)), ("twelve", Value::Int(12))]),
                ]
                .into(),
            ),
        ),
        ("Empty0", Value::Nil),
        ("Empty1", Value::Int(3)),
        ("Empty2", s("empty2")),
        ("Empty3", ints(&[7, 8])),
        ("Empty4", map(vec![("V", s("UinEmpty"))])),
        ("NonEmptyInterface", map(vec![("X", s("x"))])),
        ("PI", Value::Int(23)),
        ("PS", s("a string")),
        ("PSI", ints(&[21, 22, 23])),
        ("NIL", Value::Nil),
        (
            "BinaryFunc",
            func(|a| {
                let v = strings(a)?;
                if v.len() != 2 {
                    return Err(err("wrong number of args: want 2"));
                }
                Ok(s(&format!("[{}={}]", v[0], v[1])))
            }),
        ),
        (
            "VariadicFunc",
            func(|a| Ok(s(&format!("<{}>", strings(a)?.join("+"))))),
        ),
        (
            "VariadicFuncInt",
            func(|a| {
                let Some(Value::Int(n)) = a.first() else {
                    return Err(err("wrong type for value; expected int"));
                };
                Ok(s(&format!("{n}=<{}>", strings(&a[1..])?.join("+"))))
            }),
        ),
        (
            "NilOKFunc",
            func(|a| match a {
                [v] => Ok(Value::Bool(matches!(v, Value::Nil))),
                _ => Err(err("wrong number of args: want 1")),
            }),
        ),
        ("ErrFunc", func(|_| Ok(s("bla")))),
    ])
}

/// The test's helper functions (exec_test.go's testExecute FuncMap) that template data can
/// express.
fn go_test_funcs() -> BTreeMap<String, ValueFunc> {
    let mut m: BTreeMap<String, ValueFunc> = BTreeMap::new();
    m.insert(
        "add".into(),
        Arc::new(|a: &[Value]| {
            let mut sum = 0;
            for v in a {
                sum += v
                    .as_int()
                    .ok_or_else(|| err("wrong type for value; expected int"))?;
            }
            Ok(Value::Int(sum))
        }),
    );
    m.insert("die".into(), Arc::new(|_: &[Value]| Err(err("die"))));
    m.insert(
        "echo".into(),
        Arc::new(|a: &[Value]| Ok(a.first().cloned().unwrap_or(Value::Nil))),
    );
    m.insert(
        "makemap".into(),
        Arc::new(|a: &[Value]| {
            let v = strings(a)?;
            Ok(Value::Map(MapRef::new(
                v.chunks(2)
                    .map(|p| (Arc::from(p[0]), s(p.get(1).copied().unwrap_or(""))))
                    .collect(),
            )))
        }),
    );
    m.insert(
        "mapOfThree".into(),
        Arc::new(|_: &[Value]| Ok(map(vec![("three", Value::Int(3))]))),
    );
    m.insert(
        "oneArg".into(),
        Arc::new(|a: &[Value]| match strings(a)?.as_slice() {
            [x] => Ok(s(&format!("oneArg={x}"))),
            _ => Err(err("wrong number of args: want 1")),
        }),
    );
    m.insert(
        "twoArgs".into(),
        Arc::new(|a: &[Value]| match strings(a)?.as_slice() {
            [x, y] => Ok(s(&format!("twoArgs={x}{y}"))),
            _ => Err(err("wrong number of args: want 2")),
        }),
    );
    m.insert("zeroArgs".into(), Arc::new(|_: &[Value]| Ok(s("zeroArgs"))));
    m.insert(
        "returnInt".into(),
        Arc::new(|_: &[Value]| Ok(Value::Int(7))),
    );
    m.insert(
        "valueString".into(),
        Arc::new(|a: &[Value]| match strings(a)?.as_slice() {
            [_] => Ok(s("value is ignored")),
            _ => Err(err("wrong number of args: want 1")),
        }),
    );
    m.insert(
        "typeOf".into(),
        Arc::new(|a: &[Value]| Ok(s(skiff_helm::funcs::go_type(&a[0])))),
    );
    m.insert(
        "dddArg".into(),
        Arc::new(|a: &[Value]| {
            let Some(Value::Int(n)) = a.first() else {
                return Err(err("wrong type for value; expected int"));
            };
            Ok(s(&format!("{n} [{}]\n", strings(&a[1..])?.join(" "))))
        }),
    );
    m
}

/// Decode one Go string literal at the start of `t`: (value, rest).
fn go_literal(t: &str) -> Option<(String, &str)> {
    let t = t.trim_start();
    if let Some(r) = t.strip_prefix('`') {
        let end = r.find('`')?;
        return Some((r[..end].to_string(), &r[end + 1..]));
    }
    let r = t.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = r.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &r[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            c => out.push(c),
        }
    }
    None
}

/// A case's data token as a template value (None: a Go value data cannot express).
fn go_data(token: &str) -> Option<Value> {
    let t = token.trim();
    Some(match t {
        "nil" => Value::Nil,
        "tVal" => t_val(),
        "T{}" => map(vec![]),
        "true" => Value::Bool(true),
        "uint(14)" => Value::Uint(14),
        "15.1" => Value::Float(15.1),
        "[]int{-1, -2, -3}" => ints(&[-1, -2, -3]),
        "map[string]int{\"two\": 22}" => map(vec![("two", Value::Int(22))]),
        "map[string]string{\"cause\": \"neglect\"}" => map(vec![("cause", s("neglect"))]),
        "'.'" => Value::Int('.' as i64),
        "'e'" => Value::Int('e' as i64),
        "'P'" => Value::Int('P' as i64),
        "uintptr(0)" => Value::Uint(0),
        _ if t.starts_with('"') || t.starts_with('`') => s(&go_literal(t)?.0),
        _ => Value::Int(t.parse().ok()?),
    })
}

struct Outcome {
    suite: &'static str,
    id: String,
    passed: bool,
    detail: String,
}

fn go_exec_cases() -> Vec<Outcome> {
    let text = std::fs::read_to_string(format!("{DATA}/go-text-template-exec.txt")).unwrap();
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let body = line
            .trim_start_matches('{')
            .trim_end_matches(',')
            .trim_end_matches('}');
        let (name, rest) = go_literal(body).expect(line);
        let (input, rest) = go_literal(rest.trim_start_matches([',', ' '])).expect(line);
        let (output, rest) = go_literal(rest.trim_start_matches([',', ' '])).expect(line);
        let rest = rest.trim_start_matches([',', ' ']);
        let (data_token, ok) = rest.rsplit_once(',').expect(line);
        let ok = ok.trim() == "true";
        let n = seen.entry(name.clone()).or_default();
        *n += 1;
        let id = if *n > 1 {
            format!("{name} #{n}")
        } else {
            name.clone()
        };
        let Some(data) = go_data(data_token) else {
            out.push(Outcome {
                suite: "go",
                id,
                passed: false,
                detail: format!("data {data_token} not representable"),
            });
            continue;
        };
        let got = render_string(&input, &data, go_test_funcs(), false);
        let (passed, detail) = match (&got, ok) {
            (Ok(o), true) => (*o == output, format!("got {o:?}, want {output:?}")),
            (Err(e), true) => (false, format!("error {e}, want {output:?}")),
            (Ok(o), false) => (false, format!("got {o:?}, want an error")),
            (Err(_), false) => (true, String::new()),
        };
        out.push(Outcome {
            suite: "go",
            id,
            passed,
            detail,
        });
    }
    out
}

/// JSON test values as Go's: integers stay integers.
fn typed(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        J::String(x) => s(x),
        J::Array(a) => Value::List(a.iter().map(typed).collect::<Vec<_>>().into()),
        J::Object(m) => Value::Map(MapRef::new(
            m.iter()
                .map(|(k, v)| (Arc::from(k.as_str()), typed(v)))
                .collect(),
        )),
    }
}

fn json_cases(suite: &'static str, file: &str) -> Vec<Outcome> {
    let text = std::fs::read_to_string(format!("{DATA}/{file}")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for c in doc["cases"].as_array().unwrap() {
        let key = format!(
            "{}:{}",
            c["file"].as_str().unwrap(),
            c["test"].as_str().unwrap()
        );
        let n = seen.entry(key.clone()).or_default();
        *n += 1;
        let id = format!("{key} #{n}");
        let tpl = c["template"].as_str().unwrap();
        let want = c["expect"].as_str().unwrap();
        let data = match c.get("vars") {
            Some(v) if !v.is_null() => typed(v),
            _ => map(vec![]),
        };
        let got = render_string(tpl, &data, BTreeMap::new(), true);
        // Cases whose upstream test asserts an error (Sprig's `assert.Error(t, runt(...))`).
        // (`expect_error` in the Sprig cases, `error` in sprig-more-cases.json.)
        let want_error = c["expect_error"].as_bool().unwrap_or(false) || c["error"] == true;
        let (passed, detail) = match (&got, want_error) {
            (Ok(o), false) => (o == want, format!("{tpl}: got {o:?}, want {want:?}")),
            (Err(e), false) => (false, format!("{tpl}: error {e}, want {want:?}")),
            (Ok(o), true) => (false, format!("{tpl}: got {o:?}, want an error")),
            (Err(_), true) => (true, String::new()),
        };
        out.push(Outcome {
            suite,
            id,
            passed,
            detail,
        });
    }
    out
}

#[test]
fn upstream_expected_outputs() {
    let known_text = std::fs::read_to_string(format!("{DATA}/known-failures.txt")).unwrap();
    let known: BTreeSet<(String, String)> = known_text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut p = l.splitn(3, '\t');
            (
                p.next().unwrap().to_string(),
                p.next().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut all = go_exec_cases();
    all.extend(json_cases("sprig", "sprig-cases.json"));
    all.extend(json_cases("sprig", "sprig-more-cases.json"));
    all.extend(json_cases("helm", "helm-funcs-cases.json"));

    let mut unexpected = Vec::new();
    let mut stale = Vec::new();
    for suite in ["go", "sprig", "helm"] {
        let cases: Vec<&Outcome> = all.iter().filter(|o| o.suite == suite).collect();
        let passed = cases.iter().filter(|o| o.passed).count();
        println!(
            "{suite}: {passed} passed, {} failed of {} ({:.1}%)",
            cases.len() - passed,
            cases.len(),
            100.0 * passed as f64 / cases.len() as f64
        );
    }
    for o in &all {
        let listed = known.contains(&(o.suite.to_string(), o.id.clone()));
        if !o.passed && !listed {
            unexpected.push(format!("{}\t{}\t{}", o.suite, o.id, o.detail));
        }
        if o.passed && listed {
            stale.push(format!("{}\t{}", o.suite, o.id));
        }
    }
    let passed = all.iter().filter(|o| o.passed).count();
    println!("{passed} passed, {} failed", all.len() - passed);
    assert!(
        unexpected.is_empty(),
        "failing cases not in known-failures.txt:\n{}",
        unexpected.join("\n")
    );
    assert!(
        stale.is_empty(),
        "cases in known-failures.txt that now pass (remove them):\n{}",
        stale.join("\n")
    );
}
