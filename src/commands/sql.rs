//! `floe sql "QUERY"`.

use std::process::ExitCode;

use anyhow::Result;
use floe_catalog::Catalog;
use floe_views::OutputFormat;

pub async fn run(catalog: &dyn Catalog, query: &str, format: OutputFormat) -> Result<ExitCode> {
    let batches = floe_views::query(catalog, query).await?;
    print!("{}", floe_views::render(&batches, format)?);
    Ok(ExitCode::SUCCESS)
}
