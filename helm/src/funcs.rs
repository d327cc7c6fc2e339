//! Sprig's functions (the text-template map Helm uses) and Helm's own.
//!
//! Argument handling follows Go's text/template calling a Go function: a `string` parameter
//! needs a string, an `int` parameter an integer (a float from values is accepted when it
//! is integral), `interface{}` parameters take anything. Sprig's own conversions (`toString`,
//! `int`, `atoi`, ...) follow spf13/cast as Sprig does.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use gotmpl::{MapRef, TemplateError, Value, ValueFunc};
use sha2::Digest;

use crate::goyaml;
use crate::value::{from_json, from_yaml, to_json};

pub type FResult = Result<Value, TemplateError>;

pub fn err(msg: impl Into<String>) -> TemplateError {
    TemplateError::Exec(msg.into())
}

pub fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Function(_) => "func",
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Nil => "invalid",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::List(_) => "slice",
        Value::Map(_) => "map",
        Value::Function(_) => "func",
    }
}

pub(crate) fn want(name: &str, args: &[Value], n: usize) -> Result<(), TemplateError> {
    if args.len() != n {
        return Err(err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        )));
    }
    Ok(())
}

fn want_min(name: &str, args: &[Value], n: usize) -> Result<(), TemplateError> {
    if args.len() < n {
        return Err(err(format!(
            "wrong number of args for {name}: want at least {n} got {}",
            args.len()
        )));
    }
    Ok(())
}

/// A `string` parameter.
pub(crate) fn sarg<'a>(name: &str, v: &'a Value) -> Result<&'a str, TemplateError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(err(format!(
            "error calling {name}: wrong type for value; expected string; got {}",
            go_type(other)
        ))),
    }
}

/// An `int` parameter.
pub(crate) fn iarg(name: &str, v: &Value) -> Result<i64, TemplateError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Uint(u) => Ok(*u as i64),
        Value::Float(f) if f.fract() == 0.0 => Ok(*f as i64),
        other => Err(err(format!(
            "error calling {name}: wrong type for value; expected int; got {}",
            go_type(other)
        ))),
    }
}

/// A `[]interface{}` / `interface{}` that must be a list (Sprig's mustX variants error).
fn larg<'a>(name: &str, v: &'a Value) -> Result<&'a [Value], TemplateError> {
    match v {
        Value::List(l) => Ok(l),
        other => Err(err(format!(
            "error calling {name}: cannot find {name} on type {}",
            go_type(other)
        ))),
    }
}

/// A `map[string]interface{}` parameter: Go passes nil as a nil map (reads see no keys).
fn marg(name: &str, v: &Value) -> Result<MapRef, TemplateError> {
    match v {
        Value::Map(m) => Ok(m.clone()),
        Value::Nil => Ok(MapRef::default()),
        other => Err(err(format!(
            "error calling {name}: wrong type for value; expected map[string]interface {{}}; got {}",
            go_type(other)
        ))),
    }
}

