//! floe's own rows in the `pg_catalog` relations that describe tables, for drivers that list
//! columns and primary keys (pgjdbc's `DatabaseMetaData`, SQLAlchemy's inspector, psql's `\d`).
//!
//! datafusion-pg-catalog serves `pg_namespace`, `pg_class` and `pg_attribute` with object ids
//! from a counter whose cache each of them replaces with its own keys, so one relation's id
//! differs between tables and between queries (a join of `pg_class` with `pg_attribute` and
//! `pg_namespace` in pgjdbc's order finds nothing), and it serves `pg_index` and `pg_constraint`
//! as fixed rows of another database. [`FloePgCatalog`] answers these five itself, from the
//! session's listing, with ids derived from names (the same in every query, session and
//! process), and passes every other relation through.
//!
//! A keyed table's `_latest` view gets a primary key on the table's identifier fields
//! (`<view>_pkey`): it holds one row per key. The table itself keeps every change of a key, so it
//! has none.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{new_empty_array, ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, MemTable, SchemaProvider, TableProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::error::DataFusionError;
use floe_views::catalog_provider::{FloeCatalogProvider, Relation};

/// The relations [`FloePgCatalog`] answers itself.
const OWN: [&str; 5] = ["pg_namespace", "pg_class", "pg_attribute", "pg_index", "pg_constraint"];

/// PostgreSQL's fixed ids of the schemas every database has.
const PG_CATALOG_OID: i32 = 11;
const PUBLIC_OID: i32 = 2200;
/// The bootstrap superuser, owner of everything here.
const OWNER_OID: i32 = 10;
/// The btree access method, every primary key's.
const BTREE_OID: i32 = 403;

/// `pg_catalog` with floe's rows in the relations that describe floe's tables.
#[derive(Debug)]
pub struct FloePgCatalog {
    inner: Arc<dyn SchemaProvider>,
    /// Weak: the catalog holds this schema.
    floe: Weak<dyn CatalogProvider>,
}

impl FloePgCatalog {
    /// Installs itself as `pg_catalog` of the session's floe catalog, over the one
    /// datafusion-pg-catalog's `setup_pg_catalog` put there.
    pub fn install(floe: &Arc<dyn CatalogProvider>) -> Result<()> {
        let inner = floe.schema("pg_catalog").ok_or_else(|| DataFusionError::Plan("pg_catalog is not set up".into()))?;
        floe.register_schema("pg_catalog", Arc::new(Self { inner, floe: Arc::downgrade(floe) }))?;
        Ok(())
    }

    fn relations(&self) -> Vec<Relation> {
        let Some(floe) = self.floe.upgrade() else { return vec![] };
        floe.as_any().downcast_ref::<FloeCatalogProvider>().map(FloeCatalogProvider::relations).unwrap_or_default()
    }

    /// Every relation the session may read, with the columns it may read of each.
    async fn described(&self) -> Result<Vec<(Relation, SchemaRef)>> {
        let Some(floe) = self.floe.upgrade() else { return Ok(vec![]) };
        let mut described = vec![];
        for relation in self.relations() {
            let Some(schema) = floe.schema(&relation.schema) else { continue };
            match schema.table(&relation.name).await {
                Ok(Some(table)) => described.push((relation, table.schema())),
                // Dropped since it was listed.
                Ok(None) => {}
                // One table that cannot be loaded (its storage unreachable, say) leaves the
                // others listed: a driver's catalog query does not fail on it.
                Err(e) => tracing::warn!(table = %format!("{}.{}", relation.schema, relation.name), error = %e, "left out of pg_catalog"),
            }
        }
        Ok(described)
    }

    /// The rows of `name`, one of [`OWN`].
    async fn rows(&self, name: &str) -> Result<Vec<Row>> {
        if name == "pg_namespace" {
            return Ok(namespace_rows(self.relations().iter().map(|r| r.schema.as_str())));
        }
        let described = self.described().await?;
        let each = |row: fn(&Relation, &Schema) -> Vec<Row>| described.iter().flat_map(|(r, columns)| row(r, columns)).collect();
        Ok(match name {
            "pg_class" => each(class_rows),
            "pg_attribute" => each(attribute_rows),
            "pg_index" => each(index_rows),
            _ => each(constraint_rows),
        })
    }
}

