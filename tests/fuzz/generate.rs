//! Generators: valid operations driven by the live schema (read by introspection from the binary
//! under test), with edge values; broken documents made from them; and the hostile shapes of
//! issue 11 (deep constructs, fragment cycles and fan-out, alias and directive floods).
//!
//! Everything is a function of a `ChaCha8Rng`, which the driver seeds from (FUZZ_SEED, case
//! number): a case is replayed by its number alone.

use std::collections::HashMap;

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{Value, json};

pub type R = ChaCha8Rng;

#[derive(Deserialize, Clone, Debug)]
pub struct TypeRef {
    pub kind: String,
    pub name: Option<String>,
    #[serde(rename = "ofType")]
    pub of_type: Option<Box<TypeRef>>,
}

impl TypeRef {
    /// The named type under any list and non-null wrappers.
    pub fn named(&self) -> &str {
        match &self.of_type {
            Some(inner) => inner.named(),
            None => self.name.as_deref().unwrap_or(""),
        }
    }

    /// As written in a variable definition: `[Int!]!`.
    pub fn print(&self) -> String {
        match (self.kind.as_str(), &self.of_type) {
            ("NON_NULL", Some(t)) => format!("{}!", t.print()),
            ("LIST", Some(t)) => format!("[{}]", t.print()),
            _ => self.name.clone().unwrap_or_default(),
        }
    }
}

#[derive(Deserialize, Clone, Debug)]
pub struct InputValue {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: TypeRef,
}

#[derive(Deserialize, Clone, Debug)]
pub struct Field {
    pub name: String,
    pub args: Vec<InputValue>,
    #[serde(rename = "type")]
    pub ty: TypeRef,
}

#[derive(Deserialize, Clone, Debug)]
pub struct Named {
    pub name: String,
}

#[derive(Deserialize, Clone, Debug)]
pub struct FullType {
    pub kind: String,
    pub name: String,
    pub fields: Option<Vec<Field>>,
    #[serde(rename = "inputFields")]
    pub input_fields: Option<Vec<InputValue>>,
    #[serde(rename = "enumValues")]
    pub enum_values: Option<Vec<Named>>,
    #[serde(rename = "possibleTypes")]
    pub possible_types: Option<Vec<Named>>,
}

/// The introspection query the schema is read with (kept within MAX_QUERY_DEPTH).
pub const INTROSPECTION: &str = "{ __schema { queryType { name } mutationType { name } subscriptionType { name }
  types { kind name
    fields(includeDeprecated: true) { name args { name type { ...T } } type { ...T } }
    inputFields { name type { ...T } }
    enumValues(includeDeprecated: true) { name }
    possibleTypes { name } } } }
  fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }";

pub struct Schema {
    pub types: HashMap<String, FullType>,
    pub query: String,
    pub mutation: String,
    pub subscription: String,
}

impl Schema {
    pub fn from_introspection(data: &Value) -> Schema {
        let s = &data["__schema"];
        let types: Vec<FullType> = serde_json::from_value(s["types"].clone()).expect("introspection types");
        let name = |k: &str| s[k]["name"].as_str().unwrap_or_default().to_string();
        Schema {
            types: types.into_iter().map(|t| (t.name.clone(), t)).collect(),
            query: name("queryType"),
            mutation: name("mutationType"),
            subscription: name("subscriptionType"),
        }
    }

    fn fields(&self, ty: &str) -> &[Field] {
        self.types.get(ty).and_then(|t| t.fields.as_deref()).unwrap_or(&[])
    }

    fn kind(&self, ty: &str) -> &str {
        self.types.get(ty).map(|t| t.kind.as_str()).unwrap_or("SCALAR")
    }
}

/// Ids the generator can use so that operations reach real rows.
#[derive(Default, Clone)]
pub struct Known {
    pub ids: Vec<String>,
    pub manifest_ids: Vec<String>,
}

/// Strings that have broken parsers, loggers and databases elsewhere.
const EDGE_STRINGS: [&str; 16] = [
    "",
    " ",
    "a",
    "外貿 询盘 FOB",
    "\u{0}",
    "\u{202e}gnp.exe",
    "😀👍🏽",
    "' OR 1=1 --",
    "\"; DROP TABLE users; --",
    "<script>alert(1)</script>",
    "%s%n%x",
    "\\\\\\",
    "\r\n\t",
    "https://example.com/a.png",
    "+8613800000001",
    "2024-02-30T25:61:61Z",
];

const EDGE_INTS: [i64; 12] = [0, 1, -1, 2, 20, 100, 101, 1000, 2147483647, -2147483648, 2147483648, -99999999999];

/// One GraphQL operation and the variables it is sent with.
pub struct Operation {
    pub document: String,
    pub variables: Value,
    pub operation_name: Option<String>,
}

