//! YAML and JSON written as Helm writes them.
//!
//! Helm's `toYaml` is sigs.k8s.io/yaml: the value goes through encoding/json and then
//! go-yaml v2's block emitter. This module reproduces that output for JSON-like data: keys
//! sorted, sequences not indented under their key, strings plain when go-yaml's resolver and
//! libyaml's scalar analysis allow it, else single- or double-quoted; multi-line strings as
//! literal blocks (`|`, `|-`, `|+`); integral floats as integers (encoding/json's output).

use gotmpl::Value;

use crate::value::to_json;

/// `toYaml`: the YAML document without its final newline (Helm trims it).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    emit_doc(&to_json(v), false, &mut out);
    out.truncate(out.trim_end_matches('\n').len());
    out
}

/// `toYamlPretty` (go-yaml v3 with a two-space indent: sequences are indented under keys).
pub fn to_yaml_pretty(v: &Value) -> String {
    let mut out = String::new();
    emit_doc(&to_json(v), true, &mut out);
    out.truncate(out.trim_end_matches('\n').len());
    out
}

/// A whole document, newline-terminated (for `helm template` style output of objects).
pub fn to_yaml_doc(j: &serde_json::Value) -> String {
    let mut out = String::new();
    emit_doc(j, false, &mut out);
    out
}

fn emit_doc(j: &serde_json::Value, pretty: bool, out: &mut String) {
    use serde_json::Value as J;
    match j {
        J::Object(m) if !m.is_empty() => emit_map(m, 0, pretty, out),
        J::Array(a) if !a.is_empty() => emit_seq(a, 0, pretty, out),
        other => {
            emit_scalar(other, 0, out);
            out.push('\n');
        }
    }
}

fn sorted(m: &serde_json::Map<String, serde_json::Value>) -> Vec<(&String, &serde_json::Value)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

fn emit_map(
    m: &serde_json::Map<String, serde_json::Value>,
    indent: usize,
    pretty: bool,
    out: &mut String,
) {
    use serde_json::Value as J;
    let pad = " ".repeat(indent);
    for (k, v) in sorted(m) {
        out.push_str(&pad);
        out.push_str(&scalar_string(k, indent));
        out.push(':');
        match v {
            J::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                emit_map(inner, indent + 2, pretty, out);
            }
            J::Array(items) if !items.is_empty() => {
                out.push('\n');
                emit_seq(items, if pretty { indent + 2 } else { indent }, pretty, out);
            }
            _ => {
                out.push(' ');
                emit_scalar(v, indent, out);
                out.push('\n');
            }
        }
    }
}

fn emit_seq(items: &[serde_json::Value], indent: usize, pretty: bool, out: &mut String) {
    use serde_json::Value as J;
    let pad = " ".repeat(indent);
    for item in items {
        out.push_str(&pad);
        out.push_str("- ");
        match item {
            J::Object(inner) if !inner.is_empty() => {
                // The first key sits after the dash; the rest align with it.
                let mut sub = String::new();
                emit_map(inner, indent + 2, pretty, &mut sub);
                out.push_str(&sub[indent + 2..]);
            }
            J::Array(inner) if !inner.is_empty() => {
                let mut sub = String::new();
                emit_seq(inner, indent + 2, pretty, &mut sub);
                out.push_str(&sub[indent + 2..]);
            }
            _ => {
                emit_scalar(item, indent, out);
                out.push('\n');
            }
        }
    }
}

