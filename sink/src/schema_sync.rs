//! Schema sync: compares the columns a change event carries with the table's current schema and
//! plans the compatible evolution (add optional columns, widen types), or says why the change is
//! incompatible. Nothing here drops data: a column that vanished from the source stays in the
//! table (non-key columns are always optional, so it simply gets nulls).

use std::sync::Arc;

use floe_catalog::iceberg::spec::{NestedFieldRef, Schema, Type};
use floe_catalog::layout::{identifier_columns, metadata_fields};
use floe_catalog::schema_update::{can_widen, SchemaChange};

use crate::decode::{ChangeEvent, Field};

#[derive(Debug, Clone, PartialEq)]
pub enum SyncPlan {
    Unchanged,
    Evolve(Vec<SchemaChange>),
    Incompatible(String),
}

/// Plans how `table` must change to take `event`.
pub fn plan_schema_sync(table: &Schema, event: &ChangeEvent) -> SyncPlan {
    let table_key = identifier_columns(table);
    if !event.key.is_empty() && !same_set(&table_key, &event.key) {
        return SyncPlan::Incompatible(format!("key changed from {table_key:?} to {:?}", event.key));
    }
    let mut changes = vec![];
    for column in event.columns.iter() {
        let iceberg = column.kind.iceberg_type(&mut 1);
        match table.as_struct().field_by_name(&column.name) {
            None => changes.push(SchemaChange::AddColumn { parent: None, name: column.name.clone(), field_type: iceberg, doc: None }),
            Some(existing) => {
                if let Err(reason) = compare(&column.name, &existing.field_type, &iceberg, &mut changes) {
                    return SyncPlan::Incompatible(reason);
                }
            }
        }
    }
    if changes.is_empty() {
        SyncPlan::Unchanged
    } else {
        SyncPlan::Evolve(changes)
    }
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// Compares a table type with a source type at `path`, collecting the changes that make the
/// table accept the source's values.
fn compare(path: &str, table: &Type, source: &Type, changes: &mut Vec<SchemaChange>) -> Result<(), String> {
    match (table, source) {
        (Type::Primitive(t), Type::Primitive(s)) => {
            if can_widen(s, t) {
                Ok(()) // the table type already holds every source value
            } else if can_widen(t, s) {
                changes.push(SchemaChange::Widen { path: path.to_string(), to: s.clone() });
                Ok(())
            } else {
                Err(format!("column {path}: source type {s} is incompatible with table type {t}"))
            }
        }
        (Type::Struct(t), Type::Struct(s)) => {
            for field in s.fields() {
                let child = format!("{path}.{}", field.name);
                match t.field_by_name(&field.name) {
                    Some(existing) => compare(&child, &existing.field_type, &field.field_type, changes)?,
                    None => changes.push(SchemaChange::AddColumn {
                        parent: Some(path.to_string()),
                        name: field.name.clone(),
                        field_type: (*field.field_type).clone(),
                        doc: None,
                    }),
                }
            }
            Ok(())
        }
        (Type::List(t), Type::List(s)) => {
            compare(&format!("{path}.element"), &t.element_field.field_type, &s.element_field.field_type, changes)
        }
        (Type::Map(t), Type::Map(s)) => {
            compare(&format!("{path}.key"), &t.key_field.field_type, &s.key_field.field_type, changes)?;
            compare(&format!("{path}.value"), &t.value_field.field_type, &s.value_field.field_type, changes)
        }
        _ => Err(format!("column {path}: source type {source} is incompatible with table type {table}")),
    }
}

/// The schema of a new table for `event`: key columns (required, the identifier fields), the
/// other source columns (optional), then floe's metadata columns.
pub fn new_table_schema(event: &ChangeEvent) -> Result<Schema, String> {
    if event.key.is_empty() {
        return Err("cannot create a table from an event without a key".into());
    }
    let mut next_id = 1;
    let mut fields: Vec<NestedFieldRef> = vec![];
    let mut identifier_ids = vec![];
    let key_first = event.key.iter().filter_map(|k| event.columns.iter().find(|c| &c.name == k));
    let others = event.columns.iter().filter(|c| !event.key.contains(&c.name));
    for column in key_first.chain(others) {
        let is_key = event.key.contains(&column.name);
        let field = Field { optional: !is_key, ..column.clone() }.iceberg_field(&mut next_id);
        if is_key {
            identifier_ids.push(field.id);
        }
        fields.push(Arc::new(field));
    }
    fields.extend(metadata_fields(&mut next_id));
    Schema::builder()
        .with_fields(fields)
        .with_identifier_field_ids(identifier_ids)
        .build()
        .map_err(|e| format!("invalid key for an Iceberg table: {e}"))
}

#[cfg(test)]
mod tests {
    use floe_catalog::iceberg::spec::PrimitiveType as P;

    use super::*;
    use crate::decode::{Kind, Op};

    fn event(columns: Vec<Field>) -> ChangeEvent {
        let values = vec![serde_json::Value::Null; columns.len()];
        let key = Arc::new(vec!["id".to_string()]);
        ChangeEvent { op: Op::Create, columns: Arc::new(columns), complete_schema: true, key, values, source_ts_micros: None }
    }

    fn table(columns: Vec<Field>) -> Schema {
        new_table_schema(&event(columns)).unwrap()
    }

    fn id() -> Field {
        Field::new("id", Kind::Long, false)
    }

    #[test]
    fn a_new_table_has_the_key_first_then_the_columns_then_floe_metadata() {
        let schema = table(vec![Field::new("name", Kind::String, true), id()]);
        let names: Vec<&str> = schema.as_struct().fields().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "name", "_op", "_op_ts", "_source_ts", "_src_partition", "_src_offset"]);
        assert_eq!(identifier_columns(&schema), ["id"]);
        assert!(new_table_schema(&ChangeEvent { key: Arc::default(), ..event(vec![id()]) }).is_err(), "no key, no table");
    }

    #[test]
    fn the_same_columns_change_nothing_and_narrower_ones_fit() {
        let schema = table(vec![id(), Field::new("n", Kind::Long, true), Field::new("x", Kind::Double, true)]);
        assert_eq!(plan_schema_sync(&schema, &event(vec![id(), Field::new("n", Kind::Long, true)])), SyncPlan::Unchanged);
        let narrower = event(vec![id(), Field::new("n", Kind::Int, true), Field::new("x", Kind::Float, true)]);
        assert_eq!(plan_schema_sync(&schema, &narrower), SyncPlan::Unchanged, "a long column holds every int");
    }

    #[test]
    fn new_columns_are_added_and_wider_types_widen_the_table() {
        let schema =
            table(vec![id(), Field::new("n", Kind::Int, true), Field::new("price", Kind::Decimal { precision: 8, scale: 2 }, true)]);
        let wider = event(vec![
            id(),
            Field::new("n", Kind::Long, true),
            Field::new("price", Kind::Decimal { precision: 12, scale: 2 }, true),
            Field::new("note", Kind::String, true),
        ]);
        let SyncPlan::Evolve(changes) = plan_schema_sync(&schema, &wider) else { panic!("must evolve") };
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(changes.contains(&SchemaChange::Widen { path: "n".into(), to: P::Long }));
        assert!(changes.contains(&SchemaChange::Widen { path: "price".into(), to: P::Decimal { precision: 12, scale: 2 } }));
        assert!(changes.iter().any(|c| matches!(c, SchemaChange::AddColumn { name, parent: None, .. } if name == "note")));
    }

    #[test]
    fn nested_fields_are_added_inside_their_struct() {
        let address = |fields| Field::new("address", Kind::Struct(fields), true);
        let schema = table(vec![id(), address(vec![Field::new("city", Kind::String, true)])]);
        let more = event(vec![id(), address(vec![Field::new("city", Kind::String, true), Field::new("zip", Kind::String, true)])]);
        let SyncPlan::Evolve(changes) = plan_schema_sync(&schema, &more) else { panic!("must evolve") };
        assert!(
            matches!(&changes[..], [SchemaChange::AddColumn { parent: Some(p), name, .. }] if p == "address" && name == "zip"),
            "{changes:?}"
        );
    }

    #[test]
    fn incompatible_changes_are_refused_with_the_column_named() {
        let schema = table(vec![id(), Field::new("n", Kind::Long, true), Field::new("d", Kind::Decimal { precision: 8, scale: 2 }, true)]);
        let cases = [
            (Field::new("n", Kind::String, true), "column n"),
            (Field::new("d", Kind::Decimal { precision: 8, scale: 3 }, true), "column d"),
            (Field::new("n", Kind::List(Box::new(Field::new("element", Kind::Long, true))), true), "column n"),
        ];
        for (column, named) in cases {
            match plan_schema_sync(&schema, &event(vec![id(), column.clone()])) {
                SyncPlan::Incompatible(reason) => assert!(reason.contains(named), "{reason}"),
                other => panic!("{column:?} must be incompatible, got {other:?}"),
            }
        }
        let rekeyed = ChangeEvent { key: Arc::new(vec!["n".into()]), ..event(vec![id(), Field::new("n", Kind::Long, false)]) };
        assert!(matches!(plan_schema_sync(&schema, &rekeyed), SyncPlan::Incompatible(r) if r.contains("key changed")));
    }
}
