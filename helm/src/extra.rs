//! Sprig's and Helm's functions beyond strings, lists and dicts: dates (`now`, `date`,
//! `toDate`, `dateModify`, `duration`...; see gotime.rs for how a Go time travels through
//! template data), Helm's duration helpers, URLs (`urlParse`, `urlJoin`), TOML (`toToml`,
//! `fromToml`), keys and certificates (`genPrivateKey`, `genCA`, `genSignedCert`...; see
//! crypto.rs), `derivePassword`, `encryptAES`/`decryptAES`, `bcrypt`/`htpasswd`.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{MapRef, TemplateError, Value, ValueFunc};

use crate::crypto;
use crate::funcs::{err, go_type, iarg, sarg, strval, want, FResult};
use crate::gotime::{self, GoTime};

fn string(s: impl Into<Arc<str>>) -> Value {
    Value::String(s.into())
}

fn time_value(t: &GoTime) -> Value {
    string(t.go_string())
}

/// A `time.Time` parameter (a time made by `now`, `toDate`...).
fn time_arg(name: &str, v: &Value) -> Result<GoTime, TemplateError> {
    match v {
        Value::String(s) => GoTime::from_go_string(s),
        _ => None,
    }
    .ok_or_else(|| {
        err(format!(
            "error calling {name}: wrong type for value; expected time.Time; got {}",
            go_type(v)
        ))
    })
}

/// Sprig's `interface{}` date argument: a time, or seconds since the epoch; anything else
/// is now (as Sprig's default case).
fn date_like(v: &Value) -> GoTime {
    match v {
        Value::String(s) => GoTime::from_go_string(s).unwrap_or_else(GoTime::now),
        Value::Int(i) => GoTime::from_unix(*i),
        Value::Uint(u) => GoTime::from_unix(*u as i64),
        _ => GoTime::now(),
    }
}

const SECOND: i64 = 1_000_000_000;

/// Helm's asDuration: a duration string, or seconds as a number or numeric string.
fn as_duration(v: &Value) -> Result<i64, String> {
    let secs = |f: f64| {
        let n = f * SECOND as f64;
        if n.is_finite() && n.abs() < i64::MAX as f64 {
            Ok(n as i64)
        } else {
            Err(format!("duration seconds overflow: {f}"))
        }
    };
    match v {
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                return Err("empty duration".into());
            }
            if let Ok(d) = gotime::parse_duration(t) {
                return Ok(d);
            }
            match t.parse::<f64>() {
                Ok(f) => secs(f),
                Err(_) => Err(format!("could not parse duration {s:?}")),
            }
        }
        Value::Int(i) => i
            .checked_mul(SECOND)
            .ok_or_else(|| "duration overflow".into()),
        Value::Uint(u) => (*u as i64)
            .checked_mul(SECOND)
            .ok_or_else(|| "duration overflow".into()),
        Value::Float(f) => secs(*f),
        Value::Nil => Err("invalid duration".into()),
        other => Err(format!("unsupported duration type {}", go_type(other))),
    }
}

fn strings(name: &str, v: &Value) -> Result<Vec<String>, TemplateError> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::List(l) => l
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.to_string()),
                other => Err(err(format!(
                    "error calling {name}: {} is not a string",
                    strval(other)
                ))),
            })
            .collect(),
        other => Err(err(format!(
            "error calling {name}: wrong type for value; expected []interface {{}}; got {}",
            go_type(other)
        ))),
    }
}

fn cert_value(c: crypto::Certificate) -> Value {
    let mut m = BTreeMap::new();
    m.insert(Arc::from("Cert"), string(c.cert));
    m.insert(Arc::from("Key"), string(c.key));
    Value::Map(MapRef::new(m))
}

/// The certificate's key: the PEM argument of a `WithKey` form, or a new RSA 2048 key as
/// Sprig makes.
fn cert_key(name: &str, pem: Option<&Value>) -> Result<crypto::Key, TemplateError> {
    match pem {
        Some(v) => crypto::parse_key(sarg(name, v)?)
            .map_err(|e| err(format!("error calling {name}: parsing private key: {e}"))),
        None => crypto::rsa_generate(2048).map_err(|e| err(format!("error calling {name}: {e}"))),
    }
}

