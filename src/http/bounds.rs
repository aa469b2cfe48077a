//! Bounds on a document's shape, checked in one linear, non-recursive pass over its text before the
//! parser or any other recursive code sees it.
//!
//! async-graphql's parser, validator and executor recurse once per nesting level, and a worker's
//! stack holds a few thousand levels: a document of a few kilobytes nested deeper than that used to
//! abort the whole process (a stack overflow cannot be caught). So every construct that nests is
//! bounded here, where nothing recurses:
//! - selection sets, inline fragments, object values, arguments, directive arguments, list values
//!   and list types all open with `{`, `(` or `[`: the bracket depth bounds them all at once;
//! - fragment spreads continue a selection in another definition: the depth a spread reaches is the
//!   depth where it stands plus the depth of the fragment it names, followed through every chain of
//!   spreads (with memoisation and an explicit stack, so a long chain costs nothing here either);
//! - fan-out (a fragment spreading the next one twice, ten times over) multiplies work without
//!   nesting: the tokens a document expands to, with every spread replaced by its fragment, are
//!   bounded too;
//! - a fragment cycle is refused here, since the validator's own cycle check walks the chain.
//!
//! Strings, block strings and comments are skipped, so brackets inside them do not count. The scan
//! never rejects a document the parser would accept unless one of the bounds is exceeded; anything
//! malformed is left for the parser to report.

use std::collections::HashMap;

/// Why a document was refused before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// Brackets (or brackets reached through fragment spreads) nest deeper than the limit.
    Nesting,
    /// With every fragment spread expanded, the document holds more tokens than the limit.
    Tokens,
    /// A fragment spreads itself, directly or through others.
    FragmentCycle,
}

/// The limits a document must stay within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_nesting: usize,
    pub max_tokens: usize,
}

/// One definition (an operation or a fragment) as the scan saw it.
#[derive(Default)]
struct Definition<'a> {
    /// Deepest bracket nesting inside the definition itself.
    depth: usize,
    /// Tokens in the definition itself.
    tokens: usize,
    /// Fragment spreads: the name and the bracket depth the spread stands at.
    spreads: Vec<(&'a str, usize)>,
}

/// Checks `doc` against `limits`, without recursion and in time linear in its length.
pub fn check(doc: &str, limits: Limits) -> Result<(), Exceeded> {
    let scan = scan(doc, limits)?;
    // Each definition's reach (nesting, expanded tokens) through its spreads, memoised by index.
    // Fragments are resolved by name; an unknown name is the validator's to report and adds nothing.
    let by_name = &scan.fragments;
    let mut reach: Vec<Option<(usize, usize)>> = vec![None; scan.defs.len()];
    let mut on_stack = vec![false; scan.defs.len()];
    for root in 0..scan.defs.len() {
        if reach[root].is_some() {
            continue;
        }
        // Iterative depth-first walk: (definition, index of the next spread to look at).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        on_stack[root] = true;
        while let Some(&mut (def, ref mut next)) = stack.last_mut() {
            let spreads = &scan.defs[def].spreads;
            if let Some(&(name, _)) = spreads.get(*next) {
                *next += 1;
                let Some(&target) = by_name.get(name) else { continue };
                if on_stack[target] {
                    return Err(Exceeded::FragmentCycle);
                }
                if reach[target].is_none() {
                    on_stack[target] = true;
                    stack.push((target, 0));
                }
                continue;
            }
            // Every spread of `def` is resolved: combine them.
            let own = &scan.defs[def];
            let mut depth = own.depth;
            let mut tokens = own.tokens;
            for &(name, at) in &own.spreads {
                if let Some((d, t)) = by_name.get(name).and_then(|&i| reach[i]) {
                    depth = depth.max(at.saturating_add(d));
                    tokens = tokens.saturating_add(t);
                }
            }
            if depth > limits.max_nesting {
                return Err(Exceeded::Nesting);
            }
            if tokens > limits.max_tokens {
                return Err(Exceeded::Tokens);
            }
            reach[def] = Some((depth, tokens));
            on_stack[def] = false;
            stack.pop();
        }
    }
    Ok(())
}

