//! HTTP chart repositories without the network: Helm's `index.yaml` read, a chart version
//! picked as `helm install --version` picks it, and a chart URL resolved against the
//! repository's. The fetching (HTTP, TLS, credentials, the cache) is the daemon's
//! (`src/charts/`); nothing here does I/O.
//!
//! Versions and constraints follow Masterminds/semver v3, the library Helm uses, not the
//! `semver` crate (Cargo's rules). The differences that matter for charts:
//! - versions are read loosely: `v1.2.3`, `1.2`, `1` are versions (`1.2` is `1.2.0`);
//! - a constraint's missing or `x`/`X`/`*` parts are wildcards (`1.2` is `1.2.x`, `=1.2`
//!   matches 1.2.7, `>1.2` needs 1.3.0, `<=1.2` allows 1.2.9), where Cargo's `1.2` is `^1.2`;
//! - `,` or spaces join comparisons, `||` alternatives, `1.2 - 1.4` is `>=1.2, <=1.4`;
//! - a prerelease version satisfies a comparison only if that comparison itself names a
//!   prerelease, whatever its major.minor.patch (`>=1.0.0-0` admits 2.0.0-rc.1; Cargo admits
//!   prereleases of 1.0.0 only), so the default (empty version, i.e. `*`) never picks one;
//! - `~1.2.3-beta.2` admits 1.2.4-beta.2 (npm would not).

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// One chart version of an index (`entries.<name>[i]`), the fields skiff reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartVersion {
    pub name: String,
    pub version: String,
    /// Where the archive is: absolute, or relative to the repository's URL.
    pub urls: Vec<String>,
    /// `sha256` hex of the archive, when the index gives it.
    pub digest: Option<String>,
    pub created: Option<String>,
}

/// A repository's `index.yaml`.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub api_version: String,
    /// Chart name → its versions as the index lists them.
    pub entries: BTreeMap<String, Vec<ChartVersion>>,
}

#[derive(serde::Deserialize)]
struct RawIndex {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(default)]
    entries: Option<BTreeMap<String, Option<Vec<Option<RawVersion>>>>>,
}

#[derive(serde::Deserialize)]
struct RawVersion {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    urls: Option<Vec<String>>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    created: Option<serde_yaml_ng::Value>,
}

fn scalar(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads an `index.yaml` (or its JSON form). `origin` (the index's URL) names it in errors.
/// As Helm's loader: no `apiVersion` is an error; entries without a version or URL are
/// left out (Helm logs and skips them).
pub fn parse_index(bytes: &[u8], origin: &str) -> Result<Index, String> {
    let raw: RawIndex = serde_yaml_ng::from_slice(bytes)
        .map_err(|e| format!("{origin} is not a chart repository index: {e}"))?;
    let api_version = raw.api_version.unwrap_or_default();
    if api_version.is_empty() {
        return Err(format!(
            "{origin} is not a chart repository index: no apiVersion specified"
        ));
    }
    let mut entries = BTreeMap::new();
    for (name, versions) in raw.entries.unwrap_or_default() {
        let versions: Vec<ChartVersion> = versions
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                let version = v.version.as_ref().and_then(scalar)?;
                let urls = v.urls.unwrap_or_default();
                if version.is_empty() || urls.is_empty() {
                    return None;
                }
                Some(ChartVersion {
                    name: v.name.unwrap_or_else(|| name.clone()),
                    version,
                    urls,
                    digest: v.digest.filter(|d| !d.is_empty()),
                    created: v.created.as_ref().and_then(scalar),
                })
            })
            .collect();
        entries.insert(name, versions);
    }
    Ok(Index {
        api_version,
        entries,
    })
}

/// A version as Masterminds/semver reads it (loosely: `v` prefix, missing minor/patch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// The prerelease, empty for a release.
    pub pre: String,
}

impl Version {
    /// `1`, `1.2`, `v1.2.3`, `1.2.3-rc.1+build`; four parts or stray characters are refused.
    pub fn parse(text: &str) -> Result<Version, String> {
        let (v, parts) = parse_parts(text)?;
        if parts.iter().any(|p| p.is_none() && v.is_some()) {
            return Err(format!("{text:?} is not a version"));
        }
        let mut nums = [0u64; 3];
        for (i, p) in parts.iter().enumerate() {
            match p {
                Some(Part::Num(n)) => nums[i] = *n,
                Some(Part::X) => return Err(format!("{text:?} is not a version")),
                None => {}
            }
        }
        Ok(Version {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            pre: v.unwrap_or_default(),
        })
    }

