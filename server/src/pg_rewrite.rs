//! PostgreSQL spellings that drivers send and DataFusion does not take, rewritten into ones it
//! does, before a statement is planned:
//!
//! - `LIKE … ESCAPE 'c'`: DataFusion's `LIKE` takes only the backslash as its escape character;
//!   SQLAlchemy lists schemas with `LIKE 'pg/_%' ESCAPE '/'`.
//! - `information_schema._pg_expandarray(a)`, a set-returning function in the select list (pgjdbc
//!   lists primary keys with it): `unnest(pg_expandarray(a))`, the same rows
//!   ([`crate::pg_functions`]).
//! - `(expr).field`, PostgreSQL's access to a field of a composite value: `(expr)['field']`.
//! - `generate_subscripts(a, d)`, another set-returning function (SQLAlchemy numbers key
//!   columns with it): `unnest(generate_series(1, cardinality(a)))` for `d = 1`.
//! - `$1` … `$n` with ten or more parameters: zero-padded (`$01` … `$12`), because
//!   datafusion-postgres 0.17 orders parameter types by their names as text (`$10` before `$2`)
//!   and binds values to the wrong types otherwise.
//! - a scalar subquery over `pg_catalog` relations that does not aggregate (drivers look up one
//!   row by its id, correlated with the outer query, which DataFusion refuses): its value
//!   aggregated with `max`, the same for the one row or none such a lookup finds.
//!   Such a lookup inside a `CASE`, which DataFusion cannot plan at all, is NULL: drivers look
//!   up defaults, identity sequences and collations so, which no floe column has.
//! - casts to object-id types (`regclass`, `oid`, …), which DataFusion lacks: the value itself,
//!   except a name (a parameter or a string) cast to `regclass`: `to_regclass(name)`, its id.
//!   datafusion-pg-catalog removes these casts too, but only the outer one of two nested casts,
//!   and it strips `$1::regclass` before floe sees it: a `classoid` (always a `regclass` in
//!   PostgreSQL's catalogs) compared with a parameter is compared with `to_regclass($1)`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, AccessExpr, BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Query, Select,
    SelectItem, SetExpr, Statement, Subscript, TableFactor, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// `statement` in spellings DataFusion takes; `None` when it needs no rewrite.
pub fn for_datafusion(statement: &Statement) -> Option<Statement> {
    let mut statement = statement.clone();
    let mut changed = false;
    let width = placeholder_width(&mut statement);
    let _ = visit_expressions_mut(&mut statement, |expr| {
        changed |= width.is_some_and(|width| padded_placeholder(expr, width));
        changed |= backslash_escape(expr)
            | expanded_array(expr)
            | composite_field(expr)
            | subscripts(expr)
            | object_id_cast(expr)
            | class_id_parameter(expr)
            | aggregated_catalog_lookup(expr)
            | no_lookup_in_case(expr);
        ControlFlow::<()>::Continue(())
    });
    changed.then_some(statement)
}

/// The number of a `$n` placeholder.
fn placeholder_number(expr: &Expr) -> Option<usize> {
    let Expr::Value(value) = expr else { return None };
    let Value::Placeholder(name) = &value.value else { return None };
    name.strip_prefix('$')?.parse().ok()
}

/// The digits of the highest `$n`, when there are ten or more.
fn placeholder_width(statement: &mut Statement) -> Option<usize> {
    let mut highest = 0;
    let _ = visit_expressions_mut(statement, |expr| {
        highest = highest.max(placeholder_number(expr).unwrap_or(0));
        ControlFlow::<()>::Continue(())
    });
    (highest >= 10).then(|| highest.to_string().len())
}

/// `$n` as `$0…n`, `width` digits.
fn padded_placeholder(expr: &mut Expr, width: usize) -> bool {
    let Some(number) = placeholder_number(expr) else { return false };
    let padded = format!("${number:0width$}");
    let Expr::Value(value) = expr else { return false };
    let changed = !matches!(&value.value, Value::Placeholder(name) if *name == padded);
    value.value = Value::Placeholder(padded);
    changed
}

fn parse_expr(text: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {}).try_with_sql(text).and_then(|mut p| p.parse_expr()).ok()
}

