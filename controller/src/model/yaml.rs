//! YAML read as kubectl reads it, and within bounds — for the manifests folder and YAML bodies
//! sent to the API:
//!
//! - kubectl turns YAML into JSON with YAML 1.1 rules, where a plain `0755` is the octal
//!   integer 493 (`defaultMode: 0755` in countless manifests), while the YAML 1.2 parser skiff
//!   uses reads it as the string "0755". Before parsing, plain scalars that YAML 1.1 reads as
//!   octal are rewritten in decimal, so a file in the manifests folder (or a YAML body sent to
//!   the API) means what it means to `kubectl apply -f`. Quoted scalars and tagged ones are
//!   left alone.
//! - Aliases are bounded by what they produce, as go-yaml bounds them: every alias stands for
//!   a copy of its anchor's node, so a few kilobytes of anchors and aliases ("billion laughs",
//!   or one large anchored string aliased ten thousand times) would make gigabytes of JSON.
//!   The same pass over the parser's events (which does not expand aliases) adds up what each
//!   alias would copy — its anchor's scalar bytes plus [`NODE_COST`] per node — and refuses the
//!   text past [`MAX_ALIAS_EXPANSION`] bytes, before anything is built.

use std::borrow::Cow;
use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// The most bytes all the aliases of one text may produce together (scalar bytes, plus
/// [`NODE_COST`] for every node they copy).
pub const MAX_ALIAS_EXPANSION: usize = 16 * 1024 * 1024;

/// What a node costs beyond its scalar bytes once built (a JSON value's own size).
pub const NODE_COST: usize = 32;

/// Why a YAML text is refused before parsing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// The document (1-based).
    pub doc: usize,
    /// What is wrong, with the line.
    pub message: String,
}

/// `text` with YAML 1.1 octal plain scalars in decimal (unchanged if it has none, or if it
/// does not parse: the parser proper then says why — unless it has anchors, whose aliases
/// could not be bounded), or an error when its aliases expand past [`MAX_ALIAS_EXPANSION`].
pub fn as_kubectl_reads(text: &str) -> Result<Cow<'_, str>, YamlError> {
    bounded(text, MAX_ALIAS_EXPANSION)
}

/// A collection being read: its anchor and what it has produced so far.
struct Open {
    anchor: usize,
    size: usize,
}

