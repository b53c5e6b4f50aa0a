//! PostgreSQL spellings that drivers send and DataFusion does not take, rewritten into ones it
//! does, before a statement is planned:
//!
//! - `LIKE … ESCAPE 'c'`: DataFusion's `LIKE` takes only the backslash as its escape character;
//!   SQLAlchemy lists schemas with `LIKE 'pg/_%' ESCAPE '/'`.
//! - `information_schema._pg_expandarray(a)`, a set-returning function in the select list (pgjdbc
//!   lists primary keys with it): `unnest(pg_expandarray(a))`, the same rows
//!   ([`crate::pg_functions`]).
//! - `(expr).field`, PostgreSQL's access to a field of a composite value: `(expr)['field']`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{visit_expressions_mut, AccessExpr, Expr, Statement, Subscript, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// `statement` in spellings DataFusion takes; `None` when it needs no rewrite.
pub fn for_datafusion(statement: &Statement) -> Option<Statement> {
    let mut statement = statement.clone();
    let mut changed = false;
    let _ = visit_expressions_mut(&mut statement, |expr| {
        changed |= backslash_escape(expr) | expanded_array(expr) | composite_field(expr);
        ControlFlow::<()>::Continue(())
    });
    changed.then_some(statement)
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
}