/// `genSelfSignedCert CN IPS DNS DAYS [KEY]` and `genCA CN DAYS [KEY]`.
fn gen_cert(name: &str, a: &[Value], ca: bool, with_key: bool) -> FResult {
    let fixed = if ca { 2 } else { 4 };
    want(name, a, fixed + usize::from(with_key))?;
    let cn = sarg(name, &a[0])?;
    let (ips, dns) = if ca {
        (Vec::new(), Vec::new())
    } else {
        (strings(name, &a[1])?, strings(name, &a[2])?)
    };
    let days = iarg(name, &a[fixed - 1])?;
    let key = cert_key(name, with_key.then(|| &a[fixed]))?;
    let spec = crypto::CertSpec {
        cn,
        ips: &ips,
        dns: &dns,
        days,
        ca,
    };
    crypto::self_signed(&spec, &key)
        .map(cert_value)
        .map_err(|e| err(format!("error calling {name}: {e}")))
}

/// `genSignedCert CN IPS DNS DAYS CA [KEY]`.
fn gen_signed(name: &str, a: &[Value], with_key: bool) -> FResult {
    want(name, a, 5 + usize::from(with_key))?;
    let cn = sarg(name, &a[0])?;
    let ips = strings(name, &a[1])?;
    let dns = strings(name, &a[2])?;
    let days = iarg(name, &a[3])?;
    let field = |k: &str| match &a[4] {
        Value::Map(m) => m.get(k).map(|v| strval(&v)).unwrap_or_default(),
        _ => String::new(),
    };
    let (ca_cert, ca_key) = (field("Cert"), field("Key"));
    if ca_cert.is_empty() {
        return Err(err(format!(
            "error calling {name}: the CA argument has no Cert (a value made by genCA)"
        )));
    }
    let key = cert_key(name, with_key.then(|| &a[5]))?;
    let spec = crypto::CertSpec {
        cn,
        ips: &ips,
        dns: &dns,
        days,
        ca: false,
    };
    crypto::signed(&spec, &key, &ca_cert, &ca_key)
        .map(cert_value)
        .map_err(|e| err(format!("error calling {name}: {e}")))
}

/// Go's url.Parse, the parts Sprig's urlParse returns.
#[derive(Default)]
struct GoUrl {
    scheme: String,
    opaque: String,
    userinfo: Option<String>,
    host: String,
    path: String,
    query: String,
    fragment: String,
}

fn unhex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Go's url.PathUnescape / QueryUnescape-free unescaping of `%XX`.
fn unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(unhex),
                b.get(i + 2).copied().and_then(unhex),
            ) else {
                let end = (i + 3).min(b.len());
                return Err(format!("invalid URL escape {:?}", &s[i..end]));
            };
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|e| e.to_string())
}

fn parse_url(raw: &str) -> Result<GoUrl, String> {
    let mut u = GoUrl::default();
    let (rest, frag) = match raw.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (raw, None),
    };
    if let Some(f) = frag {
        u.fragment = unescape(f)?;
    }
    if rest.bytes().any(|c| c < 0x20 || c == 0x7f) {
        return Err(format!(
            "parse {raw:?}: net/url: invalid control character in URL"
        ));
    }
    let mut rest = rest;
    // getScheme
    for (i, c) in rest.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err(format!("parse {raw:?}: missing protocol scheme")),
            ':' => {
                u.scheme = rest[..i].to_ascii_lowercase();
                rest = &rest[i + 1..];
                break;
            }
            _ => break,
        }
    }
    if let Some((r, q)) = rest.split_once('?') {
        u.query = q.to_string();
        rest = r;
    }
    if !rest.starts_with('/') && !u.scheme.is_empty() {
        u.opaque = rest.to_string();
        return Ok(u);
    }
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find('/').unwrap_or(after.len());
        let authority = &after[..end];
        rest = &after[end..];
        let host = match authority.rsplit_once('@') {
            Some((user, host)) => {
                u.userinfo = Some(user.to_string());
                host
            }
            None => authority,
        };
        u.host = unescape(host)?;
    }
    u.path = unescape(rest)?;
    Ok(u)
}

fn hostname(host: &str) -> &str {
    if let Some(h) = host.strip_prefix('[') {
        return h.split(']').next().unwrap_or(h);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|c| c.is_ascii_digit()))
        .map(|(h, _)| h)
        .unwrap_or(host)
}

