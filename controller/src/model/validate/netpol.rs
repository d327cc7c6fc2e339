//! Semantics of NetworkPolicy, as the API server validates them: label selectors with known
//! operators, `policyTypes` Ingress/Egress, peers that say one thing (`ipBlock` alone, or
//! pod/namespace selectors), CIDRs whose exceptions lie inside them, ports with a protocol
//! the node filters and `endPort` only after a numbered `port`.

use ipnet::IpNet;
use serde_json::Value;

use super::semantics::{items, one_of};
use super::{err, FieldError};

/// Checks a NetworkPolicy's spec.
pub(super) fn check(spec: &Value, out: &mut Vec<FieldError>) {
    if spec["podSelector"].is_null() {
        out.push(err("spec.podSelector", "Required value"));
    }
    selector(&spec["podSelector"], "spec.podSelector", out);
    for (i, t) in items(&spec["policyTypes"]).iter().enumerate() {
        if t != "Ingress" && t != "Egress" {
            out.push(err(
                format!("spec.policyTypes[{i}]"),
                format!("Unsupported value: {t}: supported values: \"Ingress\", \"Egress\""),
            ));
        }
    }
    for (key, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in items(&spec[key]).iter().enumerate() {
            let at = format!("spec.{key}[{i}]");
            for (j, peer) in items(&rule[peers]).iter().enumerate() {
                self::peer(peer, &format!("{at}.{peers}[{j}]"), out);
            }
            for (j, port) in items(&rule["ports"]).iter().enumerate() {
                self::port(port, &format!("{at}.ports[{j}]"), out);
            }
        }
    }
}

/// A label selector: operators In/NotIn need values, Exists/DoesNotExist take none.
pub(super) fn selector(sel: &Value, at: &str, out: &mut Vec<FieldError>) {
    for (i, e) in items(&sel["matchExpressions"]).iter().enumerate() {
        let p = format!("{at}.matchExpressions[{i}]");
        if e["key"].as_str().is_none_or(str::is_empty) {
            out.push(err(format!("{p}.key"), "Required value"));
        }
        let values = items(&e["values"]).len();
        match e["operator"].as_str().unwrap_or_default() {
            "In" | "NotIn" if values == 0 => out.push(err(
                format!("{p}.values"),
                "Required value: must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if values > 0 => out.push(err(
                format!("{p}.values"),
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => out.push(err(
                format!("{p}.operator"),
                format!("Unsupported value: {op:?}: supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""),
            )),
        }
    }
}

fn peer(peer: &Value, at: &str, out: &mut Vec<FieldError>) {
    let block = &peer["ipBlock"];
    let selectors = !peer["podSelector"].is_null() || !peer["namespaceSelector"].is_null();
    if block.is_null() && !selectors {
        out.push(err(at, "must specify a peer"));
    }
    if !block.is_null() && selectors {
        out.push(err(at, "may not specify more than 1 peer type"));
    }
    selector(&peer["podSelector"], &format!("{at}.podSelector"), out);
    selector(
        &peer["namespaceSelector"],
        &format!("{at}.namespaceSelector"),
        out,
    );
    if block.is_null() {
        return;
    }
    let cidr = match block["cidr"].as_str().map(str::parse::<IpNet>) {
        None => {
            out.push(err(format!("{at}.ipBlock.cidr"), "Required value"));
            return;
        }
        Some(Err(_)) => {
            out.push(err(
                format!("{at}.ipBlock.cidr"),
                format!(
                    "Invalid value: {}: must be a valid CIDR (e.g. 10.0.0.0/8)",
                    block["cidr"]
                ),
            ));
            return;
        }
        Some(Ok(c)) => c,
    };
    for (k, e) in items(&block["except"]).iter().enumerate() {
        let p = format!("{at}.ipBlock.except[{k}]");
        match e.as_str().map(str::parse::<IpNet>) {
            Some(Ok(x)) if cidr.contains(&x) && x != cidr => {}
            Some(Ok(_)) => out.push(err(
                p,
                format!("Invalid value: {e}: must be a strict subset of `cidr`"),
            )),
            _ => out.push(err(p, format!("Invalid value: {e}: must be a valid CIDR"))),
        }
    }
}

fn port(port: &Value, at: &str, out: &mut Vec<FieldError>) {
    one_of(
        port,
        at,
        "protocol",
        &["TCP", "UDP", "SCTP"],
        "is not TCP, UDP or SCTP",
        out,
    );
    let number = match &port["port"] {
        Value::Null => None,
        Value::String(s) if s.is_empty() || s.len() > 15 || !super::semantics::is_dns_label(s) => {
            out.push(err(
                format!("{at}.port"),
                format!("Invalid value: {s:?}: must be a port number or an IANA_SVC_NAME (at most 15 characters, a-z, 0-9, '-')"),
            ));
            None
        }
        Value::String(_) => None,
        v => match v.as_u64().filter(|n| (1..=65535).contains(n)) {
            Some(n) => Some(n),
            None => {
                out.push(err(
                    format!("{at}.port"),
                    format!("Invalid value: {v}: must be between 1 and 65535, inclusive"),
                ));
                None
            }
        },
    };
    if let Some(end) = port["endPort"].as_u64() {
        match number {
            Some(n) if end >= n && end <= 65535 => {}
            Some(_) => out.push(err(
                format!("{at}.endPort"),
                "Invalid value: must be greater than or equal to `port` and at most 65535",
            )),
            None => out.push(err(
                format!("{at}.endPort"),
                "Forbidden: may not be specified when `port` is not a number",
            )),
        }
    }
}
