//! Walking an OpenAPI document's schemas: `$ref`s resolved in the document, the members an object
//! schema declares (through `allOf`, `oneOf`, `anyOf`) and the members a body has that it does
//! not declare. Shared by the contract test of phonegate's own document and the vendors' specs.
use serde_json::{Map, Value};

pub struct Schemas<'a> {
    pub doc: &'a Value,
    /// Whether an object schema that declares no members (and no `additionalProperties`) allows
    /// any: the vendors' documents write free-form objects that way; phonegate's never does.
    pub open_objects: bool,
}

impl Schemas<'_> {
    pub fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => self.resolve(self.doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("unresolved $ref {r}"))),
            None => schema,
        }
    }

    fn properties(&self, schema: &Value, out: &mut Map<String, Value>) {
        let schema = self.resolve(schema);
        if let Some(p) = schema.get("properties").and_then(Value::as_object) {
            out.extend(p.clone());
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            for member in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
                self.properties(member, out);
            }
        }
    }

    /// JSON pointers of object members in `body` that `schema` does not declare.
    pub fn undeclared(&self, schema: &Value, body: &Value, at: &str, out: &mut Vec<String>) {
        let schema = self.resolve(schema);
        match body {
            Value::Object(members) => {
                let mut declared = Map::new();
                self.properties(schema, &mut declared);
                let rest = schema.get("additionalProperties").filter(|s| s.is_object());
                if declared.is_empty() && rest.is_none() && self.open_objects {
                    return;
                }
                for (name, value) in members {
                    let at = format!("{at}/{name}");
                    match declared.get(name).or(rest) {
                        Some(s) => self.undeclared(s, value, &at, out),
                        None => out.push(at),
                    }
                }
            }
            Value::Array(items) => {
                if let Some(s) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.undeclared(s, item, &format!("{at}/{i}"), out);
                    }
                }
            }
            _ => {}
        }
    }
}
