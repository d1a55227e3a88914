//! Test support for the HTTP layer's in-process tests: a temporary SQLite store (every store port)
//! and the state of each role's routes built over it, with the cloud and DingTalk mocked.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;

use application::ports::{
    Clock, MockCloudGateway, MockDispatchTrigger, MockIdentityProvider, MockMessenger, RandomSource,
};
use application::usecases::cloud::{
    CreateLoginIntent, FetchMember, HandleCallback, RelayRecall, RelaySend, RelayStatus, TakeLoginResult,
};
use application::usecases::feed::ReadContactFeed;
use application::usecases::local::{
    Bindings, CompleteLogin, CurrentUser, GetUser, ListMessagesQuery, ListUsersQuery, Logout, MessageStatus,
    RecallMessage, RefreshUser, SendMessage, StartLogin,
};
use domain::CorpId;
use secrecy::SecretString;

use super::oidc::OidcParts;
use super::{
    AuthLimit, AuthLimiter, CloudHttp, CookieSettings, ForwardAuthSettings, LocalHttp, LoginLimit, LoginLimiter,
    OidcHttp, RelayHttp,
};
use crate::outbound::jose::JoseSigner;
use crate::outbound::sqlite::SqliteStore;
use crate::outbound::system::{OsRandom, SystemClock};
use application::ports::{SigningAlgorithm, TokenSigner};
use application::usecases::oidc::{ClientAuthMethod, ClientRegistry, KNOWN_SCOPES, OidcClient, OidcSettings};

/// A temporary database directory, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh SQLite store on a temporary file (every store port), removed with the [`TempDir`].
pub async fn store() -> (Arc<SqliteStore>, TempDir) {
    let dir = std::env::temp_dir().join(format!("dingbridge-openapi-{}", uuid::Uuid::new_v4()));
    let store = SqliteStore::connect(&format!("sqlite://{}", dir.join("db.sqlite").display()), 2).await.unwrap();
    (Arc::new(store), TempDir(dir))
}

/// The local routes' state over `store` with a cloud gateway that must not be called.
pub fn local(store: &Arc<SqliteStore>) -> Arc<LocalHttp> {
    local_with(store, MockCloudGateway::new(), LocalOptions::default())
}

/// What the local routes are configured with in a test.
pub struct LocalOptions {
    /// Accepted service tokens.
    pub service_tokens: Vec<&'static str>,
    /// The corps served (the first is the default).
    pub corps: Vec<CorpId>,
    /// Sign-in start limits.
    pub login_limit: LoginLimit,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            service_tokens: vec![SERVICE_TOKEN],
            corps: vec![CorpId::parse(CORP).unwrap()],
            login_limit: LoginLimit { per_address_per_minute: 10_000, total_per_second: 10_000 },
        }
    }
}

/// The service token [`LocalOptions::default`] accepts.
pub const SERVICE_TOKEN: &str = "test-service-token-0123456789";
/// The corp [`LocalOptions::default`] serves.
pub const CORP: &str = "dingcorpa";

/// The local routes' state over `store`, with `gateway` standing in for the cloud.
pub fn local_with(store: &Arc<SqliteStore>, gateway: MockCloudGateway, options: LocalOptions) -> Arc<LocalHttp> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let random: Arc<dyn RandomSource> = Arc::new(OsRandom);
    let gateway = Arc::new(gateway);
    let mut trigger = MockDispatchTrigger::new();
    trigger.expect_wake().return_const(());
    Arc::new(LocalHttp {
        start_login: StartLogin::new(
            store.clone(),
            gateway.clone(),
            random.clone(),
            clock.clone(),
            "http://127.0.0.1".into(),
        ),
        complete_login: CompleteLogin::new(
            store.clone(),
            gateway.clone(),
            store.clone(),
            store.clone(),
            random.clone(),
            clock.clone(),
            3600,
        ),
        current_user: CurrentUser::new(store.clone(), store.clone(), clock.clone()),
        logout: Logout::new(store.clone()),
        list_users: ListUsersQuery::new(store.clone()),
        get_user: GetUser::new(store.clone()),
        refresh_user: RefreshUser::new(store.clone(), store.clone(), gateway.clone(), random.clone(), clock.clone()),
        bindings: Bindings::new(store.clone(), store.clone(), clock.clone()),
        send_message: SendMessage::new(
            store.clone(),
            store.clone(),
            store.clone(),
            Arc::new(trigger),
            random,
            clock.clone(),
            options.corps,
        )
        .with_body_rules(dingtalk_rules()),
        message_status: MessageStatus::new(store.clone(), gateway.clone(), clock.clone()),
        recall_message: RecallMessage::new(store.clone(), gateway, clock),
        list_messages: ListMessagesQuery::new(store.clone()),
        service_tokens: options.service_tokens.into_iter().map(SecretString::from).collect(),
        cookies: cookie_settings(),
        login_limiter: LoginLimiter::new(options.login_limit),
        providers: vec![crate::outbound::dingtalk::provider_key(), crate::outbound::feishu::provider_key()],
        forward_auth: ForwardAuthSettings {
            sign_in_url: format!("{ISSUER}/auth/dingtalk/login"),
            return_origins: vec!["https://app.example.com".into()],
            ..ForwardAuthSettings::default()
        },
    })
}

fn cookie_settings() -> CookieSettings {
    CookieSettings { secure: false, session_ttl_secs: 3600, domain: None }
}

