//! The SQL endpoints of `floe serve`: PostgreSQL wire, Arrow Flight SQL and HTTP, configured by
//! `[server]`, `[[users]]` and `[[grants]]`, over one catalog provider.

use anyhow::{Context, Result};
use floe_catalog::Catalog;
use floe_server::config::ServerConfig;
use floe_server::flight::FlightSqlEndpoint;
use floe_server::http::{HttpEndpoint, MetricsText};
use floe_server::pg::PgEndpoint;
use floe_server::session::{Access, Serving};
use floe_sink::config::ConfigError;
use floe_sink::SinkConfig;
use floe_views::catalog_provider::FloeCatalogProvider;

use crate::cli::EndpointArgs;

/// The endpoints' settings, when the config has `[server]` or an address flag is given; the
/// flags win over the file.
pub fn settings(config: &SinkConfig, file: &str, flags: &EndpointArgs) -> Result<Option<ServerConfig>> {
    if config.server.is_none() && !flags.any() {
        return Ok(None);
    }
    let mut server = ServerConfig::from_toml(&config.server.clone().unwrap_or_default(), &config.users, &config.grants)
        .map_err(|e| ConfigError { file: file.to_string(), key: e.key, problem: e.problem, fix: e.fix })?;
    server.pg_addr = flags.pg_addr.unwrap_or(server.pg_addr);
    server.http_addr = flags.http_addr.unwrap_or(server.http_addr);
    server.flight_addr = flags.flight_addr.unwrap_or(server.flight_addr);
    Ok(Some(server))
}

/// The three endpoints, bound.
pub struct Endpoints {
    tls: bool,
    pg: PgEndpoint,
    flight: FlightSqlEndpoint,
    http: HttpEndpoint,
}

impl Endpoints {
    pub async fn bind(catalog: &dyn Catalog, server: ServerConfig, metrics: MetricsText) -> Result<Self> {
        let access = if server.allow_anonymous { Access::Anonymous } else { Access::Users(server.users.into(), server.grants.into()) };
        let partitions = std::thread::available_parallelism().map_or(1, usize::from);
        let provider = std::sync::Arc::new(FloeCatalogProvider::new(catalog.shared(), partitions));
        provider.refresh().await?;
        let tls = server.tls.is_some();
        let serving = Serving { provider, access, limits: server.limits, tls: server.tls, catalog_service: server.catalog_service };
        let (pg_addr, http_addr, flight_addr) = (server.pg_addr, server.http_addr, server.flight_addr);
        let pg = PgEndpoint::bind(pg_addr, serving.clone()).await.with_context(|| format!("listening on {pg_addr} (Postgres wire)"))?;
        let flight = FlightSqlEndpoint::bind(flight_addr, serving.clone())
            .await
            .with_context(|| format!("listening on {flight_addr} (Flight SQL)"))?;
        let http =
            HttpEndpoint::bind(http_addr, serving, Some(metrics)).await.with_context(|| format!("listening on {http_addr} (HTTP)"))?;
        Ok(Self { tls, pg, flight, http })
    }

    /// Serves all three until Ctrl-C or SIGTERM.
    pub async fn serve(self) -> Result<()> {
        let (grpc, http, ssl) = if self.tls { ("grpc+tls", "https", " (TLS offered)") } else { ("grpc", "http", "") };
        println!("floe serve: Postgres wire on {}{ssl}", self.pg.local_addr()?);
        println!("floe serve: Flight SQL on {grpc}://{}", self.flight.local_addr()?);
        println!("floe serve: HTTP on {http}://{}", self.http.local_addr()?);
        let mut pg_shutdown = crate::shutdown::Shutdown::listen()?;
        let mut flight_shutdown = crate::shutdown::Shutdown::listen()?;
        let mut http_shutdown = crate::shutdown::Shutdown::listen()?;
        let flight = self.flight.serve(async move { flight_shutdown.requested().await });
        let http = self.http.serve(async move { http_shutdown.requested().await });
        let ((), flight, http) = tokio::join!(self.pg.serve(pg_shutdown.requested()), flight, http);
        flight?;
        Ok(http?)
    }
}
