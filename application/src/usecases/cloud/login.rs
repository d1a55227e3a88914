//! Sign-in on the cloud: a relay client registers a login (its intent), the provider calls
//! back, and the relay client takes the result.

use std::sync::Arc;

use domain::{AuthCode, CorpId, LoginFailure, LoginState, MemberProfile, PkceVerifier, ProviderKey};
use tracing::{info, instrument, warn};

use crate::ports::{
    Clock, IdentityError, LoginIntent, LoginIntentStore, LoginOutcome, LoginResultStore, Providers, RandomSource,
    RelayClient,
};

use super::*;

/// Registers a login for a relay client and returns the provider's authorize URL.
pub struct CreateLoginIntent {
    intents: Arc<dyn LoginIntentStore>,
    providers: Providers,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    public_url: String,
}

impl CreateLoginIntent {
    /// `public_url` is this cloud's public base URL (`https://relay.example.com`, no trailing
    /// `/`); each provider's `redirect_uri` is `{public_url}/auth/{provider}/callback`, the URL
    /// registered in that provider's console.
    pub fn new(
        intents: Arc<dyn LoginIntentStore>,
        providers: Providers,
        clock: Arc<dyn Clock>,
        random: Arc<dyn RandomSource>,
        public_url: String,
    ) -> Self {
        Self { intents, providers, clock, random, public_url: public_url.trim_end_matches('/').to_owned() }
    }

    /// The `redirect_uri` of `provider`: `{public_url}/auth/{provider}/callback`.
    pub fn callback_url(&self, provider: &ProviderKey) -> String {
        format!("{}/auth/{provider}/callback", self.public_url)
    }

    /// Errors: `UnknownProvider` when the cloud serves no provider `provider`; `Forbidden`
    /// when `complete_url` is not under one of the client's origins; `Store` when the intent
    /// cannot be stored.
    #[instrument(skip_all, fields(client = %client.id, %provider))]
    pub async fn execute(
        &self,
        client: &RelayClient,
        provider: &ProviderKey,
        state: &LoginState,
        complete_url: &str,
    ) -> Result<String, CloudError> {
        let idp = self.providers.get(provider).ok_or_else(|| CloudError::UnknownProvider(provider.to_string()))?;
        if !url_in_origins(complete_url, &client.complete_url_origins) {
            return Err(CloudError::Forbidden(format!(
                "complete_url {complete_url:?} is outside the origins allowed for relay client {}",
                client.id
            )));
        }
        let verifier = PkceVerifier::from_random_bytes(&self.random.bytes32());
        let intent = LoginIntent {
            state_hash: state.hash(),
            client_id: client.id.clone(),
            provider: provider.clone(),
            code_verifier: Some(verifier.clone()),
            complete_url: complete_url.to_owned(),
            corp_ids: client.corp_ids.clone(),
            expires_at: self.clock.now().plus_secs(INTENT_TTL_SECS),
        };
        self.intents.insert(&intent).await?;
        Ok(idp.authorize_url(state, &self.callback_url(provider), &verifier.challenge_s256()))
    }
}

/// The query a provider sends to the callback (`code` or `authCode`, `state`, `error`; each
/// provider's reference §A.2).
#[derive(Debug, Clone, Default)]
pub struct CallbackQuery {
    /// `state`.
    pub state: Option<String>,
    /// `authCode`, or `code` when `authCode` is absent.
    pub code: Option<String>,
    /// `error`, when the person declined.
    pub error: Option<String>,
}

/// Handles a provider's redirect: resolves the person to a member of one of the relay client's
/// tenants served by that provider, stores the outcome for the relay client, and returns where
/// to send the browser (`complete_url?state=…`: no code and no profile in the URL).
pub struct HandleCallback {
    intents: Arc<dyn LoginIntentStore>,
    results: Arc<dyn LoginResultStore>,
    providers: Providers,
    clock: Arc<dyn Clock>,
}

impl HandleCallback {
    /// Builds the use case.
    pub fn new(
        intents: Arc<dyn LoginIntentStore>,
        results: Arc<dyn LoginResultStore>,
        providers: Providers,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { intents, results, providers, clock }
    }