    fn triple(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.triple()
            .cmp(&other.triple())
            .then_with(|| compare_prerelease(&self.pre, &other.pre))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        Ok(())
    }
}

/// SemVer 2.0 precedence of prereleases; a release (empty) is above any prerelease.
fn compare_prerelease(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let (mut x, mut y) = (a.split('.'), b.split('.'));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let ord = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => p.cmp(q),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

enum Part {
    Num(u64),
    X,
}

/// `v?MAJOR(.MINOR(.PATCH)?)?(-PRE)?(+BUILD)?` with `x`/`X`/`*` allowed as parts: (the
/// prerelease, the three parts — `None` where absent).
#[allow(clippy::type_complexity)]
fn parse_parts(text: &str) -> Result<(Option<String>, [Option<Part>; 3]), String> {
    let bad = || format!("{text:?} is not a version");
    let t = text.strip_prefix('v').unwrap_or(text);
    let t = match t.split_once('+') {
        Some((v, build)) => {
            if !ident_ok(build) {
                return Err(bad());
            }
            v
        }
        None => t,
    };
    let (core, pre) = match t.split_once('-') {
        Some((c, p)) => {
            if !ident_ok(p) {
                return Err(bad());
            }
            (c, Some(p.to_string()))
        }
        None => (t, None),
    };
    let pieces: Vec<&str> = core.split('.').collect();
    if pieces.is_empty() || pieces.len() > 3 {
        return Err(bad());
    }
    let mut parts: [Option<Part>; 3] = [None, None, None];
    for (i, p) in pieces.iter().enumerate() {
        parts[i] = Some(if matches!(*p, "x" | "X" | "*") {
            Part::X
        } else if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            Part::Num(p.parse().map_err(|_| bad())?)
        } else {
            return Err(bad());
        });
    }
    Ok((pre, parts))
}