/// Go's `fmt.Sprintf("%v", v)` (Sprig's strval / toString).
pub fn strval(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        Value::Float(f) => goyaml::go_float_g(*f),
        Value::List(l) => {
            let parts: Vec<String> = l.iter().map(strval).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Map(m) => {
            let parts: Vec<String> = m
                .read()
                .iter()
                .map(|(k, v)| format!("{k}:{}", strval(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        other => other.to_string(),
    }
}

/// spf13/cast ToInt64 as Sprig uses it.
pub fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Uint(u) => *u as i64,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::String(s) => {
            let t = s.trim();
            if let Some(h) = t.strip_prefix("0x") {
                return i64::from_str_radix(h, 16).unwrap_or(0);
            }
            if t.len() > 1 && t.starts_with('0') && t.chars().all(|c| c.is_ascii_digit()) {
                return i64::from_str_radix(&t[1..], 8).unwrap_or(0);
            }
            t.parse::<i64>()
                .ok()
                .or_else(|| t.parse::<f64>().ok().map(|f| f as i64))
                .unwrap_or(0)
        }
        _ => 0,
    }
}

pub fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Uint(u) => *u as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => s.trim().parse::<f64>().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Sprig's `empty`.
pub fn is_empty(v: &Value) -> bool {
    !v.is_truthy()
}

fn list(items: Vec<Value>) -> Value {
    Value::List(items.into())
}

fn string(s: impl Into<Arc<str>>) -> Value {
    Value::String(s.into())
}

fn strs(name: &str, v: &Value) -> Result<Vec<String>, TemplateError> {
    match v {
        Value::List(l) => Ok(l.iter().map(strval).collect()),
        Value::Nil => Ok(Vec::new()),
        other => Err(err(format!(
            "error calling {name}: cannot convert {} to a list",
            go_type(other)
        ))),
    }
}

fn indent(name: &str, n: i64, s: &str) -> Result<String, TemplateError> {
    let n = n.max(0) as u128;
    let lines = s.bytes().filter(|b| *b == b'\n').count() as u128 + 1;
    crate::bounds::check_text(name, n * lines + s.len() as u128 + 1).map_err(err)?;
    let pad = " ".repeat(n as usize);
    Ok(format!("{pad}{}", s.replace('\n', &format!("\n{pad}"))))
}

fn go_quote(s: &str) -> String {
    // strconv.Quote: Go escapes with \a \b \f \n \r \t \v, \xNN, \uNNNN for non-printables.
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn trunc(n: i64, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let len = chars.len() as i64;
    if n < 0 && -n < len {
        return chars[(len + n) as usize..].iter().collect();
    }
    if n >= 0 && len > n {
        return chars[..n as usize].iter().collect();
    }
    s.to_string()
}

fn title(s: &str) -> String {
    let mut out = String::new();
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = !(c.is_whitespace() || c.is_ascii_punctuation() && c != '\'' && c != '_');
    }
    out
}

fn words(s: &str) -> Vec<String> {
    // Split into words on case changes, digits and separators (xstrings-style).
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_uppercase() && !cur.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push(std::mem::take(&mut cur));
            }
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn regex(name: &str, re: &str) -> Result<regex::Regex, TemplateError> {
    regex::Regex::new(re).map_err(|e| err(format!("error calling {name}: {e}")))
}

/// Go's regexp replacement template ($1, ${name}) into Rust's (same syntax, mostly).
fn go_repl(s: &str) -> String {
    s.to_string()
}

fn sum_hex<D: Digest>(s: &str) -> Value {
    string(hex::encode(D::digest(s.as_bytes())))
}

fn semver_parse(s: &str) -> Result<semver::Version, String> {
    let t = s.trim().trim_start_matches('v');
    // Masterminds/semver accepts "1", "1.2" too.
    let parts = t.split(['-', '+']).next().unwrap_or("");
    let n = parts.split('.').count();
    let full = match n {
        1 => t.replacen(parts, &format!("{parts}.0.0"), 1),
        2 => t.replacen(parts, &format!("{parts}.0"), 1),
        _ => t.to_string(),
    };
    semver::Version::parse(&full).map_err(|e| format!("invalid semantic version {s:?}: {e}"))
}

/// Masterminds/semver constraint check (`>=1.19-0`, `^1.2`, `~1.2.3`, `1.2.x`, `a || b`,
/// comma or space separated ANDs), as Sprig's `semverCompare`: `repo.rs`'s implementation,
/// the one chart versions are picked with.
pub fn semver_matches(constraint: &str, version: &str) -> Result<bool, String> {
    let v = crate::repo::Version::parse(version.trim())
        .map_err(|_| format!("invalid semantic version {version:?}"))?;
    Ok(crate::repo::Constraint::parse(constraint)?.matches(&v))
}

fn dict_pairs(args: &[Value]) -> Value {
    let mut m = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let k: Arc<str> = strval(&args[i]).into();
        let v = args.get(i + 1).cloned().unwrap_or(Value::String("".into()));
        m.insert(k, v);
        i += 2;
    }
    Value::Map(MapRef::new(m))
}

/// mergo.Merge (dst wins; an empty dst value is filled) or, with `overwrite`,
/// mergo.WithOverride (a non-empty src value wins), deep for maps, changing `dst` in place
/// as Sprig's merge does.
fn merge_into_map(dst: &MapRef, src: &MapRef, overwrite: bool) {
    if dst.ptr_eq(src) {
        return;
    }
    for (k, sv) in src.snapshot() {
        let dv = dst.get(&k);
        match (&dv, &sv) {
            (Some(Value::Map(dm)), Value::Map(sm)) => merge_into_map(dm, sm, overwrite),
            (Some(d), _) if !overwrite && !is_empty(d) => {}
            (Some(_), _) if overwrite && is_empty(&sv) => {}
            _ => {
                dst.write().insert(k, sv);
            }
        }
    }
}

fn parse_json(s: &str) -> Result<Value, String> {
    serde_json::from_str::<serde_json::Value>(s)
        .map(|j| from_json(&j))
        .map_err(|e| e.to_string())
}

fn parse_yaml(s: &str) -> Result<Value, String> {
    serde_yaml_ng::from_str::<serde_yaml_ng::Value>(s)
        .map(|y| from_yaml(&y))
        .map_err(|e| e.to_string())
}

/// Helm's fromYaml/fromJson: a map, or a map holding the error under "Error".
fn as_map(parsed: Result<Value, String>, not_a_map: &str) -> Value {
    let error = |msg: &str| {
        Value::Map(MapRef::new(BTreeMap::from([(
            Arc::from("Error"),
            string(msg),
        )])))
    };
    match parsed {
        Ok(Value::Map(m)) => Value::Map(m),
        Ok(Value::Nil) => Value::Map(MapRef::default()),
        Ok(_) => error(not_a_map),
        Err(e) => error(&e),
    }
}

/// Helm's fromYamlArray/fromJsonArray: a list, or a list holding the error.
fn as_list(parsed: Result<Value, String>, not_a_list: &str) -> Value {
    match parsed {
        Ok(l @ Value::List(_)) => l,
        Ok(Value::Nil) => list(Vec::new()),
        Ok(_) => list(vec![string(not_a_list)]),
        Err(e) => list(vec![string(e)]),
    }
}

fn deep_eq(a: &Value, b: &Value) -> bool {
    to_json(a) == to_json(b) && go_type(a) == go_type(b)
}

fn b32enc(data: &[u8]) -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let chars = match chunk.len() {
            1 => 2,
            2 => 4,
            3 => 5,
            4 => 7,
            _ => 8,
        };
        for i in 0..8 {
            if i < chars {
                out.push(ALPHA[((n >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b32dec(s: &str) -> Option<Vec<u8>> {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').bytes() {
        let v = ALPHA.iter().position(|a| *a == c)? as u64;
        bits = (bits << 5) | v;
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    Some(out)
}

fn rand_string(name: &str, n: i64, charset: &[u8]) -> Result<Value, TemplateError> {
    use rand::Rng;
    let n = crate::bounds::check_text(name, n.max(0) as u128).map_err(err)?;
    let mut rng = rand::thread_rng();
    let s: String = (0..n)
        .map(|_| charset[rng.gen_range(0..charset.len())] as char)
        .collect();
    Ok(string(s))
}

/// The integers from `start` by `step` up to `stop` (excluded, or included with
/// `inclusive`), refused beyond skiff's bound on sequences before anything is allocated.
fn steps(
    name: &str,
    start: i64,
    stop: i64,
    step: i64,
    inclusive: bool,
) -> Result<Vec<i64>, TemplateError> {
    let (start, stop, step) = (start as i128, stop as i128, step as i128);
    let span = if step > 0 { stop - start } else { start - stop };
    let count = match step {
        0 => 0,
        _ if span < 0 || (span == 0 && !inclusive) => 0,
        _ => {
            let span = span - i128::from(!inclusive);
            span / step.abs() + 1
        }
    };
    crate::bounds::check_sequence(name, count as u128).map_err(err)?;
    Ok((0..count).map(|k| (start + k * step) as i64).collect())
}

fn until_step(name: &str, start: i64, stop: i64, step: i64) -> Result<Value, TemplateError> {
    Ok(list(
        steps(name, start, stop, step, false)?
            .into_iter()
            .map(Value::Int)
            .collect(),
    ))
}

fn split_map(sep: &str, s: &str, n: Option<usize>) -> Value {
    let parts: Vec<&str> = match n {
        Some(n) => s.splitn(n, sep).collect(),
        None => s.split(sep).collect(),
    };
    Value::Map(MapRef::new(
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| (Arc::from(format!("_{i}")), string(*p)))
            .collect(),
    ))
}

/// Register every Sprig and Helm function that needs no rendering context.
pub fn sprig() -> BTreeMap<String, ValueFunc> {
    let mut m: BTreeMap<String, ValueFunc> = BTreeMap::new();
    macro_rules! f {
        ($name:expr, $body:expr) => {
            m.insert($name.to_string(), Arc::new($body));
        };
    }
    fn s1(name: &'static str, args: &[Value]) -> Result<String, TemplateError> {
        want(name, args, 1)?;
        Ok(sarg(name, &args[0])?.to_string())
    }

    // Strings
    f!("upper", |a: &[Value]| Ok(string(
        s1("upper", a)?.to_uppercase()
    )));
    f!("lower", |a: &[Value]| Ok(string(
        s1("lower", a)?.to_lowercase()
    )));
    f!("title", |a: &[Value]| Ok(string(title(&s1("title", a)?))));
    f!("untitle", |a: &[Value]| {
        let s = s1("untitle", a)?;
        let mut out = String::new();
        let mut prev_space = true;
        for c in s.chars() {
            if prev_space {
                out.extend(c.to_lowercase());
            } else {
                out.push(c);
            }
            prev_space = c.is_whitespace();
        }
        Ok(string(out))
    });
    f!("trim", |a: &[Value]| Ok(string(s1("trim", a)?.trim())));
    f!("trimAll", |a: &[Value]| {
        want("trimAll", a, 2)?;
        let cut: Vec<char> = sarg("trimAll", &a[0])?.chars().collect();
        Ok(string(
            sarg("trimAll", &a[1])?.trim_matches(|c| cut.contains(&c)),
        ))
    });
    f!("trimSuffix", |a: &[Value]| {
        want("trimSuffix", a, 2)?;
        let (suf, s) = (sarg("trimSuffix", &a[0])?, sarg("trimSuffix", &a[1])?);
        Ok(string(s.strip_suffix(suf).unwrap_or(s)))
    });
    f!("trimPrefix", |a: &[Value]| {
        want("trimPrefix", a, 2)?;
        let (pre, s) = (sarg("trimPrefix", &a[0])?, sarg("trimPrefix", &a[1])?);
        Ok(string(s.strip_prefix(pre).unwrap_or(s)))
    });
    f!("nospace", |a: &[Value]| Ok(string(
        s1("nospace", a)?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
    )));
    f!("trunc", |a: &[Value]| {
        want("trunc", a, 2)?;
        Ok(string(trunc(iarg("trunc", &a[0])?, sarg("trunc", &a[1])?)))
    });
    f!("abbrev", |a: &[Value]| {
        want("abbrev", a, 2)?;
        let w = iarg("abbrev", &a[0])?;
        let s = sarg("abbrev", &a[1])?;
        if w < 4 || s.chars().count() as i64 <= w {
            return Ok(string(s));
        }
        let t: String = s.chars().take((w - 3) as usize).collect();
        Ok(string(format!("{t}...")))
    });
    f!("repeat", |a: &[Value]| {
        want("repeat", a, 2)?;
        let (n, text) = (iarg("repeat", &a[0])?.max(0), sarg("repeat", &a[1])?);
        crate::bounds::check_text("repeat", n as u128 * text.len() as u128).map_err(err)?;
        Ok(string(text.repeat(n as usize)))
    });
    f!("substr", |a: &[Value]| {
        want("substr", a, 3)?;
        let (start, end) = (iarg("substr", &a[0])?, iarg("substr", &a[1])?);
        let s = sarg("substr", &a[2])?.as_bytes();
        let len = s.len() as i64;
        let out = if start < 0 {
            &s[..end.clamp(0, len) as usize]
        } else if end < 0 || end > len {
            &s[start.min(len) as usize..]
        } else {
            &s[start.min(end) as usize..end as usize]
        };
        Ok(string(String::from_utf8_lossy(out).into_owned()))
    });
    f!("contains", |a: &[Value]| {
        want("contains", a, 2)?;
        Ok(Value::Bool(
            sarg("contains", &a[1])?.contains(sarg("contains", &a[0])?),
        ))
    });
    f!("hasPrefix", |a: &[Value]| {
        want("hasPrefix", a, 2)?;
        Ok(Value::Bool(
            sarg("hasPrefix", &a[1])?.starts_with(sarg("hasPrefix", &a[0])?),
        ))
    });
    f!("hasSuffix", |a: &[Value]| {
        want("hasSuffix", a, 2)?;
        Ok(Value::Bool(
            sarg("hasSuffix", &a[1])?.ends_with(sarg("hasSuffix", &a[0])?),
        ))
    });
    f!("quote", |a: &[Value]| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(|v| go_quote(&strval(v)))
            .collect();
        Ok(string(parts.join(" ")))
    });
    f!("squote", |a: &[Value]| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(|v| format!("'{}'", strval(v)))
            .collect();
        Ok(string(parts.join(" ")))
    });
    f!("cat", |a: &[Value]| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(strval)
            .collect();
        Ok(string(parts.join(" ")))
    });
    f!("indent", |a: &[Value]| {
        want("indent", a, 2)?;
        Ok(string(indent(
            "indent",
            iarg("indent", &a[0])?,
            sarg("indent", &a[1])?,
        )?))
    });
    f!("nindent", |a: &[Value]| {
        want("nindent", a, 2)?;
        Ok(string(format!(
            "\n{}",
            indent("nindent", iarg("nindent", &a[0])?, sarg("nindent", &a[1])?)?
        )))
    });
    f!("replace", |a: &[Value]| {
        want("replace", a, 3)?;
        let (old, new, s) = (
            sarg("replace", &a[0])?,
            sarg("replace", &a[1])?,
            sarg("replace", &a[2])?,
        );
        if old.is_empty() {
            // strings.Replace with an empty old inserts between every rune.
            let mut out = String::from(new);
            for c in s.chars() {
                out.push(c);
                out.push_str(new);
            }
            return Ok(string(out));
        }
        Ok(string(s.replace(old, new)))
    });
    f!("plural", |a: &[Value]| {
        want("plural", a, 3)?;
        let n = iarg("plural", &a[2])?;
        Ok(a[if n == 1 { 0 } else { 1 }].clone())
    });
    f!("snakecase", |a: &[Value]| Ok(string(
        words(&s1("snakecase", a)?)
            .iter()
            .map(|w| w.to_lowercase())
            .collect::<Vec<_>>()
            .join("_")
    )));
    f!("kebabcase", |a: &[Value]| Ok(string(
        words(&s1("kebabcase", a)?)
            .iter()
            .map(|w| w.to_lowercase())
            .collect::<Vec<_>>()
            .join("-")
    )));
    f!("camelcase", |a: &[Value]| {
        let s = s1("camelcase", a)?;
        let out: String = s
            .split(['_', ' ', '-'])
            .filter(|p| !p.is_empty())
            .map(|p| {
                let mut c = p.chars();
                match c.next() {
                    Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                    None => String::new(),
                }
            })
            .collect();
        Ok(string(out))
    });
    f!("swapcase", |a: &[Value]| Ok(string(
        s1("swapcase", a)?
            .chars()
            .map(|c| if c.is_uppercase() {
                c.to_lowercase().collect::<String>()
            } else {
                c.to_uppercase().collect::<String>()
            })
            .collect::<String>()
    )));
    f!("initials", |a: &[Value]| Ok(string(
        s1("initials", a)?
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .collect::<String>()
    )));
    f!("wrap", |a: &[Value]| {
        want("wrap", a, 2)?;
        Ok(string(wrap(
            iarg("wrap", &a[0])? as usize,
            sarg("wrap", &a[1])?,
            "\n",
        )))
    });
    f!("wrapWith", |a: &[Value]| {
        want("wrapWith", a, 3)?;
        Ok(string(wrap(
            iarg("wrapWith", &a[0])? as usize,
            sarg("wrapWith", &a[2])?,
            sarg("wrapWith", &a[1])?,
        )))
    });
    f!("shuffle", |a: &[Value]| {
        use rand::seq::SliceRandom;
        let mut c: Vec<char> = s1("shuffle", a)?.chars().collect();
        c.shuffle(&mut rand::thread_rng());
        Ok(string(c.into_iter().collect::<String>()))
    });
    f!("randAlphaNum", |a: &[Value]| {
        want("randAlphaNum", a, 1)?;
        rand_string(
            "randAlphaNum",
            iarg("randAlphaNum", &a[0])?,
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        )
    });
    f!("randAlpha", |a: &[Value]| {
        want("randAlpha", a, 1)?;
        rand_string(
            "randAlpha",
            iarg("randAlpha", &a[0])?,
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        )
    });
    f!("randNumeric", |a: &[Value]| {
        want("randNumeric", a, 1)?;
        rand_string("randNumeric", iarg("randNumeric", &a[0])?, b"0123456789")
    });
    f!("randAscii", |a: &[Value]| {
        want("randAscii", a, 1)?;
        let cs: Vec<u8> = (32u8..127).collect();
        rand_string("randAscii", iarg("randAscii", &a[0])?, &cs)
    });
    f!("uuidv4", |_a: &[Value]| Ok(string(
        uuid::Uuid::new_v4().to_string()
    )));

    // Conversions
    f!("toString", |a: &[Value]| {
        want("toString", a, 1)?;
        Ok(string(strval(&a[0])))
    });
    f!("toStrings", |a: &[Value]| {
        want("toStrings", a, 1)?;
        Ok(list(
            strs("toStrings", &a[0])?.into_iter().map(string).collect(),
        ))
    });
    f!("atoi", |a: &[Value]| Ok(Value::Int(
        s1("atoi", a)?.trim().parse::<i64>().unwrap_or(0)
    )));
    f!("int", |a: &[Value]| {
        want("int", a, 1)?;
        Ok(Value::Int(to_i64(&a[0])))
    });
    f!("int64", |a: &[Value]| {
        want("int64", a, 1)?;
        Ok(Value::Int(to_i64(&a[0])))
    });
    f!("float64", |a: &[Value]| {
        want("float64", a, 1)?;
        Ok(Value::Float(to_f64(&a[0])))
    });
    f!("toDecimal", |a: &[Value]| {
        want("toDecimal", a, 1)?;
        Ok(Value::Int(
            i64::from_str_radix(&strval(&a[0]), 8).unwrap_or(0),
        ))
    });
    f!("toJson", |a: &[Value]| {
        want("toJson", a, 1)?;
        Ok(string(goyaml::to_go_json(&to_json(&a[0]), true, false)))
    });
    f!("mustToJson", |a: &[Value]| {
        want("mustToJson", a, 1)?;
        Ok(string(goyaml::to_go_json(&to_json(&a[0]), true, false)))
    });
    f!("toRawJson", |a: &[Value]| {
        want("toRawJson", a, 1)?;
        Ok(string(goyaml::to_go_json(&to_json(&a[0]), false, false)))
    });
    f!("toPrettyJson", |a: &[Value]| {
        want("toPrettyJson", a, 1)?;
        Ok(string(goyaml::to_go_json(&to_json(&a[0]), true, true)))
    });
    f!("fromJson", |a: &[Value]| {
        let s = s1("fromJson", a)?;
        Ok(as_map(
            parse_json(&s),
            "json: cannot unmarshal array into Go value of type map[string]interface {}",
        ))
    });
    f!("mustFromJson", |a: &[Value]| {
        let s = s1("mustFromJson", a)?;
        parse_json(&s).map_err(|e| err(format!("error calling mustFromJson: {e}")))
    });
    f!("fromJsonArray", |a: &[Value]| {
        let s = s1("fromJsonArray", a)?;
        Ok(as_list(
            parse_json(&s),
            "json: cannot unmarshal object into Go value of type []interface {}",
        ))
    });
    f!("toYaml", |a: &[Value]| {
        want("toYaml", a, 1)?;
        Ok(string(goyaml::to_yaml(&a[0])))
    });
    f!("mustToYaml", |a: &[Value]| {
        want("mustToYaml", a, 1)?;
        Ok(string(goyaml::to_yaml(&a[0])))
    });
    f!("toYamlPretty", |a: &[Value]| {
        want("toYamlPretty", a, 1)?;
        Ok(string(goyaml::to_yaml_pretty(&a[0])))
    });
    f!("fromYaml", |a: &[Value]| {
        let s = s1("fromYaml", a)?;
        Ok(as_map(
            parse_yaml(&s),
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type map[string]interface {}",
        ))
    });
    f!("fromYamlArray", |a: &[Value]| {
        let s = s1("fromYamlArray", a)?;
        Ok(as_list(
            parse_yaml(&s),
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal object into Go value of type []interface {}",
        ))
    });

    // Encoding and hashes
    f!("b64enc", |a: &[Value]| Ok(string(
        base64::engine::general_purpose::STANDARD.encode(s1("b64enc", a)?)
    )));
    f!("b64dec", |a: &[Value]| {
        let s = s1("b64dec", a)?;
        Ok(string(
            match base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => e.to_string(),
            },
        ))
    });
    f!("b32enc", |a: &[Value]| Ok(string(b32enc(
        s1("b32enc", a)?.as_bytes()
    ))));
    f!("b32dec", |a: &[Value]| {
        let s = s1("b32dec", a)?;
        Ok(string(match b32dec(&s) {
            Some(b) => String::from_utf8_lossy(&b).into_owned(),
            None => "illegal base32 data".to_string(),
        }))
    });
    f!("sha256sum", |a: &[Value]| Ok(sum_hex::<sha2::Sha256>(&s1(
        "sha256sum",
        a
    )?)));
    f!("sha512sum", |a: &[Value]| Ok(sum_hex::<sha2::Sha512>(&s1(
        "sha512sum",
        a
    )?)));
    f!("sha1sum", |a: &[Value]| Ok(sum_hex::<sha1::Sha1>(&s1(
        "sha1sum", a
    )?)));
    f!("adler32sum", |a: &[Value]| {
        let s = s1("adler32sum", a)?;
        let (mut x, mut y) = (1u32, 0u32);
        for b in s.bytes() {
            x = (x + u32::from(b)) % 65521;
            y = (y + x) % 65521;
        }
        Ok(string(((y << 16) | x).to_string()))
    });

    // Defaults and flow
    f!("default", |a: &[Value]| {
        want_min("default", a, 1)?;
        match a.get(1) {
            Some(g) if !is_empty(g) => Ok(g.clone()),
            _ => Ok(a[0].clone()),
        }
    });
    f!("empty", |a: &[Value]| {
        want("empty", a, 1)?;
        Ok(Value::Bool(is_empty(&a[0])))
    });
    f!("coalesce", |a: &[Value]| Ok(a
        .iter()
        .find(|v| !is_empty(v))
        .cloned()
        .unwrap_or(Value::Nil)));
    f!("all", |a: &[Value]| Ok(Value::Bool(
        a.iter().all(|v| !is_empty(v))
    )));
    f!("any", |a: &[Value]| Ok(Value::Bool(
        a.iter().any(|v| !is_empty(v))
    )));
    f!("ternary", |a: &[Value]| {
        want("ternary", a, 3)?;
        let Value::Bool(c) = a[2] else {
            return Err(err(format!(
                "error calling ternary: wrong type for value; expected bool; got {}",
                go_type(&a[2])
            )));
        };
        Ok(a[if c { 0 } else { 1 }].clone())
    });
    f!("typeOf", |a: &[Value]| {
        want("typeOf", a, 1)?;
        Ok(string(go_type(&a[0])))
    });
    f!("kindOf", |a: &[Value]| {
        want("kindOf", a, 1)?;
        Ok(string(kind(&a[0])))
    });
    f!("kindIs", |a: &[Value]| {
        want("kindIs", a, 2)?;
        Ok(Value::Bool(sarg("kindIs", &a[0])? == kind(&a[1])))
    });
    f!("typeIs", |a: &[Value]| {
        want("typeIs", a, 2)?;
        Ok(Value::Bool(sarg("typeIs", &a[0])? == go_type(&a[1])))
    });
    f!("deepEqual", |a: &[Value]| {
        want("deepEqual", a, 2)?;
        Ok(Value::Bool(deep_eq(&a[0], &a[1])))
    });
    f!("deepCopy", |a: &[Value]| {
        want("deepCopy", a, 1)?;
        Ok(crate::value::deep_copy(&a[0]))
    });
    f!("mustDeepCopy", |a: &[Value]| {
        want("mustDeepCopy", a, 1)?;
        Ok(crate::value::deep_copy(&a[0]))
    });

    // Lists
    f!("list", |a: &[Value]| Ok(list(a.to_vec())));
    f!("tuple", |a: &[Value]| Ok(list(a.to_vec())));
    for name in ["append", "push", "mustAppend", "mustPush"] {
        f!(name, move |a: &[Value]| {
            want(name, a, 2)?;
            let mut l = match &a[0] {
                Value::Nil => Vec::new(),
                v => larg(name, v)?.to_vec(),
            };
            l.push(a[1].clone());
            Ok(list(l))
        });
    }
    for name in ["prepend", "mustPrepend"] {
        f!(name, move |a: &[Value]| {
            want(name, a, 2)?;
            let mut l = vec![a[1].clone()];
            l.extend(larg(name, &a[0])?.iter().cloned());
            Ok(list(l))
        });
    }
    for name in ["first", "mustFirst"] {
        f!(name, move |a: &[Value]| {
            want(name, a, 1)?;
            Ok(larg(name, &a[0])?.first().cloned().unwrap_or(Value::Nil))
        });
    }
    for name in ["last", "mustLast"] {
        f!(name, move |a: &[Value]| {
            want(name, a, 1)?;
            Ok(larg(name, &a[0])?.last().cloned().unwrap_or(Value::Nil))
        });
    }
    for name in ["rest", "mustRest"] {
        f!(name, move |a: &[Value]| {
            want(name, a, 1)?;
            let l = larg(name, &a[0])?;
            Ok(list(l.get(1..).unwrap_or_default().to_vec()))
        });
    }
    for name in ["initial", "mustInitial"] {
        f!(name, move |a: &[Value]| {
            want(name, a, 1)?;
            let l = larg(name, &a[0])?;
            Ok(list(l[..l.len().saturating_sub(1)].to_vec()))
        });
    }
    for name in ["reverse", "mustReverse"] {
        f!(name, move |a: &[Value]| {
            want(name, a, 1)?;
            let mut l = larg(name, &a[0])?.to_vec();
            l.reverse();
            Ok(list(l))
        });
    }
    for name in ["uniq", "mustUniq"] {
        f!(name, move |a: &[Value]| {
            want(name, a, 1)?;
            let mut out: Vec<Value> = Vec::new();
            for v in larg(name, &a[0])? {
                if !out.iter().any(|o| deep_eq(o, v)) {
                    out.push(v.clone());
                }
            }
            Ok(list(out))
        });
    }
    for name in ["compact", "mustCompact"] {
        f!(name, move |a: &[Value]| {
            want(name, a, 1)?;
            Ok(list(
                larg(name, &a[0])?
                    .iter()
                    .filter(|v| !is_empty(v))
                    .cloned()
                    .collect(),
            ))
        });
    }
    for name in ["without", "mustWithout"] {
        f!(name, move |a: &[Value]| {
            want_min(name, a, 1)?;
            Ok(list(
                larg(name, &a[0])?
                    .iter()
                    .filter(|v| !a[1..].iter().any(|o| deep_eq(o, v)))
                    .cloned()
                    .collect(),
            ))
        });
    }
    for name in ["has", "mustHas"] {
        f!(name, move |a: &[Value]| {
            want(name, a, 2)?;
            Ok(Value::Bool(match &a[1] {
                Value::Nil => false,
                l => larg(name, l)?.iter().any(|v| deep_eq(v, &a[0])),
            }))
        });
    }
    f!("concat", |a: &[Value]| {
        let mut out = Vec::new();
        for l in a {
            out.extend(larg("concat", l)?.iter().cloned());
        }
        Ok(list(out))
    });
    f!("slice", |a: &[Value]| {
        want_min("slice", a, 1)?;
        let l = larg("slice", &a[0])?;
        let start = a.get(1).map(to_i64).unwrap_or(0).max(0) as usize;
        let end = a.get(2).map(to_i64).unwrap_or(l.len() as i64).max(0) as usize;
        if start > end || end > l.len() {
            return Err(err("error calling slice: index out of range"));
        }
        Ok(list(l[start..end].to_vec()))
    });
    f!("sortAlpha", |a: &[Value]| {
        want("sortAlpha", a, 1)?;
        let mut l = strs("sortAlpha", &a[0])?;
        l.sort();
        Ok(list(l.into_iter().map(string).collect()))
    });
    f!("join", |a: &[Value]| {
        want("join", a, 2)?;
        let sep = sarg("join", &a[0])?;
        let parts: Vec<String> = match &a[1] {
            Value::List(l) => l
                .iter()
                .filter(|v| !matches!(v, Value::Nil))
                .map(strval)
                .collect(),
            other => vec![strval(other)],
        };
        Ok(string(parts.join(sep)))
    });
    f!("split", |a: &[Value]| {
        want("split", a, 2)?;
        Ok(split_map(
            sarg("split", &a[0])?,
            sarg("split", &a[1])?,
            None,
        ))
    });
    f!("splitn", |a: &[Value]| {
        want("splitn", a, 3)?;
        Ok(split_map(
            sarg("splitn", &a[0])?,
            sarg("splitn", &a[2])?,
            Some(iarg("splitn", &a[1])?.max(0) as usize),
        ))
    });
    f!("splitList", |a: &[Value]| {
        want("splitList", a, 2)?;
        let (sep, s) = (sarg("splitList", &a[0])?, sarg("splitList", &a[1])?);
        Ok(list(s.split(sep).map(string).collect()))
    });
    f!("until", |a: &[Value]| {
        want("until", a, 1)?;
        let n = iarg("until", &a[0])?;
        until_step("until", 0, n, if n < 0 { -1 } else { 1 })
    });
    f!("untilStep", |a: &[Value]| {
        want("untilStep", a, 3)?;
        until_step(
            "untilStep",
            iarg("untilStep", &a[0])?,
            iarg("untilStep", &a[1])?,
            iarg("untilStep", &a[2])?,
        )
    });
    f!("seq", |a: &[Value]| {
        let n: Vec<i64> = a.iter().map(to_i64).collect();
        let (start, step, end) = match n.as_slice() {
            [e] => (1, if *e >= 1 { 1 } else { -1 }, *e),
            [s, e] => (*s, if e >= s { 1 } else { -1 }, *e),
            [s, st, e] => (*s, *st, *e),
            _ => return Ok(string("")),
        };
        let out: Vec<String> = steps("seq", start, end, step, true)?
            .iter()
            .map(i64::to_string)
            .collect();
        Ok(string(out.join(" ")))
    });

    // Dicts
    f!("dict", |a: &[Value]| Ok(dict_pairs(a)));
    f!("get", |a: &[Value]| {
        want("get", a, 2)?;
        let m = marg("get", &a[0])?;
        Ok(m.get(sarg("get", &a[1])?).unwrap_or(string("")))
    });
    // set and unset change the map in place and return it, as Sprig's do.
    f!("set", |a: &[Value]| {
        want("set", a, 3)?;
        let m = marg("set", &a[0])?;
        m.write().insert(sarg("set", &a[1])?.into(), a[2].clone());
        Ok(a[0].clone())
    });
    f!("unset", |a: &[Value]| {
        want("unset", a, 2)?;
        let m = marg("unset", &a[0])?;
        m.write().remove(sarg("unset", &a[1])?);
        Ok(a[0].clone())
    });
    f!("hasKey", |a: &[Value]| {
        want("hasKey", a, 2)?;
        Ok(Value::Bool(
            marg("hasKey", &a[0])?
                .read()
                .contains_key(sarg("hasKey", &a[1])?),
        ))
    });
    f!("keys", |a: &[Value]| {
        let mut out = Vec::new();
        for m in a {
            out.extend(
                marg("keys", m)?
                    .read()
                    .keys()
                    .map(|k| Value::String(k.clone())),
            );
        }
        Ok(list(out))
    });
    f!("values", |a: &[Value]| {
        want("values", a, 1)?;
        Ok(list(
            marg("values", &a[0])?.read().values().cloned().collect(),
        ))
    });
    f!("pluck", |a: &[Value]| {
        want_min("pluck", a, 1)?;
        let k = sarg("pluck", &a[0])?;
        Ok(list(a[1..].iter().filter_map(|m| m.field(k)).collect()))
    });
    f!("pick", |a: &[Value]| {
        want_min("pick", a, 1)?;
        let m = marg("pick", &a[0])?.snapshot();
        let keys: Vec<String> = a[1..].iter().map(strval).collect();
        Ok(Value::Map(MapRef::new(
            m.into_iter()
                .filter(|(k, _)| keys.iter().any(|x| x.as_str() == &**k))
                .collect(),
        )))
    });
    f!("omit", |a: &[Value]| {
        want_min("omit", a, 1)?;
        let m = marg("omit", &a[0])?.snapshot();
        let keys: Vec<String> = a[1..].iter().map(strval).collect();
        Ok(Value::Map(MapRef::new(
            m.into_iter()
                .filter(|(k, _)| !keys.iter().any(|x| x.as_str() == &**k))
                .collect(),
        )))
    });
    for (name, overwrite) in [
        ("merge", false),
        ("mustMerge", false),
        ("mergeOverwrite", true),
        ("mustMergeOverwrite", true),
    ] {
        f!(name, move |a: &[Value]| {
            want_min(name, a, 1)?;
            let dst = marg(name, &a[0])?;
            for src in &a[1..] {
                merge_into_map(&dst, &marg(name, src)?, overwrite);
            }
            Ok(a[0].clone())
        });
    }
    f!("dig", |a: &[Value]| {
        want_min("dig", a, 3)?;
        let n = a.len();
        let dflt = &a[n - 2];
        let mut cur = a[n - 1].clone();
        for k in &a[..n - 2] {
            let k = sarg("dig", k)?;
            match cur.field(k) {
                Some(v) => cur = v,
                None => return Ok(dflt.clone()),
            }
        }
        Ok(cur)
    });

    // Math (Sprig converts with cast.ToInt64)
    fn fold(a: &[Value], init: i64, op: fn(i64, i64) -> i64) -> Value {
        Value::Int(a.iter().map(to_i64).fold(init, op))
    }
    f!(
        "add",
        |a: &[Value]| Ok(fold(a, 0, |x, y| x.wrapping_add(y)))
    );
    f!(
        "mul",
        |a: &[Value]| Ok(fold(a, 1, |x, y| x.wrapping_mul(y)))
    );
    f!("add1", |a: &[Value]| {
        want("add1", a, 1)?;
        Ok(Value::Int(to_i64(&a[0]) + 1))
    });
    f!("sub", |a: &[Value]| {
        want("sub", a, 2)?;
        Ok(Value::Int(to_i64(&a[0]).wrapping_sub(to_i64(&a[1]))))
    });
    f!("div", |a: &[Value]| {
        want("div", a, 2)?;
        let d = to_i64(&a[1]);
        if d == 0 {
            return Err(err(
                "error calling div: runtime error: integer divide by zero",
            ));
        }
        Ok(Value::Int(to_i64(&a[0]) / d))
    });
    f!("mod", |a: &[Value]| {
        want("mod", a, 2)?;
        let d = to_i64(&a[1]);
        if d == 0 {
            return Err(err(
                "error calling mod: runtime error: integer divide by zero",
            ));
        }
        Ok(Value::Int(to_i64(&a[0]) % d))
    });
    f!("max", |a: &[Value]| {
        want_min("max", a, 1)?;
        Ok(Value::Int(a.iter().map(to_i64).max().unwrap_or(0)))
    });
    f!("min", |a: &[Value]| {
        want_min("min", a, 1)?;
        Ok(Value::Int(a.iter().map(to_i64).min().unwrap_or(0)))
    });
    f!("biggest", |a: &[Value]| {
        want_min("biggest", a, 1)?;
        Ok(Value::Int(a.iter().map(to_i64).max().unwrap_or(0)))
    });
    f!("floor", |a: &[Value]| {
        want("floor", a, 1)?;
        Ok(Value::Float(to_f64(&a[0]).floor()))
    });
    f!("ceil", |a: &[Value]| {
        want("ceil", a, 1)?;
        Ok(Value::Float(to_f64(&a[0]).ceil()))
    });
    f!("round", |a: &[Value]| {
        want_min("round", a, 2)?;
        let p = 10f64.powi(to_i64(&a[1]) as i32);
        let r = a.get(2).map(to_f64).unwrap_or(0.5);
        let v = to_f64(&a[0]) * p;
        let d = v - v.trunc();
        let out = if d.abs() >= r {
            v.trunc() + v.signum()
        } else {
            v.trunc()
        };
        Ok(Value::Float(out / p))
    });
    for (name, op) in [("addf", 0u8), ("subf", 1), ("mulf", 2), ("divf", 3)] {
        f!(name, move |a: &[Value]| {
            want_min(name, a, 1)?;
            let mut it = a.iter().map(to_f64);
            let first = it.next().unwrap_or(0.0);
            Ok(Value::Float(it.fold(first, |x, y| match op {
                0 => x + y,
                1 => x - y,
                2 => x * y,
                _ => x / y,
            })))
        });
    }

    // Regular expressions (Go's RE2 syntax, which the regex crate follows)
    for (name, must) in [("regexMatch", false), ("mustRegexMatch", true)] {
        f!(name, move |a: &[Value]| {
            want(name, a, 2)?;
            match regex::Regex::new(sarg(name, &a[0])?) {
                Ok(re) => Ok(Value::Bool(re.is_match(sarg(name, &a[1])?))),
                Err(e) if must => Err(err(format!("error calling {name}: {e}"))),
                Err(_) => Ok(Value::Bool(false)),
            }
        });
    }
    f!("regexFind", |a: &[Value]| {
        want("regexFind", a, 2)?;
        let re = regex("regexFind", sarg("regexFind", &a[0])?)?;
        Ok(string(
            re.find(sarg("regexFind", &a[1])?)
                .map(|m| m.as_str().to_string())
                .unwrap_or_default(),
        ))
    });
    f!("regexFindAll", |a: &[Value]| {
        want("regexFindAll", a, 3)?;
        let re = regex("regexFindAll", sarg("regexFindAll", &a[0])?)?;
        let n = iarg("regexFindAll", &a[2])?;
        let it = re
            .find_iter(sarg("regexFindAll", &a[1])?)
            .map(|m| string(m.as_str()));
        Ok(list(if n < 0 {
            it.collect()
        } else {
            it.take(n as usize).collect()
        }))
    });
    f!("regexReplaceAll", |a: &[Value]| {
        want("regexReplaceAll", a, 3)?;
        let re = regex("regexReplaceAll", sarg("regexReplaceAll", &a[0])?)?;
        Ok(string(
            re.replace_all(
                sarg("regexReplaceAll", &a[1])?,
                go_repl(sarg("regexReplaceAll", &a[2])?).as_str(),
            )
            .into_owned(),
        ))
    });
    f!("regexReplaceAllLiteral", |a: &[Value]| {
        want("regexReplaceAllLiteral", a, 3)?;
        let re = regex(
            "regexReplaceAllLiteral",
            sarg("regexReplaceAllLiteral", &a[0])?,
        )?;
        Ok(string(
            re.replace_all(
                sarg("regexReplaceAllLiteral", &a[1])?,
                regex::NoExpand(sarg("regexReplaceAllLiteral", &a[2])?),
            )
            .into_owned(),
        ))
    });
    f!("regexSplit", |a: &[Value]| {
        want("regexSplit", a, 3)?;
        let re = regex("regexSplit", sarg("regexSplit", &a[0])?)?;
        let n = iarg("regexSplit", &a[2])?;
        let s = sarg("regexSplit", &a[1])?;
        Ok(list(if n < 0 {
            re.split(s).map(string).collect()
        } else {
            re.splitn(s, n as usize).map(string).collect()
        }))
    });
    f!("regexQuoteMeta", |a: &[Value]| Ok(string(regex::escape(
        &s1("regexQuoteMeta", a)?
    ))));

    // Semantic versions
    f!("semverCompare", |a: &[Value]| {
        want("semverCompare", a, 2)?;
        semver_matches(sarg("semverCompare", &a[0])?, sarg("semverCompare", &a[1])?)
            .map(Value::Bool)
            .map_err(|e| err(format!("error calling semverCompare: {e}")))
    });
    f!("semver", |a: &[Value]| {
        let v = semver_parse(&s1("semver", a)?)
            .map_err(|e| err(format!("error calling semver: {e}")))?;
        Ok(crate::value::map([
            ("Major", Value::Int(v.major as i64)),
            ("Minor", Value::Int(v.minor as i64)),
            ("Patch", Value::Int(v.patch as i64)),
            ("Prerelease", string(v.pre.as_str())),
            ("Metadata", string(v.build.as_str())),
            ("Original", string(a[0].to_string())),
        ]))
    });

    // URLs, paths
    f!("base", |a: &[Value]| {
        let s = s1("base", a)?;
        let t = s.trim_end_matches('/');
        Ok(string(if s.is_empty() {
            ".".to_string()
        } else if t.is_empty() {
            "/".to_string()
        } else {
            t.rsplit('/').next().unwrap_or(t).to_string()
        }))
    });
    f!("dir", |a: &[Value]| {
        let s = s1("dir", a)?;
        Ok(string(match s.rfind('/') {
            Some(0) => "/".to_string(),
            Some(i) => s[..i].to_string(),
            None => ".".to_string(),
        }))
    });
    f!("ext", |a: &[Value]| {
        let s = s1("ext", a)?;
        let base = s.rsplit('/').next().unwrap_or(&s);
        Ok(string(base.rfind('.').map(|i| &base[i..]).unwrap_or("")))
    });
    f!("isAbs", |a: &[Value]| Ok(Value::Bool(
        s1("isAbs", a)?.starts_with('/')
    )));

    f!("clean", |a: &[Value]| Ok(string(clean_path(&s1(
        "clean", a
    )?))));
    f!("chunk", |a: &[Value]| chunk("chunk", a));
    f!("mustChunk", |a: &[Value]| chunk("mustChunk", a));
    f!("maxf", |a: &[Value]| {
        want_min("maxf", a, 1)?;
        Ok(Value::Float(a.iter().map(to_f64).fold(f64::MIN, f64::max)))
    });
    f!("minf", |a: &[Value]| {
        want_min("minf", a, 1)?;
        Ok(Value::Float(a.iter().map(to_f64).fold(f64::MAX, f64::min)))
    });
    f!("add1f", |a: &[Value]| {
        want("add1f", a, 1)?;
        Ok(Value::Float(to_f64(&a[0]) + 1.0))
    });
    f!("abbrevboth", |a: &[Value]| {
        want("abbrevboth", a, 3)?;
        let (off, w) = (iarg("abbrevboth", &a[0])?, iarg("abbrevboth", &a[1])?);
        let c: Vec<char> = sarg("abbrevboth", &a[2])?.chars().collect();
        Ok(string(abbrev_both(&c, off, w)))
    });
    for (alias, of) in [
        ("osBase", "base"),
        ("osDir", "dir"),
        ("osExt", "ext"),
        ("osIsAbs", "isAbs"),
        ("osClean", "clean"),
        ("mustSlice", "slice"),
    ] {
        if let Some(f) = m.get(of).cloned() {
            m.insert(alias.to_string(), f);
        }
    }

    crate::extra::register(&mut m);

    // Not supported: named so that a chart using them fails with a clear message.
    f!("getHostByName", |_a: &[Value]| Err(err(
        "the function getHostByName is not supported by skiff's chart renderer \
         (no DNS lookups while rendering)"
    )));
    // Helm removes these from Sprig's map on purpose (no environment access).
    m.remove("env");
    m.remove("expandenv");
    m
}

/// Go's path.Clean.
fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn chunk(name: &str, a: &[Value]) -> FResult {
    want(name, a, 2)?;
    let size = iarg(name, &a[0])?.max(1) as usize;
    let l = larg(name, &a[1])?;
    Ok(list(l.chunks(size).map(|c| list(c.to_vec())).collect()))
}

/// goutils.AbbreviateFull as Sprig's abbrevboth.
fn abbrev_both(c: &[char], offset: i64, width: i64) -> String {
    let s: String = c.iter().collect();
    let len = c.len() as i64;
    if width < 4 || len <= width {
        return s;
    }
    let mut offset = offset.clamp(0, len);
    if len - offset < width - 3 {
        offset = len - (width - 3);
    }
    if offset <= 4 {
        let t: String = c[..(width - 3) as usize].iter().collect();
        return format!("{t}...");
    }
    if width < 7 {
        return s;
    }
    if offset + width - 3 < len {
        let rest: String = c[offset as usize..].iter().collect();
        return format!(
            "...{}",
            abbrev_both(&rest.chars().collect::<Vec<_>>(), 0, width - 3)
        );
    }
    let t: String = c[(len - (width - 3)) as usize..].iter().collect();
    format!("...{t}")
}

fn wrap(width: usize, s: &str, nl: &str) -> String {
    // Apache commons WordUtils.wrap as Sprig's util.WrapCustom (no long-word breaking).
    let mut out = String::new();
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push_str(nl);
        }
        let mut cur = 0;
        for (j, w) in line.split(' ').enumerate() {
            if j > 0 {
                if cur + 1 + w.len() > width && cur > 0 {
                    out.push_str(nl);
                    cur = 0;
                } else {
                    out.push(' ');
                    cur += 1;
                }
            }
            out.push_str(w);
            cur += w.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_constraints() {
        for (c, v, want) in [
            (">=1.19-0", "v1.31.0", true),
            (">=1.19-0", "1.18.3", false),
            ("^1.2.3", "1.9.0", true),
            ("^1.2.3", "2.0.0", false),
            ("~1.2.3", "1.2.9", true),
            ("~1.2.3", "1.3.0", false),
            ("1.2.x", "1.2.7", true),
            ("<1.20", "1.19.9", true),
            (">= 1.2, < 3.0", "2.5.0", true),
            ("<1.0 || >=2.0", "2.1.0", true),
        ] {
            assert_eq!(semver_matches(c, v), Ok(want), "{c} {v}");
        }
    }
}