/// A `LIKE … ESCAPE 'c'` (c not a backslash) as the same match with backslash escapes.
fn backslash_escape(expr: &mut Expr) -> bool {
    let (Expr::Like { pattern, escape_char, .. } | Expr::ILike { pattern, escape_char, .. }) = expr else { return false };
    let Some(Value::SingleQuotedString(escape)) = escape_char.as_ref().filter(|e| !matches!(e, Value::SingleQuotedString(c) if c == "\\"))
    else {
        return false;
    };
    // A backslash was a plain character; the old escape character becomes one.
    let text = format!("replace(replace({pattern}, '\\', '\\\\'), '{}', '\\')", escape.replace('\'', "''"));
    let Some(replaced) = parse_expr(&text) else { return false };
    **pattern = replaced;
    *escape_char = Some(Value::SingleQuotedString("\\".into()));
    true
}

/// `[information_schema.]_pg_expandarray(a)` as `unnest(pg_expandarray(a))`.
fn expanded_array(expr: &mut Expr) -> bool {
    let Expr::Function(function) = expr else { return false };
    let named =
        function.name.0.last().and_then(|part| part.as_ident()).is_some_and(|ident| ident.value.eq_ignore_ascii_case("_pg_expandarray"));
    if !named {
        return false;
    }
    let Some(rewritten) = parse_expr(&format!("unnest(pg_expandarray{})", function.args)) else { return false };
    *expr = rewritten;
    true
}

/// The name of the function `expr` calls, lowercase, without its schema.
fn function_name(expr: &Expr) -> Option<String> {
    let Expr::Function(function) = expr else { return None };
    function.name.0.last().and_then(|part| part.as_ident()).map(|ident| ident.value.to_lowercase())
}

/// `generate_subscripts(a, d)` as `unnest(generate_series(1, cardinality(a)))` when `d = 1`.
fn subscripts(expr: &mut Expr) -> bool {
    if function_name(expr).as_deref() != Some("generate_subscripts") {
        return false;
    }
    let Expr::Function(function) = expr else { return false };
    let FunctionArguments::List(list) = &function.args else { return false };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(array)), FunctionArg::Unnamed(FunctionArgExpr::Expr(dimension))] = &list.args[..]
    else {
        return false;
    };
    // floe's arrays have one dimension: any other has no subscripts. The dimension stays in
    // the statement, so a parameter given for it is still there to bind.
    let text = format!("unnest(generate_series(1, CASE WHEN {dimension} = 1 THEN CAST(cardinality({array}) AS BIGINT) ELSE 0 END))");
    let Some(rewritten) = parse_expr(&text) else { return false };
    *expr = rewritten;
    true
}

/// A cast to an object-id type as the value cast.
fn object_id_cast(expr: &mut Expr) -> bool {
    const OBJECT_IDS: [&str; 6] = ["regclass", "regtype", "regproc", "regnamespace", "oid", "regoper"];
    let Expr::Cast { data_type, expr: value, .. } = expr else { return false };
    let name = data_type.to_string().to_lowercase();
    let name = name.trim_start_matches("pg_catalog.");
    if !OBJECT_IDS.contains(&name) {
        return false;
    }
    let a_name = matches!(&**value, Expr::Value(v) if matches!(v.value, Value::Placeholder(_) | Value::SingleQuotedString(_)));
    *expr = match (name, a_name) {
        ("regclass", true) => parse_expr(&format!("to_regclass({value})")).unwrap_or_else(|| (**value).clone()),
        _ => (**value).clone(),
    };
    true
}

/// The single-column select of `query` over `pg_catalog` relations only, if it is one.
fn catalog_lookup(query: &mut Query) -> Option<&mut Select> {
    let SetExpr::Select(select) = query.body.as_mut() else { return None };
    let catalog_relation = |from: &TableFactor| match from {
        // `pg_x` or `pg_catalog.pg_x`; a user's `schema.pg_x` is not the catalog.
        TableFactor::Table { name, .. } => {
            let parts: Vec<String> = name.0.iter().filter_map(|p| p.as_ident()).map(|i| i.value.to_lowercase()).collect();
            match &parts[..] {
                [relation] => relation.starts_with("pg_"),
                [schema, relation] => schema == "pg_catalog" && relation.starts_with("pg_"),
                _ => false,
            }
        }
        _ => false,
    };
    let mut relations = select.from.iter().flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)));
    let only_catalog = !select.from.is_empty() && relations.all(catalog_relation);
    (only_catalog && select.projection.len() == 1).then_some(select)
}