fn ident_ok(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `=` or nothing: equal, or a tilde range when parts are wildcards.
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

/// One comparison of a constraint.
#[derive(Debug, Clone)]
struct Comparison {
    op: Op,
    con: Version,
    /// Some part is a wildcard or absent.
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

/// A version constraint in Helm's syntax (Masterminds/semver v3): alternatives (`||`) of
/// comparisons that must all hold.
#[derive(Debug, Clone)]
pub struct Constraint {
    any_of: Vec<Vec<Comparison>>,
    text: String,
}

impl Constraint {
    /// Reads a constraint; an empty one is `*`.
    pub fn parse(text: &str) -> Result<Constraint, String> {
        let mut any_of = Vec::new();
        for group in text.split("||") {
            let mut all = Vec::new();
            for token in tokens(group) {
                all.push(
                    comparison(&token)
                        .map_err(|e| format!("invalid version constraint {text:?}: {e}"))?,
                );
            }
            if all.is_empty() {
                all.push(comparison("*").expect("* parses"));
            }
            any_of.push(all);
        }
        Ok(Constraint {
            any_of,
            text: text.to_string(),
        })
    }

    pub fn matches(&self, v: &Version) -> bool {
        self.any_of.iter().any(|all| all.iter().all(|c| c.check(v)))
    }
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The comparisons of one `||` group: split at commas and spaces, an operator joined to the
/// version after it (`>= 1.2`), `A - B` made `>=A` and `<=B`.
fn tokens(group: &str) -> Vec<String> {
    let words: Vec<&str> = group
        .split([',', ' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if i + 2 < words.len() && words[i + 1] == "-" {
            out.push(format!(">={w}"));
            out.push(format!("<={}", words[i + 2]));
            i += 3;
            continue;
        }
        if w.chars().all(|c| "=!<>~^".contains(c)) && i + 1 < words.len() {
            out.push(format!("{w}{}", words[i + 1]));
            i += 2;
            continue;
        }
        out.push(w.to_string());
        i += 1;
    }
    out
}

fn comparison(token: &str) -> Result<Comparison, String> {
    let ops: [(&str, Op); 11] = [
        ("!=", Op::Ne),
        (">=", Op::Ge),
        ("=>", Op::Ge),
        ("<=", Op::Le),
        ("=<", Op::Le),
        ("~>", Op::Tilde),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
        ("~", Op::Tilde),
        ("^", Op::Caret),
    ];
    let (op, rest) = ops
        .iter()
        .find_map(|(p, op)| token.strip_prefix(p).map(|r| (*op, r)))
        .unwrap_or((Op::Eq, token));
    let (pre, parts) = parse_parts(rest)?;
    let num = |p: &Option<Part>| match p {
        Some(Part::Num(n)) => Some(*n),
        _ => None,
    };
    let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
    let (major, minor, patch) = match (num(&parts[0]), num(&parts[1]), num(&parts[2])) {
        (None, _, _) => {
            dirty = true;
            (0, 0, 0)
        }
        (Some(m), None, _) => {
            dirty = true;
            minor_dirty = true;
            (m, 0, 0)
        }
        (Some(m), Some(n), None) => {
            dirty = true;
            patch_dirty = true;
            (m, n, 0)
        }
        (Some(m), Some(n), Some(p)) => (m, n, p),
    };
    Ok(Comparison {
        op,
        con: Version {
            major,
            minor,
            patch,
            pre: pre.unwrap_or_default(),
        },
        dirty,
        minor_dirty,
        patch_dirty,
    })
}

impl Comparison {
    fn check(&self, v: &Version) -> bool {
        // A prerelease only satisfies a comparison that names one (Masterminds' rule).
        if !v.pre.is_empty() && self.con.pre.is_empty() {
            return false;
        }
        let c = &self.con;
        match self.op {
            Op::Eq => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    v == c
                }
            }
            Op::Ne => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if self.minor_dirty {
                        return false;
                    }
                    if c.minor != v.minor {
                        return true;
                    }
                    if self.patch_dirty {
                        return compare_prerelease(&v.pre, &c.pre) != Ordering::Equal;
                    }
                }
                v != c
            }
            Op::Gt => {
                if !self.dirty {
                    return v > c;
                }
                match v.major.cmp(&c.major) {
                    Ordering::Greater => true,
                    Ordering::Less => false,
                    Ordering::Equal if self.minor_dirty => false,
                    Ordering::Equal if self.patch_dirty => v.minor > c.minor,
                    Ordering::Equal => v > c,
                }
            }
            Op::Lt => v < c,
            Op::Ge => v >= c,
            Op::Le => {
                if !self.dirty {
                    return v <= c;
                }
                !(v.major > c.major
                    || (v.major == c.major && v.minor > c.minor && !self.minor_dirty))
            }
            Op::Tilde => self.tilde(v),
            Op::Caret => {
                if v < c {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                v.patch == c.patch
            }
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.con;
        if v < c {
            return false;
        }
        // `~0.0.0` and `*` accept everything above.
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        v.major == c.major && (self.minor_dirty || v.minor == c.minor)
    }
}

/// The versions of `chart` in the index, highest first (Helm's `SortEntries`); versions that
/// do not parse are left out, as `IndexFile.Get` skips them.
fn sorted(versions: &[ChartVersion]) -> Vec<(Version, &ChartVersion)> {
    let mut out: Vec<(Version, &ChartVersion)> = versions
        .iter()
        .filter_map(|cv| Version::parse(&cv.version).ok().map(|v| (v, cv)))
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0));
    out
}

/// Picks the version of `chart` that `helm install --version <wanted>` would: an entry whose
/// version is exactly `wanted` first, else the highest matching `wanted` as a constraint
/// (empty: the highest release, no prerelease). The error names the repository, the chart,
/// what was asked and what the repository has.
pub fn pick<'a>(
    index: &'a Index,
    repo: &str,
    chart: &str,
    wanted: &str,
) -> Result<&'a ChartVersion, String> {
    let Some(versions) = index.entries.get(chart) else {
        let names: Vec<&str> = index.entries.keys().map(String::as_str).collect();
        return Err(format!(
            "chart {chart:?} not found in repository {repo} (it has {})",
            list_or_nothing(&names, 30)
        ));
    };
    let wanted = wanted.trim();
    if !wanted.is_empty() {
        if let Some(exact) = versions.iter().find(|cv| cv.version == wanted) {
            return Ok(exact);
        }
    }
    let constraint = Constraint::parse(wanted)?;
    let sorted = sorted(versions);
    if let Some((_, cv)) = sorted.iter().find(|(v, _)| constraint.matches(v)) {
        return Ok(cv);
    }
    let available: Vec<&str> = sorted.iter().map(|(_, cv)| cv.version.as_str()).collect();
    let asked = if wanted.is_empty() {
        "no version given: the latest release, and the repository has none that is not a prerelease"
            .to_string()
    } else {
        format!("version {wanted:?}")
    };
    Err(format!(
        "chart {chart:?} in repository {repo}: no version matches ({asked}); versions available: {}",
        list_or_nothing(&available, 30)
    ))
}