pub struct Gen<'a> {
    pub rng: R,
    pub schema: &'a Schema,
    pub known: &'a Known,
    vars: Vec<(String, String)>,
    var_values: serde_json::Map<String, Value>,
}

impl<'a> Gen<'a> {
    pub fn new(rng: R, schema: &'a Schema, known: &'a Known) -> Gen<'a> {
        Gen { rng, schema, known, vars: Vec::new(), var_values: Default::default() }
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n.max(1))
    }

    pub fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        items.choose(&mut self.rng).expect("a non-empty list")
    }

    /// A random operation on `root` (the query, mutation or subscription type).
    pub fn operation(&mut self, root_kind: &str) -> Operation {
        self.vars.clear();
        self.var_values.clear();
        let root = match root_kind {
            "mutation" => self.schema.mutation.clone(),
            "subscription" => self.schema.subscription.clone(),
            _ => self.schema.query.clone(),
        };
        let fields = self.schema.fields(&root).to_vec();
        // Subscriptions select exactly one root field.
        let n = if root_kind == "subscription" { 1 } else { 1 + self.below(3) };
        let mut body = String::new();
        for _ in 0..n {
            let field = self.pick(&fields).clone();
            body.push_str(&self.field(&field, 0));
            body.push(' ');
        }
        let name = self.chance(0.5).then(|| format!("Op{}", self.below(1000)));
        let defs = if self.vars.is_empty() {
            String::new()
        } else {
            let defs: Vec<String> = self.vars.iter().map(|(n, t)| format!("${n}: {t}")).collect();
            format!("({})", defs.join(", "))
        };
        let keyword = if root_kind == "query" && name.is_none() && defs.is_empty() && self.chance(0.5) {
            String::new()
        } else {
            format!("{root_kind} {}{defs}", name.clone().unwrap_or_default())
        };
        Operation {
            document: format!("{keyword} {{ {body}}}"),
            variables: Value::Object(std::mem::take(&mut self.var_values)),
            operation_name: name.filter(|_| self.chance(0.7)),
        }
    }

    fn field(&mut self, field: &Field, depth: usize) -> String {
        let mut out = String::new();
        if self.chance(0.15) {
            out.push_str(&format!("a{}: ", self.below(50)));
        }
        out.push_str(&field.name);
        let mut args: Vec<String> = Vec::new();
        for a in &field.args {
            if a.ty.kind == "NON_NULL" || self.chance(0.4) {
                let value = self.argument(&a.ty);
                args.push(format!("{}: {value}", a.name));
            }
        }
        if !args.is_empty() {
            out.push_str(&format!("({})", args.join(", ")));
        }
        if self.chance(0.05) {
            let v = if self.chance(0.5) { "true" } else { "false" };
            out.push_str(&format!(" @include(if: {v})"));
        }
        let named = field.ty.named().to_string();
        if matches!(self.schema.kind(&named), "OBJECT" | "INTERFACE" | "UNION") {
            out.push_str(&format!(" {{ {} }}", self.selection(&named, depth + 1)));
        }
        out
    }

    fn selection(&mut self, ty: &str, depth: usize) -> String {
        let kind = self.schema.kind(ty).to_string();
        if depth > 4 || kind == "UNION" {
            let mut s = String::from("__typename");
            if let Some(possible) = self.schema.types.get(ty).and_then(|t| t.possible_types.clone())
                && !possible.is_empty()
                && depth <= 4
            {
                let p = self.pick(&possible).name.clone();
                s.push_str(&format!(" ... on {p} {{ {} }}", self.selection(&p, depth + 1)));
            }
            return s;
        }
        let fields = self.schema.fields(ty).to_vec();
        if fields.is_empty() {
            return "__typename".into();
        }
        let n = 1 + self.below(3);
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            let f = self.pick(&fields).clone();
            parts.push(self.field(&f, depth));
        }
        if self.chance(0.1) {
            parts.push("__typename".into());
        }
        parts.join(" ")
    }

    /// An argument: a literal, or a variable defined on the operation with a JSON value.
    fn argument(&mut self, ty: &TypeRef) -> String {
        if self.chance(0.3) {
            let name = format!("v{}", self.vars.len());
            let value = self.json(ty, 0);
            self.vars.push((name.clone(), ty.print()));
            if !(value.is_null() && self.chance(0.5)) {
                self.var_values.insert(name.clone(), value);
            }
            return format!("${name}");
        }
        self.literal(ty, 0)
    }

    /// A value for `ty` as a JSON variable: mostly well-typed, with edges and the odd wrong type.
    pub fn json(&mut self, ty: &TypeRef, depth: usize) -> Value {
        if self.chance(0.03) {
            return self.wrong_json();
        }
        match (ty.kind.as_str(), &ty.of_type) {
            ("NON_NULL", Some(inner)) => self.json(inner, depth),
            ("LIST", Some(inner)) => {
                let n = if depth > 3 { 0 } else { self.below(4) };
                Value::Array((0..n).map(|_| self.json(inner, depth + 1)).collect())
            }
            _ => {
                let name = ty.name.clone().unwrap_or_default();
                match self.schema.kind(&name) {
                    "ENUM" => {
                        let values = self.schema.types[&name].enum_values.clone().unwrap_or_default();
                        match values.is_empty() || self.chance(0.05) {
                            true => json!("NOT_A_VALUE"),
                            false => json!(self.pick(&values).name),
                        }
                    }
                    "INPUT_OBJECT" => {
                        let fields = self.schema.types[&name].input_fields.clone().unwrap_or_default();
                        let mut obj = serde_json::Map::new();
                        for f in fields {
                            if depth < 4 && (f.ty.kind == "NON_NULL" || self.chance(0.4)) {
                                obj.insert(f.name.clone(), self.json(&f.ty, depth + 1));
                            }
                        }
                        if self.chance(0.03) {
                            obj.insert("notAField".into(), json!(1));
                        }
                        Value::Object(obj)
                    }
                    _ => self.scalar_json(&name),
                }
            }
        }
    }

    fn wrong_json(&mut self) -> Value {
        match self.below(6) {
            0 => Value::Null,
            1 => json!(1.5),
            2 => json!("7"),
            3 => json!([[1], {"a": null}]),
            4 => json!({ "": "" }),
            _ => json!(true),
        }
    }

    fn id(&mut self) -> String {
        if !self.known.ids.is_empty() && self.chance(0.7) {
            return self.pick(&self.known.ids).clone();
        }
        let forged = [
            "",
            "x",
            "UG9zdDox",
            "UG9zdDow",
            "VXNlcjotMQ",
            "UG9zdDo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5",
            "Qm9hcmQ6MQ==",
            "%%%",
        ];
        self.pick(&forged).to_string()
    }

    fn scalar_json(&mut self, name: &str) -> Value {
        match name {
            "Int" => json!(*self.pick(&EDGE_INTS)),
            "Float" => json!(*self.pick(&[0.0, -1.5, 1e300, 3.25])),
            "Boolean" => json!(self.chance(0.5)),
            "ID" => json!(self.id()),
            "String" => json!(self.string()),
            "DateTime" => json!(*self.pick(&["2024-01-01T00:00:00Z", "not a date", "9999-12-31T23:59:59Z"])),
            // Upload and any other custom scalar: null or a string.
            _ => {
                if self.chance(0.5) {
                    Value::Null
                } else {
                    json!(self.string())
                }
            }
        }
    }

    fn string(&mut self) -> String {
        match self.below(10) {
            0 => "长".repeat(1 + self.below(5000)),
            1 => "x".repeat(201),
            _ => self.pick(&EDGE_STRINGS).to_string(),
        }
    }

    /// A value for `ty` written in the document.
    fn literal(&mut self, ty: &TypeRef, depth: usize) -> String {
        if self.chance(0.02) {
            return self.pick(&["null", "1.5", "\"7\"", "[1]", "{a: 1}", "$undefined", "ENUMISH"]).to_string();
        }
        match (ty.kind.as_str(), &ty.of_type) {
            ("NON_NULL", Some(inner)) => self.literal(inner, depth),
            ("LIST", Some(inner)) => {
                let n = if depth > 3 { 0 } else { self.below(4) };
                let items: Vec<String> = (0..n).map(|_| self.literal(inner, depth + 1)).collect();
                format!("[{}]", items.join(", "))
            }
            _ => {
                let name = ty.name.clone().unwrap_or_default();
                match self.schema.kind(&name) {
                    "ENUM" => {
                        let values = self.schema.types[&name].enum_values.clone().unwrap_or_default();
                        if values.is_empty() { "X".into() } else { self.pick(&values).name.clone() }
                    }
                    "INPUT_OBJECT" => {
                        let fields = self.schema.types[&name].input_fields.clone().unwrap_or_default();
                        let mut parts = Vec::new();
                        for f in fields {
                            if depth < 4 && (f.ty.kind == "NON_NULL" || self.chance(0.4)) {
                                parts.push(format!("{}: {}", f.name, self.literal(&f.ty, depth + 1)));
                            }
                        }
                        format!("{{ {} }}", parts.join(", "))
                    }
                    _ => {
                        let v = self.scalar_json(&name);
                        match v {
                            // GraphQL and JSON agree on strings, numbers, booleans and null.
                            Value::String(s) if self.chance(0.1) => format!("\"\"\"{}\"\"\"", s.replace("\"\"\"", "")),
                            other => other.to_string(),
                        }
                    }
                }
            }
        }
    }
}

