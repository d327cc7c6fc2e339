//! What kubectl reads differently: it turns YAML into JSON with YAML 1.1 rules, where a plain
//! `0755` is the octal integer 493 (`defaultMode: 0755` in countless manifests), while the
//! YAML 1.2 parser skiff uses reads it as the string "0755". Before parsing, plain scalars
//! that YAML 1.1 reads as octal are rewritten in decimal, so a file in the manifests folder (or
//! a YAML body sent to the API) means what it means to `kubectl apply -f`. Quoted scalars and
//! tagged ones are left alone.

use std::borrow::Cow;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// `text` with YAML 1.1 octal plain scalars in decimal (unchanged if it has none, or if it
/// does not parse: the parser proper then says why).
pub fn octals_in_decimal(text: &str) -> Cow<'_, str> {
    let mut parser = Parser::new_from_str(text);
    let mut edits: Vec<(usize, usize, i64)> = Vec::new();
    // The parser's marks count characters: walk them to byte offsets as they come (in order).
    let mut chars = text.char_indices().enumerate().peekable();
    let mut byte_at = |char_index: usize| {
        while chars.next_if(|(i, _)| *i < char_index).is_some() {}
        chars.peek().map_or(text.len(), |(_, (b, _))| *b)
    };
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => break,
            Ok((Event::Scalar(value, TScalarStyle::Plain, _, None), mark)) => {
                let Some(n) = octal(&value) else { continue };
                let at = byte_at(mark.index());
                if text.get(at..).is_some_and(|t| t.starts_with(&value)) {
                    edits.push((at, value.len(), n));
                }
            }
            Ok(_) => {}
            Err(_) => return Cow::Borrowed(text),
        }
    }
    if edits.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for (at, len, n) in edits.into_iter().rev() {
        out.replace_range(at..at + len, &n.to_string());
    }
    Cow::Owned(out)
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
        let out = octals_in_decimal(text);
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
        assert!(matches!(octals_in_decimal("a: 1\n"), Cow::Borrowed(_)));
        assert!(matches!(octals_in_decimal("a: [0755\n"), Cow::Borrowed(_)));
        assert_eq!(octals_in_decimal("é: x\nmode: 0755\n"), "é: x\nmode: 493\n");
        let multi = "kind: A\nmode: 0755\n---\nkind: B\nmode: 0644\n";
        assert_eq!(
            octals_in_decimal(multi),
            "kind: A\nmode: 493\n---\nkind: B\nmode: 420\n"
        );
    }
}