fn emit_scalar(v: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value as J;
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => {
            if n.is_f64() {
                out.push_str(&go_float_g(n.as_f64().unwrap_or(0.0)));
            } else {
                out.push_str(&n.to_string());
            }
        }
        J::String(s) => out.push_str(&scalar_string(s, indent)),
        J::Object(_) => out.push_str("{}"),
        J::Array(_) => out.push_str("[]"),
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` (also fmt's `%v` for a float64).
pub fn go_float_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Shortest round-trip digits and exponent from Rust's `{:e}`.
    let e = format!("{:e}", f.abs());
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits.clone()
        };
        let es = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{es}{:02}", exp.abs());
    }
    let nd = digits.len() as i32;
    let dp = exp + 1;
    let s = if dp <= 0 {
        format!("0.{}{}", "0".repeat((-dp) as usize), digits)
    } else if dp >= nd {
        format!("{}{}", digits, "0".repeat((dp - nd) as usize))
    } else {
        format!("{}.{}", &digits[..dp as usize], &digits[dp as usize..])
    };
    format!("{sign}{s}")
}

/// Does go-yaml v2's resolver read this plain scalar as something other than a string?
fn resolves_non_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN", "<<",
    ];
    if SPECIAL.contains(&s) {
        return true;
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return false;
    }
    let plain = s.replace('_', "");
    let body = plain
        .strip_prefix('-')
        .or_else(|| plain.strip_prefix('+'))
        .unwrap_or(&plain);
    if body.parse::<i64>().is_ok() || body.parse::<u64>().is_ok() {
        return true;
    }
    if let Some(h) = body.strip_prefix("0x") {
        if !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()) {
            return true;
        }
    }
    if let Some(b) = body.strip_prefix("0b") {
        if !b.is_empty() && b.chars().all(|c| c == '0' || c == '1') {
            return true;
        }
    }
    // Floats as go-yaml's resolver reads them (YAML 1.1 float syntax, including "1e3").
    let float_re = body
        .chars()
        .all(|c| c.is_ascii_digit() || "eE.+-".contains(c))
        && body.chars().any(|c| c.is_ascii_digit())
        && body.parse::<f64>().is_ok();
    if float_re {
        return true;
    }
    // Base-60 numbers (1:20) are quoted by go-yaml too.
    let b60 = body.contains(':')
        && body
            .split(':')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '.'));
    b60
}

fn is_printable(c: char) -> bool {
    matches!(c, '\n' | '\u{85}')
        || (' '..='~').contains(&c)
        || ('\u{A0}'..='\u{D7FF}').contains(&c)
        || ('\u{E000}'..='\u{FFFD}').contains(&c) && c != '\u{FEFF}'
        || ('\u{10000}'..='\u{10FFFF}').contains(&c)
}

/// A string scalar as go-yaml v2 writes it at this indentation.
fn scalar_string(s: &str, indent: usize) -> String {
    if s.contains('\n') {
        if literal_allowed(s) {
            return literal(s, indent);
        }
        return double_quoted(s);
    }
    if resolves_non_string(s) {
        return double_quoted(s);
    }
    if s.chars().any(|c| !is_printable(c)) {
        return double_quoted(s);
    }
    if plain_allowed(s) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "''"))
}

fn plain_allowed(s: &str) -> bool {
    if s.is_empty() || s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.starts_with(' ') || s.ends_with(' ') {
        return false;
    }
    let chars: Vec<char> = s.chars().collect();
    let first = chars[0];
    if "#,[]{}&*!|>'\"%@`".contains(first) {
        return false;
    }
    if "-?:".contains(first) && chars.get(1).is_none_or(|c| *c == ' ') {
        return false;
    }
    for (i, c) in chars.iter().enumerate() {
        let next = chars.get(i + 1);
        if *c == ':' && next.is_none_or(|n| *n == ' ') {
            return false;
        }
        if *c == '#' && i > 0 && chars[i - 1] == ' ' {
            return false;
        }
    }
    true
}

fn literal_allowed(s: &str) -> bool {
    if s.chars().any(|c| !is_printable(c)) {
        return false;
    }
    // libyaml refuses a block scalar with a space before a line break, or a trailing space.
    !(s.contains(" \n") || s.ends_with(' '))
}

fn literal(s: &str, indent: usize) -> String {
    let mut out = String::from("|");
    if s.starts_with(' ') || s.starts_with('\n') {
        out.push('2');
    }
    if !s.ends_with('\n') {
        out.push('-');
    } else if s == "\n" || s.ends_with("\n\n") {
        out.push('+');
    }
    let pad = " ".repeat(indent + 2);
    let body = s.strip_suffix('\n').unwrap_or(s);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    out
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if is_printable(c) => out.push(c),
            c if (c as u32) <= 0xFF => out.push_str(&format!("\\x{:02X}", c as u32)),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's json.Marshal output: compact, keys sorted, `<`, `>`, `&`, U+2028 and U+2029 escaped.
pub fn to_go_json(j: &serde_json::Value, escape_html: bool, pretty: bool) -> String {
    let sorted = sort_json(j);
    let s = if pretty {
        serde_json::to_string_pretty(&sorted).unwrap_or_default()
    } else {
        serde_json::to_string(&sorted).unwrap_or_default()
    };
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' if escape_html => out.push_str("\\u003c"),
            '>' if escape_html => out.push_str("\\u003e"),
            '&' if escape_html => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn sort_json(j: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match j {
        J::Object(m) => {
            let mut keys: Vec<_> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), sort_json(&m[k]));
            }
            J::Object(out)
        }
        J::Array(a) => J::Array(a.iter().map(sort_json).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_go() {
        assert_eq!(go_float_g(1e6), "1e+06");
        assert_eq!(go_float_g(123456.0), "123456");
        assert_eq!(go_float_g(1.5), "1.5");
        assert_eq!(go_float_g(0.0001), "0.0001");
        assert_eq!(go_float_g(0.00001), "1e-05");
        assert_eq!(go_float_g(-2.25e-7), "-2.25e-07");
    }

    #[test]
    fn yaml_like_go_yaml() {
        let v: serde_json::Value = serde_json::json!({
            "b": [1, {"x": "yes", "y": "a: b"}, []],
            "a": {"s": "line1\nline2", "e": {}, "n": null, "f": 1.5, "t": "true", "p": "plain text"},
        });
        assert_eq!(
            to_yaml_doc(&v),
            "a:\n  e: {}\n  f: 1.5\n  \"n\": null\n  p: plain text\n  s: |-\n    line1\n    line2\n  t: \"true\"\nb:\n- 1\n- x: \"yes\"\n  \"y\": 'a: b'\n- []\n"
        );
    }
}
