//! Functions PostgreSQL drivers call that datafusion-pg-catalog does not serve, or serves with
//! answers drivers misread.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, ListArray, StructArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Int16Type};
use datafusion::common::cast::as_list_array;
use datafusion::error::Result;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

/// The database name every connection is in, whatever name the client asked for.
pub const DATABASE: &str = "floe";

/// Registers floe's functions in `ctx`, over datafusion-pg-catalog's.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(version());
    ctx.register_udf(to_regtype());
    ctx.register_udf(current_database());
    ctx.register_udf(pg_expandarray());
    ctx.register_udf(to_regclass());
    for (name, returns) in NULL_ANSWERS {
        ctx.register_udf(ScalarUDF::new_from_impl(NullAnswer { name, returns, signature: Signature::variadic_any(Volatility::Stable) }));
    }
}

/// What [`crate::pg_rewrite`] puts in place of a catalog lookup DataFusion cannot plan: NULL,
/// with the lookup's parameters as its arguments, so they are still bound.
pub const UNANSWERED: &str = "floe_unanswered";

/// Functions about what floe's tables never have (sequences, collations, JSON built in the
/// catalog's queries for identity columns), which drivers call inside lookups that come back
/// empty for floe anyway, and [`UNANSWERED`]: each answers NULL, whatever its arguments.
const NULL_ANSWERS: [(&str, DataType); 4] = [
    ("pg_get_serial_sequence", DataType::Utf8),
    ("json_build_object", DataType::Utf8),
    ("pg_collation_is_visible", DataType::Boolean),
    (UNANSWERED, DataType::Utf8),
];

#[derive(Debug, PartialEq, Eq, Hash)]
struct NullAnswer {
    name: &'static str,
    returns: DataType,
    signature: Signature,
}

impl ScalarUDFImpl for NullAnswer {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from(&self.returns)?))
    }
}

fn constant(name: &str, value: ScalarValue) -> ScalarUDF {
    let data_type = value.data_type();
    let answer = move |_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(value.clone()));
    create_udf(name, vec![], data_type, Volatility::Stable, Arc::new(answer))
}

/// `version()` as drivers parse it (SQLAlchemy, pgjdbc read "PostgreSQL <major>.<minor>"): the
/// protocol level floe speaks, then what floe is.
fn version() -> ScalarUDF {
    let text = format!("PostgreSQL 16.6 (floe {}, Apache DataFusion {})", env!("CARGO_PKG_VERSION"), datafusion::DATAFUSION_VERSION);
    constant("version", ScalarValue::Utf8(Some(text)))
}

/// `current_database()`: "floe", the catalog `pg_database` lists (datafusion-pg-catalog answers
/// "datafusion"; pgjdbc reports it as every table's catalog).
fn current_database() -> ScalarUDF {
    constant("current_database", ScalarValue::Utf8(Some(DATABASE.into())))
}

/// `to_regtype(name)`: NULL, "no such type". Drivers call it to probe for optional types
/// (psycopg, for SQLAlchemy: `hstore`), which a floe table never has; floe's own columns are
/// described by `pg_type` and the result metadata.
fn to_regtype() -> ScalarUDF {
    let unknown = |_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Int32(None)));
    create_udf("to_regtype", vec![DataType::Utf8], DataType::Int32, Volatility::Stable, Arc::new(unknown))
}

/// `to_regclass(name)`: the object id floe gives the relation `name` (`schema.relation`; see
/// [`crate::pg_relations`]). The statement hook rewrites `'name'::regclass` and `$1::regclass`
/// to it (SQLAlchemy casts a parameter so).
fn to_regclass() -> ScalarUDF {
    let lookup = |args: &[ColumnarValue]| -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let names = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let oids: Int32Array = names.as_string::<i32>().iter().map(|name| name.map(crate::pg_relations::oid)).collect();
        Ok(ColumnarValue::Array(Arc::new(oids)))
    };
    create_udf("to_regclass", vec![DataType::Utf8], DataType::Int32, Volatility::Stable, Arc::new(lookup))
}

/// The element type of [`pg_expandarray`]: PostgreSQL's `information_schema._pg_expandarray`
/// row, the element `x` and its 1-based position `n`.
fn expanded_fields() -> Fields {
    Fields::from(vec![Field::new("x", DataType::Int32, true), Field::new("n", DataType::Int32, false)])
}

/// `pg_expandarray(int2[])`: the array's elements with their positions, as a list of
/// `{x, n}`. PostgreSQL's `information_schema._pg_expandarray` returns those as rows; the
/// statement hook rewrites a call to it as `unnest(pg_expandarray(…))` (pgjdbc lists primary
/// keys with it).
fn pg_expandarray() -> ScalarUDF {
    let item = Arc::new(Field::new_list_field(DataType::Struct(expanded_fields()), true));
    let input = DataType::List(Arc::new(Field::new_list_field(DataType::Int16, true)));
    let expand = |args: &[ColumnarValue]| -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        Ok(ColumnarValue::Array(expand_lists(as_list_array(&arrays[0])?)?))
    };
    create_udf("pg_expandarray", vec![input], DataType::List(item), Volatility::Immutable, Arc::new(expand))
}

fn expand_lists(lists: &ListArray) -> Result<ArrayRef> {
    let offsets = lists.offsets();
    let (first, last) = (offsets[0], offsets[lists.len()]);
    let values = lists.values().slice(first as usize, (last - first) as usize);
    let values = datafusion::arrow::compute::cast(&values, &DataType::Int16)?;
    let elements: Int32Array = values.as_primitive::<Int16Type>().iter().map(|v| v.map(i32::from)).collect();
    let positions: Int32Array = offsets.windows(2).flat_map(|w| 1..=(w[1] - w[0])).collect();
    let pairs = StructArray::try_new(expanded_fields(), vec![Arc::new(elements), Arc::new(positions)], None)?;
    let item = Arc::new(Field::new_list_field(DataType::Struct(expanded_fields()), true));
    let rebased = OffsetBuffer::new(offsets.iter().map(|o| o - first).collect::<Vec<_>>().into());
    Ok(Arc::new(ListArray::try_new(item, rebased, Arc::new(pairs), lists.nulls().cloned())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pg_expandarray_pairs_each_element_with_its_position() {
        let ctx = SessionContext::new();
        register(&ctx);
        let sql = "SELECT unnest(pg_expandarray(make_array(arrow_cast(3, 'Int16'), arrow_cast(1, 'Int16')))) AS k";
        let batches = ctx.sql(&format!("SELECT k['x'] AS x, k['n'] AS n FROM ({sql})")).await.unwrap().collect().await.unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        assert_eq!(text.lines().filter(|l| l.starts_with("| ")).skip(1).collect::<Vec<_>>(), ["| 3 | 1 |", "| 1 | 2 |"], "{text}");
    }
}
