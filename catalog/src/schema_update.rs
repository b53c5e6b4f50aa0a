//! Schema evolution beyond iceberg-rust's add/drop: nested adds, type widening (int→long,
//! float→double, decimal precision), required→optional, rename, and drop. Changes are applied
//! by field id, new ids continue after the table's last assigned id and are never reused, and
//! the commit requires the schema and last id it was computed from.
//!
//! Paths are dotted: `address.city`; a list's element is `tags.element`, a map's parts are
//! `attrs.key` and `attrs.value`.

use std::collections::HashSet;
use std::sync::Arc;

use iceberg::spec::{ListType, MapType, NestedField, NestedFieldRef, PrimitiveType, Schema, StructType, Type};
use iceberg::{TableIdent, TableRequirement, TableUpdate};

use crate::catalog::Catalog;
use crate::commit::{commit_with_retry, RetryPolicy, TableChange};
use crate::error::{CatalogError, Result};
use crate::table::FloeTable;

/// One schema change. Schema sync only ever adds, widens and relaxes; `Drop` and `Rename` are
/// operator actions.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaChange {
    /// Adds an optional column under `parent` (a struct path; `None` for top level). Ids inside
    /// `field_type` are placeholders and are reassigned.
    AddColumn {
        parent: Option<String>,
        name: String,
        field_type: Type,
        doc: Option<String>,
    },
    /// Widens a primitive column.
    Widen {
        path: String,
        to: PrimitiveType,
    },
    /// Makes a required column optional.
    MakeOptional {
        path: String,
    },
    Rename {
        path: String,
        new_name: String,
    },
    Drop {
        path: String,
    },
}

/// Whether Iceberg allows promoting `from` to `to` (equal types count as allowed).
pub fn can_widen(from: &PrimitiveType, to: &PrimitiveType) -> bool {
    use PrimitiveType::*;
    match (from, to) {
        (a, b) if a == b => true,
        (Int, Long) | (Float, Double) => true,
        (Decimal { precision: p1, scale: s1 }, Decimal { precision: p2, scale: s2 }) => s1 == s2 && p2 >= p1,
        _ => false,
    }
}

/// Applies `changes` in order to `schema`. `last_column_id` is the table's last assigned id.
pub fn evolve_schema(schema: &Schema, last_column_id: i32, protected_ids: &HashSet<i32>, changes: &[SchemaChange]) -> Result<Schema> {
    let mut next_id = last_column_id.max(schema.highest_field_id()) + 1;
    let identifier_ids: HashSet<i32> = schema.identifier_field_ids().collect();
    let mut fields = schema.as_struct().fields().to_vec();
    for change in changes {
        fields = apply_change(&fields, change, &mut next_id, &identifier_ids, protected_ids)?;
    }
    Ok(Schema::builder().with_schema_id(schema.schema_id() + 1).with_fields(fields).with_identifier_field_ids(identifier_ids).build()?)
}

