//! Values as Helm computes them: user values files merged in order, `--set` on top (Helm's
//! strvals syntax), coalesced with the chart's defaults (`null` deletes a default), subchart
//! values under the subchart's name (or alias) with `global` copied down.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{MapRef, Value};

use crate::Error;

pub type Table = BTreeMap<Arc<str>, Value>;

/// Parse a values document (YAML; an empty document is an empty table).
pub fn parse_values(text: &str, origin: &str) -> Result<Table, Error> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| Error::Values(format!("{origin}: {e}")))?;
    match crate::value::from_yaml(&doc) {
        Value::Nil => Ok(Table::new()),
        Value::Map(m) => Ok(m.snapshot()),
        other => Err(Error::Values(format!(
            "{origin}: values must be a mapping, not a {}",
            other.type_name()
        ))),
    }
}

/// Deep-merge `src` into `dst`, `src` winning (how Helm merges `-f` files in order).
pub fn merge_into(dst: &mut Table, src: &Table) {
    for (k, sv) in src {
        match (dst.get_mut(k), sv) {
            (Some(Value::Map(dm)), Value::Map(sm)) => {
                let mut d = dm.snapshot();
                merge_into(&mut d, &sm.snapshot());
                *dm = MapRef::new(d);
            }
            _ => {
                dst.insert(k.clone(), sv.clone());
            }
        }
    }
}

/// Coalesce user values (`dst`) with chart defaults (`src`): a key missing from `dst` takes
/// the default, maps merge recursively, and a user `null` deletes the key (Helm's
/// coalesceTables). A `null` that meets no default stays (a subchart's defaults may be below
/// it); [`strip_nulls`] removes what is left once every level is coalesced.
pub fn coalesce(dst: &mut Table, src: &Table) {
    for (k, sv) in src {
        match dst.get_mut(k) {
            None => {
                dst.insert(k.clone(), sv.clone());
            }
            Some(Value::Nil) => {
                dst.remove(k);
            }
            Some(Value::Map(dm)) => {
                if let Value::Map(sm) = sv {
                    let mut d = dm.snapshot();
                    coalesce(&mut d, &sm.snapshot());
                    *dm = MapRef::new(d);
                }
            }
            Some(_) => {}
        }
    }
}

