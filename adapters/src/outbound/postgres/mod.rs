//! The stores on PostgreSQL: diesel-async (tokio-postgres) + bb8, embedded migrations.