struct Scan<'a> {
    defs: Vec<Definition<'a>>,
    /// Fragment name -> index into `defs` (the first definition of a name; duplicates are merged
    /// into it, which can only overestimate).
    fragments: HashMap<&'a str, usize>,
}

fn is_name_start(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphabetic()
}

fn is_name_continue(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

/// One pass over the bytes: bracket depth, tokens and fragment spreads per definition.
fn scan(doc: &str, limits: Limits) -> Result<Scan<'_>, Exceeded> {
    let bytes = doc.as_bytes();
    let mut defs: Vec<Definition> = vec![Definition::default()];
    let mut fragments: HashMap<&str, usize> = HashMap::new();
    let mut current = 0usize;
    let mut depth = 0usize;
    let mut total_tokens = 0usize;
    // What the previous significant tokens were, to recognise `fragment Name` and `...Name`.
    let mut after_spread = false;
    let mut after_fragment_keyword = false;
    let mut ended = false;
    let mut i = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            // The byte order mark is ignored like whitespace.
            0xEF if bytes[i..].starts_with(&[0xEF, 0xBB, 0xBF]) => {
                i += 3;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        total_tokens += 1;
        // Tokens of the whole text, before expansion, bound the scan's own work and memory.
        if total_tokens > limits.max_tokens {
            return Err(Exceeded::Tokens);
        }
        // A definition ends where its top-level selection set closes; the next token starts another.
        if ended {
            defs.push(Definition::default());
            current = defs.len() - 1;
            ended = false;
        }
        defs[current].tokens += 1;
        match b {
            b'{' | b'(' | b'[' => {
                depth += 1;
                defs[current].depth = defs[current].depth.max(depth);
                if depth > limits.max_nesting {
                    return Err(Exceeded::Nesting);
                }
                after_spread = false;
                after_fragment_keyword = false;
                i += 1;
            }
            b'}' | b')' | b']' => {
                depth = depth.saturating_sub(1);
                ended = depth == 0 && b == b'}';
                after_spread = false;
                after_fragment_keyword = false;
                i += 1;
            }
            b'"' => {
                i = skip_string(bytes, i);
                after_spread = false;
                after_fragment_keyword = false;
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                after_spread = true;
                after_fragment_keyword = false;
                i += 3;
            }
            _ if is_name_start(b) => {
                let start = i;
                while i < bytes.len() && is_name_continue(bytes[i]) {
                    i += 1;
                }
                let name = &doc[start..i];
                if after_fragment_keyword {
                    match fragments.get(name) {
                        // A second fragment of the same name (a validation error): fold it into
                        // the first so nothing it does escapes the bounds.
                        Some(&first) => {
                            let dup = std::mem::take(&mut defs[current]);
                            defs.pop();
                            current = first;
                            defs[current].tokens += dup.tokens;
                        }
                        None => {
                            fragments.insert(name, current);
                        }
                    }
                    after_fragment_keyword = false;
                } else if after_spread && name != "on" {
                    defs[current].spreads.push((name, depth));
                } else if depth == 0 && name == "fragment" && defs[current].tokens == 1 {
                    after_fragment_keyword = true;
                }
                after_spread = false;
            }
            _ => {
                // Numbers, `$`, `:`, `=`, `@`, `!`, `|`, `&` and anything the parser will reject.
                i += 1;
                while i < bytes.len()
                    && (bytes[i] == b'.' || bytes[i] == b'-' || bytes[i] == b'+' || is_name_continue(bytes[i]))
                {
                    i += 1;
                }
                after_spread = false;
                after_fragment_keyword = false;
            }
        }
    }
    Ok(Scan { defs, fragments })
}

