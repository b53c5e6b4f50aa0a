//! The SQL endpoints of `floe serve`: PostgreSQL wire and HTTP, configured by `[server]`,
//! `[[users]]` and `[[grants]]`, over one catalog provider.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use floe_catalog::Catalog;
use floe_server::config::ServerConfig;
use floe_server::http::{HttpEndpoint, MetricsText};
use floe_server::pg::PgEndpoint;
use floe_server::session::Access;
use floe_sink::config::ConfigError;
use floe_sink::SinkConfig;
use floe_views::catalog_provider::FloeCatalogProvider;

/// The endpoints' settings, when the config has `[server]` or an address flag is given; the
/// flags win over the file.
pub fn settings(
    config: &SinkConfig,
    file: &str,
    pg_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
) -> Result<Option<ServerConfig>> {
    if config.server.is_none() && pg_addr.is_none() && http_addr.is_none() {
        return Ok(None);
    }
    let mut server = ServerConfig::from_toml(&config.server.clone().unwrap_or_default(), &config.users, &config.grants)
        .map_err(|e| ConfigError { file: file.to_string(), key: e.key, problem: e.problem, fix: e.fix })?;
    server.pg_addr = pg_addr.unwrap_or(server.pg_addr);
    server.http_addr = http_addr.unwrap_or(server.http_addr);
    Ok(Some(server))
}

/// Both endpoints, bound.
pub struct Endpoints {
    pg: PgEndpoint,
    http: HttpEndpoint,
}

impl Endpoints {
    pub async fn bind(catalog: &dyn Catalog, server: ServerConfig, metrics: MetricsText) -> Result<Self> {
        let access = if server.allow_anonymous { Access::Anonymous } else { Access::Users(server.users.into(), server.grants.into()) };
        let partitions = std::thread::available_parallelism().map_or(1, usize::from);
        let provider = std::sync::Arc::new(FloeCatalogProvider::new(catalog.shared(), partitions));
        provider.refresh().await?;
        let (pg_addr, http_addr) = (server.pg_addr, server.http_addr);
        let pg = PgEndpoint::bind(pg_addr, provider.clone(), access.clone(), server.limits.clone())
            .await
            .with_context(|| format!("listening on {pg_addr} (Postgres wire)"))?;
        let http = HttpEndpoint::bind(http_addr, provider, access, server.limits, Some(metrics))
            .await
            .with_context(|| format!("listening on {http_addr} (HTTP)"))?;
        Ok(Self { pg, http })
    }

    /// Serves both until Ctrl-C or SIGTERM.
    pub async fn serve(self) -> Result<()> {
        println!("floe serve: Postgres wire on {}", self.pg.local_addr()?);
        println!("floe serve: HTTP on http://{}", self.http.local_addr()?);
        let mut pg_shutdown = crate::shutdown::Shutdown::listen()?;
        let mut http_shutdown = crate::shutdown::Shutdown::listen()?;
        let http = self.http.serve(async move { http_shutdown.requested().await });
        let ((), http) = tokio::join!(self.pg.serve(pg_shutdown.requested()), http);
        Ok(http?)
    }
}
