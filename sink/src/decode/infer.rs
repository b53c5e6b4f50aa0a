//! Column types for schemaless records (`schemas.enable=false`), in this order of precedence:
//! 1. the column type configured for the table (`[tables."<topic>".columns]`);
//! 2. the type the column already has in the Iceberg table;
//! 3. inference from the JSON value: integer → long, other number → double, string → string,
//!    boolean → boolean, array → list of the first non-null element's type, object → struct.
//!    A null says nothing about a type: the column is added when a non-null value arrives.

use std::collections::HashMap;

use floe_catalog::iceberg::spec::Schema;
use serde_json::{Map, Value};

use super::kind::{Field, Kind};
use super::DecodeError;

/// Configured column types of one table, by column name.
pub type ColumnHints = HashMap<String, Kind>;

pub fn infer_fields(object: &Map<String, Value>, table_schema: Option<&Schema>, hints: &ColumnHints) -> Result<Vec<Field>, DecodeError> {
    let mut fields = Vec::with_capacity(object.len());
    for (name, value) in object {
        let known = hints.get(name).cloned().or_else(|| {
            let column = table_schema?.field_by_name(name)?;
            Some(Kind::from_iceberg(&column.field_type))
        });
        if let Some(kind) = known.or_else(|| infer_kind(value)) {
            fields.push(Field::new(name, kind, true));
        }
    }
    Ok(fields)
}

fn infer_kind(value: &Value) -> Option<Kind> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(_) => Kind::Boolean,
        Value::Number(n) if n.is_i64() || n.is_u64() => Kind::Long,
        Value::Number(_) => Kind::Double,
        Value::String(_) => Kind::String,
        Value::Array(items) => {
            let element = items.iter().find_map(infer_kind).unwrap_or(Kind::String);
            Kind::List(Box::new(Field::new("element", element, true)))
        }
        Value::Object(map) => {
            let fields: Vec<Field> = map.iter().filter_map(|(k, v)| Some(Field::new(k, infer_kind(v)?, true))).collect();
            if fields.is_empty() {
                Kind::String
            } else {
                Kind::Struct(fields)
            }
        }
    })
}
