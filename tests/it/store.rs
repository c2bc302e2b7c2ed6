//! Migrations on a fresh database, beside a host app's own migrations, and turned off.

use rocket::local::asynchronous::Client;

use crate::common::*;
use crate::db_tests;

db_tests!(
    migrations_create_tables_once,
    host_migrations_coexist,
    migrate_false_leaves_the_database_alone,
);

/// How many migrations this crate ships (the same number for each backend).
fn ours() -> i64 {
    let count = |backend: &str| {
        std::fs::read_dir(format!(
            "{}/migrations/{backend}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .count() as i64
    };
    assert_eq!(count("sqlite"), count("postgres"));
    count("sqlite")
}

async fn tables(db: &TestDb) -> Vec<String> {
    let pool = db.pool().await;
    let sql = match db.backend {
        "sqlite" => "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('users', 'social_users') ORDER BY name",
        _ => "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name IN ('users', 'social_users') ORDER BY table_name",
    };
    let names: Vec<String> = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
    pool.close().await;
    names
}

async fn migrations_create_tables_once(db: TestDb) {
    assert!(tables(&db).await.is_empty());
    let app = TestApp::start(db).await;
    assert_eq!(tables(&app.db).await, ["social_users", "users"]);
    app.login(&app.client).await;
    // A second launch on the same database migrates nothing and keeps the rows.
    let again = Client::tracked(rocket(figment(&app.db.url, app.server.url(), "")))
        .await
        .expect("relaunch");
    drop(again);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM _sqlx_migrations").await,
        ours()
    );
}

async fn host_migrations_coexist(db: TestDb) {
    // The host app ran its own sqlx migration (version 1) in this database first.
    let dir = std::env::temp_dir().join(format!("rsa_host_{}_{}", std::process::id(), now()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("1_host.sql"),
        "CREATE TABLE host_things (id BIGINT PRIMARY KEY);",
    )
    .unwrap();
    let host = sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap();
    let pool = db.pool().await;
    host.run(&pool).await.unwrap();

    let app = TestApp::start(db).await;
    assert_eq!(tables(&app.db).await, ["social_users", "users"]);
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM _sqlx_migrations").await,
        ours() + 1
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM host_things").await, 0);
    // The host's migrator still runs when told to ignore versions that are not its own.
    let mut host = host;
    host.set_ignore_missing(true);
    host.run(&pool).await.unwrap();
    pool.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

async fn migrate_false_leaves_the_database_alone(db: TestDb) {
    let app = TestApp::start_with(db, "[social_auth]\nmigrate = false\n").await;
    assert!(tables(&app.db).await.is_empty());
}
