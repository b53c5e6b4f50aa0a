//! # floe-server
//!
//! floe's SQL endpoints over the views: the PostgreSQL wire protocol ([`pg`]) for BI tools,
//! drivers and psql, Arrow Flight SQL ([`flight`]) for programs that want Arrow (ADBC), and
//! HTTP ([`http`]) for scripts. This crate owns the network side only:
//!
//! - each connection gets its own DataFusion session over floe-views' catalog provider, with
//!   `pg_catalog` added so drivers can list schemas, tables and columns;
//! - users and their SCRAM-SHA-256 secrets come from the config ([`config`], [`auth`]);
//!   nobody gets in anonymously unless the config says so;
//! - a user reads only what `[[grants]]` give them ([`grants`]), down to columns: the session's
//!   catalog lists and resolves nothing else;
//! - every statement that is not a read is refused ([`hooks`]), and queries run within the
//!   configured memory, time and concurrency limits ([`session`]).
//!
//! It reads tables only through floe-views and never writes.

pub mod auth;
pub mod config;
pub mod copy_out;
pub mod deadline;
pub mod flight;
pub mod grants;
pub mod hooks;
pub mod http;
pub mod iceberg_rest;
pub mod pg;
pub mod pg_functions;
pub mod pg_relations;
pub mod pg_rewrite;
pub mod session;
pub mod tls;
