//! The service's database: a backend behind [`ami_store::Store`], picked
//! once from the URL's scheme. Nothing else in the service knows which
//! database it runs on.

use std::sync::Arc;

pub use ami_store::*;

/// The store the service runs on, shared by its tasks.
pub type Database = Arc<dyn Store>;

/// Connects, creating a SQLite file if needed, and brings the schema up to
/// date.
pub async fn connect(url: &DatabaseUrl) -> Result<Database, StoreError> {
    Ok(match url.backend() {
        Backend::Sqlite => Arc::new(ami_store_sqlite::SqliteStore::connect(url).await?),
        Backend::Postgres => Arc::new(ami_store_postgres::PgStore::connect(url).await?),
    })
}

/// Connects to a database `ami` already uses (an error, creating nothing,
/// when there is none or it holds no journal), and brings it up to date.
pub async fn connect_existing(url: &DatabaseUrl) -> Result<Database, StoreError> {
    Ok(match url.backend() {
        Backend::Sqlite => Arc::new(ami_store_sqlite::SqliteStore::connect_existing(url).await?),
        Backend::Postgres => Arc::new(ami_store_postgres::PgStore::connect_existing(url).await?),
    })
}