/// The table without its `null`s, at every depth. Chart defaults are stripped before they
/// are coalesced: a `null` in a chart's values.yaml does not delete a subchart's default
/// (Helm's behaviour since its issue 9027); only a user's `null` does.
pub fn strip_nulls(t: &Table) -> Table {
    t.iter()
        .filter(|(_, v)| !matches!(v, Value::Nil))
        .map(|(k, v)| {
            let v = match v {
                Value::Map(m) => Value::Map(MapRef::new(strip_nulls(&m.snapshot()))),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// Copy the parent's `global` into a subchart's values (parent scalars win; maps coalesce),
/// as Helm's coalesceGlobals.
pub fn coalesce_globals(sub: &mut Table, parent: &Table) {
    let Some(Value::Map(pg)) = parent.get("global") else {
        return;
    };
    let mut sg = match sub.get("global") {
        Some(Value::Map(m)) => m.snapshot(),
        _ => Table::new(),
    };
    for (k, pv) in pg.snapshot() {
        match (sg.get_mut(&k), &pv) {
            (Some(Value::Map(sm)), Value::Map(pm)) => {
                // The parent's global wins over the subchart's, at every depth.
                let mut p = pm.snapshot();
                coalesce(&mut p, &sm.snapshot());
                *sm = MapRef::new(p);
            }
            _ => {
                sg.insert(k, pv);
            }
        }
    }
    sub.insert("global".into(), Value::Map(MapRef::new(sg)));
}

/// Look up a dotted path (`a.b.c`) in a table, as Helm's `Values.PathValue`.
pub fn path_value(t: &Table, path: &str) -> Option<Value> {
    let mut parts = path.split('.');
    let mut cur = t.get(parts.next()?)?.clone();
    for p in parts {
        cur = cur.field(p)?;
    }
    Some(cur)
}

// ---- strvals: the `--set` syntax ----

/// Apply one `--set` argument (`a.b=1,c[0].d=x,e={a,b}`) to `dst`. With `as_string`
/// (`--set-string`) every value stays a string.
pub fn apply_set(dst: &mut Table, arg: &str, as_string: bool) -> Result<(), Error> {
    let chars: Vec<char> = arg.chars().collect();
    let mut p = StrvalsParser {
        s: &chars,
        i: 0,
        as_string,
        arg,
    };
    p.parse_into(dst)
}

struct StrvalsParser<'a> {
    s: &'a [char],
    i: usize,
    as_string: bool,
    arg: &'a str,
}

enum Step {
    Key(String),
    Index(usize),
}

impl StrvalsParser<'_> {
    fn err(&self, msg: &str) -> Error {
        Error::Values(format!("--set {:?}: {msg}", self.arg))
    }

    fn parse_into(&mut self, dst: &mut Table) -> Result<(), Error> {
        while self.i < self.s.len() {
            let path = self.parse_path()?;
            // After the path: '=' then a value, or end/',' (key without value is an error).
            if self.i >= self.s.len() || self.s[self.i] != '=' {
                return Err(self.err("key has no value (expected key=value)"));
            }
            self.i += 1;
            let value = if self.i < self.s.len() && self.s[self.i] == '{' {
                self.parse_list()?
            } else {
                let raw = self.read_until(&[','])?;
                self.typed(&raw)
            };
            if self.i < self.s.len() && self.s[self.i] == ',' {
                self.i += 1;
            }
            set_path(dst, &path, value).map_err(|m| self.err(&m))?;
        }
        Ok(())
    }

    fn parse_path(&mut self) -> Result<Vec<Step>, Error> {
        let mut steps = Vec::new();
        let mut key = String::new();
        while self.i < self.s.len() {
            let c = self.s[self.i];
            match c {
                '\\' if self.i + 1 < self.s.len() => {
                    key.push(self.s[self.i + 1]);
                    self.i += 2;
                }
                '.' => {
                    if !key.is_empty() {
                        steps.push(Step::Key(std::mem::take(&mut key)));
                    }
                    self.i += 1;
                }
                '[' => {
                    if !key.is_empty() {
                        steps.push(Step::Key(std::mem::take(&mut key)));
                    }
                    self.i += 1;
                    let mut n = String::new();
                    while self.i < self.s.len() && self.s[self.i] != ']' {
                        n.push(self.s[self.i]);
                        self.i += 1;
                    }
                    if self.i >= self.s.len() {
                        return Err(self.err("unclosed ["));
                    }
                    self.i += 1;
                    let idx: usize = n
                        .trim()
                        .parse()
                        .map_err(|_| self.err(&format!("invalid list index {n:?}")))?;
                    if idx > 65536 {
                        return Err(self.err("list index too large (at most 65536)"));
                    }
                    steps.push(Step::Index(idx));
                }
                '=' | ',' => break,
                _ => {
                    key.push(c);
                    self.i += 1;
                }
            }
        }
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        if steps.is_empty() {
            return Err(self.err("empty key"));
        }
        if matches!(steps.first(), Some(Step::Index(_))) {
            return Err(self.err("a key must come before a list index"));
        }
        Ok(steps)
    }

    fn read_until(&mut self, stops: &[char]) -> Result<String, Error> {
        let mut out = String::new();
        while self.i < self.s.len() {
            let c = self.s[self.i];
            if c == '\\' && self.i + 1 < self.s.len() {
                out.push(self.s[self.i + 1]);
                self.i += 2;
                continue;
            }
            if stops.contains(&c) {
                break;
            }
            out.push(c);
            self.i += 1;
        }
        Ok(out)
    }

    fn parse_list(&mut self) -> Result<Value, Error> {
        self.i += 1; // '{'
        let mut items = Vec::new();
        loop {
            let raw = self.read_until(&[',', '}'])?;
            if self.i >= self.s.len() {
                return Err(self.err("list without closing }"));
            }
            let end = self.s[self.i] == '}';
            self.i += 1;
            if !(raw.is_empty() && end && items.is_empty()) {
                items.push(self.typed(&raw));
            }
            if end {
                break;
            }
        }
        Ok(Value::List(items.into()))
    }

    fn typed(&self, raw: &str) -> Value {
        if self.as_string {
            return Value::String(raw.into());
        }
        typed_value(raw)
    }
}

/// strvals' typing of a `--set` value: booleans, null, integers (no leading zero), else a string.
pub fn typed_value(raw: &str) -> Value {
    match raw {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        "null" => return Value::Nil,
        "0" => return Value::Int(0),
        _ => {}
    }
    if raw.starts_with('0') {
        return Value::String(raw.into());
    }
    match raw.parse::<i64>() {
        Ok(i) => Value::Int(i),
        Err(_) => Value::String(raw.into()),
    }
}

fn set_path(dst: &mut Table, path: &[Step], value: Value) -> Result<(), String> {
    let Some((Step::Key(first), rest)) = path.split_first() else {
        return Err("a key must come first".into());
    };
    let cur = dst.remove(first.as_str()).unwrap_or(Value::Nil);
    let new = set_in(cur, rest, value)?;
    dst.insert(first.as_str().into(), new);
    Ok(())
}

fn set_in(cur: Value, path: &[Step], value: Value) -> Result<Value, String> {
    let Some((step, rest)) = path.split_first() else {
        return Ok(value);
    };
    match step {
        Step::Key(k) => {
            let mut m = match cur {
                Value::Map(m) => m.snapshot(),
                _ => Table::new(),
            };
            let inner = m.remove(k.as_str()).unwrap_or(Value::Nil);
            m.insert(k.as_str().into(), set_in(inner, rest, value)?);
            Ok(Value::Map(MapRef::new(m)))
        }
        Step::Index(i) => {
            let mut l: Vec<Value> = match cur {
                Value::List(l) => l.to_vec(),
                _ => Vec::new(),
            };
            while l.len() <= *i {
                l.push(Value::Nil);
            }
            let inner = std::mem::replace(&mut l[*i], Value::Nil);
            l[*i] = set_in(inner, rest, value)?;
            Ok(Value::List(l.into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::to_json;

    fn set(args: &[&str]) -> serde_json::Value {
        let mut t = Table::new();
        for a in args {
            apply_set(&mut t, a, false).unwrap();
        }
        to_json(&Value::Map(MapRef::new(t)))
    }

    #[test]
    fn strvals_cases() {
        assert_eq!(
            set(&["a.b=1,c=true,d=null,e=0123,f=x\\,y"]),
            serde_json::json!({"a": {"b": 1}, "c": true, "d": null, "e": "0123", "f": "x,y"})
        );
        assert_eq!(
            set(&["list[1].name=x", "arr={a,2}", "dotted\\.key=v"]),
            serde_json::json!({"list": [null, {"name": "x"}], "arr": ["a", 2], "dotted.key": "v"})
        );
        assert!(apply_set(&mut Table::new(), "novalue", false).is_err());
        assert!(apply_set(&mut Table::new(), "a[x]=1", false).is_err());
    }

    #[test]
    fn coalesce_null_deletes_and_maps_merge() {
        let defaults = parse_values("a: {b: 1, c: 2}\nd: 3\ne: [1]\n", "d").unwrap();
        let mut user = parse_values("a: {c: null, x: 9}\nd: null\n", "u").unwrap();
        coalesce(&mut user, &defaults);
        assert_eq!(
            to_json(&Value::Map(MapRef::new(user))),
            serde_json::json!({"a": {"b": 1, "x": 9}, "e": [1]})
        );
    }
}