/// The index just past the string that starts at `start` (a `"`): a block string `"""..."""`
/// (where `\"""` does not end it) or a single-line string (where `\"` does not end it, and a line
/// break ends it as an error the parser will report).
fn skip_string(bytes: &[u8], start: usize) -> usize {
    if bytes[start..].starts_with(b"\"\"\"") {
        let mut i = start + 3;
        while i < bytes.len() {
            if bytes[i..].starts_with(b"\\\"\"\"") {
                i += 4;
            } else if bytes[i..].starts_with(b"\"\"\"") {
                return i + 3;
            } else {
                i += 1;
            }
        }
        return i;
    }
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            b'\n' | b'\r' => return i,
            _ => i += 1,
        }
    }
    i.min(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_nesting: 32, max_tokens: 2_000 };

    fn nested(open: &str, close: &str, n: usize, inner: &str) -> String {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn ordinary_documents_pass() {
        for doc in [
            "{ posts(first: 20) { edges { node { id title author { nickname } } } } }",
            "query Q($v: [[Int!]!] = [[1]]) { a(x: {y: [1, 2, {z: \"}}}}\"}]}) @skip(if: false) { ...F } } fragment F on T { b ... on U { c } }",
            "# a comment with {{{{ \n { a(s: \"\"\" {{{{ \\\"\"\" ]]] \"\"\") }",
            "mutation M { like(id: 1) { ok } }\nquery Q { a }",
        ] {
            assert_eq!(check(doc, LIMITS), Ok(()), "{doc}");
        }
    }

    #[test]
    fn every_nesting_construct_is_bounded_at_any_depth() {
        for n in [33, 1_000, 100_000] {
            let cases = [
                format!("{{ __type(name: {}) {{ name }} }}", nested("[", "]", n, "\"x\"")),
                format!("{{ a @d(x: {}) }}", nested("{a:", "}", n, "1")),
                format!("query($v: {}) {{ a }}", nested("[", "]", n, "Int")),
                format!("query($v: Int = {}) {{ a }}", nested("[", "]", n, "1")),
                nested("{ a ", "}", n, ""),
                nested("{ ... on Query ", "}", n, "a"),
            ];
            for doc in cases {
                assert_eq!(check(&doc, Limits { max_tokens: 10_000_000, ..LIMITS }), Err(Exceeded::Nesting));
            }
        }
    }

    #[test]
    fn depth_through_fragment_chains_counts() {
        // Each fragment nests 3 levels and spreads the next: 20 of them reach far past 32.
        let mut doc = String::from("{ ...F0 }");
        for i in 0..20 {
            doc.push_str(&format!(" fragment F{i} on Query {{ a {{ b {{ ...F{} }} }} }}", i + 1));
        }
        doc.push_str(" fragment F20 on Query { z }");
        assert_eq!(check(&doc, LIMITS), Err(Exceeded::Nesting));
        // A long chain declared in reverse order is walked without recursion.
        let mut doc = String::from("{ ...F0 }");
        for i in (0..100_000).rev() {
            doc.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
        }
        assert!(check(&doc, Limits { max_nesting: 32, max_tokens: usize::MAX }).is_err());
    }

    #[test]
    fn cycles_and_fan_out_are_refused() {
        assert_eq!(
            check("{ ...A } fragment A on Q { ...B } fragment B on Q { ...A }", LIMITS),
            Err(Exceeded::FragmentCycle)
        );
        assert_eq!(check("{ ...A } fragment A on Q { a ...A }", LIMITS), Err(Exceeded::FragmentCycle));
        let mut doc = String::from("{ ...F0 }");
        for i in 0..30 {
            doc.push_str(&format!(" fragment F{i} on Query {{ ...F{n} ...F{n} }}", n = i + 1));
        }
        doc.push_str(" fragment F30 on Query { a }");
        assert_eq!(check(&doc, LIMITS), Err(Exceeded::Tokens));
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let deep = "[".repeat(1000);
        let doc = format!("{{ a(s: \"{deep}\", t: \"\"\"{deep}\"\"\") # {deep}\n }}");
        assert_eq!(check(&doc, LIMITS), Ok(()));
    }
}