/// The issuer of [`oidc`] (and the public URL of [`local`]).
pub const ISSUER: &str = "http://127.0.0.1";
/// The confidential client [`oidc`] registers (`client_secret_basic`).
pub const OIDC_CLIENT: &str = "grafana";
/// Its secret.
pub const OIDC_SECRET: &str = "grafana-secret-0123456789";
/// Its redirect URI.
pub const OIDC_REDIRECT: &str = "https://grafana.example.com/login/generic_oauth";
/// The public client [`oidc`] registers (PKCE, no secret).
pub const OIDC_PUBLIC_CLIENT: &str = "argocd-cli";
/// Its redirect URI (loopback: any port matches).
pub const OIDC_PUBLIC_REDIRECT: &str = "http://localhost:8085/auth/callback";

/// The OpenID Provider's state over `store`: the two clients above, an RS256 key, the cloud
/// (membership re-check, due after `membership_recheck_secs`) mocked by `gateway`.
pub fn oidc_with(store: &Arc<SqliteStore>, gateway: MockCloudGateway, membership_recheck_secs: i64) -> Arc<OidcHttp> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let random: Arc<dyn RandomSource> = Arc::new(OsRandom);
    let signer = Arc::new(JoseSigner::new());
    let key = signer.generate_key(SigningAlgorithm::Rs256, "test-key", clock.now()).unwrap();
    signer.install(&[key]).unwrap();
    let signer: Arc<dyn TokenSigner> = signer;
    let all_scopes: Vec<String> = KNOWN_SCOPES.iter().map(|s| (*s).to_owned()).collect();
    let clients = Arc::new(
        ClientRegistry::new(vec![
            OidcClient {
                client_id: OIDC_CLIENT.into(),
                client_secret: Some(SecretString::from(OIDC_SECRET)),
                auth_method: ClientAuthMethod::ClientSecretBasic,
                redirect_uris: vec![OIDC_REDIRECT.into()],
                post_logout_redirect_uris: vec!["https://grafana.example.com/".into()],
                scopes: all_scopes.clone(),
                corp_ids: Vec::new(),
                dept_ids: Vec::new(),
                id_token_alg: SigningAlgorithm::Rs256,
            },
            OidcClient {
                client_id: OIDC_PUBLIC_CLIENT.into(),
                client_secret: None,
                auth_method: ClientAuthMethod::None,
                redirect_uris: vec![OIDC_PUBLIC_REDIRECT.into()],
                post_logout_redirect_uris: Vec::new(),
                scopes: all_scopes,
                corp_ids: Vec::new(),
                dept_ids: Vec::new(),
                id_token_alg: SigningAlgorithm::Rs256,
            },
        ])
        .unwrap(),
    );
    let settings = Arc::new(OidcSettings { membership_recheck_secs, ..OidcSettings::with_issuer(ISSUER) });
    let parts = OidcParts {
        settings,
        clients,
        signer,
        algorithms: vec![SigningAlgorithm::Rs256],
        gateway: Arc::new(gateway),
        random,
        clock,
        token_requests_per_minute: 10_000,
        cookies: cookie_settings(),
    };
    Arc::new(OidcHttp::new(store, parts))
}

/// DingTalk's body rules for every tenant (as a deployment without Feishu checks bodies).
pub fn dingtalk_rules() -> application::ports::MessageRules {
    application::ports::MessageRules::new(Arc::new(crate::outbound::dingtalk::body::DingTalkBodyRules))
}

/// DingTalk (mocked by `idp`) as the only provider, serving every corp.
pub fn dingtalk_providers(idp: Arc<MockIdentityProvider>) -> application::ports::Providers {
    application::ports::Providers::single(crate::outbound::dingtalk::provider_key(), idp)
}

/// [`oidc_with`] a cloud that must not be called.
pub fn oidc(store: &Arc<SqliteStore>) -> Arc<OidcHttp> {
    oidc_with(store, MockCloudGateway::new(), 3600)
}

/// The cloud callback state over `store`, DingTalk mocked (not to be called).
pub fn cloud(store: &Arc<SqliteStore>) -> Arc<CloudHttp> {
    let idp = Arc::new(MockIdentityProvider::new());
    Arc::new(CloudHttp {
        handle_callback: HandleCallback::new(
            store.clone(),
            store.clone(),
            crate::inbound::http::test_support::dingtalk_providers(idp.clone()),
            Arc::new(SystemClock),
        ),
        feishu_events: None,
    })
}

/// The relay state over `store` with no relay clients, DingTalk mocked (not to be called).
pub fn relay(store: &Arc<SqliteStore>) -> Arc<RelayHttp> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let idp = Arc::new(MockIdentityProvider::new());
    let messenger = Arc::new(MockMessenger::new());
    Arc::new(RelayHttp {
        clients: Vec::new(),
        limiter: AuthLimiter::new(AuthLimit::default()),
        create_intent: CreateLoginIntent::new(
            store.clone(),
            crate::inbound::http::test_support::dingtalk_providers(idp.clone()),
            clock.clone(),
            std::sync::Arc::new(crate::outbound::system::OsRandom),
            "http://cb".to_owned(),
        ),
        take_result: TakeLoginResult::new(store.clone(), clock.clone()),
        send: Arc::new(
            RelaySend::new(store.clone(), messenger.clone(), clock.clone()).with_body_rules(dingtalk_rules()),
        ),
        status: RelayStatus::new(store.clone(), messenger.clone(), clock.clone()),
        recall: RelayRecall::new(store.clone(), messenger, clock),
        fetch_member: FetchMember::new(crate::inbound::http::test_support::dingtalk_providers(idp)),
        read_feed: ReadContactFeed::new(store.clone(), store.clone()),
    })
}