/// What a deep or huge document is made of.
pub const CONSTRUCTS: [&str; 9] = [
    "list value",
    "object value in a directive",
    "list type",
    "list default",
    "selection set",
    "inline fragment",
    "fragment chain",
    "object value in an argument",
    "nested parentheses",
];

fn repeat(open: &str, close: &str, n: usize, inner: &str) -> String {
    let mut s = String::with_capacity((open.len() + close.len()) * n + inner.len());
    (0..n).for_each(|_| s.push_str(open));
    s.push_str(inner);
    (0..n).for_each(|_| s.push_str(close));
    s
}

/// A document nesting `construct` `n` levels deep.
pub fn deep(construct: &str, n: usize) -> String {
    match construct {
        "list value" => format!("{{ __type(name: {}) {{ name }} }}", repeat("[", "]", n, "\"x\"")),
        "object value in a directive" => format!("{{ __typename @include(if: {}) }}", repeat("{a:", "}", n, "true")),
        "list type" => format!("query($v: {}) {{ __typename }}", repeat("[", "]", n, "Int")),
        "list default" => format!("query($v: [Int] = {}) {{ __typename }}", repeat("[", "]", n, "1")),
        "selection set" => repeat("{a", "}", n, ""),
        "inline fragment" => repeat("{...on Query", "}", n, "__typename"),
        "fragment chain" => {
            let mut doc = String::from("{ ...F0 }");
            for i in 0..n {
                doc.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
            }
            doc.push_str(&format!(" fragment F{n} on Query {{ __typename }}"));
            doc
        }
        "object value in an argument" => {
            format!("{{ search(query: \"x\", after: {}) {{ totalCount }} }}", repeat("{a:", "}", n, "1"))
        }
        _ => format!("{{ __typename @skip(if: {}) }}", repeat("(", ")", n, "false")),
    }
}

