//! The contract cannot drift: for each mode, the routes its router mounts equal the operations
//! of its `/openapi.json` (plus the few routes that are not API operations: the HTML index page
//! and the document itself), and the README's route tables list exactly the routes some mode
//! mounts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use salvo::prelude::*;
use salvo::routing::FilterInfo;
use salvo::test::{ResponseExt, TestClient};
use serde_json::Value;

use super::test_support::{cloud, local, oidc, relay, store};
use super::{Probes, cloud_router, dev_router, local_router, service};

/// `METHOD /path` with path parameters as `{name}`.
type Route = (String, String);

/// Routes mounted but deliberately not API operations.
const NOT_OPERATIONS: [(&str, &str); 3] = [("GET", "/"), ("GET", "/openapi.json"), ("GET", "/swagger-ui")];

/// Every (method, path) with a handler under `router`.
fn mounted(router: &Router) -> BTreeSet<Route> {
    fn walk(router: &Router, path: &str, method: Option<String>, out: &mut BTreeSet<Route>) {
        let mut path = path.to_owned();
        let mut method = method;
        for filter in router.filters() {
            match filter.info() {
                FilterInfo::Path(segment) => {
                    let segment = segment.trim_matches('/');
                    if !segment.is_empty() {
                        path = format!("{}/{segment}", path.trim_end_matches('/'));
                    }
                }
                FilterInfo::Method(m) => method = Some(m.to_string()),
                _ => {}
            }
        }
        if router.goal.is_some() {
            // Swagger UI serves its files under `swagger-ui/{**}`: one route for this purpose.
            let shown = match path.find("/{") {
                Some(at) if path.contains("{*") || path.contains("{**") => path[..at].to_owned(),
                _ => path.clone(),
            };
            let shown = if shown.is_empty() { "/".to_owned() } else { shown };
            out.insert((method.clone().unwrap_or_else(|| "GET".into()), shown));
        }
        for child in router.routers() {
            walk(child, &path, method.clone(), out);
        }
    }
    let mut out = BTreeSet::new();
    walk(router, "", None, &mut out);
    out
}

async fn operations(router: Router) -> BTreeSet<Route> {
    let mut res = TestClient::get("http://127.0.0.1/openapi.json").send(&service(router)).await;
    let doc: Value = res.take_json().await.unwrap();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// The `METHOD /path` pairs in the first cell of the README's table rows.
fn readme_routes() -> BTreeSet<Route> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let mut out = BTreeSet::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = line.split(" | ").next().unwrap_or_default();
        for quoted in first_cell.split('`').skip(1).step_by(2) {
            let Some((method, rest)) = quoted.split_once(' ') else { continue };
            if ["GET", "POST", "PUT", "DELETE", "PATCH"].contains(&method) && rest.starts_with('/') {
                let path = rest.split(['?', ' ']).next().unwrap_or_default();
                out.insert((method.to_owned(), path.to_owned()));
            }
        }
    }
    out
}

fn without_non_operations(routes: &BTreeSet<Route>) -> BTreeSet<Route> {
    routes.iter().filter(|(m, p)| !NOT_OPERATIONS.contains(&(m.as_str(), p.as_str()))).cloned().collect()
}

#[tokio::test]
async fn mounted_routes_the_document_and_the_readme_agree() {
    let (store, _dir) = store().await;
    let probes = || Arc::new(Probes { checks: Vec::new() });
    let modes = [
        ("local", local_router(local(&store), Some(oidc(&store)), probes())),
        ("cloud", cloud_router(cloud(&store), relay(&store), None, probes())),
        ("dev", dev_router(local(&store), Some(oidc(&store)), cloud(&store), None, probes())),
    ];
    let mut every_mode = BTreeSet::new();
    for (mode, router) in modes {
        let routes = mounted(&router);
        assert!(routes.contains(&("GET".into(), "/openapi.json".into())), "{mode}: {routes:?}");
        let documented = operations(router).await;
        assert_eq!(without_non_operations(&routes), documented, "{mode}: mounted routes vs /openapi.json");
        every_mode.extend(routes);
    }
    // `/metrics` is no API operation and no mode's router: bootstrap serves it on its own
    // listener (or behind a token on the main one), and the README documents it.
    let metrics = super::metrics::MetricsHttp { render: Arc::new(String::new), refresh: Vec::new(), token: None };
    every_mode.extend(mounted(&super::metrics::router(Arc::new(metrics))));
    assert!(every_mode.contains(&("PUT".into(), "/api/users/{id}/binding".into())));
    assert!(every_mode.contains(&("POST".into(), "/relay/v1/messages/{key}/recall".into())));
    let readme = readme_routes();
    let missing: Vec<_> = every_mode.difference(&readme).collect();
    let stale: Vec<_> = readme.difference(&every_mode).collect();
    assert!(missing.is_empty() && stale.is_empty(), "README route tables: missing {missing:?}, not mounted {stale:?}");
}
