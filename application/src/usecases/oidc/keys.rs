//! The signing keys: created on first start, stored in the database, rotated on a schedule and on
//! demand, published in the JWKS until every token they signed has expired (plus a day of JWKS
//! caching by relying parties — Nextcloud, for one, caches it for 86,400 s).

use std::sync::Arc;

use tracing::{info, instrument};

use super::OidcSettings;
use crate::ports::{
    Clock, RandomSource, SignerError, SigningAlgorithm, SigningKey, SigningKeyStore, StoreError, TokenSigner,
};

/// How long relying parties may cache the JWKS, seconds (one day): added to the retention of a
/// retired key.
pub const JWKS_CACHE_SECS: i64 = 86_400;

/// What a [`SigningKeys`] run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReport {
    /// Kids of the keys created in this run.
    pub created: Vec<String>,
    /// Retired keys deleted because no token they signed can still be valid.
    pub deleted: u64,
    /// Keys published (and able to verify) after the run.
    pub published: usize,
}

/// Why a key run failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Key generation or installation failed.
    #[error(transparent)]
    Signer(#[from] SignerError),
}

/// Keeps the [`TokenSigner`]'s keys in line with the [`SigningKeyStore`].
pub struct SigningKeys {
    store: Arc<dyn SigningKeyStore>,
    signer: Arc<dyn TokenSigner>,
    random: Arc<dyn RandomSource>,
    clock: Arc<dyn Clock>,
    algorithms: Vec<SigningAlgorithm>,
    rotate_after_secs: i64,
    retain_secs: i64,
}

impl SigningKeys {
    /// `algorithms` are the ones to keep a current key for (RS256 always); a key older than
    /// `rotate_after_secs` is replaced. A retired key is kept for the longest signed-token
    /// lifetime plus `JWKS_CACHE_SECS` plus an hour of margin.
    pub fn new(
        store: Arc<dyn SigningKeyStore>,
        signer: Arc<dyn TokenSigner>,
        random: Arc<dyn RandomSource>,
        clock: Arc<dyn Clock>,
        algorithms: Vec<SigningAlgorithm>,
        rotate_after_secs: i64,
        settings: &OidcSettings,
    ) -> Self {
        let mut algorithms = algorithms;
        if !algorithms.contains(&SigningAlgorithm::Rs256) {
            algorithms.insert(0, SigningAlgorithm::Rs256);
        }
        let retain_secs = settings.longest_signed_token_secs() + JWKS_CACHE_SECS + 3600;
        Self { store, signer, random, clock, algorithms, rotate_after_secs, retain_secs }
    }

    /// How long a retired key stays published, seconds.
    pub fn retain_secs(&self) -> i64 {
        self.retain_secs
    }

    /// Creates the first key of each algorithm (or its scheduled successor), deletes retired keys
    /// past retention, and installs the stored keys into the signer. Run at start and then
    /// periodically (which also picks up a rotation another process made). Errors: `Store`,
    /// `Signer` (the signer keeps its previous keys then).
    #[instrument(skip_all)]
    pub async fn refresh(&self) -> Result<KeyReport, KeyError> {
        self.run(false).await
    }

    /// Creates a new key of each algorithm now (the previous ones retire and stay published for
    /// [`SigningKeys::retain_secs`]), then as [`SigningKeys::refresh`]. `dingbridge oidc
    /// rotate-keys`.
    #[instrument(skip_all)]
    pub async fn rotate(&self) -> Result<KeyReport, KeyError> {
        self.run(true).await
    }

    async fn run(&self, force: bool) -> Result<KeyReport, KeyError> {
        let now = self.clock.now();
        let keys = self.store.signing_keys().await?;
        let mut created = Vec::new();
        for &algorithm in &self.algorithms {
            let current =
                keys.iter().filter(|k| k.algorithm == algorithm && k.retired_at.is_none()).max_by_key(|k| k.created_at);
            let due = match current {
                None => true,
                Some(key) => force || key.created_at.plus_secs(self.rotate_after_secs) <= now,
            };
            if due {
                let kid = self.random.new_id();
                let key = self.signer.generate_key(algorithm, &kid, now)?;
                self.store.insert_signing_key(&key, now).await?;
                info!(%kid, algorithm = algorithm.as_str(), "oidc: new signing key");
                created.push(kid);
            }
        }
        let deleted = self.store.delete_retired_signing_keys(now.plus_secs(-self.retain_secs)).await?;
        let keys: Vec<SigningKey> = self.store.signing_keys().await?;
        self.signer.install(&keys)?;
        Ok(KeyReport { created, deleted, published: keys.len() })
    }
}
