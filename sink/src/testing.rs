//! Debezium JSON event lines for tests and benches (feature `testing`): the shape
//! `{"topic", "key", "value"}` with the Kafka Connect schema envelope, as JsonConverter writes it.

use serde_json::{json, Map, Value};

/// A column of a generated table: name and Connect type (`int32`, `int64`, `string`, …).
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub connect_type: String,
}

impl Column {
    pub fn new(name: &str, connect_type: &str) -> Self {
        Self { name: name.into(), connect_type: connect_type.into() }
    }
}

/// Generates change events for one table with an `int64` key column `id`.
#[derive(Debug, Clone)]
pub struct TableEvents {
    pub topic: String,
    pub columns: Vec<Column>,
}

impl TableEvents {
    pub fn new(topic: &str, columns: Vec<Column>) -> Self {
        Self { topic: topic.into(), columns }
    }

    fn struct_schema(&self, name: &str) -> Value {
        let mut fields = vec![json!({"type": "int64", "optional": false, "field": "id"})];
        fields.extend(self.columns.iter().map(|c| json!({"type": c.connect_type, "optional": true, "field": c.name})));
        json!({"type": "struct", "fields": fields, "optional": true, "name": format!("{}.Value", self.topic), "field": name})
    }

    fn key(&self, id: i64) -> String {
        json!({
            "schema": {"type": "struct", "fields": [{"type": "int64", "optional": false, "field": "id"}], "optional": false},
            "payload": {"id": id}
        })
        .to_string()
    }

    fn value(&self, op: &str, before: Option<Value>, after: Option<Value>) -> String {
        let schema = json!({
            "type": "struct", "optional": false,
            "fields": [self.struct_schema("before"), self.struct_schema("after"),
                       {"type": "struct", "field": "source", "optional": false,
                        "fields": [{"type": "int64", "optional": false, "field": "ts_ms"}]},
                       {"type": "string", "optional": false, "field": "op"}]
        });
        json!({"schema": schema, "payload": {"before": before, "after": after, "op": op, "source": {"ts_ms": 1_700_000_000_000i64}}})
            .to_string()
    }

    fn row(&self, id: i64, values: &[Value]) -> Value {
        let mut row = Map::new();
        row.insert("id".into(), Value::from(id));
        for (column, value) in self.columns.iter().zip(values) {
            row.insert(column.name.clone(), value.clone());
        }
        Value::Object(row)
    }

    fn line(&self, key: Option<String>, value: Option<String>) -> String {
        json!({"topic": self.topic, "key": key, "value": value}).to_string()
    }

    pub fn upsert(&self, op: &str, id: i64, values: &[Value]) -> String {
        self.line(Some(self.key(id)), Some(self.value(op, None, Some(self.row(id, values)))))
    }

    /// A delete (key-only before image) followed by its tombstone.
    pub fn delete(&self, id: i64) -> [String; 2] {
        let before = json!({"id": id});
        [self.line(Some(self.key(id)), Some(self.value("d", Some(before), None))), self.line(Some(self.key(id)), None)]
    }

    pub fn truncate(&self) -> String {
        self.line(None, Some(self.value("t", None, None)))
    }
}