#[async_trait]
impl SchemaProvider for FloePgCatalog {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let name = name.to_ascii_lowercase();
        if !OWN.contains(&name.as_str()) {
            return self.inner.table(&name).await;
        }
        let layout = layout(&name, self.inner.table(&name).await?.map(|t| t.schema()));
        let rows = self.rows(&name).await?;
        let batch = batch(layout.clone(), &rows)?;
        Ok(Some(Arc::new(MemTable::try_new(layout, vec![vec![batch]])?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// One row: values by column; columns it leaves out hold their type's zero, or NULL.
type Row = HashMap<&'static str, ScalarValue>;

fn text(value: impl Into<String>) -> ScalarValue {
    ScalarValue::Utf8(Some(value.into()))
}

fn int(value: i32) -> ScalarValue {
    ScalarValue::Int32(Some(value))
}

fn small(value: i16) -> ScalarValue {
    ScalarValue::Int16(Some(value))
}

fn yes(value: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(value))
}

fn smalls(values: &[i16]) -> ScalarValue {
    ScalarValue::List(ScalarValue::new_list_nullable(&values.iter().map(|v| small(*v)).collect::<Vec<_>>(), &DataType::Int16))
}

/// An object id for `name` (a schema, or a relation's qualified name as `regclass` spells it):
/// the same in every session and process, above the ids PostgreSQL itself hands out (below
/// 2^24) and positive.
pub fn oid(name: &str) -> i32 {
    const FNV_OFFSET: u32 = 0x811c_9dc5;
    const FNV_PRIME: u32 = 0x0100_0193;
    let hash = name.bytes().fold(FNV_OFFSET, |h, b| (h ^ u32::from(b)).wrapping_mul(FNV_PRIME));
    (0x4000_0000 | (hash & 0x3fff_ffff)) as i32
}

fn schema_oid(schema: &str) -> i32 {
    match schema {
        "pg_catalog" => PG_CATALOG_OID,
        "public" => PUBLIC_OID,
        _ => oid(schema),
    }
}

fn relation_oid(relation: &Relation) -> i32 {
    oid(&format!("{}.{}", relation.schema, relation.name))
}

/// The primary key's index and constraint: its name and id.
fn key_oid(relation: &Relation) -> (String, i32) {
    let name = format!("{}_pkey", relation.name);
    let oid = oid(&format!("{}.{name}", relation.schema));
    (name, oid)
}

/// The positions (1-based) of `relation`'s unique key among `columns`, if it has one.
fn key_positions(relation: &Relation, columns: &Schema) -> Option<Vec<i16>> {
    let key = relation.unique_key.as_ref()?;
    key.iter().map(|k| columns.index_of(k).ok().map(|i| i as i16 + 1)).collect()
}

fn namespace_rows<'a>(floe_schemas: impl Iterator<Item = &'a str>) -> Vec<Row> {
    let mut names: Vec<&str> = floe_schemas.collect();
    // The schemas DataFusion serves beside floe's (not `public`: nothing is in it).
    names.extend(["pg_catalog", "information_schema"]);
    names.sort();
    names.dedup();
    let row = |name: &str| Row::from([("oid", int(schema_oid(name))), ("nspname", text(name)), ("nspowner", int(OWNER_OID))]);
    names.into_iter().map(row).collect()
}

fn class_rows(relation: &Relation, columns: &Schema) -> Vec<Row> {
    let common = |oid: i32, name: &str, kind: &str, columns: usize| {
        Row::from([
            ("oid", int(oid)),
            ("relname", text(name)),
            ("relnamespace", int(schema_oid(&relation.schema))),
            ("relowner", int(OWNER_OID)),
            ("relkind", text(kind)),
            ("relnatts", small(columns as i16)),
            ("relpersistence", text("p")),
            ("relreplident", text("d")),
            ("relispopulated", yes(true)),
        ])
    };
    let kind = if relation.is_view { "v" } else { "r" };
    let mut table = common(relation_oid(relation), &relation.name, kind, columns.fields().len());
    let Some(key) = key_positions(relation, columns) else { return vec![table] };
    table.insert("relhasindex", yes(true));
    let (name, oid) = key_oid(relation);
    let mut index = common(oid, &name, "i", key.len());
    index.insert("relam", int(BTREE_OID));
    vec![table, index]
}

fn attribute_rows(relation: &Relation, columns: &Schema) -> Vec<Row> {
    let table = relation_oid(relation);
    let row = |(i, field): (usize, &Arc<Field>)| {
        let (type_oid, length) = pg_type_of(field.data_type());
        // numeric(p,s) is typmod ((p << 16) | s) + 4, as format_type and drivers read it.
        let modifier = match field.data_type() {
            DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => ((i32::from(*p) << 16) | (i32::from(*s) & 0xffff)) + 4,
            _ => -1,
        };
        Row::from([
            ("attrelid", int(table)),
            ("attname", text(field.name())),
            ("atttypid", int(type_oid)),
            ("attlen", small(length)),
            ("attnum", small(i as i16 + 1)),
            ("atttypmod", int(modifier)),
            ("attnotnull", yes(!field.is_nullable())),
            ("attislocal", yes(true)),
            ("attstattarget", int(-1)),
            ("attstorage", text("p")),
            ("attalign", text("i")),
        ])
    };
    columns.fields().iter().enumerate().map(row).collect()
}

fn index_rows(relation: &Relation, columns: &Schema) -> Vec<Row> {
    let Some(key) = key_positions(relation, columns) else { return vec![] };
    let (_, oid) = key_oid(relation);
    vec![Row::from([
        ("indexrelid", int(oid)),
        ("indrelid", int(relation_oid(relation))),
        ("indnatts", small(key.len() as i16)),
        ("indnkeyatts", small(key.len() as i16)),
        ("indisunique", yes(true)),
        ("indisprimary", yes(true)),
        ("indimmediate", yes(true)),
        ("indisvalid", yes(true)),
        ("indisready", yes(true)),
        ("indislive", yes(true)),
        ("indkey", smalls(&key)),
        ("indoption", smalls(&vec![0; key.len()])),
    ])]
}

fn constraint_rows(relation: &Relation, columns: &Schema) -> Vec<Row> {
    let Some(key) = key_positions(relation, columns) else { return vec![] };
    let (name, oid) = key_oid(relation);
    vec![Row::from([
        ("oid", int(oid)),
        ("conname", text(name)),
        ("connamespace", int(schema_oid(&relation.schema))),
        ("contype", text("p")),
        ("convalidated", yes(true)),
        ("conrelid", int(relation_oid(relation))),
        ("conindid", int(oid)),
        ("conislocal", yes(true)),
        ("connoinherit", yes(true)),
        ("conkey", smalls(&key)),
    ])]
}

/// The PostgreSQL type of an Arrow column as the wire describes it (its oid), and its length
/// (`attlen`: -1 for variable-length types).
fn pg_type_of(data_type: &DataType) -> (i32, i16) {
    use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
    use pgwire::api::Type;
    let pg = into_pg_type(data_type).unwrap_or(Type::TEXT);
    let length = match pg {
        Type::BOOL => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::FLOAT4 | Type::DATE => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::TIME => 8,
        _ => -1,
    };
    (pg.oid() as i32, length)
}

/// The columns of `name`: datafusion-pg-catalog's (`theirs`), so every column drivers read is
/// there, except `pg_index` and `pg_constraint`, whose key columns must be arrays (theirs are
/// text) for drivers to expand.
fn layout(name: &str, theirs: Option<SchemaRef>) -> SchemaRef {
    let list = |name: &str| Field::new(name, DataType::List(Arc::new(Field::new_list_field(DataType::Int16, true))), true);
    let columns = |spec: &[(&str, DataType)]| spec.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect::<Vec<_>>();
    match (name, theirs) {
        ("pg_index", _) => {
            use DataType::{Boolean as B, Int16 as S, Int32 as I, Utf8 as T};
            let mut fields = columns(&[("indexrelid", I), ("indrelid", I), ("indnatts", S), ("indnkeyatts", S), ("indisunique", B)]);
            fields.extend(columns(&[("indnullsnotdistinct", B), ("indisprimary", B), ("indisexclusion", B), ("indimmediate", B)]));
            fields.extend(columns(&[("indisclustered", B), ("indisvalid", B), ("indcheckxmin", B), ("indisready", B)]));
            fields.extend(columns(&[("indislive", B), ("indisreplident", B)]));
            fields.extend([list("indkey"), list("indcollation"), list("indclass"), list("indoption")]);
            fields.extend(columns(&[("indexprs", T), ("indpred", T)]));
            Arc::new(Schema::new(fields))
        }
        ("pg_constraint", _) => {
            use DataType::{Boolean as B, Int32 as I, Utf8 as T};
            let mut fields = columns(&[("oid", I), ("conname", T), ("connamespace", I), ("contype", T), ("condeferrable", B)]);
            fields.extend(columns(&[("condeferred", B), ("convalidated", B), ("conrelid", I), ("contypid", I), ("conindid", I)]));
            fields.extend(columns(&[("conparentid", I), ("confrelid", I), ("confupdtype", T), ("confdeltype", T)]));
            fields.extend(columns(&[("confmatchtype", T), ("conislocal", B), ("coninhcount", I), ("connoinherit", B)]));
            fields.extend([list("conkey"), list("confkey")]);
            fields.extend(columns(&[("conbin", T)]));
            Arc::new(Schema::new(fields))
        }
        (_, Some(theirs)) => theirs,
        (name, None) => unreachable!("datafusion-pg-catalog serves {name}"),
    }
}

/// `rows` as a batch of `layout`.
fn batch(layout: SchemaRef, rows: &[Row]) -> Result<RecordBatch> {
    let mut arrays: Vec<ArrayRef> = vec![];
    for field in layout.fields() {
        let values: Vec<ScalarValue> = rows.iter().map(|row| value_of(row, field)).collect::<Result<_>>()?;
        let array = if values.is_empty() { new_empty_array(field.data_type()) } else { ScalarValue::iter_to_array(values)? };
        arrays.push(datafusion::arrow::compute::cast(&array, field.data_type())?);
    }
    Ok(RecordBatch::try_new(layout, arrays)?)
}

/// `row`'s value of `field`: its own, else NULL when the column takes one, else the type's
/// zero (false, 0, "").
fn value_of(row: &Row, field: &Field) -> Result<ScalarValue> {
    if let Some(value) = row.get(field.name().as_str()) {
        return Ok(value.clone());
    }
    let null = ScalarValue::try_from(field.data_type())?;
    if field.is_nullable() {
        return Ok(null);
    }
    match field.data_type() {
        DataType::Utf8 => Ok(text("")),
        DataType::Boolean => Ok(yes(false)),
        other => ScalarValue::new_zero(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_above_postgres_own() {
        assert_eq!(oid("depot.parts"), oid("depot.parts"));
        assert_ne!(oid("depot.parts"), oid("depot.parts_latest"));
        assert!(oid("depot") > 1 << 24 && oid("x") > 0);
        assert_eq!(schema_oid("pg_catalog"), 11);
    }

    #[test]
    fn a_latest_view_has_a_primary_key_on_its_key_and_the_table_none() {
        let view = Relation { schema: "depot".into(), name: "parts_latest".into(), is_view: true, unique_key: Some(vec!["sku".into()]) };
        let table = Relation { schema: "depot".into(), name: "parts".into(), is_view: false, unique_key: None };
        let columns = Schema::new(vec![Field::new("qty", DataType::Int64, true), Field::new("sku", DataType::Utf8, false)]);
        let index = index_rows(&view, &columns);
        assert_eq!(index[0]["indkey"], smalls(&[2]), "sku is the second column");
        assert_eq!(constraint_rows(&view, &columns)[0]["conname"], text("parts_latest_pkey"));
        assert!(index_rows(&table, &columns).is_empty() && constraint_rows(&table, &columns).is_empty());
        let classes = class_rows(&view, &columns);
        assert_eq!((classes.len(), &classes[1]["relkind"], &classes[0]["relhasindex"]), (2, &text("i"), &yes(true)));
        let layout = layout("pg_index", None);
        let built = batch(layout, &index).unwrap();
        assert_eq!(built.num_rows(), 1);
    }
}
