//! floe's logical column types: what an Iceberg column is, plus how the source encodes values
//! of it in JSON (Debezium sends a `MicroTimestamp` and a `Timestamp` both as integers, in
//! different units). This is the one place the type-mapping table in the README comes from.

use std::sync::Arc;

use floe_catalog::iceberg::spec::{ListType, MapType, NestedField, PrimitiveType, StructType, Type};

/// Unit of an integer-encoded time or timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Millis,
    Micros,
    Nanos,
}

impl TimeUnit {
    /// Converts a count in this unit to microseconds. Nanoseconds are truncated: Iceberg v2
    /// stores microseconds (PostgreSQL and MySQL never produce finer values).
    pub fn to_micros(self, value: i64) -> i64 {
        match self {
            TimeUnit::Millis => value * 1_000,
            TimeUnit::Micros => value,
            TimeUnit::Nanos => value.div_euclid(1_000),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    String,
    /// Base64 in JSON.
    Bytes,
    /// Base64 big-endian unscaled bytes (Debezium `precise`), or a JSON number/decimal string.
    Decimal {
        precision: u32,
        scale: u32,
    },
    /// Debezium `VariableScaleDecimal` `{scale, value}`: kept exactly, as a decimal string.
    VariableDecimal,
    /// Days since epoch (or an ISO date string).
    Date,
    /// Time of day as an integer count of `unit` since midnight.
    Time(TimeUnit),
    /// Timestamp without zone as an integer count of `unit` since epoch (or an ISO string).
    Timestamp(TimeUnit),
    /// ISO-8601 string with offset (Debezium `ZonedTimestamp`), or micros since epoch.
    TimestampTz,
    List(Box<Field>),
    Struct(Vec<Field>),
    Map(Box<Field>, Box<Field>),
}

/// A named column (or nested field) with its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub kind: Kind,
    pub optional: bool,
}

impl Field {
    pub fn new(name: impl Into<String>, kind: Kind, optional: bool) -> Self {
        Self { name: name.into(), kind, optional }
    }

    /// The Iceberg field, taking ids from `next_id` (outer field first, then nested ones).
    pub fn iceberg_field(&self, next_id: &mut i32) -> NestedField {
        let id = *next_id;
        *next_id += 1;
        NestedField::new(id, &self.name, self.kind.iceberg_type(next_id), !self.optional)
    }
}

impl Kind {
    /// The Iceberg type; nested fields take ids from `next_id`. When the catalog adds the
    /// column it reassigns them, so any unique ids will do there.
    pub fn iceberg_type(&self, next_id: &mut i32) -> Type {
        use PrimitiveType as P;
        let p = |t| Type::Primitive(t);
        match self {
            Kind::Boolean => p(P::Boolean),
            Kind::Int => p(P::Int),
            Kind::Long => p(P::Long),
            Kind::Float => p(P::Float),
            Kind::Double => p(P::Double),
            Kind::String | Kind::VariableDecimal => p(P::String),
            Kind::Bytes => p(P::Binary),
            Kind::Decimal { precision, scale } => p(P::Decimal { precision: *precision, scale: *scale }),
            Kind::Date => p(P::Date),
            Kind::Time(_) => p(P::Time),
            Kind::Timestamp(_) => p(P::Timestamp),
            Kind::TimestampTz => p(P::Timestamptz),
            Kind::List(element) => Type::List(ListType::new(Arc::new(element.iceberg_field(next_id)))),
            Kind::Struct(fields) => Type::Struct(StructType::new(fields.iter().map(|f| Arc::new(f.iceberg_field(next_id))).collect())),
            Kind::Map(key, value) => {
                let key = Arc::new(key.iceberg_field(next_id));
                Type::Map(MapType::new(key, Arc::new(value.iceberg_field(next_id))))
            }
        }
    }

    /// The kind that reads values of an existing Iceberg column, with floe's default encodings.
    pub fn from_iceberg(ty: &Type) -> Kind {
        use PrimitiveType as P;
        let field = |f: &NestedField| Field::new(&f.name, Kind::from_iceberg(&f.field_type), !f.required);
        match ty {
            Type::Primitive(p) => match p {
                P::Boolean => Kind::Boolean,
                P::Int => Kind::Int,
                P::Long => Kind::Long,
                P::Float => Kind::Float,
                P::Double => Kind::Double,
                P::Decimal { precision, scale } => Kind::Decimal { precision: *precision, scale: *scale },
                P::Date => Kind::Date,
                P::Time => Kind::Time(TimeUnit::Micros),
                P::Timestamp | P::TimestampNs => Kind::Timestamp(TimeUnit::Micros),
                P::Timestamptz | P::TimestamptzNs => Kind::TimestampTz,
                P::Binary | P::Fixed(_) => Kind::Bytes,
                P::String | P::Uuid => Kind::String,
            },
            Type::Struct(s) => Kind::Struct(s.fields().iter().map(|f| field(f)).collect()),
            Type::List(l) => Kind::List(Box::new(field(&l.element_field))),
            Type::Map(m) => Kind::Map(Box::new(field(&m.key_field)), Box::new(field(&m.value_field))),
        }
    }

    /// Parses a column type from configuration: `boolean`, `int`, `long`, `float`, `double`,
    /// `string`, `binary`, `date`, `time`, `timestamp`, `timestamp_ms`, `timestamptz`,
    /// `decimal(P,S)`, `variable_decimal`, `json`, `uuid`, and `list<T>` of any of these.
    pub fn parse(text: &str) -> Option<Kind> {
        let t = text.trim().to_ascii_lowercase();
        if let Some(element) = t.strip_prefix("list<").and_then(|rest| rest.strip_suffix('>')) {
            return Some(Kind::List(Box::new(Field::new("element", Kind::parse(element)?, true))));
        }
        Some(match t.as_str() {
            "boolean" | "bool" => Kind::Boolean,
            "int" | "int32" | "integer" => Kind::Int,
            "long" | "int64" | "bigint" => Kind::Long,
            "float" | "float32" => Kind::Float,
            "double" | "float64" => Kind::Double,
            "string" | "text" | "json" | "uuid" | "enum" => Kind::String,
            "binary" | "bytes" => Kind::Bytes,
            "date" => Kind::Date,
            "time" => Kind::Time(TimeUnit::Micros),
            "timestamp" => Kind::Timestamp(TimeUnit::Micros),
            "timestamp_ms" => Kind::Timestamp(TimeUnit::Millis),
            "timestamp_ns" => Kind::Timestamp(TimeUnit::Nanos),
            "timestamptz" => Kind::TimestampTz,
            "variable_decimal" => Kind::VariableDecimal,
            _ => {
                let inner = t.strip_prefix("decimal(")?.strip_suffix(')')?;
                let (p, s) = inner.split_once(',')?;
                let (precision, scale) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
                if precision == 0 || precision > 38 || scale > precision {
                    return None;
                }
                Kind::Decimal { precision, scale }
            }
        })
    }
}