fn apply_change(
    fields: &[NestedFieldRef],
    change: &SchemaChange,
    next_id: &mut i32,
    identifier_ids: &HashSet<i32>,
    protected_ids: &HashSet<i32>,
) -> Result<Vec<NestedFieldRef>> {
    match change {
        SchemaChange::AddColumn { parent, name, field_type, doc } => {
            let parent_path = parent.as_deref().map(split_path).unwrap_or_default();
            edit_at(fields, &parent_path, &mut |siblings| {
                if let Some(existing) = siblings.iter().find(|f| &f.name == name) {
                    // Another writer evolved the table the same way first: nothing left to do.
                    if already_holds(&existing.field_type, field_type) {
                        return Ok(());
                    }
                    return Err(invalid(format!("column {name} already exists, as {}", existing.field_type)));
                }
                let mut field = NestedField::optional(take_id(next_id), name, with_fresh_ids(field_type, next_id));
                field.doc = doc.clone();
                siblings.push(Arc::new(field));
                Ok(())
            })
        }
        SchemaChange::Widen { path, to } => edit_leaf(fields, path, |field| {
            let from = field.field_type.as_primitive_type().ok_or_else(|| invalid(format!("{path} is not a primitive column")))?;
            if from == to {
                // Already this wide (another writer widened it first).
                return Ok(());
            }
            if !can_widen(from, to) {
                return Err(invalid(format!("{path}: cannot change {from} to {to}")));
            }
            *field.field_type = Type::Primitive(to.clone());
            Ok(())
        }),
        SchemaChange::MakeOptional { path } => edit_leaf(fields, path, |field| {
            if identifier_ids.contains(&field.id) {
                return Err(invalid(format!("{path} is a key column and must stay required")));
            }
            field.required = false;
            Ok(())
        }),
        SchemaChange::Rename { path, new_name } => {
            let (parent, _) = split_parent(path)?;
            edit_at(fields, &parent, &mut |siblings| {
                if siblings.iter().any(|f| &f.name == new_name) {
                    return Err(invalid(format!("column {new_name} already exists")));
                }
                Ok(())
            })?;
            edit_leaf(fields, path, |field| {
                field.name = new_name.clone();
                Ok(())
            })
        }
        SchemaChange::Drop { path } => {
            let (parent, leaf) = split_parent(path)?;
            edit_at(fields, &parent, &mut |siblings| {
                let idx = position(siblings, leaf)?;
                let ids = all_ids(&siblings[idx]);
                if ids.iter().any(|id| identifier_ids.contains(id) || protected_ids.contains(id)) {
                    return Err(invalid(format!("{path} is a key or partition column and cannot be dropped")));
                }
                siblings.remove(idx);
                Ok(())
            })
        }
    }
}

fn invalid(msg: String) -> CatalogError {
    CatalogError::InvalidSchemaChange(msg)
}

fn take_id(next_id: &mut i32) -> i32 {
    let id = *next_id;
    *next_id += 1;
    id
}

fn split_path(path: &str) -> Vec<&str> {
    path.split('.').collect()
}

fn split_parent(path: &str) -> Result<(Vec<&str>, &str)> {
    let mut parts = split_path(path);
    let leaf = parts.pop().filter(|l| !l.is_empty()).ok_or_else(|| invalid(format!("empty column path '{path}'")))?;
    Ok((parts, leaf))
}

fn position(fields: &[NestedFieldRef], name: &str) -> Result<usize> {
    fields.iter().position(|f| f.name == name).ok_or_else(|| invalid(format!("no column named {name}")))
}

/// The children of a nested type, as the fields a path walks through.
fn children(ty: &Type) -> Result<Vec<NestedFieldRef>> {
    match ty {
        Type::Struct(s) => Ok(s.fields().to_vec()),
        Type::List(l) => Ok(vec![l.element_field.clone()]),
        Type::Map(m) => Ok(vec![m.key_field.clone(), m.value_field.clone()]),
        Type::Primitive(p) => Err(invalid(format!("{p} has no nested columns"))),
    }
}

fn with_children(ty: &Type, mut kids: Vec<NestedFieldRef>) -> Result<Type> {
    Ok(match ty {
        Type::Struct(_) => Type::Struct(StructType::new(kids)),
        Type::List(_) if kids.len() == 1 => Type::List(ListType::new(kids.remove(0))),
        Type::Map(_) if kids.len() == 2 => {
            let value = kids.remove(1);
            Type::Map(MapType::new(kids.remove(0), value))
        }
        _ => return Err(invalid("list and map shapes cannot change".into())),
    })
}

/// Applies `edit` to the field list found at `parent` (a path of names from the top level).
fn edit_at(
    fields: &[NestedFieldRef],
    parent: &[&str],
    edit: &mut dyn FnMut(&mut Vec<NestedFieldRef>) -> Result<()>,
) -> Result<Vec<NestedFieldRef>> {
    let mut out = fields.to_vec();
    let Some((head, rest)) = parent.split_first() else {
        edit(&mut out)?;
        return Ok(out);
    };
    let idx = position(fields, head)?;
    let field = &fields[idx];
    let kids = edit_at(&children(&field.field_type)?, rest, edit)?;
    let mut updated = (**field).clone();
    updated.field_type = Box::new(with_children(&field.field_type, kids)?);
    out[idx] = Arc::new(updated);
    Ok(out)
}

