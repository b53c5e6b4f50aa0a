//! `floe resume TABLE…`: clears the pause an incompatible source change put on a table.

use std::process::ExitCode;

use anyhow::{Context, Result};
use floe_catalog::pause::resume_table;
use floe_catalog::Catalog;

pub async fn run(catalog: &dyn Catalog, tables: &[String]) -> Result<ExitCode> {
    for name in tables {
        let ident = floe_sink::config::parse_table_name(name).with_context(|| format!("'{name}' is not namespace.table"))?;
        match resume_table(catalog, &ident).await.with_context(|| format!("resuming {name}"))? {
            Some(pause) => {
                println!("{name}: resumed (paused since {}: {}); the sink takes it up at its next start", pause.at, pause.reason)
            }
            None => println!("{name}: was not paused"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