/// Go's escaping of a URL path (`keep` are the reserved characters left as they are).
fn escape(s: &str, keep: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || keep.as_bytes().contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Go's url.URL.String() over the dict urlJoin takes.
fn join_url(d: &MapRef) -> Result<String, String> {
    let get = |k: &str| -> Result<String, String> {
        match d.get(k) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.to_string()),
            Some(other) => Err(format!(
                "unable to parse {k} key, must be of type string, but {} found",
                go_type(&other)
            )),
        }
    };
    let (scheme, host, path, query, opaque, fragment, user) = (
        get("scheme")?,
        get("host")?,
        get("path")?,
        get("query")?,
        get("opaque")?,
        get("fragment")?,
        get("userinfo")?,
    );
    let mut buf = String::new();
    if !scheme.is_empty() {
        buf.push_str(&scheme);
        buf.push(':');
    }
    if !opaque.is_empty() {
        buf.push_str(&opaque);
    } else {
        if !scheme.is_empty() || !host.is_empty() || !user.is_empty() {
            if !host.is_empty() || !path.is_empty() || !user.is_empty() {
                buf.push_str("//");
            }
            if !user.is_empty() {
                buf.push_str(&user);
                buf.push('@');
            }
            buf.push_str(&host);
        }
        let p = escape(&path, "$&+,/:;=@");
        if !p.is_empty() && !p.starts_with('/') && !host.is_empty() {
            buf.push('/');
        }
        if buf.is_empty() && p.split('/').next().is_some_and(|seg| seg.contains(':')) {
            buf.push_str("./");
        }
        buf.push_str(&p);
    }
    if !query.is_empty() {
        buf.push('?');
        buf.push_str(&query);
    }
    if !fragment.is_empty() {
        buf.push('#');
        buf.push_str(&escape(&fragment, "$&+,/:;=@!()*?"));
    }
    Ok(buf)
}

fn to_toml(v: &Value) -> Result<String, String> {
    let json = crate::value::to_json(v);
    let t: toml::Value = serde_json::from_value(json).map_err(|e| e.to_string())?;
    match t {
        toml::Value::Table(t) => toml::to_string(&t).map_err(|e| e.to_string()),
        _ => Err("toml: top-level values must be Go maps or structs".into()),
    }
}

