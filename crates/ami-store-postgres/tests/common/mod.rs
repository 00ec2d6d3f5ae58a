//! A fresh database per test on the server named by `AMI_TEST_POSTGRES_URL`.

use ami_store::DatabaseUrl;
use sqlx::Connection;

/// The server's URL, with the database the test connects to first.
pub fn server_url() -> String {
    std::env::var("AMI_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Creates an empty database and gives its URL. Named `ami_t_…` like the
/// project's other test databases, which `.ci/run` drops.
pub async fn fresh_database() -> DatabaseUrl {
    let server = server_url();
    let name = format!("ami_t_pgstore_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&server)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL unreachable at {server} (set AMI_TEST_POSTGRES_URL): {e}")
        });
    sqlx::raw_sql(&format!("create database {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    conn.close().await.expect("close");
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    DatabaseUrl::parse(&format!("{base}/{name}")).expect("url")
}