fn edit_leaf(fields: &[NestedFieldRef], path: &str, mut edit: impl FnMut(&mut NestedField) -> Result<()>) -> Result<Vec<NestedFieldRef>> {
    let (parent, leaf) = split_parent(path)?;
    edit_at(fields, &parent, &mut |siblings| {
        let idx = position(siblings, leaf)?;
        let mut field = (*siblings[idx]).clone();
        edit(&mut field)?;
        siblings[idx] = Arc::new(field);
        Ok(())
    })
}

/// A copy of `ty` whose nested fields get fresh ids, all optional (a new column cannot be
/// required: older rows have no value for it).
fn with_fresh_ids(ty: &Type, next_id: &mut i32) -> Type {
    let fresh = |f: &NestedFieldRef, next_id: &mut i32| {
        let id = take_id(next_id);
        let mut field = NestedField::optional(id, &f.name, with_fresh_ids(&f.field_type, next_id));
        field.doc = f.doc.clone();
        Arc::new(field)
    };
    match ty {
        Type::Primitive(_) => ty.clone(),
        Type::Struct(s) => Type::Struct(StructType::new(s.fields().iter().map(|f| fresh(f, next_id)).collect())),
        Type::List(l) => Type::List(ListType::new(fresh(&l.element_field, next_id))),
        Type::Map(m) => {
            let key_id = take_id(next_id);
            let key = NestedField::required(key_id, "key", with_fresh_ids(&m.key_field.field_type, next_id));
            let value = fresh(&m.value_field, next_id);
            Type::Map(MapType::new(Arc::new(key), value))
        }
    }
}

fn all_ids(field: &NestedFieldRef) -> Vec<i32> {
    let mut ids = vec![field.id];
    if let Ok(kids) = children(&field.field_type) {
        ids.extend(kids.iter().flat_map(all_ids));
    }
    ids
}

/// Whether a column of type `existing` already holds what adding one of type `wanted` asks
/// for: the same shape by field names, each primitive equal to or wider than `wanted`'s.
fn already_holds(existing: &Type, wanted: &Type) -> bool {
    match (existing, wanted) {
        (Type::Primitive(existing), Type::Primitive(wanted)) => can_widen(wanted, existing),
        (Type::Struct(existing), Type::Struct(wanted)) => {
            wanted.fields().iter().all(|w| existing.field_by_name(&w.name).is_some_and(|e| already_holds(&e.field_type, &w.field_type)))
        }
        (Type::List(existing), Type::List(wanted)) => already_holds(&existing.element_field.field_type, &wanted.element_field.field_type),
        (Type::Map(existing), Type::Map(wanted)) => {
            already_holds(&existing.key_field.field_type, &wanted.key_field.field_type)
                && already_holds(&existing.value_field.field_type, &wanted.value_field.field_type)
        }
        _ => false,
    }
}

/// The change that makes the evolved schema current, or `None` when `changes` change nothing.
pub fn prepare_schema_update(table: &FloeTable, changes: &[SchemaChange]) -> Result<Option<TableChange>> {
    let metadata = table.metadata();
    let current = metadata.current_schema();
    let partition_sources: HashSet<i32> =
        metadata.partition_specs_iter().flat_map(|spec| spec.fields().iter().map(|f| f.source_id).collect::<Vec<_>>()).collect();
    let evolved = evolve_schema(current, metadata.last_column_id(), &partition_sources, changes)?;
    if evolved.as_struct() == current.as_struct() {
        return Ok(None);
    }
    Ok(Some(TableChange::new(
        vec![
            TableRequirement::UuidMatch { uuid: metadata.uuid() },
            TableRequirement::CurrentSchemaIdMatch { current_schema_id: metadata.current_schema_id() },
            TableRequirement::LastAssignedFieldIdMatch { last_assigned_field_id: metadata.last_column_id() },
        ],
        vec![TableUpdate::AddSchema { schema: evolved }, TableUpdate::SetCurrentSchema { schema_id: -1 }],
    )))
}

/// Evolves `ident`'s schema, re-validating `changes` against the newest schema on conflict.
pub async fn update_schema(catalog: &dyn Catalog, ident: &TableIdent, changes: &[SchemaChange], policy: &RetryPolicy) -> Result<FloeTable> {
    let committed = commit_with_retry(catalog, ident, policy, |table| async move { prepare_schema_update(&table, changes) }).await?;
    match committed {
        Some(table) => Ok(table),
        None => catalog.load_table(ident).await,
    }
}
