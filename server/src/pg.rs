//! The PostgreSQL wire endpoint: psql, JDBC/ODBC drivers, psycopg, node-postgres.
//!
//! Every connection gets its own DataFusion session (so `SET` stays in it) over the shared
//! catalog provider, with `pg_catalog` for drivers' introspection, and authenticates with
//! SCRAM-SHA-256 against the configured users unless anonymous access is on. Statements go
//! through [`ReadOnlyFloe`] after datafusion-postgres' own `SET`/`SHOW`, transaction and cursor
//! handling.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::{DfSessionService, QueryHook};
use floe_views::access::SessionAccess;
use floe_views::catalog_provider::{FloeCatalogProvider, CATALOG_NAME};
use futures::Sink;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{DefaultServerParameterProvider, StartupHandler};
use pgwire::api::{ClientInfo, PgWireConnectionState, PgWireServerHandlers, METADATA_USER};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::auth::ITERATIONS;
use crate::copy_out::CopyToStdout;
use crate::grants::Grants;
use crate::hooks::{ReadOnlyFloe, Savepoints};
use crate::pg_relations::FloePgCatalog;
use crate::session::{session, Access, Limits, Serving};
use crate::tls::Tls;

/// A bound, not yet serving, Postgres wire endpoint.
pub struct PgEndpoint {
    listener: TcpListener,
    serving: Serving,
}

impl PgEndpoint {
    /// Binds `addr` (port 0: any free port, see [`local_addr`](Self::local_addr)).
    pub async fn bind(addr: SocketAddr, serving: Serving) -> std::io::Result<Self> {
        serving.warn_if_exposed(addr, "Postgres wire", "query results (passwords are safe: SCRAM)");
        let listener = TcpListener::bind(addr).await?;
        Ok(Self { listener, serving })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "could not accept a connection");
                    continue;
                }
            };
            let serving = &self.serving;
            let connection = match Connection::new(&serving.provider, &serving.access, &serving.limits) {
                Ok(connection) => Arc::new(connection),
                Err(e) => {
                    warn!(%peer, error = %e, "could not set up a session");
                    continue;
                }
            };
            let tls = serving.tls.as_ref().map(Tls::acceptor);
            tokio::spawn(async move {
                if let Err(e) = pgwire::tokio::process_socket(socket, tls, connection).await {
                    warn!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        info!("Postgres wire endpoint stopped");
    }
}

/// One connection's handlers: its session and its authentication.
struct Connection {
    service: Arc<DfSessionService>,
    startup: Arc<Startup>,
}

impl Connection {
    fn new(provider: &FloeCatalogProvider, access: &Access, limits: &Limits) -> datafusion::error::Result<Self> {
        // Until authentication names the user, the session reads nothing.
        let reads = match access {
            Access::Anonymous => SessionAccess::everything(),
            Access::Users(..) => SessionAccess::default(),
        };
        let ctx = session("pg", provider, reads.clone(), limits)?;
        setup_pg_catalog(&ctx, CATALOG_NAME, EmptyContextProvider).map_err(|e| *e)?;
        FloePgCatalog::install(&ctx.catalog(CATALOG_NAME).expect("registered by session()"))?;
        crate::pg_functions::register(&ctx);
        // datafusion-postgres' hooks first: SET, SHOW and transactions are not reads, yet allowed.
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
            Arc::new(CursorStatementHook),
            Arc::new(Savepoints),
            Arc::new(CopyToStdout),
            Arc::new(ReadOnlyFloe),
        ];
        let service = Arc::new(DfSessionService::new_with_hooks(Arc::new(ctx), hooks));
        let startup = Arc::new(match access {
            Access::Anonymous => Startup::Open(Open),
            Access::Users(users, grants) => {
                let mut scram = ScramAuth::new(users.clone());
                scram.set_iterations(ITERATIONS);
                let parameters = Arc::new(DefaultServerParameterProvider::default());
                let handler = Box::new(SASLAuthStartupHandler::new(parameters).with_scram(scram));
                Startup::Scram { handler, grants: grants.clone(), reads }
            }
        });
        Ok(Self { service, startup })
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        self.service.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        self.service.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }
}

/// Anonymous access: the startup completes without a password.
struct Open;

impl NoopStartupHandler for Open {}

/// One connection's authentication.
enum Startup {
    /// SCRAM; once it succeeds, the session reads what the user's grants give.
    Scram {
        handler: Box<SASLAuthStartupHandler<DefaultServerParameterProvider>>,
        grants: Arc<Grants>,
        reads: SessionAccess,
    },
    Open(Open),
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Scram { handler, grants, reads } => {
                handler.on_startup(client, message).await?;
                let authenticated = matches!(client.state(), PgWireConnectionState::ReadyForQuery);
                if let Some(user) = client.metadata().get(METADATA_USER).filter(|_| authenticated && !reads.is_granted()) {
                    reads.grant(Arc::new(grants.policy_for(user)));
                }
                Ok(())
            }
            Startup::Open(open) => open.on_startup(client, message).await,
        }
    }
}
