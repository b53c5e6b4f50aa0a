//! Reading a JSON object straight into values aligned with known fields: no map is built, keys
//! are borrowed from the input, and members that no field names are skipped without being
//! materialised. Debezium writes members in schema order, so the next field is tried first.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserializer;
use serde_json::Value;

use super::{DecodeError, Field};

/// How many members an object had, and how many of them a field named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Members {
    pub members: usize,
    pub matched: usize,
}

impl Members {
    /// Whether the object's members were `fields`, each once and nothing else.
    pub fn are(&self, fields: &[Field]) -> bool {
        self.members == fields.len() && self.matched == fields.len()
    }
}

/// Reads the JSON object `text` into `values`: `values[i]` is the member named `fields[i].name`,
/// or `Null` when absent.
pub fn read_object(text: &str, fields: &[Field], values: &mut Vec<Value>) -> Result<Members, DecodeError> {
    match super::shape::read_in_order(text, fields, values) {
        Some(members) => Ok(members),
        None => read_object_by_serde(text, fields, values),
    }
}

/// [`read_object`] by serde_json, whatever the text's layout.
fn read_object_by_serde(text: &str, fields: &[Field], values: &mut Vec<Value>) -> Result<Members, DecodeError> {
    values.clear();
    values.resize(fields.len(), Value::Null);
    let mut de = serde_json::Deserializer::from_str(text);
    let members = ObjectSeed { fields, values }.deserialize(&mut de).map_err(|e| DecodeError::new(format!("{e}")))?;
    de.end().map_err(|e| DecodeError::new(format!("{e}")))?;
    Ok(members)
}

/// Reads an object into `values` aligned with `fields` (sized to them beforehand).
pub struct ObjectSeed<'a> {
    fields: &'a [Field],
    values: &'a mut Vec<Value>,
}

impl<'a> ObjectSeed<'a> {
    pub fn new(fields: &'a [Field], values: &'a mut Vec<Value>) -> Self {
        Self { fields, values }
    }
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = Members;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Members, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = Members;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
        let (mut members, mut matched, mut next) = (0, 0, 0);
        while let Some(Key(name)) = map.next_key()? {
            members += 1;
            match field_of(self.fields, next, &name) {
                Some(i) => {
                    self.values[i] = map.next_value()?;
                    matched += 1;
                    next = i + 1;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Members { members, matched })
    }
}

/// The field a member named `name` is read into: `fields[next]` (the one after the last
/// matched) when it is so named, as Debezium writes members in schema order, else the first
/// so named.
pub fn field_of(fields: &[Field], next: usize, name: &str) -> Option<usize> {
    match fields.get(next) {
        Some(field) if field.name == name => Some(next),
        _ => fields.iter().position(|f| f.name == name),
    }
}

/// A member name, borrowed unless it has escapes.
pub struct Key<'de>(pub Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::decode::Kind;
    use serde_json::json;

    /// String fields named `names`.
    pub(crate) fn fields(names: &[&str]) -> Vec<Field> {
        names.iter().map(|n| Field::new(*n, Kind::String, true)).collect()
    }

    #[test]
    fn aligns_members_with_fields_in_any_order() {
        let mut values = vec![];
        let n = read_object(r#"{"b": 2, "skip": {"deep": [1]}, "a": "x", "c\u0021": null}"#, &fields(&["a", "b", "c!", "d"]), &mut values);
        assert_eq!(n.unwrap(), Members { members: 4, matched: 3 });
        assert_eq!(values, vec![json!("x"), json!(2), json!(null), json!(null)]);
    }

    /// `read_object`'s reading of `text` is serde_json's, and whether it took the short way.
    fn read_as_serde_json_does(text: &str, fields: &[Field]) -> bool {
        let (mut values, mut by_serde) = (vec![], vec![]);
        let read = read_object(text, fields, &mut values).map_err(|e| e.to_string());
        let expected = read_object_by_serde(text, fields, &mut by_serde).map_err(|e| e.to_string());
        assert_eq!((read, values), (expected, by_serde), "{text}");
        super::super::shape::read_in_order(text, fields, &mut vec![]).is_some()
    }

    #[test]
    fn keys_in_their_fields_order_are_read_the_short_way_and_anything_else_as_serde_json_reads_it() {
        let fields = fields(&["id", "name"]);
        for text in
            [r#"{"id":1,"name":"a"}"#, r#"{"id":-0,"name":"caf\u00e9"}"#, r#"{"id":1.5e3,"name":null}"#, "{\"id\":[1,{}],\"name\":true} \n"]
        {
            assert!(read_as_serde_json_does(text, &fields), "the short way: {text}");
        }
        for text in [
            r#"{"name":"a","id":1}"#,
            r#"{"id": 1,"name":"a"}"#,
            r#" {"id":1,"name":"a"}"#,
            r#"{"id":1}"#,
            r#"{"id":1,"name":"a","more":2}"#,
            r#"{"i\u0064":1,"name":"a"}"#,
            r#"{"id":1,"name":"a"} x"#,
            r#"{"id":01,"name":"a"}"#,
            r#"{"id":1,"name":"a"#,
            r#"{"id":1,"name":"a\x"}"#,
        ] {
            assert!(!read_as_serde_json_does(text, &fields), "serde_json's way: {text}");
        }
        let odd = [Field::new("a\"b", Kind::Long, false)];
        assert!(!read_as_serde_json_does(r#"{"a\"b":1}"#, &odd), "a name with escapes is not compared as written");
    }

    proptest::proptest! {
        #[test]
        fn any_key_is_read_as_serde_json_reads_it(id: i64, name in "\\PC*", score: f64, flag: bool) {
            let fields = fields(&["flag", "id", "name", "score"]);
            // serde_json's own map writes its members sorted by name: the fields' order.
            let key = json!({"id": id, "name": name, "score": score, "flag": flag}).to_string();
            proptest::prop_assert!(read_as_serde_json_does(&key, &fields));
        }
    }

    #[test]
    fn rejects_what_is_not_one_object() {
        let mut values = vec![];
        assert!(read_object("[1]", &fields(&["a"]), &mut values).is_err());
        assert!(read_object(r#"{"a": 1} x"#, &fields(&["a"]), &mut values).is_err());
        assert!(read_object(r#"{"a": tru}"#, &fields(&["a"]), &mut values).is_err());
    }
}