fn bounded(text: &str, limit: usize) -> Result<Cow<'_, str>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut edits: Vec<(usize, usize, i64)> = Vec::new();
    // The parser's marks count characters: walk them to byte offsets as they come (in order).
    let mut chars = text.char_indices().enumerate().peekable();
    let mut byte_at = |char_index: usize| {
        while chars.next_if(|(i, _)| *i < char_index).is_some() {}
        chars.peek().map_or(text.len(), |(_, (b, _))| *b)
    };
    // What each anchor's node produces, the collections open, what aliases produced so far.
    let mut anchored: HashMap<usize, usize> = HashMap::new();
    let mut open: Vec<Open> = Vec::new();
    let mut by_aliases = 0usize;
    let mut doc = 0;
    let add = |open: &mut Vec<Open>, size: usize| {
        if let Some(top) = open.last_mut() {
            top.size = top.size.saturating_add(size);
        }
    };
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(e) => e,
            Err(e) if text.contains('&') => {
                return Err(YamlError {
                    doc: doc.max(1),
                    message: format!("the YAML does not parse: {e}"),
                })
            }
            Err(_) => return Ok(Cow::Borrowed(text)),
        };
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                doc += 1;
                anchored.clear();
            }
            Event::Scalar(value, style, anchor, tag) => {
                let size = value.len() + NODE_COST;
                if anchor != 0 {
                    anchored.insert(anchor, size);
                }
                add(&mut open, size);
                if style != TScalarStyle::Plain || tag.is_some() {
                    continue;
                }
                let Some(n) = octal(&value) else { continue };
                let at = byte_at(mark.index());
                if text.get(at..).is_some_and(|t| t.starts_with(&value)) {
                    edits.push((at, value.len(), n));
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => open.push(Open {
                anchor,
                size: NODE_COST,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(done) = open.pop() {
                    if done.anchor != 0 {
                        anchored.insert(done.anchor, done.size);
                    }
                    add(&mut open, done.size);
                }
            }
            Event::Alias(anchor) => {
                // An anchor still open (a recursive alias) is refused by the parser proper.
                let size = anchored.get(&anchor).copied().unwrap_or(NODE_COST);
                by_aliases = by_aliases.saturating_add(size);
                if by_aliases > limit {
                    return Err(YamlError {
                        doc: doc.max(1),
                        message: format!(
                            "line {}: the YAML's aliases expand to more than {limit} bytes \
                             (the limit on alias expansion)",
                            mark.line()
                        ),
                    });
                }
                add(&mut open, size);
            }
            _ => {}
        }
    }
    if edits.is_empty() {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = text.to_string();
    for (at, len, n) in edits.into_iter().rev() {
        out.replace_range(at..at + len, &n.to_string());
    }
    Ok(Cow::Owned(out))
}

/// The value of a YAML 1.1 octal integer (`0755`, `-012`), `None` for anything else.
fn octal(v: &str) -> Option<i64> {
    let (sign, digits) = match v.strip_prefix('-') {
        Some(d) => (-1, d),
        None => (1, v.strip_prefix('+').unwrap_or(v)),
    };
    let rest = digits.strip_prefix('0')?;
    if rest.is_empty() || !rest.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    i64::from_str_radix(rest, 8).ok().map(|n| sign * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_octals_become_decimal_and_nothing_else_changes() {
        let text = "a: 0755\nb: '0755'\nc: \"0644\"\nd: 0\ne: 08\nf: 0o17\ng: [0600, x]\nh: !!str 0755\ni: 1234\nj: -012\n";
        let out = as_kubectl_reads(text).unwrap();
        assert_eq!(
            out,
            "a: 493\nb: '0755'\nc: \"0644\"\nd: 0\ne: 08\nf: 0o17\ng: [384, x]\nh: !!str 0755\ni: 1234\nj: -10\n"
        );
        let v: serde_json::Value = serde_yaml_ng::from_str(&out).unwrap();
        assert_eq!(v["a"], 493);
        assert_eq!(v["b"], "0755");
        assert_eq!(v["h"], "0755");
    }

    #[test]
    fn text_without_octals_or_that_does_not_parse_is_returned_as_is() {
        assert!(matches!(as_kubectl_reads("a: 1\n"), Ok(Cow::Borrowed(_))));
        assert!(matches!(
            as_kubectl_reads("a: [0755\n"),
            Ok(Cow::Borrowed(_))
        ));
        assert_eq!(
            as_kubectl_reads("é: x\nmode: 0755\n").unwrap(),
            "é: x\nmode: 493\n"
        );
        let multi = "kind: A\nmode: 0755\n---\nkind: B\nmode: 0644\n";
        assert_eq!(
            as_kubectl_reads(multi).unwrap(),
            "kind: A\nmode: 493\n---\nkind: B\nmode: 420\n"
        );
    }

    #[test]
    fn aliases_are_bounded_by_what_they_produce() {
        // The billion laughs: nine levels of ten aliases each.
        let mut laughs = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            let refs = vec![format!("*{prev}"); 9].join(",");
            laughs.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let e = as_kubectl_reads(&laughs).unwrap_err();
        assert!(
            e.message
                .contains("aliases expand to more than 16777216 bytes"),
            "{e}"
        );
        assert!(e.message.starts_with("line "), "{e}");

        // Wide: one 1 MiB anchored string aliased 20000 times (20 GiB), in a second document.
        let wide = format!(
            "a: 1\n---\nbig: &big \"{}\"\nmany: [{}]\n",
            "x".repeat(1 << 20),
            vec!["*big"; 20_000].join(",")
        );
        let e = as_kubectl_reads(&wide).unwrap_err();
        assert_eq!(e.doc, 2, "{e}");

        // Ordinary anchors pass, and the parser proper still reads them.
        let fine = "base: &base {image: x, ports: [1, 2]}\na: *base\nb: *base\nmode: 0644\n";
        let out = as_kubectl_reads(fine).unwrap();
        let v: serde_json::Value = serde_yaml_ng::from_str(&out).unwrap();
        assert_eq!(v["b"]["ports"][1], 2);
        assert_eq!(v["mode"], 420);

        // A limit is a limit: 100 aliases of a 1000-byte string are 103200 bytes.
        let hundred = format!(
            "s: &s {}\nl: [{}]\n",
            "y".repeat(1000),
            vec!["*s"; 100].join(",")
        );
        assert!(bounded(&hundred, 103_200).is_ok());
        assert!(bounded(&hundred, 103_199).is_err());

        // A text that does not parse but has anchors is refused rather than left unbounded.
        assert!(as_kubectl_reads("a: &x [1\nb: *x\n").is_err());
    }
}
