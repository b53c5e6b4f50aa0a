//! `COPY (query) TO STDOUT`, which psql's `\copy (query) to 'file'` sends: the query's rows
//! streamed to the client as COPY data, in PostgreSQL's text format (tab-separated, `\N` for
//! NULL) or as CSV (`FORMAT csv`, `HEADER`, `DELIMITER`, `NULL`). The query is planned as a
//! read in the session, under its grants, like any other. `COPY … TO` a server file stays
//! refused by [`crate::hooks::ReadOnlyFloe`].

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::csv::{QuoteStyle, WriterBuilder};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement};
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::QueryHook;
use futures::StreamExt;
use pgwire::api::results::{CopyResponse, Response};
use pgwire::api::ClientInfo;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;

use crate::hooks::{count_query, renew_listing};
use crate::session::{plan_read, Unplanned};

/// Answers `COPY (query) TO STDOUT`.
#[derive(Debug, Default)]
pub struct CopyToStdout;

/// How rows are written.
#[derive(Debug, Clone, PartialEq)]
struct Format {
    csv: bool,
    header: bool,
    delimiter: u8,
    null: String,
}

impl Format {
    /// The format `COPY`'s options ask for; PostgreSQL's text format by default.
    fn of(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Self {
        let mut format = Format { csv: false, header: false, delimiter: b'\t', null: "\\N".into() };
        let mut delimiter = None;
        let mut null = None;
        for option in options {
            match option {
                CopyOption::Format(name) => format.csv = name.value.eq_ignore_ascii_case("csv"),
                CopyOption::Header(header) => format.header = *header,
                CopyOption::Delimiter(d) => delimiter = Some(*d as u8),
                CopyOption::Null(text) => null = Some(text.clone()),
                _ => {}
            }
        }
        for option in legacy {
            match option {
                CopyLegacyOption::Csv(csv) => {
                    format.csv = true;
                    format.header |= csv.iter().any(|o| matches!(o, CopyLegacyCsvOption::Header));
                }
                CopyLegacyOption::Header => format.header = true,
                CopyLegacyOption::Delimiter(d) => delimiter = Some(*d as u8),
                CopyLegacyOption::Null(text) => null = Some(text.clone()),
                _ => {}
            }
        }
        if format.csv {
            (format.delimiter, format.null) = (b',', String::new());
        }
        format.delimiter = delimiter.unwrap_or(format.delimiter);
        format.null = null.unwrap_or(format.null);
        format
    }

    /// `batch` as COPY data; the header only with the first batch.
    fn encode(&self, batch: &RecordBatch, first: bool) -> PgWireResult<CopyData> {
        let failed = |e: datafusion::arrow::error::ArrowError| PgWireError::ApiError(Box::new(e));
        if !self.csv {
            return Ok(CopyData::new(self.text(batch, first).map_err(failed)?.into_bytes().into()));
        }
        let builder = WriterBuilder::new()
            .with_header(self.header && first)
            .with_delimiter(self.delimiter)
            .with_null(self.null.clone())
            .with_quote_style(QuoteStyle::Necessary);
        let mut writer = builder.build(Vec::new());
        writer.write(batch).map_err(failed)?;
        Ok(CopyData::new(writer.into_inner().into()))
    }

    /// `batch` in PostgreSQL's text format: backslash, newline, carriage return, tab and the
    /// delimiter inside a value escaped with a backslash, so every value stays one field.
    fn text(&self, batch: &RecordBatch, first: bool) -> Result<String, datafusion::arrow::error::ArrowError> {
        use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
        let delimiter = char::from(self.delimiter);
        let escape = |value: &str| {
            let mut escaped = String::with_capacity(value.len());
            for c in value.chars() {
                match c {
                    '\\' => escaped.push_str("\\\\"),
                    '\n' => escaped.push_str("\\n"),
                    '\r' => escaped.push_str("\\r"),
                    '\t' if delimiter == '\t' => escaped.push_str("\\t"),
                    c if c == delimiter => escaped.extend(['\\', c]),
                    c => escaped.push(c),
                }
            }
            escaped
        };
        let mut out = String::new();
        if self.header && first {
            let names: Vec<String> = batch.schema().fields().iter().map(|f| escape(f.name())).collect();
            out.push_str(&names.join(&delimiter.to_string()));
            out.push('\n');
        }
        let options = FormatOptions::default();
        let columns = batch.columns();
        let formatters = columns.iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            for (i, (column, formatter)) in columns.iter().zip(&formatters).enumerate() {
                if i > 0 {
                    out.push(delimiter);
                }
                match column.is_null(row) {
                    true => out.push_str(&self.null),
                    false => out.push_str(&escape(&formatter.value(row).to_string())),
                }
            }
            out.push('\n');
        }
        Ok(out)
    }
}