/// `(SELECT v FROM pg_… WHERE …)` as `(SELECT max(v) FROM pg_… WHERE …)`.
fn aggregated_catalog_lookup(expr: &mut Expr) -> bool {
    let Expr::Subquery(query) = expr else { return false };
    let Some(select) = catalog_lookup(query) else { return false };
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
    let [SelectItem::UnnamedExpr(value) | SelectItem::ExprWithAlias { expr: value, .. }] = &mut select.projection[..] else { return false };
    let aggregated =
        matches!(function_name(value).as_deref(), Some("max" | "min" | "count" | "sum" | "avg" | "array_agg" | "bool_and" | "bool_or"));
    if grouped || aggregated {
        return false;
    }
    let Some(max) = parse_expr(&format!("max({value})")) else { return false };
    *value = max;
    true
}

/// A `CASE` with its catalog lookups as NULL.
fn no_lookup_in_case(expr: &mut Expr) -> bool {
    if !matches!(expr, Expr::Case { .. }) {
        return false;
    }
    let mut changed = false;
    let _ = visit_expressions_mut(expr, |inner| {
        if let Expr::Subquery(query) = inner {
            if catalog_lookup(query).is_some() {
                *inner = unanswered(inner);
                changed = true;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    changed
}

/// NULL in place of `expr`, still naming the parameters in it: datafusion-postgres binds the
/// values a client sends by the parameters the plan names.
fn unanswered(expr: &mut Expr) -> Expr {
    let mut parameters = vec![];
    let _ = visit_expressions_mut(expr, |inner| {
        if placeholder_number(inner).is_some() {
            parameters.push(inner.to_string());
        }
        ControlFlow::<()>::Continue(())
    });
    match parameters.is_empty() {
        true => Expr::value(Value::Null),
        false => parse_expr(&format!("{}({})", crate::pg_functions::UNANSWERED, parameters.join(", "))).unwrap_or(Expr::value(Value::Null)),
    }
}

/// `… .classoid = $n` as `… .classoid = to_regclass($n)`.
fn class_id_parameter(expr: &mut Expr) -> bool {
    let Expr::BinaryOp { left, op: BinaryOperator::Eq, right } = expr else { return false };
    let is_class_id = |e: &Expr| match e {
        Expr::CompoundIdentifier(parts) => parts.last().is_some_and(|p| p.value.eq_ignore_ascii_case("classoid")),
        Expr::Identifier(ident) => ident.value.eq_ignore_ascii_case("classoid"),
        _ => false,
    };
    let is_parameter = |e: &Expr| matches!(e, Expr::Value(v) if matches!(v.value, Value::Placeholder(_)));
    let parameter = match (is_class_id(left), is_class_id(right)) {
        (true, false) if is_parameter(right) => right,
        (false, true) if is_parameter(left) => left,
        _ => return false,
    };
    let Some(looked_up) = parse_expr(&format!("to_regclass({parameter})")) else { return false };
    **parameter = looked_up;
    true
}

/// `(expr).field` as `(expr)['field']`. A dot after a plain name (`t.column`) is a qualified
/// name, not this.
fn composite_field(expr: &mut Expr) -> bool {
    let Expr::CompoundFieldAccess { root, access_chain } = expr else { return false };
    if !matches!(**root, Expr::Nested(_)) {
        return false;
    }
    let mut changed = false;
    for access in access_chain.iter_mut() {
        if let AccessExpr::Dot(Expr::Identifier(field)) = access {
            let index = Expr::value(Value::SingleQuotedString(field.value.to_lowercase()));
            *access = AccessExpr::Subscript(Subscript::Index { index });
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    fn statement(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0)
    }

    #[test]
    fn a_like_escape_other_than_backslash_is_rewritten_to_backslash() {
        let rewritten = for_datafusion(&statement("SELECT 1 WHERE n NOT LIKE $1 || '%' ESCAPE '/'")).unwrap().to_string();
        assert!(rewritten.contains("ESCAPE '\\'") && rewritten.contains("replace(replace($1 || '%'"), "{rewritten}");
        assert!(for_datafusion(&statement("SELECT 1 WHERE n LIKE 'a\\_%' ESCAPE '\\'")).is_none());
        assert!(for_datafusion(&statement("SELECT 1 WHERE n LIKE 'a%'")).is_none());
    }

    #[tokio::test]
    async fn the_rewritten_pattern_matches_as_the_original_did() {
        let ctx = SessionContext::new();
        for (name, pattern, matches) in [("pg_toast", "pg/_%", true), ("pgatoast", "pg/_%", false), ("a\\b", "a\\b", true)] {
            let sql = format!("SELECT '{name}' LIKE '{pattern}' ESCAPE '/' AS m");
            let rewritten = for_datafusion(&statement(&sql)).unwrap().to_string();
            let batches = ctx.sql(&rewritten).await.unwrap().collect().await.unwrap();
            let m = batches[0].column(0).as_any().downcast_ref::<datafusion::arrow::array::BooleanArray>().unwrap().value(0);
            assert_eq!(m, matches, "{sql} → {rewritten}");
        }
    }

    #[tokio::test]
    async fn pgjdbcs_expanded_key_columns_read_as_postgresql_returns_them() {
        // The shape of pgjdbc's getPrimaryKeys: the set-returning function twice in one select
        // list (zipped, as PostgreSQL does), one field of it, and a field of its alias outside.
        let sql = "SELECT result.a_n, (result.keys).x AS x FROM (SELECT (information_schema._pg_expandarray(k)).n AS a_n, \
                   information_schema._pg_expandarray(k) AS keys FROM (SELECT make_array(arrow_cast(5, 'Int16'), arrow_cast(7, 'Int16')) AS k) t) result";
        let rewritten = for_datafusion(&statement(sql)).unwrap().to_string();
        assert!(rewritten.contains("unnest(pg_expandarray(k))") && rewritten.contains("(result.keys)['x']"), "{rewritten}");
        let ctx = SessionContext::new();
        crate::pg_functions::register(&ctx);
        let batches = ctx.sql(&rewritten).await.unwrap().collect().await.unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        assert_eq!(text.lines().filter(|l| l.starts_with("| ")).skip(1).collect::<Vec<_>>(), ["| 1   | 5 |", "| 2   | 7 |"], "{text}");
        assert!(for_datafusion(&statement("SELECT t.a FROM t")).is_none(), "a qualified name is left alone");
    }

    #[test]
    fn ten_or_more_parameters_are_numbered_so_their_names_sort_as_their_numbers() {
        let twelve: Vec<String> = (1..=12).map(|i| format!("${i}")).collect();
        let rewritten = for_datafusion(&statement(&format!("SELECT {}", twelve.join(", ")))).unwrap().to_string();
        assert!(rewritten.starts_with("SELECT $01, $02,") && rewritten.ends_with("$10, $11, $12"), "{rewritten}");
        assert!(for_datafusion(&statement("SELECT $1, $2")).is_none(), "fewer than ten stay as they are");
    }

    #[test]
    fn catalog_lookups_are_aggregated_or_inside_a_case_unanswered_keeping_their_parameters() {
        let lookup = "SELECT (SELECT t.typname FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid) FROM pg_attribute a";
        let rewritten = for_datafusion(&statement(lookup)).unwrap().to_string();
        assert!(rewritten.contains("SELECT max(t.typname) FROM pg_catalog.pg_type"), "{rewritten}");
        let in_case = "SELECT CASE WHEN a.atthasdef THEN (SELECT d.adbin FROM pg_attrdef d WHERE d.adnum = $1) END FROM pg_attribute a";
        let rewritten = for_datafusion(&statement(in_case)).unwrap().to_string();
        assert!(rewritten.contains("THEN floe_unanswered($1)") && !rewritten.contains("pg_attrdef"), "{rewritten}");
        let user_query = "SELECT (SELECT name FROM depot.parts p WHERE p.sku = o.sku) FROM depot.orders o";
        assert!(for_datafusion(&statement(user_query)).is_none(), "only catalog lookups");
    }

    #[test]
    fn object_id_casts_go_and_a_class_id_compared_with_a_parameter_looks_the_name_up() {
        let casts = "SELECT CAST(CAST(a.attrelid AS REGCLASS) AS TEXT), 'depot.parts'::regclass FROM pg_attribute a";
        let rewritten = for_datafusion(&statement(casts)).unwrap().to_string();
        assert!(rewritten.contains("CAST(a.attrelid AS TEXT)") && rewritten.contains("to_regclass('depot.parts')"), "{rewritten}");
        let class_id = for_datafusion(&statement("SELECT 1 FROM pg_description d WHERE d.classoid = $1")).unwrap().to_string();
        assert!(class_id.ends_with("d.classoid = to_regclass($1)"), "{class_id}");
    }
}
