//! The stores on SQLite: diesel-async `SyncConnectionWrapper` + bb8, embedded migrations.
