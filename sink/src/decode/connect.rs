//! Kafka Connect schemas (`schemas.enable=true`) → floe fields.
//!
//! Type names are the ones Kafka's `JsonConverter` writes (`connect/json`, `JsonSchema`):
//! `boolean`, `int8`, `int16`, `int32`, `int64`, `float` (FLOAT32), `double` (FLOAT64),
//! `bytes`, `string`, `array`, `map`, `struct`. Logical types are matched by their `name`; an
//! unknown logical name falls back to its physical type, and an unknown physical type to the
//! value's JSON text (a [`Fallback`]), so no value is lost because floe has not learned a type.

use serde_json::Value;

use super::kind::{Field, Kind, TimeUnit};
use super::DecodeError;

/// Iceberg's decimal limit; wider decimals are kept as exact strings.
const MAX_DECIMAL_PRECISION: u32 = 38;

/// A column whose Connect type floe does not know, stored as its JSON text instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fallback {
    /// Dotted path of the field (`address.street` for nested ones).
    pub column: String,
    /// The type as the schema spells it.
    pub connect_type: String,
}

/// The fields of a Connect `struct` schema, and the fields whose type was not recognised.
pub fn struct_fields(schema: &Value) -> Result<(Vec<Field>, Vec<Fallback>), DecodeError> {
    let mut fallbacks = Vec::new();
    let fields = fields_of(schema, "", &mut fallbacks)?;
    Ok((fields, fallbacks))
}

fn fields_of(schema: &Value, path: &str, fallbacks: &mut Vec<Fallback>) -> Result<Vec<Field>, DecodeError> {
    let fields =
        schema.get("fields").and_then(Value::as_array).ok_or_else(|| DecodeError::new("connect schema: struct without 'fields'"))?;
    fields.iter().map(|f| field(f, path, fallbacks)).collect()
}

fn field(schema: &Value, parent: &str, fallbacks: &mut Vec<Fallback>) -> Result<Field, DecodeError> {
    let name = schema.get("field").and_then(Value::as_str).ok_or_else(|| DecodeError::new("connect schema: field without a name"))?;
    let path = if parent.is_empty() { name.to_string() } else { format!("{parent}.{name}") };
    Ok(Field::new(name, kind(schema, &path, fallbacks)?, optional(schema)))
}

fn optional(schema: &Value) -> bool {
    schema.get("optional").and_then(Value::as_bool).unwrap_or(true)
}

fn param(schema: &Value, key: &str) -> Option<u32> {
    schema.get("parameters")?.get(key)?.as_str()?.parse().ok()
}

fn kind(schema: &Value, path: &str, fallbacks: &mut Vec<Fallback>) -> Result<Kind, DecodeError> {
    if let Some(logical) = schema.get("name").and_then(Value::as_str) {
        if let Some(kind) = logical_kind(logical, schema) {
            return Ok(kind);
        }
    }
    let physical = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let nested =
        |key: &str| schema.get(key).ok_or_else(|| DecodeError::new(format!("connect schema: {physical} of {path} without '{key}'")));
    Ok(match physical {
        "boolean" => Kind::Boolean,
        "int8" | "int16" | "int32" => Kind::Int,
        "int64" => Kind::Long,
        "float" => Kind::Float,
        "double" => Kind::Double,
        "string" => Kind::String,
        "bytes" => Kind::Bytes,
        "array" => {
            let items = nested("items")?;
            Kind::List(Box::new(Field::new("element", kind(items, path, fallbacks)?, optional(items))))
        }
        "map" => {
            let (keys, values) = (nested("keys")?, nested("values")?);
            Kind::Map(
                Box::new(Field::new("key", kind(keys, path, fallbacks)?, false)),
                Box::new(Field::new("value", kind(values, path, fallbacks)?, optional(values))),
            )
        }
        "struct" => Kind::Struct(fields_of(schema, path, fallbacks)?),
        other => {
            fallbacks.push(Fallback { column: path.to_string(), connect_type: other.to_string() });
            Kind::String
        }
    })
}

/// Debezium and Kafka Connect logical types. `None` means "use the physical type".
fn logical_kind(name: &str, schema: &Value) -> Option<Kind> {
    Some(match name {
        "org.apache.kafka.connect.data.Decimal" => {
            let scale = param(schema, "scale").unwrap_or(0);
            let precision = param(schema, "connect.decimal.precision").unwrap_or(MAX_DECIMAL_PRECISION);
            if precision > MAX_DECIMAL_PRECISION || scale > precision {
                Kind::VariableDecimal
            } else {
                Kind::Decimal { precision, scale }
            }
        }
        "io.debezium.data.VariableScaleDecimal" => Kind::VariableDecimal,
        "org.apache.kafka.connect.data.Date" | "io.debezium.time.Date" => Kind::Date,
        "org.apache.kafka.connect.data.Time" | "io.debezium.time.Time" => Kind::Time(TimeUnit::Millis),
        "io.debezium.time.MicroTime" => Kind::Time(TimeUnit::Micros),
        "io.debezium.time.NanoTime" => Kind::Time(TimeUnit::Nanos),
        "org.apache.kafka.connect.data.Timestamp" | "io.debezium.time.Timestamp" => Kind::Timestamp(TimeUnit::Millis),
        "io.debezium.time.MicroTimestamp" => Kind::Timestamp(TimeUnit::Micros),
        "io.debezium.time.NanoTimestamp" => Kind::Timestamp(TimeUnit::Nanos),
        "io.debezium.time.ZonedTimestamp" | "io.debezium.time.IsoTimestamp" => Kind::TimestampTz,
        // Iceberg has no time-with-zone: keep Debezium's ISO string.
        "io.debezium.time.ZonedTime" | "io.debezium.time.IsoTime" => Kind::String,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kinds(fields: Value) -> (Vec<Kind>, Vec<Fallback>) {
        let (fields, fallbacks) = struct_fields(&json!({"type": "struct", "fields": fields})).unwrap();
        (fields.into_iter().map(|f| f.kind).collect(), fallbacks)
    }

    #[test]
    fn physical_types_are_named_as_json_converter_writes_them() {
        let names = ["boolean", "int8", "int16", "int32", "int64", "float", "double", "bytes", "string"];
        let fields: Vec<Value> = names.iter().map(|t| json!({"type": t, "field": t})).collect();
        let (kinds, fallbacks) = kinds(Value::Array(fields));
        use Kind::*;
        assert_eq!(kinds, vec![Boolean, Int, Int, Int, Long, Float, Double, Bytes, String]);
        assert!(fallbacks.is_empty(), "{fallbacks:?}");
    }

    #[test]
    fn unknown_types_fall_back_to_text_and_are_reported_by_path() {
        let (kinds, fallbacks) = kinds(json!([
            {"type": "float128", "field": "a"},
            {"type": "struct", "field": "s", "fields": [{"type": "uint8", "field": "b"}]},
            {"type": "int32", "name": "com.example.Unheard", "field": "c"},
        ]));
        assert_eq!(kinds[0], Kind::String);
        assert_eq!(kinds[2], Kind::Int, "an unknown logical name keeps its physical type");
        let columns: Vec<_> = fallbacks.iter().map(|f| (f.column.as_str(), f.connect_type.as_str())).collect();
        assert_eq!(columns, vec![("a", "float128"), ("s.b", "uint8")]);
    }
}
