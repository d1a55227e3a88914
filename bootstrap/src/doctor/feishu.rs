//! The Feishu / Lark checks of `dingbridge doctor` (cloud and dev modes, when `[feishu]` is
//! configured): the app's credentials (docs/feishu-api.md §B.1), that the app's own tenant is one
//! of `feishu.tenant_keys` (§A.5 "Tenant membership"), the redirect URL, and the event callback's
//! URL check (§E.2).

use serde_json::{Value, json};

use super::{Finding, Status};
use crate::config::Config;

fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// `POST …/tenant_access_token/internal`, then `GET …/tenant/v2/tenant/query` with the token.
async fn tenant_token(config: &Config, http: &reqwest::Client, out: &mut Vec<Finding>) -> Option<String> {
    let f = &config.feishu;
    let url = join(&f.open_base(), "/open-apis/auth/v3/tenant_access_token/internal");
    let body = json!({
        "app_id": f.app_id.clone().unwrap_or_default(),
        "app_secret": f.app_secret.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default(),
    });
    let answer = match http.post(&url).json(&body).send().await {
        Ok(res) => res.json::<Value>().await.unwrap_or(Value::Null),
        Err(err) => {
            out.push(Finding::new(
                "feishu.tenant_token",
                Status::Fail,
                format!("{url} cannot be reached: {}", super::describe(err)),
                "no Feishu sign-in can resolve its member without the app's tenant token",
                "allow outbound HTTPS to the Feishu hosts (feishu.region / feishu.open_base)",
            ));
            return None;
        }
    };
    match (answer["code"].as_i64(), answer["tenant_access_token"].as_str()) {
        (Some(0), Some(token)) => {
            out.push(Finding::ok("feishu.tenant_token", "the app's tenant_access_token was issued"));
            Some(token.to_owned())
        }
        (code, _) => {
            let fix = match code {
                Some(10_003) => "feishu.app_id: the console's App ID (cli_…) — Feishu does not know this one",
                Some(10_014 | 10_015) => {
                    "feishu.app_secret: copy the App Secret again from the console (凭证与基础信息)"
                }
                _ => "check feishu.app_id and feishu.app_secret against the console",
            };
            out.push(Finding::new(
                "feishu.tenant_token",
                Status::Fail,
                format!("Feishu refused the credentials: code {} {}", code.unwrap_or(-1), answer["msg"]),
                "no Feishu sign-in can resolve its member without the app's tenant token",
                fix,
            ));
            None
        }
    }
}

/// The app's own tenant (`tenant/v2/tenant/query`) must be one of `feishu.tenant_keys`.
async fn own_tenant(config: &Config, http: &reqwest::Client, token: &str) -> Finding {
    let url = join(&config.feishu.open_base(), "/open-apis/tenant/v2/tenant/query");
    let answer = match http.get(&url).bearer_auth(token).send().await {
        Ok(res) => res.json::<Value>().await.unwrap_or(Value::Null),
        Err(err) => {
            return Finding::new(
                "feishu.tenant_keys",
                Status::Skip,
                format!("{url} cannot be reached: {}", super::describe(err)),
                "",
                "",
            );
        }
    };
    let Some(tenant_key) = answer["data"]["tenant"]["tenant_key"].as_str() else {
        return Finding::new(
            "feishu.tenant_keys",
            Status::Skip,
            format!("the app's tenant cannot be read (code {})", answer["code"]),
            "",
            "enable the scope tenant:tenant:readonly to let doctor check feishu.tenant_keys",
        );
    };
    if config.feishu.tenant_keys.iter().any(|t| t == tenant_key) {
        Finding::ok("feishu.tenant_keys", format!("the app's tenant {tenant_key} is served"))
    } else {
        Finding::new(
            "feishu.tenant_keys",
            Status::Fail,
            format!("the app belongs to tenant {tenant_key}, which feishu.tenant_keys does not list"),
            "every sign-in of the app's own people is refused as not a member",
            format!("add \"{tenant_key}\" to feishu.tenant_keys"),
        )
    }
}

/// `<public_url>/auth/feishu/callback` answers dingbridge's 400 for a missing state.
async fn redirect_url(config: &Config, http: &reqwest::Client) -> Finding {
    let url = format!("{}/auth/feishu/callback", config.public_url);
    let register = format!("Feishu console → your app → 安全设置 (Security): the redirect URL must be exactly {url}");
    match http.get(&url).send().await {
        Ok(res) if res.status().as_u16() == 400 => Finding::new(
            "feishu.redirect_url",
            Status::Ok,
            format!("{url} answers; whether Feishu has it registered cannot be probed"),
            "",
            register,
        ),
        Ok(res) => Finding::new(
            "feishu.redirect_url",
            Status::Fail,
            format!("{url} answered HTTP {} instead of dingbridge's 400 for a missing state", res.status().as_u16()),
            "Feishu sends every signing-in browser there",
            format!("make public_url the URL browsers reach this service at; {register}"),
        ),
        Err(err) => Finding::new(
            "feishu.redirect_url",
            Status::Fail,
            format!("{url} cannot be reached: {}", super::describe(err)),
            "Feishu sends every signing-in browser there",
            format!("start the service, or fix public_url; {register}"),
        ),
    }
}

/// A `url_verification` to `<public_url>/feishu/events`, as the console sends it when the
/// request URL is saved (docs/feishu-api.md §E.2; plaintext, which the callback accepts too),
/// must come back with its challenge.
async fn events(config: &Config, http: &reqwest::Client) -> Finding {
    let Some(token) = &config.feishu.verification_token else {
        return Finding::new(
            "feishu.events",
            Status::Warn,
            "the Feishu event callback is off (no feishu.verification_token)".to_owned(),
            "people who leave Feishu keep their local sessions until they expire",
            "subscribe to contact.user.deleted_v3 with the request URL <public_url>/feishu/events and set feishu.verification_token (and encrypt_key)",
        );
    };
    let url = format!("{}/feishu/events", config.public_url);
    let challenge = format!("doctor-{}", std::process::id());
    let body = json!({"challenge": challenge, "token": token.expose(), "type": "url_verification"});
    match http.post(&url).json(&body).send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let answer = res.json::<Value>().await.unwrap_or(Value::Null);
            if status == 200 && answer["challenge"] == challenge.as_str() {
                Finding::ok("feishu.events", format!("{url} answers the URL check"))
            } else {
                Finding::new(
                    "feishu.events",
                    Status::Fail,
                    format!("{url} answered HTTP {status} {answer} to the URL check"),
                    "Feishu refuses to save the request URL, and no contact event arrives",
                    "make public_url the URL Feishu reaches this service at, and set feishu.verification_token to the console's",
                )
            }
        }
        Err(err) => Finding::new(
            "feishu.events",
            Status::Fail,
            format!("{url} cannot be reached: {}", super::describe(err)),
            "Feishu refuses to save the request URL, and no contact event arrives",
            "start the service, or fix public_url",
        ),
    }
}

/// The Feishu findings, when `[feishu]` is configured (none otherwise).
pub(super) async fn run(config: &Config, http: &reqwest::Client) -> Vec<Finding> {
    if !config.feishu.is_configured() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some(token) = tenant_token(config, http, &mut out).await {
        out.push(own_tenant(config, http, &token).await);
    }
    out.push(redirect_url(config, http).await);
    out.push(events(config, http).await);
    out
}