/// The query and format of a `COPY (query) TO STDOUT`.
fn copy_to_stdout(statement: &Statement) -> Option<(String, Format)> {
    let Statement::Copy { source: CopySource::Query(query), to: true, target: CopyTarget::Stdout, options, legacy_options, .. } = statement
    else {
        return None;
    };
    Some((query.to_string(), Format::of(options, legacy_options)))
}

fn refused(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), message)))
}

async fn copy_out(query: &str, format: Format, ctx: &SessionContext) -> PgWireResult<Response> {
    renew_listing(ctx).await;
    count_query("ok");
    let plan = plan_read(ctx, query).await.map_err(|unplanned| match unplanned {
        Unplanned::NotARead(_) => refused("42501", unplanned.to_string()),
        Unplanned::Failed(e) => refused("42601", e.strip_backtrace()),
    })?;
    let batches = ctx.execute_logical_plan(plan).await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let stream = batches.execute_stream().await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let columns = stream.schema().fields().len();
    let format = Arc::new(format);
    let data = stream.enumerate().map(move |(i, batch)| {
        let batch = batch.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        format.encode(&batch, i == 0)
    });
    Ok(Response::CopyOut(CopyResponse::new(0, columns, data)))
}

#[async_trait]
impl QueryHook for CopyToStdout {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let (query, format) = copy_to_stdout(statement)?;
        Some(copy_out(&query, format, ctx).await)
    }

    async fn handle_extended_parse_query(
        &self,
        _statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        None
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn format_of(sql: &str) -> Format {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        copy_to_stdout(&statement).expect("a COPY TO STDOUT").1
    }

    #[test]
    fn psqls_copy_options_choose_text_or_csv() {
        let text = format_of("COPY (SELECT 1) TO STDOUT");
        assert_eq!((text.csv, text.delimiter, text.null.as_str()), (false, b'\t', "\\N"));
        let csv = format_of("COPY (SELECT 1) TO STDOUT csv header");
        assert_eq!((csv.csv, csv.header, csv.delimiter, csv.null.as_str()), (true, true, b',', ""));
        let piped = format_of("COPY (SELECT 1) TO STDOUT WITH (FORMAT csv, DELIMITER '|', NULL 'none')");
        assert_eq!((piped.delimiter, piped.null.as_str(), piped.header), (b'|', "none", false));
    }

    #[tokio::test]
    async fn rows_are_written_as_copy_data_with_one_header() {
        let ctx = SessionContext::new();
        let batch = ctx.sql("SELECT 1 AS a, CAST(NULL AS TEXT) AS b, 'x,y' AS c").await.unwrap().collect().await.unwrap().remove(0);
        let csv = format_of("COPY (SELECT 1) TO STDOUT csv header");
        assert_eq!(csv.encode(&batch, true).unwrap().data.as_ref(), b"a,b,c\n1,,\"x,y\"\n");
        assert_eq!(csv.encode(&batch, false).unwrap().data.as_ref(), b"1,,\"x,y\"\n");
        let text = format_of("COPY (SELECT 1) TO STDOUT");
        assert_eq!(text.encode(&batch, true).unwrap().data.as_ref(), b"1\t\\N\tx,y\n");
        let awkward = ctx.sql("SELECT 'a\tb' AS a, 'c\nd\\e' AS b").await.unwrap().collect().await.unwrap().remove(0);
        assert_eq!(text.encode(&awkward, false).unwrap().data.as_ref(), b"a\\tb\tc\\nd\\\\e\n", "one field per value");
    }
}