fn toml_to_value(t: toml::Value) -> Value {
    match t {
        toml::Value::String(s) => string(s),
        toml::Value::Integer(i) => Value::Int(i),
        toml::Value::Float(f) => Value::Float(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => string(d.to_string()),
        toml::Value::Array(a) => {
            Value::List(a.into_iter().map(toml_to_value).collect::<Vec<_>>().into())
        }
        toml::Value::Table(t) => Value::Map(MapRef::new(
            t.into_iter()
                .map(|(k, v)| (Arc::from(k.as_str()), toml_to_value(v)))
                .collect(),
        )),
    }
}

/// Registers the functions above into Sprig's map.
pub fn register(m: &mut BTreeMap<String, ValueFunc>) {
    macro_rules! f {
        ($name:expr, $body:expr) => {
            m.insert($name.to_string(), Arc::new($body));
        };
    }

    // Dates.
    f!("now", |_a: &[Value]| Ok(time_value(&GoTime::now())));
    f!("date", |a: &[Value]| {
        want("date", a, 2)?;
        let layout = sarg("date", &a[0])?;
        Ok(string(gotime::format(
            &date_like(&a[1]).in_named_zone("Local"),
            layout,
        )))
    });
    f!("dateInZone", |a: &[Value]| {
        want("dateInZone", a, 3)?;
        let layout = sarg("dateInZone", &a[0])?;
        let zone = sarg("dateInZone", &a[2])?;
        Ok(string(gotime::format(
            &date_like(&a[1]).in_named_zone(zone),
            layout,
        )))
    });
    f!("htmlDate", |a: &[Value]| {
        want("htmlDate", a, 1)?;
        Ok(string(gotime::format(
            &date_like(&a[0]).in_named_zone("Local"),
            "2006-01-02",
        )))
    });
    f!("htmlDateInZone", |a: &[Value]| {
        want("htmlDateInZone", a, 2)?;
        let zone = sarg("htmlDateInZone", &a[1])?;
        Ok(string(gotime::format(
            &date_like(&a[0]).in_named_zone(zone),
            "2006-01-02",
        )))
    });
    f!("dateModify", |a: &[Value]| {
        want("dateModify", a, 2)?;
        let d = sarg("dateModify", &a[0])?;
        let t = time_arg("dateModify", &a[1])?;
        Ok(time_value(&match gotime::parse_duration(d) {
            Ok(n) => t.add(n),
            Err(_) => t,
        }))
    });
    f!("mustDateModify", |a: &[Value]| {
        want("mustDateModify", a, 2)?;
        let d = sarg("mustDateModify", &a[0])?;
        let t = time_arg("mustDateModify", &a[1])?;
        let n = gotime::parse_duration(d)
            .map_err(|e| err(format!("error calling mustDateModify: {e}")))?;
        Ok(time_value(&t.add(n)))
    });
    f!("ago", |a: &[Value]| {
        want("ago", a, 1)?;
        let t = date_like(&a[0]);
        let since = jiff::Timestamp::now().as_nanosecond() - t.ts.as_nanosecond();
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        Ok(string(gotime::duration_string(gotime::round(
            since, SECOND,
        ))))
    });
    f!("toDate", |a: &[Value]| {
        want("toDate", a, 2)?;
        let (layout, s) = (sarg("toDate", &a[0])?, sarg("toDate", &a[1])?);
        let t = gotime::parse(layout, s, &jiff::tz::TimeZone::system()).unwrap_or(GoTime {
            ts: jiff::Timestamp::from_second(-62135596800).unwrap_or(jiff::Timestamp::MIN),
            offset: 0,
            zone: "UTC".into(),
        });
        Ok(time_value(&t))
    });
    f!("mustToDate", |a: &[Value]| {
        want("mustToDate", a, 2)?;
        let (layout, s) = (sarg("mustToDate", &a[0])?, sarg("mustToDate", &a[1])?);
        let t = gotime::parse(layout, s, &jiff::tz::TimeZone::system())
            .map_err(|e| err(format!("error calling mustToDate: {e}")))?;
        Ok(time_value(&t))
    });
    f!("unixEpoch", |a: &[Value]| {
        want("unixEpoch", a, 1)?;
        Ok(string(time_arg("unixEpoch", &a[0])?.unix().to_string()))
    });
    // Sprig: a string or int64 of seconds; skiff's one integer type counts as int64.
    f!("duration", |a: &[Value]| {
        want("duration", a, 1)?;
        let n = match &a[0] {
            Value::String(s) => s.parse::<i64>().unwrap_or(0),
            Value::Int(i) => *i,
            _ => 0,
        };
        Ok(string(gotime::duration_string(n.saturating_mul(SECOND))))
    });
    f!("durationRound", |a: &[Value]| {
        want("durationRound", a, 1)?;
        let d: i64 = match &a[0] {
            Value::String(s) => match GoTime::from_go_string(s) {
                Some(t) => {
                    i64::try_from(jiff::Timestamp::now().as_nanosecond() - t.ts.as_nanosecond())
                        .unwrap_or(i64::MAX)
                }
                None => gotime::parse_duration(s).unwrap_or(0),
            },
            Value::Int(i) => *i,
            _ => 0,
        };
        let u = d.unsigned_abs();
        let h = 3600 * SECOND as u64;
        let units: [(u64, &str); 6] = [
            (h * 24 * 365, "y"),
            (h * 24 * 30, "mo"),
            (h * 24, "d"),
            (h, "h"),
            (60 * SECOND as u64, "m"),
            (SECOND as u64, "s"),
        ];
        Ok(string(
            units
                .iter()
                .find(|(n, _)| u > *n)
                .map(|(n, suffix)| format!("{}{suffix}", u / n))
                .unwrap_or_else(|| "0s".into()),
        ))
    });

    // Helm's duration helpers (a time.Duration prints as Go's Duration.String()).
    f!("mustToDuration", |a: &[Value]| {
        want("mustToDuration", a, 1)?;
        let d =
            as_duration(&a[0]).map_err(|e| err(format!("error calling mustToDuration: {e}")))?;
        Ok(string(gotime::duration_string(d)))
    });
    for (name, per) in [
        ("durationSeconds", 1e9),
        ("durationMinutes", 60e9),
        ("durationHours", 3600e9),
        ("durationDays", 86400e9),
        ("durationWeeks", 604800e9),
    ] {
        f!(name, move |a: &[Value]| {
            want(name, a, 1)?;
            Ok(Value::Float(
                as_duration(&a[0]).map(|d| d as f64 / per).unwrap_or(0.0),
            ))
        });
    }
    for (name, per) in [
        ("durationMilliseconds", 1_000_000),
        ("durationMicroseconds", 1_000),
        ("durationNanoseconds", 1),
    ] {
        f!(name, move |a: &[Value]| {
            want(name, a, 1)?;
            Ok(Value::Int(as_duration(&a[0]).map(|d| d / per).unwrap_or(0)))
        });
    }
    for (name, truncate) in [("durationRoundTo", false), ("durationTruncateTo", true)] {
        f!(name, move |a: &[Value]| {
            want(name, a, 2)?;
            let d = match as_duration(&a[0]) {
                Ok(d) => d,
                Err(_) => return Ok(string("0s")),
            };
            let out = match as_duration(&a[1]) {
                Ok(m) if m > 0 && truncate => d - d % m,
                Ok(m) if m > 0 => gotime::round(d, m),
                _ => d,
            };
            Ok(string(gotime::duration_string(out)))
        });
    }

    // URLs.
    f!("urlParse", |a: &[Value]| {
        want("urlParse", a, 1)?;
        let raw = sarg("urlParse", &a[0])?;
        let u = parse_url(raw)
            .map_err(|e| err(format!("error calling urlParse: unable to parse url: {e}")))?;
        let mut d = BTreeMap::new();
        for (k, v) in [
            ("scheme", u.scheme.as_str()),
            ("host", u.host.as_str()),
            ("hostname", hostname(&u.host)),
            ("path", u.path.as_str()),
            ("query", u.query.as_str()),
            ("opaque", u.opaque.as_str()),
            ("fragment", u.fragment.as_str()),
            ("userinfo", u.userinfo.as_deref().unwrap_or("")),
        ] {
            d.insert(Arc::from(k), string(v));
        }
        Ok(Value::Map(MapRef::new(d)))
    });
    f!("urlJoin", |a: &[Value]| {
        want("urlJoin", a, 1)?;
        let Value::Map(d) = &a[0] else {
            return Err(err(format!(
                "error calling urlJoin: wrong type for value; expected map[string]interface {{}}; got {}",
                go_type(&a[0])
            )));
        };
        join_url(d)
            .map(string)
            .map_err(|e| err(format!("error calling urlJoin: {e}")))
    });

    // TOML (Helm's): toToml prints an error's text, mustToToml fails.
    f!("toToml", |a: &[Value]| {
        want("toToml", a, 1)?;
        Ok(string(to_toml(&a[0]).unwrap_or_else(|e| e)))
    });
    f!("mustToToml", |a: &[Value]| {
        want("mustToToml", a, 1)?;
        to_toml(&a[0])
            .map(string)
            .map_err(|e| err(format!("error calling mustToToml: {e}")))
    });
    f!("fromToml", |a: &[Value]| {
        want("fromToml", a, 1)?;
        let text = sarg("fromToml", &a[0])?;
        Ok(match text.parse::<toml::Table>() {
            Ok(t) => toml_to_value(toml::Value::Table(t)),
            Err(e) => {
                let mut m = BTreeMap::new();
                m.insert(Arc::from("Error"), string(e.message().to_string()));
                Value::Map(MapRef::new(m))
            }
        })
    });

    // Keys and certificates.
    f!("genPrivateKey", |a: &[Value]| {
        want("genPrivateKey", a, 1)?;
        match crypto::generate(sarg("genPrivateKey", &a[0])?) {
            Ok(crypto::Generated::Key(k)) => Ok(string(k.pem)),
            Ok(crypto::Generated::Unknown(msg)) => Ok(string(msg)),
            Err(e) => Err(err(format!("error calling genPrivateKey: {e}"))),
        }
    });
    f!("genCA", |a: &[Value]| gen_cert("genCA", a, true, false));
    f!("genCAWithKey", |a: &[Value]| gen_cert(
        "genCAWithKey",
        a,
        true,
        true
    ));
    f!("genSelfSignedCert", |a: &[Value]| gen_cert(
        "genSelfSignedCert",
        a,
        false,
        false
    ));
    f!("genSelfSignedCertWithKey", |a: &[Value]| gen_cert(
        "genSelfSignedCertWithKey",
        a,
        false,
        true
    ));
    f!("genSignedCert", |a: &[Value]| gen_signed(
        "genSignedCert",
        a,
        false
    ));
    f!("genSignedCertWithKey", |a: &[Value]| gen_signed(
        "genSignedCertWithKey",
        a,
        true
    ));
    f!("buildCustomCert", |a: &[Value]| {
        want("buildCustomCert", a, 2)?;
        let (c, k) = (
            sarg("buildCustomCert", &a[0])?,
            sarg("buildCustomCert", &a[1])?,
        );
        crypto::custom(c, k)
            .map(cert_value)
            .map_err(|e| err(format!("error calling buildCustomCert: {e}")))
    });
    f!("derivePassword", |a: &[Value]| {
        want("derivePassword", a, 5)?;
        let counter = iarg("derivePassword", &a[0])?;
        let counter = u32::try_from(counter)
            .map_err(|_| err("error calling derivePassword: the counter is not a uint32"))?;
        let p: Vec<&str> = a[1..]
            .iter()
            .map(|v| sarg("derivePassword", v))
            .collect::<Result<_, _>>()?;
        Ok(string(crypto::derive_password(
            counter, p[0], p[1], p[2], p[3],
        )))
    });
    f!("encryptAES", |a: &[Value]| {
        want("encryptAES", a, 2)?;
        let (k, t) = (sarg("encryptAES", &a[0])?, sarg("encryptAES", &a[1])?);
        Ok(string(crypto::encrypt_aes(k, t)))
    });
    f!("decryptAES", |a: &[Value]| {
        want("decryptAES", a, 2)?;
        let (k, t) = (sarg("decryptAES", &a[0])?, sarg("decryptAES", &a[1])?);
        crypto::decrypt_aes(k, t)
            .map(string)
            .map_err(|e| err(format!("error calling decryptAES: {e}")))
    });
    f!("bcrypt", |a: &[Value]| {
        want("bcrypt", a, 1)?;
        Ok(string(bcrypt_hash(sarg("bcrypt", &a[0])?)))
    });
    f!("htpasswd", |a: &[Value]| {
        if a.len() != 2 && a.len() != 3 {
            return Err(err("wrong number of args for htpasswd: want 2 or 3"));
        }
        let user = sarg("htpasswd", &a[0])?;
        let pass = sarg("htpasswd", &a[1])?;
        let algo = match a.get(2) {
            Some(v) => sarg("htpasswd", v)?,
            None => "bcrypt",
        };
        if user.contains(':') {
            return Ok(string(format!("invalid username: {user}")));
        }
        Ok(string(if algo == "sha" {
            use base64::Engine as _;
            use sha1::Digest as _;
            let sum = sha1::Sha1::digest(pass.as_bytes());
            format!(
                "{user}:{{SHA}}{}",
                base64::engine::general_purpose::STANDARD.encode(sum)
            )
        } else {
            format!("{user}:{}", bcrypt_hash(pass))
        }))
    });

    // The rest of Sprig's map. Sprig's regex functions other than regexMatch already fail
    // on a bad expression (MustCompile), so their must forms are the same functions.
    f!("hello", |_a: &[Value]| Ok(string("Hello!")));
    f!("randInt", |a: &[Value]| {
        want("randInt", a, 2)?;
        let (lo, hi) = (iarg("randInt", &a[0])?, iarg("randInt", &a[1])?);
        if hi <= lo {
            return Err(err("error calling randInt: invalid argument to Intn"));
        }
        Ok(Value::Int(rand::Rng::gen_range(
            &mut rand::thread_rng(),
            lo..hi,
        )))
    });
    f!("randBytes", |a: &[Value]| {
        use base64::Engine as _;
        want("randBytes", a, 1)?;
        let n = usize::try_from(iarg("randBytes", &a[0])?)
            .map_err(|_| err("error calling randBytes: a negative count"))?;
        if n > 1 << 20 {
            return Err(err("error calling randBytes: more than 1 MiB"));
        }
        let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
        Ok(string(
            base64::engine::general_purpose::STANDARD.encode(bytes),
        ))
    });
    f!("typeIsLike", |a: &[Value]| {
        want("typeIsLike", a, 2)?;
        let target = sarg("typeIsLike", &a[0])?;
        let t = go_type(&a[1]);
        Ok(Value::Bool(target == t || format!("*{target}") == t))
    });

    for (alias, of) in [
        ("date_in_zone", "dateInZone"),
        ("date_modify", "dateModify"),
        ("must_date_modify", "mustDateModify"),
        ("mustRegexFind", "regexFind"),
        ("mustRegexFindAll", "regexFindAll"),
        ("mustRegexReplaceAll", "regexReplaceAll"),
        ("mustRegexReplaceAllLiteral", "regexReplaceAllLiteral"),
        ("mustRegexSplit", "regexSplit"),
        ("mustToPrettyJson", "toPrettyJson"),
        ("mustToRawJson", "toRawJson"),
        ("trimall", "trimAll"),
    ] {
        if let Some(f) = m.get(of).cloned() {
            m.insert(alias.to_string(), f);
        }
    }
}

/// golang.org/x/crypto/bcrypt at its default cost (10), `$2a$` as Go writes it.
fn bcrypt_hash(pass: &str) -> String {
    match bcrypt::hash_with_result(pass, 10) {
        Ok(h) => h.format_for_version(bcrypt::Version::TwoA),
        Err(e) => format!("failed to encrypt string with bcrypt: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tpl: &str, data: Value) -> Result<String, String> {
        crate::engine::render_string(tpl, &data, BTreeMap::new(), true).map_err(|e| e.to_string())
    }

    /// Arguments a chart (or a namespace's values) could pass to make the renderer panic or
    /// reach beyond the render: each fails or falls back cleanly.
    #[test]
    fn hostile_arguments_fail_cleanly() {
        let none = || Value::Map(MapRef::default());
        let e = run(r#"{{ genCA "x" 99999999999999 }}"#, none()).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = run(
            r#"{{ genSelfSignedCertWithKey "x" nil nil -9223372036854775807 (genPrivateKey "ecdsa") }}"#,
            none(),
        )
        .unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        assert!(run(r#"{{ durationRoundTo "2562047h" "1h" }}"#, none()).is_ok());
        assert!(run(r#"{{ durationRoundTo "-2562047h" "1h" }}"#, none()).is_ok());
        assert!(run(
            r#"{{ dateModify "2562047h" (dateModify "2562047h" now) }}"#,
            none()
        )
        .is_ok());
        assert_eq!(
            run(r#"{{ toDate "2006-01-02" "9999-99-99" }}"#, none()).unwrap(),
            "0001-01-01 00:00:00 +0000 UTC"
        );
        // Zone names are looked up in the tzdata's list of names, never as paths.
        assert_eq!(
            run(
                r#"{{ dateInZone "MST" 0 "../../../../etc/passwd" }}"#,
                none()
            )
            .unwrap(),
            "UTC"
        );
        let deep = "a = ".to_string() + &"[".repeat(100_000);
        let mut m = BTreeMap::new();
        m.insert(Arc::from("T"), string(deep));
        let out = run("{{ fromToml .T }}", Value::Map(MapRef::new(m))).unwrap();
        assert!(
            out.starts_with("map[Error:"),
            "{}",
            &out[..out.len().min(200)]
        );
        let e = run(r#"{{ randBytes 100000000 }}"#, none()).unwrap_err();
        assert!(e.contains("more than 1 MiB"), "{e}");
    }

    #[test]
    fn go_url() {
        let u = parse_url("proto://user:passwor%20d@host:80/pa%20th?key=val%20ue#frag").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.path.as_str()),
            ("proto", "host:80", "/pa th")
        );
        assert_eq!(u.userinfo.as_deref(), Some("user:passwor%20d"));
        assert_eq!(
            (u.query.as_str(), u.fragment.as_str()),
            ("key=val%20ue", "frag")
        );
        assert_eq!(hostname(&u.host), "host");
        let s = parse_url("something").unwrap();
        assert_eq!((s.scheme.as_str(), s.path.as_str()), ("", "something"));
        assert!(parse_url(":x").is_err());
        assert_eq!(parse_url("mailto:a@b").unwrap().opaque, "a@b");
    }
}
