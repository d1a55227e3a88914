//! While PostgreSQL refuses connections, the store fails fast (within its 1 s checkout limit)
//! and recovers by itself. The outage is a TCP proxy in front of the test server that is stopped
//! and started again, so the real server stays up for the other tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use application::ports::StoreError;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::PgStore;

/// Forwards every connection on `listen` to `upstream` until dropped; dropping it closes the
/// listener and every forwarded connection.
struct Proxy {
    _connections: JoinSet<()>,
}

impl Proxy {
    async fn start(listen: SocketAddr, upstream: SocketAddr) -> (Self, SocketAddr) {
        let listener = TcpListener::bind(listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut connections = JoinSet::new();
        connections.spawn(async move {
            let mut forwarded = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                forwarded.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        (Self { _connections: connections }, addr)
    }
}

fn host_port(url: &str) -> (SocketAddr, reqwest::Url) {
    let parsed = reqwest::Url::parse(url).unwrap();
    let host = parsed.host_str().unwrap().to_owned();
    let port = parsed.port().unwrap_or(5432);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)).unwrap().next().unwrap();
    (addr, parsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn while_postgres_refuses_connections_calls_fail_within_the_checkout_limit_and_recover() {
    let db = super::testing::TestDatabase::create().await.unwrap();
    let (upstream, mut url) = host_port(db.url());
    let (proxy, addr) = Proxy::start("127.0.0.1:0".parse().unwrap(), upstream).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(addr.port())).unwrap();
    let store = PgStore::connect(url.as_str(), 4).await.unwrap();
    store.ping().await.unwrap();

    // The outage: the listener and every pooled connection close.
    drop(proxy);
    for _ in 0..3 {
        // A deadline well above the 1 s checkout limit and far below the old 10 s wait.
        let answer = tokio::time::timeout(Duration::from_millis(2_500), store.ping()).await;
        assert!(matches!(answer, Ok(Err(StoreError::Unavailable(_)))), "{answer:?}");
    }

    // PostgreSQL is back on the same address: the pool reconnects by itself.
    let (_proxy, _) = Proxy::start(addr, upstream).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while store.ping().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the store did not recover within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(store);
    db.drop_database().await.unwrap();
}
