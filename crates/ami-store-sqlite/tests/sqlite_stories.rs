//! The storage stories of `ami_store`, on SQLite.

use ami_store::{DatabaseUrl, Store};
use ami_store_sqlite::SqliteStore;

/// A new database file per story. Its directory is kept (not removed when
/// the story ends): the store outlives this function, and the stories hand
/// back only the store.
async fn fresh_store() -> Box<dyn Store> {
    let dir = tempfile::Builder::new()
        .prefix("ami-store-sqlite-")
        .tempdir()
        .expect("temporary directory")
        .keep();
    let url = DatabaseUrl::parse(&format!("sqlite:{}", dir.join("ami.db").display()))
        .expect("a sqlite URL");
    Box::new(SqliteStore::connect(&url).await.expect("connect"))
}

ami_store::stories!(fresh_store);
