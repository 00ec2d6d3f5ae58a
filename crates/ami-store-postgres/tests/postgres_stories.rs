//! The storage stories of `ami-store`, each on a fresh PostgreSQL database.

mod common;

use ami_store_postgres::PgStore;

async fn fresh_store() -> Box<dyn ami_store::Store> {
    let url = common::fresh_database().await;
    Box::new(PgStore::connect(&url).await.expect("connect"))
}

ami_store::stories!(fresh_store);