    /// Handles the redirect that came back on `provider`'s callback path.
    ///
    /// Errors: `InvalidState` when the state is missing, malformed, unknown, expired or used,
    /// or when the login was started with another provider (nothing is stored); `Store`. A
    /// provider failure is not an error here: it becomes a stored [`LoginFailure`] the local
    /// side shows to the person.
    #[instrument(skip_all, fields(%provider))]
    pub async fn execute(&self, provider: &ProviderKey, query: &CallbackQuery) -> Result<String, CloudError> {
        let state =
            LoginState::parse(query.state.as_deref().unwrap_or_default()).map_err(|_| CloudError::InvalidState)?;
        let now = self.clock.now();
        let intent = self.intents.take(&state.hash(), now).await?.ok_or(CloudError::InvalidState)?;
        if &intent.provider != provider {
            warn!(started = %intent.provider, "a login came back on another provider's callback; refused");
            return Err(CloudError::InvalidState);
        }
        let outcome = match (&query.error, &query.code) {
            (Some(error), _) => Err(LoginFailure::ConsentDenied { error: error.chars().take(200).collect() }),
            (None, Some(code)) => match AuthCode::parse(code) {
                Ok(code) => self.resolve(&intent, &code).await,
                Err(_) => Err(LoginFailure::InvalidCode),
            },
            (None, None) => Err(LoginFailure::InvalidCode),
        };
        match &outcome {
            Ok(profile) => {
                info!(client = %intent.client_id, corp_id = %profile.corp_id, userid = %profile.userid, "login resolved")
            }
            Err(failure) => {
                info!(client = %intent.client_id, code = failure.code(), "login refused")
            }
        }
        self.results.insert(&intent.state_hash, &intent.client_id, &outcome, now.plus_secs(RESULT_TTL_SECS)).await?;
        Ok(with_state(&intent.complete_url, &state))
    }

    async fn resolve(&self, intent: &LoginIntent, code: &AuthCode) -> LoginOutcome {
        let Some(idp) = self.providers.get(&intent.provider) else {
            warn!(provider = %intent.provider, "the provider of a stored login is no longer served");
            return Err(LoginFailure::ProviderUnavailable);
        };
        let identity = idp.exchange_code(code, intent.code_verifier.clone()).await.map_err(|err| match err {
            IdentityError::InvalidCode => LoginFailure::InvalidCode,
            IdentityError::NotMember => LoginFailure::NotMember,
            other => {
                warn!(error = %other, "code exchange failed");
                LoginFailure::ProviderUnavailable
            }
        })?;
        // Only the client's tenants this provider serves: a person never lands in a tenant
        // of another provider.
        let candidates: Vec<&CorpId> = intent
            .corp_ids
            .iter()
            .filter(|c| self.providers.for_tenant(c).is_some_and(|e| e.key == intent.provider))
            .filter(|c| identity.corp_id.as_ref().is_none_or(|corp| corp == *c))
            .collect();
        for corp_id in candidates {
            let userid = match idp.find_userid(corp_id, &identity.union_id).await {
                Ok(userid) => userid,
                Err(IdentityError::NotMember | IdentityError::CorpNotServed(_)) => continue,
                Err(err) => {
                    warn!(error = %err, %corp_id, "member look-up failed");
                    return Err(LoginFailure::ProviderUnavailable);
                }
            };
            return match idp.get_member(corp_id, &userid).await {
                Ok(details) if !details.active => {
                    info!(%corp_id, "sign-in refused: the org marks the member inactive");
                    Err(LoginFailure::Inactive)
                }
                Ok(details) => {
                    Ok(MemberProfile::from_details(intent.provider.clone(), corp_id.clone(), details, Some(&identity)))
                }
                Err(IdentityError::NotMember) => Err(LoginFailure::NotMember),
                Err(err) => {
                    warn!(error = %err, %corp_id, "member details failed");
                    Err(LoginFailure::ProviderUnavailable)
                }
            };
        }
        Err(LoginFailure::NotMember)
    }
}

/// Hands a finished login's outcome to the relay client that started it, once.
pub struct TakeLoginResult {
    results: Arc<dyn LoginResultStore>,
    clock: Arc<dyn Clock>,
}

impl TakeLoginResult {
    /// Builds the use case.
    pub fn new(results: Arc<dyn LoginResultStore>, clock: Arc<dyn Clock>) -> Self {
        Self { results, clock }
    }

    /// Errors: `NotFound` when unknown, expired, taken, or another client's.
    #[instrument(skip_all, fields(client = %client.id))]
    pub async fn execute(&self, client: &RelayClient, state: &LoginState) -> Result<LoginOutcome, CloudError> {
        self.results.take(&state.hash(), &client.id, self.clock.now()).await?.ok_or(CloudError::NotFound)
    }
}
