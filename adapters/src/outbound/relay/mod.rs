//! The `CloudGateway` over HTTP: local → cloud relay API v1 (`crate::relay_api`), outbound only.