/// A fragment cycle of `n` fragments.
pub fn cycle(n: usize) -> String {
    let n = n.max(1);
    let mut doc = String::from("{ ...F0 }");
    for i in 0..n {
        doc.push_str(&format!(" fragment F{i} on Query {{ __typename ...F{} }}", (i + 1) % n));
    }
    doc
}

/// Each of `levels` fragments spreads the next `width` times.
pub fn fan_out(levels: usize, width: usize) -> String {
    let mut doc = String::from("{ ...F0 }");
    for i in 0..levels {
        let spreads = format!(" ...F{}", i + 1).repeat(width);
        doc.push_str(&format!(" fragment F{i} on Query {{{spreads} }}"));
    }
    doc.push_str(&format!(" fragment F{levels} on Query {{ __typename }}"));
    doc
}

pub fn alias_flood(n: usize) -> String {
    let fields: Vec<String> = (0..n).map(|i| format!("a{i}: __typename")).collect();
    format!("{{ {} }}", fields.join(" "))
}

pub fn directive_flood(n: usize) -> String {
    format!("{{ __typename{} }}", " @skip(if: false)".repeat(n))
}

/// A valid document, broken: truncated, a character dropped or doubled, brackets swapped,
/// junk inserted, or the parser's and the bound's readings of strings set against each other.
pub fn break_document(g: &mut Gen, doc: &str) -> String {
    let chars: Vec<char> = doc.chars().collect();
    if chars.is_empty() {
        return "{".into();
    }
    let at = g.below(chars.len());
    let junk = [
        "{", "}", "(", ")", "[", "]", "\"", "\"\"\"", "#", "...", "@", "$", ":", "!", "\\", "\u{0}", "\u{feff}", "é",
        "\n",
    ];
    match g.below(8) {
        0 => chars[..at].iter().collect(),
        1 => chars.iter().enumerate().filter(|(i, _)| *i != at).map(|(_, c)| c).collect(),
        2 => {
            let mut s: String = chars[..at].iter().collect();
            s.push_str(junk[g.below(junk.len())]);
            s.extend(&chars[at..]);
            s
        }
        3 => doc.replace('{', "(").replace('}', ")"),
        4 => format!("{doc}{doc}"),
        // A string the scanner and the parser might read differently, hiding brackets.
        5 => format!("{{ a(s: \"\\\n{}\") }}", "[".repeat(1 + g.below(100_000))),
        6 => format!("{{ a(s: \"\"\"\\\"\"\" {} \"\"\") }}", "{".repeat(1 + g.below(100_000))),
        _ => format!("# {}\n{}", "}".repeat(g.below(1000)), doc),
    }
}
