//! Kafka Connect schemas (`schemas.enable=true`) → floe fields. Logical types are matched by
//! their `name`; anything unknown falls back to its physical type, so no value is lost.

use serde_json::Value;

use super::kind::{Field, Kind, TimeUnit};
use super::DecodeError;

/// Iceberg's decimal limit; wider decimals are kept as exact strings.
const MAX_DECIMAL_PRECISION: u32 = 38;

/// The fields of a Connect `struct` schema.
pub fn struct_fields(schema: &Value) -> Result<Vec<Field>, DecodeError> {
    let fields = schema
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| DecodeError::new("connect schema: struct without 'fields'"))?;
    fields.iter().map(field).collect()
}

fn field(schema: &Value) -> Result<Field, DecodeError> {
    let name = schema
        .get("field")
        .and_then(Value::as_str)
        .ok_or_else(|| DecodeError::new("connect schema: field without a name"))?;
    Ok(Field::new(name, kind(schema)?, optional(schema)))
}

fn optional(schema: &Value) -> bool {
    schema.get("optional").and_then(Value::as_bool).unwrap_or(true)
}

fn param(schema: &Value, key: &str) -> Option<u32> {
    schema.get("parameters")?.get(key)?.as_str()?.parse().ok()
}

fn kind(schema: &Value) -> Result<Kind, DecodeError> {
    let physical = schema.get("type").and_then(Value::as_str).unwrap_or("");
    if let Some(logical) = schema.get("name").and_then(Value::as_str) {
        if let Some(kind) = logical_kind(logical, schema) {
            return Ok(kind);
        }
    }
    Ok(match physical {
        "boolean" => Kind::Boolean,
        "int8" | "int16" | "int32" => Kind::Int,
        "int64" => Kind::Long,
        "float32" => Kind::Float,
        "float64" => Kind::Double,
        "string" => Kind::String,
        "bytes" => Kind::Bytes,
        "array" => {
            let items = schema.get("items").ok_or_else(|| DecodeError::new("connect schema: array without 'items'"))?;
            Kind::List(Box::new(Field::new("element", kind(items)?, optional(items))))
        }
        "map" => {
            let keys = schema.get("keys").ok_or_else(|| DecodeError::new("connect schema: map without 'keys'"))?;
            let values = schema.get("values").ok_or_else(|| DecodeError::new("connect schema: map without 'values'"))?;
            Kind::Map(
                Box::new(Field::new("key", kind(keys)?, false)),
                Box::new(Field::new("value", kind(values)?, optional(values))),
            )
        }
        "struct" => Kind::Struct(struct_fields(schema)?),
        other => return Err(DecodeError::new(format!("connect schema: unknown type '{other}'"))),
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
        "io.debezium.data.Json"
        | "io.debezium.data.Xml"
        | "io.debezium.data.Uuid"
        | "io.debezium.data.Enum"
        | "io.debezium.data.EnumSet"
        | "io.debezium.time.Interval"
        | "io.debezium.data.Ltree" => Kind::String,
        _ => return None,
    })
}