fn list_or_nothing(items: &[&str], at_most: usize) -> String {
    if items.is_empty() {
        return "none".into();
    }
    let mut s = items
        .iter()
        .take(at_most)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > at_most {
        s.push_str(&format!(" and {} more", items.len() - at_most));
    }
    s
}

/// The URL of a chart archive: `chart_url` as the index gives it, resolved against the
/// repository's URL as Helm's `ResolveReferenceURL` does (the repository URL taken as a
/// folder, so `charts/a-1.0.0.tgz` under `https://h/repo` is `https://h/repo/charts/a-1.0.0.tgz`;
/// the repository's query string is kept).
pub fn resolve_url(repo_url: &str, chart_url: &str) -> Result<url::Url, String> {
    let mut base =
        url::Url::parse(repo_url).map_err(|e| format!("repository URL {repo_url:?}: {e}"))?;
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    let mut resolved = base
        .join(chart_url)
        .map_err(|e| format!("chart URL {chart_url:?} in the index of {repo_url}: {e}"))?;
    // Helm keeps the repository's query (a token some servers want) on a URL without one.
    if resolved.query().is_none() && base.query().is_some() {
        resolved.set_query(base.query());
    }
    Ok(resolved)
}

/// The URL of a repository's index (`<repo>/index.yaml`).
pub fn index_url(repo_url: &str) -> Result<url::Url, String> {
    resolve_url(repo_url, "index.yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Masterminds/semver `constraints_test.go` (TestConstraintCheck, TestConstraintsCheck),
    /// github.com/Masterminds/semver at commit 00300c46865890f2906399c7524020c12d31d100: the
    /// cases carried over as data (constraint, version, expected).
    const MASTERMINDS_CASES: &[(&str, &str, bool)] = &[
        ("=2.0.0", "1.2.3", false),
        ("=2.0.0", "2.0.0", true),
        ("=2.0", "1.2.3", false),
        ("=2.0", "2.0.0", true),
        ("=2.0", "2.0.1", true),
        ("4.1", "4.1.0", true),
        ("!=4.1.0", "4.1.0", false),
        ("!=4.1.0", "4.1.1", true),
        ("!=4.1", "4.1.0", false),
        ("!=4.1", "4.1.1", false),
        ("!=4.1", "5.1.0-alpha.1", false),
        ("!=4.1-alpha", "4.1.0", true),
        ("!=4.1", "5.1.0", true),
        ("<11", "0.1.0", true),
        ("<11", "11.1.0", false),
        ("<1.1", "0.1.0", true),
        ("<1.1", "1.1.0", false),
        ("<1.1", "1.1.1", false),
        ("<=11", "1.2.3", true),
        ("<=11", "12.2.3", false),
        ("<=11", "11.2.3", true),
        ("<=1.1", "1.2.3", false),
        ("<=1.1", "0.1.0", true),
        ("<=1.1", "1.1.0", true),
        ("<=1.1", "1.1.1", true),
        (">1.1", "4.1.0", true),
        (">1.1", "1.1.0", false),
        (">0", "0", false),
        (">0", "1", true),
        (">0", "0.0.1-alpha", false),
        (">0.0", "0.0.1-alpha", false),
        (">0-0", "0.0.1-alpha", false),
        (">0.0-0", "0.0.1-alpha", false),
        (">0", "0.0.0-alpha", false),
        (">0-0", "0.0.0-alpha", false),
        (">0.0.0-0", "0.0.0-alpha", true),
        (">1.2.3-alpha.1", "1.2.3-alpha.2", true),
        (">1.2.3-alpha.1", "1.3.3-alpha.2", true),
        (">11", "11.1.0", false),
        (">11.1", "11.1.0", false),
        (">11.1", "11.1.1", false),
        (">11.1", "11.2.1", true),
        (">=11", "11.1.2", true),
        (">=11.1", "11.1.2", true),
        (">=11.1", "11.0.2", false),
        (">=1.1", "4.1.0", true),
        (">=1.1", "1.1.0", true),
        (">=1.1", "0.0.9", false),
        (">=0", "0.0.1-alpha", false),
        (">=0.0", "0.0.1-alpha", false),
        (">=0-0", "0.0.1-alpha", true),
        (">=0.0-0", "0.0.1-alpha", true),
        (">=0", "0.0.0-alpha", false),
        (">=0-0", "0.0.0-alpha", true),
        (">=0.0.0-0", "0.0.0-alpha", true),
        (">=0.0.0-0", "1.2.3", true),
        (">=0.0.0-0", "3.4.5-beta.1", true),
        ("<0", "0.0.0-alpha", false),
        ("<0-z", "0.0.0-alpha", true),
        (">=0", "0", true),
        ("=0", "1", false),
        ("*", "1", true),
        ("*", "4.5.6", true),
        ("*", "1.2.3-alpha.1", false),
        ("*-0", "1.2.3-alpha.1", true),
        ("2.*", "1", false),
        ("2.*", "3.4.5", false),
        ("2.*", "2.1.1", true),
        ("2.1.*", "2.1.1", true),
        ("2.1.*", "2.2.1", false),
        ("", "1", true),
        ("", "4.5.6", true),
        ("", "1.2.3-alpha.1", false),
        ("2", "1", false),
        ("2", "3.4.5", false),
        ("2", "2.1.1", true),
        ("2.1", "2.1.1", true),
        ("2.1", "2.2.1", false),
        ("~1.2.3", "1.2.4", true),
        ("~1.2.3", "1.3.4", false),
        ("~1.2", "1.2.4", true),
        ("~1.2", "1.3.4", false),
        ("~1", "1.2.4", true),
        ("~1", "2.3.4", false),
        ("~0.2.3", "0.2.5", true),
        ("~0.2.3", "0.3.5", false),
        ("~1.2.3-beta.2", "1.2.3-beta.4", true),
        ("~1.2.3-beta.2", "1.2.4-beta.2", true),
        ("~1.2.3-beta.2", "1.3.4-beta.2", false),
        ("^1.2.3", "1.8.9", true),
        ("^1.2.3", "2.8.9", false),
        ("^1.2.3", "1.2.1", false),
        ("^1.1.0", "2.1.0", false),
        ("^1.2.0", "2.2.1", false),
        ("^1.2.0", "1.2.1-alpha.1", false),
        ("^1.2.0-alpha.0", "1.2.1-alpha.1", true),
        ("^1.2.0-alpha.0", "1.2.1-alpha.0", true),
        ("^1.2.0-alpha.2", "1.2.0-alpha.1", false),
        ("^1.2", "1.8.9", true),
        ("^1.2", "2.8.9", false),
        ("^1", "1.8.9", true),
        ("^1", "2.8.9", false),
        ("^0.2.3", "0.2.5", true),
        ("^0.2.3", "0.5.6", false),
        ("^0.2", "0.2.5", true),
        ("^0.2", "0.5.6", false),
        ("^0.0.3", "0.0.3", true),
        ("^0.0.3", "0.0.4", false),
        ("^0.0", "0.0.3", true),
        ("^0.0", "0.1.4", false),
        ("^0.0", "1.0.4", false),
        ("^0", "0.2.3", true),
        ("^0", "1.1.4", false),
        ("^0.2.3-beta.2", "0.2.3-beta.4", true),
        ("^0.2.3-beta.2", "0.2.4-beta.2", true),
        ("^0.2.3-beta.2", "0.3.4-beta.2", false),
        ("^0.2.3-beta.2", "0.2.3-beta.2", true),
        // TestConstraintsCheck
        ("~0.0.0", "1.2.3", true),
        ("0.x.x", "1.2.3", false),
        ("0.0.x", "1.2.3", false),
        ("0.0.0", "1.2.3", false),
        ("^0.0.0", "1.2.3", false),
        ("= 2.0", "1.2.3", false),
        ("= 2.0", "2.0.0", true),
        ("4.1.x", "4.1.3", true),
        ("1.x", "1.4", true),
        ("!=4.1-alpha", "4.1.0-alpha", false),
        ("!=4.1-alpha", "4.1.1-alpha", false),
        ("!=4.x", "5.1.0", true),
        ("!=4.x", "4.1.0", false),
        ("!=4.1.x", "4.2.0", true),
        ("!=4.2.x", "4.2.3", false),
        ("<1.x", "1.1.1", false),
        ("<1.x", "0.1.1", true),
        ("<1.x", "2.0.0", false),
        ("<1.1.x", "1.2.1", false),
        ("<1.1.x", "1.1.500", false),
        ("<1.1.x", "1.0.500", true),
        ("<1.2.x", "1.1.1", true),
        (">=1.1", "4.1.0-beta", false),
        ("<=1.1", "0.1.0-alpha", false),
        ("<=1.1-a", "0.1.0-alpha", true),
        ("<=1.x", "1.1.0", true),
        ("<=2.x", "3.0.0", false),
        ("<=1.1.x", "1.2.500", false),
        ("<=4.5", "3.4.0", true),
        ("<=4.5", "3.7.0", true),
        ("<=4.5", "4.6.3", false),
        (">1.1, <2", "1.1.1", false),
        (">1.1, <2", "1.2.1", true),
        (">1.1, <3", "4.3.2", false),
        (">=1.1, <2, !=1.2.3", "1.2.3", false),
        (">1.1 <2", "1.1.1", false),
        (">1.1 <2", "1.2.1", true),
        (">1.1    <3", "4.3.2", false),
        (">=1.1    <2    !=1.2.3", "1.2.3", false),
        (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", true),
        (">=1.1, <2, !=1.2.3 || > 3", "3.1.2", false),
        (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", true),
        (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", false),
        (">=1.1, <2, !=1.2.3 || > 3", "1.2.3", false),
        ("> 1.1, <     2", "1.1.1", false),
        (">   1.1, <2", "1.2.1", true),
        (">= 1.1 <2 != 1.2.3 || > 3", "4.1.2", true),
        (">=1.1    < 2    != 1.2.3", "1.2.3", false),
        ("1.1 - 2", "1.1.1", true),
        ("1.5.0 - 4.5", "3.7.0", true),
        ("1.1-3", "4.3.2", false),
        ("^1.1", "1.1.1", true),
        ("^1.1", "4.3.2", false),
        ("^1.x", "1.1.1", true),
        ("^2.x", "1.1.1", false),
        ("^1.x", "2.1.1", false),
        ("^1.x", "1.1.1-beta1", false),
        ("^1.1.2-alpha", "1.2.1-beta1", true),
        ("^1.2.x-alpha", "1.1.1-beta1", false),
        ("^0.0.1", "0.0.1", true),
        ("^0.0.1", "0.3.1", false),
        ("~*", "2.1.1", true),
        ("~1", "2.1.1", false),
        ("~1", "1.3.5", true),
        ("~1", "1.4", true),
        ("~1.x", "2.1.1", false),
        ("~1.x", "1.3.5", true),
        ("~1.x", "1.4", true),
        ("~1.1", "1.1.1", true),
        ("~1.1", "1.1.1-alpha", false),
        ("~1.1-alpha", "1.1.1-beta", true),
        ("~1.1.1-beta", "1.1.1-alpha", false),
        ("~1.1.1-beta", "1.1.1", true),
        ("~1.2.3", "1.2.5", true),
        ("~1.2.3", "1.2.2", false),
        ("~1.2.3", "1.3.2", false),
        ("~1.1", "1.2.3", false),
        ("~1.3", "2.4.5", false),
        ("~1.3.5-alpha", "1.3.5-beta", true),
        ("~1.3.6-alpha", "1.3.5-beta", false),
    ];

    #[test]
    fn masterminds_constraint_cases() {
        let mut failures = Vec::new();
        for (c, v, want) in MASTERMINDS_CASES {
            let constraint =
                Constraint::parse(c).unwrap_or_else(|e| panic!("constraint {c:?}: {e}"));
            let version = Version::parse(v).unwrap_or_else(|e| panic!("version {v:?}: {e}"));
            if constraint.matches(&version) != *want {
                failures.push(format!("{c:?} vs {v:?}: want {want}"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// Masterminds' TestNewConstraint: inputs that must be refused.
    #[test]
    fn masterminds_bad_constraints() {
        for bad in [
            "foo",
            ">= bar",
            "BAR >= 1.2.3",
            "12.3.4.1234",
            "12.23.4.1234",
            "12.3.34~ 1.2.3",
        ] {
            assert!(Constraint::parse(bad).is_err(), "{bad:?} should be refused");
        }
        for good in [
            ">= 1.1",
            ">40.50.60, < 50.70",
            "v2.3.5-20161202202307-sha.e8fc5e5",
            ">= 1.2.3 < 2.0 || => 3.0 < 4",
            "3 - 4 || => 3.0, < 4",
            "12.3.34 ~1.2.3",
        ] {
            assert!(Constraint::parse(good).is_ok(), "{good:?} should parse");
        }
    }

    /// The index of Helm's `pkg/repo/testdata/local-index.yaml` (helm/helm, the entries its
    /// `TestIndexFile`/`TestLoadIndex` read; digests and descriptions shortened): `nginx` at
    /// 0.2.0 and 0.1.0, `alpine` at 1.0.0, a prerelease-free `*` choice, relative URLs.
    const HELM_LOCAL_INDEX: &str = r#"
apiVersion: v1
entries:
  nginx:
    - urls:
        - https://charts.helm.sh/stable/nginx-0.2.0.tgz
      name: nginx
      description: string
      version: 0.2.0
      home: https://github.com/something/else
      digest: "sha256:1234567890abcdef"
      keywords:
        - popular
        - web server
        - proxy
      apiVersion: v2
    - urls:
        - https://charts.helm.sh/stable/nginx-0.1.0.tgz
      name: nginx
      description: string
      version: 0.1.0
      home: https://github.com/something
      digest: "sha256:1234567890abcdef"
  alpine:
    - urls:
        - https://charts.helm.sh/stable/alpine-1.0.0.tgz
        - http://storage2.googleapis.com/kubernetes-charts/alpine-1.0.0.tgz
      name: alpine
      description: string
      version: 1.0.0
      home: https://github.com/something
      digest: "sha256:1234567890abcdef"
  chartWithNoURL:
    - name: chartWithNoURL
      description: string
      version: 1.0.0
      home: https://github.com/something
      digest: "sha256:1234567890abcdef"
"#;

    #[test]
    fn helm_local_index() {
        let index = parse_index(HELM_LOCAL_INDEX.as_bytes(), "test").unwrap();
        assert_eq!(index.api_version, "v1");
        assert_eq!(index.entries["nginx"].len(), 2);
        // Helm's loader drops a version without URLs.
        assert!(index.entries["chartWithNoURL"].is_empty());
        let latest = pick(&index, "r", "nginx", "").unwrap();
        assert_eq!(latest.version, "0.2.0");
        assert_eq!(
            pick(&index, "r", "nginx", "0.1.0").unwrap().version,
            "0.1.0"
        );
        assert_eq!(pick(&index, "r", "nginx", "<0.2").unwrap().version, "0.1.0");
        assert_eq!(
            pick(&index, "r", "alpine", "").unwrap().urls[1],
            "http://storage2.googleapis.com/kubernetes-charts/alpine-1.0.0.tgz"
        );
        let e = pick(&index, "https://r.test", "nginx", "^1").unwrap_err();
        assert!(
            e.contains("\"nginx\"")
                && e.contains("https://r.test")
                && e.contains("\"^1\"")
                && e.contains("0.2.0, 0.1.0"),
            "{e}"
        );
        let e = pick(&index, "r", "nope", "").unwrap_err();
        assert!(e.contains("alpine") && e.contains("nginx"), "{e}");
    }

    /// Helm's `TestIndexFile`-style selection over an unordered list with prereleases
    /// (`pkg/repo/testdata/local-index-unordered.yaml` has the same nginx/alpine entries in
    /// another order; Helm sorts before picking).
    #[test]
    fn picks_highest_release_and_prerelease_only_when_asked() {
        let text = r#"
apiVersion: v1
entries:
  app:
    - {name: app, version: 1.2.0, urls: [app-1.2.0.tgz]}
    - {name: app, version: 2.0.0-rc.1, urls: [app-2.0.0-rc.1.tgz]}
    - {name: app, version: 1.10.0, urls: [app-1.10.0.tgz]}
    - {name: app, version: 1.9.3, urls: [app-1.9.3.tgz]}
    - {name: app, version: v0.9, urls: [app-0.9.tgz]}
    - {name: app, version: not-a-version, urls: [x.tgz]}
"#;
        let index = parse_index(text.as_bytes(), "t").unwrap();
        let got = |w: &str| pick(&index, "r", "app", w).map(|v| v.version.clone());
        assert_eq!(got("").unwrap(), "1.10.0");
        assert_eq!(got("~1.9").unwrap(), "1.9.3");
        assert_eq!(got(">=1, <1.10").unwrap(), "1.9.3");
        assert_eq!(got("1.x").unwrap(), "1.10.0");
        assert_eq!(got("1.2 - 1.9").unwrap(), "1.9.3");
        assert_eq!(got("^0.9 || ^1.2.0-0").unwrap(), "1.10.0");
        assert_eq!(got(">=2.0.0-0").unwrap(), "2.0.0-rc.1");
        assert_eq!(got("<1").unwrap(), "v0.9");
        // An exact string wins even when it does not parse as a version.
        assert_eq!(got("not-a-version").unwrap(), "not-a-version");
        assert!(got(">=3").unwrap_err().contains("2.0.0-rc.1, 1.10.0"));
        assert!(got("!!").is_err());
    }

    #[test]
    fn index_needs_api_version() {
        let e = parse_index(b"entries: {}\n", "https://r/index.yaml").unwrap_err();
        assert!(e.contains("no apiVersion"), "{e}");
        assert!(parse_index(b"[1, 2", "x").is_err());
    }

    /// Helm's `TestResolveReferenceURL` (helm/helm `pkg/repo/chartrepo_test.go`), its cases
    /// carried over as data.
    #[test]
    fn helm_resolve_reference_url() {
        let cases = [
            (
                "http://localhost:8123/",
                "/nginx-0.2.0.tgz",
                "http://localhost:8123/nginx-0.2.0.tgz",
            ),
            (
                "http://localhost:8123/charts/",
                "nginx-0.2.0.tgz",
                "http://localhost:8123/charts/nginx-0.2.0.tgz",
            ),
            (
                "http://localhost:8123/charts/",
                "/nginx-0.2.0.tgz",
                "http://localhost:8123/nginx-0.2.0.tgz",
            ),
            (
                "http://localhost:8123/charts-with-no-trailing-slash",
                "nginx-0.2.0.tgz",
                "http://localhost:8123/charts-with-no-trailing-slash/nginx-0.2.0.tgz",
            ),
            (
                "http://localhost:8123",
                "https://charts.helm.sh/stable/nginx-0.2.0.tgz",
                "https://charts.helm.sh/stable/nginx-0.2.0.tgz",
            ),
            (
                "http://localhost:8123/charts%2fwith%2fescaped%2fslash",
                "nginx-0.2.0.tgz",
                "http://localhost:8123/charts%2fwith%2fescaped%2fslash/nginx-0.2.0.tgz",
            ),
            (
                "http://localhost:8123/charts%2fwith%2fescaped%2fslash",
                "/nginx-0.2.0.tgz",
                "http://localhost:8123/nginx-0.2.0.tgz",
            ),
            (
                "http://localhost:8123/charts?with=queryparameter",
                "nginx-0.2.0.tgz",
                "http://localhost:8123/charts/nginx-0.2.0.tgz?with=queryparameter",
            ),
            (
                "http://localhost:8123/charts?with=queryparameter",
                "/nginx-0.2.0.tgz",
                "http://localhost:8123/nginx-0.2.0.tgz?with=queryparameter",
            ),
        ];
        for (base, chart, want) in cases {
            assert_eq!(
                resolve_url(base, chart).unwrap().as_str(),
                want,
                "{base} {chart}"
            );
        }
        assert_eq!(
            index_url("https://h/repo").unwrap().as_str(),
            "https://h/repo/index.yaml"
        );
    }
}

#[cfg(test)]
mod hostile {
    /// A "billion laughs" index (2^29 copies behind the fields skiff reads): refused at once by
    /// the YAML parser's repetition limit, never expanded.
    #[test]
    fn alias_bomb_index() {
        let mut text = String::from("apiVersion: v1\na0: &a0 [\"xxxxxxxxxxxxxxxx\"]\n");
        for i in 1..30 {
            text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}]\n", p = i - 1));
        }
        text.push_str(
            "entries:\n  c:\n    - {name: c, version: *a29, urls: [c.tgz], created: *a29}\n",
        );
        let started = std::time::Instant::now();
        let result = super::parse_index(text.as_bytes(), "bomb");
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        let e = result.unwrap_err();
        assert!(e.contains("bomb") && e.contains("repetition limit"), "{e}");
    }
}
