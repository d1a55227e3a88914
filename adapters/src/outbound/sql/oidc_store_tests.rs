//! The contracts of the OpenID Provider's store ports ([`GrantStore`], [`SigningKeyStore`]),
//! written once over any store and run on SQLite ([`sqlite`] below) and PostgreSQL
//! (`postgres::oidc_tests`). Each function expects an empty store; those that need users create
//! them (codes and grants refer to `users`). The corrupt-row test also takes `sql`, the backend's
//! way of running one raw SQL statement on the store's database behind its back.

use application::ports::{
    AuthorizationCode, CodeRedemption, Grant, GrantStore, RefreshRotation, RefreshToken, SessionStore,
    SigningAlgorithm, SigningKey, SigningKeyStore, StoreError, UserRepository,
};
use secrecy::{ExposeSecret, SecretSlice};

use super::fixtures::{profile, session, ts};
use super::oidc_stores::REVOKED_GRANT_RETENTION_MS;

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

// --- builders ----------------------------------------------------------------

/// Creates `user-1` and `user-2`.
async fn users<S: UserRepository>(store: &S) -> TestResult {
    store.upsert(&profile("dingcorp", "union-1", "u1", "A"), "user-1", ts(1)).await?;
    store.upsert(&profile("dingcorp", "union-2", "u2", "B"), "user-2", ts(1)).await?;
    Ok(())
}

fn code(hash: &str, user_id: &str, expires_at: i64) -> AuthorizationCode {
    AuthorizationCode {
        code_hash: hash.to_owned(),
        client_id: "client-a".to_owned(),
        user_id: user_id.to_owned(),
        session_hash: "session-1".to_owned(),
        redirect_uri: "https://rp.example/cb".to_owned(),
        scopes: vec!["openid".into(), "profile".into()],
        nonce: Some("n-0S6_WzA2Mj".into()),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        auth_time: ts(1),
        created_at: ts(2),
        expires_at: ts(expires_at),
    }
}

fn grant(id: &str, user_id: &str, session_hash: &str, expires_at: i64) -> Grant {
    Grant {
        id: id.to_owned(),
        client_id: "client-a".to_owned(),
        user_id: user_id.to_owned(),
        session_hash: session_hash.to_owned(),
        scopes: vec!["openid".into(), "email".into()],
        auth_time: ts(1),
        created_at: ts(2),
        expires_at: ts(expires_at),
        membership_checked_at: ts(2),
        revoked_at: None,
    }
}

fn token(hash: &str, grant_id: &str, expires_at: i64) -> RefreshToken {
    RefreshToken {
        token_hash: hash.to_owned(),
        grant_id: grant_id.to_owned(),
        created_at: ts(3),
        expires_at: ts(expires_at),
    }
}

fn key(kid: &str, algorithm: SigningAlgorithm, created_at: i64) -> SigningKey {
    SigningKey {
        kid: kid.to_owned(),
        algorithm,
        private_pkcs8: SecretSlice::from(format!("der-of-{kid}").into_bytes()),
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        created_at: ts(created_at),
        retired_at: None,
    }
}

/// `(kid, algorithm, private key, created_at, retired_at)` of every stored key, in store order.
async fn keys<S: SigningKeyStore>(
    store: &S,
) -> Result<Vec<(String, &'static str, Vec<u8>, i64, Option<i64>)>, StoreError> {
    Ok(store
        .signing_keys()
        .await?
        .into_iter()
        .map(|k| {
            (
                k.kid,
                k.algorithm.as_str(),
                k.private_pkcs8.expose_secret().to_vec(),
                k.created_at.as_millis(),
                k.retired_at.map(|t| t.as_millis()),
            )
        })
        .collect())
}

fn conflict_on(err: &Option<StoreError>, constraint: &str) -> bool {
    matches!(err, Some(StoreError::Conflict(m)) if m.contains(constraint))
}

// --- authorization codes -----------------------------------------------------

pub(crate) async fn codes_are_redeemed_once_and_a_replay_names_the_grant<S>(store: S) -> TestResult
where
    S: GrantStore + UserRepository,
{
    users(&store).await?;
    let c1 = code("c1", "user-1", 10_000);
    store.insert_code(&c1).await?;
    assert_eq!(store.redeem_code("c1", ts(9_999)).await?, CodeRedemption::Redeemed(c1));
    // Used, not yet linked to a grant.
    assert_eq!(store.redeem_code("c1", ts(9_999)).await?, CodeRedemption::Replayed { grant_id: None });

    store.create_grant(&grant("g1", "user-1", "session-1", 1_000_000), None, Some("c1")).await?;
    assert_eq!(store.redeem_code("c1", ts(9_999)).await?, CodeRedemption::Replayed { grant_id: Some("g1".into()) });
    // A used code stays a replay after it expired too (until it is purged).
    assert_eq!(store.redeem_code("c1", ts(50_000)).await?, CodeRedemption::Replayed { grant_id: Some("g1".into()) });

    // expires_at == now counts as expired; an expired code stays unused.
    store.insert_code(&code("c2", "user-1", 5_000)).await?;
    assert_eq!(store.redeem_code("c2", ts(5_000)).await?, CodeRedemption::Invalid);
    assert_eq!(store.redeem_code("c2", ts(5_000)).await?, CodeRedemption::Invalid);
    assert!(matches!(store.redeem_code("c2", ts(4_999)).await?, CodeRedemption::Redeemed(_)));

    assert_eq!(store.redeem_code("unknown", ts(0)).await?, CodeRedemption::Invalid);
    Ok(())
}

pub(crate) async fn a_duplicate_code_is_a_conflict_and_an_unknown_user_an_error<S>(store: S) -> TestResult
where
    S: GrantStore + UserRepository,
{
    users(&store).await?;
    store.insert_code(&code("dup", "user-1", 10_000)).await?;
    let err = store.insert_code(&code("dup", "user-2", 20_000)).await.err();
    assert!(conflict_on(&err, "oidc_codes_pkey"), "{err:?}");
    // The user must exist (foreign key, as for sessions).
    let err = store.insert_code(&code("c9", "nobody", 10_000)).await.err();
    assert!(matches!(&err, Some(StoreError::Other(_))), "{err:?}");
    Ok(())
}

pub(crate) async fn of_8_concurrent_redemptions_exactly_one_redeems<S>(store: S) -> TestResult
where
    S: GrantStore + UserRepository + Clone + 'static,
{
    users(&store).await?;
    store.insert_code(&code("race", "user-1", 10_000)).await?;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.redeem_code("race", ts(1)).await })
        })
        .collect();
    let (mut redeemed, mut replayed) = (0, 0);
    for task in tasks {
        match task.await?? {
            CodeRedemption::Redeemed(_) => redeemed += 1,
            CodeRedemption::Replayed { grant_id: None } => replayed += 1,
            other => return Err(format!("unexpected {other:?}").into()),
        }
    }
    assert_eq!((redeemed, replayed), (1, 7));
    Ok(())
}

// --- grants --------------------------------------------------------------------

pub(crate) async fn a_grant_is_stored_with_its_first_token_in_one_transaction<S>(store: S) -> TestResult
where
    S: GrantStore + UserRepository,
{
    users(&store).await?;
    store.insert_code(&code("c1", "user-1", 10_000)).await?;
    let g1 = grant("g1", "user-1", "session-1", 1_000_000);
    // The token's own grant_id is replaced by the grant's id.
    store.create_grant(&g1, Some(&token("t1", "ignored", 500_000)), Some("c1")).await?;
    assert_eq!(store.grant("g1").await?, Some(g1.clone()));
    assert_eq!(store.find_refresh_token("t1", ts(10)).await?, Some((token("t1", "g1", 500_000), g1.clone())));
    assert!(matches!(store.redeem_code("c1", ts(10)).await?, CodeRedemption::Redeemed(_)));
    assert_eq!(store.redeem_code("c1", ts(10)).await?, CodeRedemption::Replayed { grant_id: Some("g1".into()) });

    // Without a token or a code (and a code that is not there links nothing).
    store.create_grant(&grant("g2", "user-2", "session-2", 1_000_000), None, None).await?;
    store.create_grant(&grant("g3", "user-2", "session-2", 1_000_000), None, Some("gone")).await?;
    assert!(store.grant("g2").await?.is_some() && store.grant("g3").await?.is_some());
    assert_eq!(store.grant("nope").await?, None);

    let err = store.create_grant(&grant("g1", "user-2", "s", 5), None, None).await.err();
    assert!(conflict_on(&err, "oidc_grants_pkey"), "{err:?}");
    // A taken token hash fails the whole transaction: g4 is not stored either.
    let err = store.create_grant(&grant("g4", "user-2", "s", 5), Some(&token("t1", "g4", 5)), None).await.err();
    assert!(conflict_on(&err, "oidc_refresh_tokens_pkey"), "{err:?}");
    assert_eq!(store.grant("g4").await?, None);
    // An unknown user is refused (foreign key).
    let err = store.create_grant(&grant("g5", "nobody", "s", 5), None, None).await.err();
    assert!(matches!(&err, Some(StoreError::Other(_))), "{err:?}");
    Ok(())
}

pub(crate) async fn refresh_tokens_rotate_and_a_reuse_revokes_the_grant<S>(store: S) -> TestResult
where
    S: GrantStore + UserRepository,
{
    users(&store).await?;
    let g1 = grant("g1", "user-1", "session-1", 1_000_000);
    store.create_grant(&g1, Some(&token("t1", "g1", 500_000)), None).await?;

    // t1 → t2 → t3; `next.grant_id` is replaced by the presented token's grant.
    assert_eq!(
        store.rotate_refresh_token("t1", &token("t2", "other", 500_000), ts(100)).await?,
        RefreshRotation::Rotated(g1.clone())
    );
    assert_eq!(
        store.rotate_refresh_token("t2", &token("t3", "g1", 500_000), ts(200)).await?,
        RefreshRotation::Rotated(g1.clone())
    );
    assert_eq!(store.find_refresh_token("t1", ts(300)).await?, None);
    assert_eq!(store.find_refresh_token("t2", ts(300)).await?, None);
    assert_eq!(store.find_refresh_token("t3", ts(300)).await?, Some((token("t3", "g1", 500_000), g1.clone())));

    // t1 again: reuse. The grant is revoked (and the revocation committed).
    assert_eq!(
        store.rotate_refresh_token("t1", &token("t4", "g1", 500_000), ts(300)).await?,
        RefreshRotation::Reused { grant_id: "g1".into() }
    );
    let revoked = store.grant("g1").await?.ok_or("g1 is gone")?;
    assert_eq!(revoked.revoked_at, Some(ts(300)));
    assert!(!revoked.is_active(ts(300)));
    assert_eq!(store.find_refresh_token("t4", ts(300)).await?, None);

    // The current token t3 is now refused, and nothing is stored for it.
    assert_eq!(store.rotate_refresh_token("t3", &token("t5", "g1", 500_000), ts(400)).await?, RefreshRotation::Invalid);
    assert_eq!(store.find_refresh_token("t5", ts(400)).await?, None);
    // Still unused, so found, with its revoked grant (the caller checks `Grant::is_active`).
    assert_eq!(store.find_refresh_token("t3", ts(400)).await?, Some((token("t3", "g1", 500_000), revoked.clone())));
    // A second reuse keeps the first revocation time.
    assert_eq!(
        store.rotate_refresh_token("t2", &token("t6", "g1", 500_000), ts(500)).await?,
        RefreshRotation::Reused { grant_id: "g1".into() }
    );
    assert_eq!(store.grant("g1").await?.and_then(|g| g.revoked_at), Some(ts(300)));

    assert_eq!(
        store.rotate_refresh_token("unknown", &token("t7", "g1", 500_000), ts(1)).await?,
        RefreshRotation::Invalid
    );
    Ok(())
}

pub(crate) async fn expired_tokens_and_inactive_grants_do_not_rotate<S>(store: S) -> TestResult
where
    S: GrantStore + UserRepository,
{
    users(&store).await?;
    let next = |hash: &str| token(hash, "", 900_000);
    store.create_grant(&grant("g1", "user-1", "s1", 1_000_000), Some(&token("t1", "g1", 1_000)), None).await?;
    // expires_at == now counts as expired; nothing changes, so t1 still rotates earlier.
    assert_eq!(store.rotate_refresh_token("t1", &next("n1"), ts(1_000)).await?, RefreshRotation::Invalid);
    assert_eq!(store.find_refresh_token("t1", ts(1_000)).await?, None);
    assert_eq!(store.find_refresh_token("n1", ts(0)).await?, None);
    assert!(matches!(store.rotate_refresh_token("t1", &next("n1"), ts(999)).await?, RefreshRotation::Rotated(_)));

    // An expired grant (its token still good).
    store.create_grant(&grant("g2", "user-1", "s1", 2_000), Some(&token("t2", "g2", 5_000)), None).await?;
    assert_eq!(store.rotate_refresh_token("t2", &next("n2"), ts(2_000)).await?, RefreshRotation::Invalid);
    assert!(store.find_refresh_token("t2", ts(2_000)).await?.is_some());

    // A revoked grant: the token is not marked used.
    store.create_grant(&grant("g3", "user-1", "s1", 1_000_000), Some(&token("t3", "g3", 900_000)), None).await?;
    assert!(store.revoke_grant("g3", ts(10)).await?);
    assert_eq!(store.rotate_refresh_token("t3", &next("n3"), ts(20)).await?, RefreshRotation::Invalid);
    assert_eq!(store.find_refresh_token("n3", ts(20)).await?, None);
    let (found, found_grant) = store.find_refresh_token("t3", ts(20)).await?.ok_or("t3 is gone")?;
    assert_eq!((found.token_hash.as_str(), found_grant.revoked_at), ("t3", Some(ts(10))));

    // A next token whose hash is taken fails the rotation and leaves the presented one unused.
    store.create_grant(&grant("g4", "user-1", "s1", 1_000_000), Some(&token("t4", "g4", 900_000)), None).await?;
    let err = store.rotate_refresh_token("t4", &next("t2"), ts(30)).await.err();
    assert!(conflict_on(&err, "oidc_refresh_tokens_pkey"), "{err:?}");
    assert!(store.find_refresh_token("t4", ts(30)).await?.is_some());
    Ok(())
}

pub(crate) async fn of_8_concurrent_rotations_one_rotates_and_the_rest_are_reuse<S>(store: S) -> TestResult
where
    S: GrantStore + UserRepository + Clone + 'static,
{
    users(&store).await?;
    store.create_grant(&grant("g1", "user-1", "s1", 1_000_000), Some(&token("t1", "g1", 900_000)), None).await?;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let next = token(&format!("next-{i}"), "g1", 900_000);
                store.rotate_refresh_token("t1", &next, ts(100)).await.map(|rotation| (i, rotation))
            })
        })
        .collect();
    let (mut rotated, mut reused) = (Vec::new(), 0);
    for task in tasks {
        match task.await?? {
            (i, RefreshRotation::Rotated(g)) if g.id == "g1" => rotated.push(i),
            (_, RefreshRotation::Reused { grant_id }) if grant_id == "g1" => reused += 1,
            other => return Err(format!("unexpected {other:?}").into()),
        }
    }
    assert_eq!((rotated.len(), reused), (1, 7), "{rotated:?}");
    // The reuse revoked the grant; only the winner's next token was stored.
    assert_eq!(store.grant("g1").await?.and_then(|g| g.revoked_at), Some(ts(100)));
    for i in 0..8 {
        let stored = store.find_refresh_token(&format!("next-{i}"), ts(100)).await?.is_some();
        assert_eq!(stored, rotated.contains(&i), "next-{i}");
    }
    Ok(())
}

// --- revocation and membership -----------------------------------------------

pub(crate) async fn revocations_touch_only_unrevoked_grants<S>(store: S) -> TestResult
where
    S: GrantStore + UserRepository,
{
    users(&store).await?;
    for (id, user, session) in
        [("g1", "user-1", "s1"), ("g2", "user-1", "s1"), ("g3", "user-1", "s2"), ("g4", "user-2", "s3")]
    {
        store.create_grant(&grant(id, user, session, 1_000_000), None, None).await?;
    }
    // An expired, unrevoked grant counts too.
    store.create_grant(&grant("g5", "user-2", "s3", 50), None, None).await?;

    assert_eq!(store.revoke_grants_for_session("s1", ts(100)).await?, 2);
    assert_eq!(store.revoke_grants_for_session("s1", ts(200)).await?, 0);
    assert_eq!(store.revoke_grants_for_user("user-1", ts(300)).await?, 1);
    assert_eq!(store.revoke_grants_for_user("user-1", ts(400)).await?, 0);
    assert_eq!(store.revoke_grants_for_session("unknown", ts(400)).await?, 0);

    assert!(store.revoke_grant("g4", ts(500)).await?);
    assert!(!store.revoke_grant("g4", ts(600)).await?);
    assert!(!store.revoke_grant("unknown", ts(600)).await?);
    assert_eq!(store.revoke_grants_for_user("user-2", ts(700)).await?, 1);

    let revoked_at = async |id: &str| -> Result<Option<i64>, StoreError> {
        Ok(store.grant(id).await?.and_then(|g| g.revoked_at).map(|t| t.as_millis()))
    };
    // The first revocation's time stays.
    assert_eq!(revoked_at("g1").await?, Some(100));
    assert_eq!(revoked_at("g2").await?, Some(100));
    assert_eq!(revoked_at("g3").await?, Some(300));
    assert_eq!(revoked_at("g4").await?, Some(500));
    assert_eq!(revoked_at("g5").await?, Some(700));
    Ok(())
}

pub(crate) async fn membership_checks_only_move_forward<S>(store: S) -> TestResult
where
    S: GrantStore + UserRepository,
{
    users(&store).await?;
    store.create_grant(&grant("g1", "user-1", "s1", 1_000_000), None, None).await?;
    store.mark_membership_checked("g1", ts(500)).await?;
    assert_eq!(store.grant("g1").await?.map(|g| g.membership_checked_at), Some(ts(500)));
    store.mark_membership_checked("g1", ts(400)).await?;
    assert_eq!(store.grant("g1").await?.map(|g| g.membership_checked_at), Some(ts(500)));
    // An unknown (purged) grant is no error.
    store.mark_membership_checked("unknown", ts(500)).await?;
    Ok(())
}

// --- purge -------------------------------------------------------------------

pub(crate) async fn purge_deletes_expired_codes_and_ended_grants_with_their_tokens<S>(store: S) -> TestResult
where
    S: GrantStore + UserRepository,
{
    const NOW: i64 = 100_000_000;
    const FAR: i64 = 2 * NOW;
    users(&store).await?;
    store.insert_code(&code("c-old", "user-1", 100)).await?;
    store.insert_code(&code("c-due", "user-1", NOW)).await?;
    store.insert_code(&code("c-live", "user-1", NOW + 60_000)).await?;

    // Expired (one token): deleted.
    store.create_grant(&grant("g-expired", "user-1", "s1", NOW), Some(&token("ta", "", FAR)), None).await?;
    // Revoked exactly a day before NOW (two tokens, one used; linked to a code): deleted.
    let (g_day, tb1, tb2) = (grant("g-day", "user-1", "s1", FAR), token("tb1", "", FAR), token("tb2", "", FAR));
    store.create_grant(&g_day, Some(&tb1), Some("c-live")).await?;
    assert!(matches!(store.rotate_refresh_token("tb1", &tb2, ts(1_000)).await?, RefreshRotation::Rotated(_)));
    assert!(store.revoke_grant("g-day", ts(NOW - REVOKED_GRANT_RETENTION_MS)).await?);
    // Revoked less than a day before NOW, and active: kept.
    store.create_grant(&grant("g-recent", "user-1", "s1", FAR), Some(&token("tc", "", FAR)), None).await?;
    assert!(store.revoke_grant("g-recent", ts(NOW - REVOKED_GRANT_RETENTION_MS + 1)).await?);
    store.create_grant(&grant("g-active", "user-2", "s2", FAR), Some(&token("td", "", FAR)), None).await?;

    // 2 codes + g-expired and its token + g-day and its 2 tokens.
    assert_eq!(GrantStore::purge_expired(&store, ts(NOW)).await?, 7);
    assert_eq!(GrantStore::purge_expired(&store, ts(NOW)).await?, 0);

    assert_eq!(store.grant("g-expired").await?, None);
    assert_eq!(store.grant("g-day").await?, None);
    assert!(store.grant("g-recent").await?.is_some());
    assert!(store.grant("g-active").await?.is_some());
    assert_eq!(store.rotate_refresh_token("tb1", &token("x1", "", FAR), ts(NOW)).await?, RefreshRotation::Invalid);
    assert!(store.find_refresh_token("tc", ts(NOW)).await?.is_some());
    assert!(store.find_refresh_token("td", ts(NOW)).await?.is_some());
    assert_eq!(store.redeem_code("c-old", ts(0)).await?, CodeRedemption::Invalid);
    assert_eq!(store.redeem_code("c-due", ts(0)).await?, CodeRedemption::Invalid);
    // The kept code lost its link to the deleted grant.
    assert!(matches!(store.redeem_code("c-live", ts(NOW)).await?, CodeRedemption::Redeemed(_)));
    assert_eq!(store.redeem_code("c-live", ts(NOW)).await?, CodeRedemption::Replayed { grant_id: None });
    Ok(())
}

// --- signing keys --------------------------------------------------------------

pub(crate) async fn a_new_signing_key_retires_the_keys_of_its_algorithm_only<S: SigningKeyStore>(
    store: S,
) -> TestResult {
    use SigningAlgorithm::{Es256, Rs256};
    assert!(store.signing_keys().await?.is_empty());
    store.insert_signing_key(&key("k-rs-1", Rs256, 100), ts(100)).await?;
    store.insert_signing_key(&key("k-es-1", Es256, 200), ts(200)).await?;
    assert_eq!(keys(&store).await?.iter().map(|k| k.4).collect::<Vec<_>>(), [None, None]);

    store.insert_signing_key(&key("k-rs-2", Rs256, 300), ts(300)).await?;
    store.insert_signing_key(&key("a-es-2", Es256, 300), ts(310)).await?;
    // Oldest first; equal created_at ordered by kid.
    assert_eq!(
        keys(&store).await?,
        [
            ("k-rs-1".to_owned(), "RS256", b"der-of-k-rs-1".to_vec(), 100, Some(300)),
            ("k-es-1".to_owned(), "ES256", b"der-of-k-es-1".to_vec(), 200, Some(310)),
            ("a-es-2".to_owned(), "ES256", b"der-of-a-es-2".to_vec(), 300, None),
            ("k-rs-2".to_owned(), "RS256", b"der-of-k-rs-2".to_vec(), 300, None),
        ]
    );
    let stored = store.signing_keys().await?;
    assert_eq!(stored.iter().map(|k| k.public_jwk.as_str()).next_back(), Some(r#"{"kty":"EC","kid":"k-rs-2"}"#));

    // A taken kid: Conflict, and the retirement is rolled back with the insert.
    let err = store.insert_signing_key(&key("k-rs-2", Rs256, 400), ts(400)).await.err();
    assert!(conflict_on(&err, "oidc_signing_keys_pkey"), "{err:?}");
    assert_eq!(keys(&store).await?.iter().filter(|k| k.4.is_none()).count(), 2);

    // Retired at or before: deleted; unretired keys never are.
    assert_eq!(store.delete_retired_signing_keys(ts(299)).await?, 0);
    assert_eq!(store.delete_retired_signing_keys(ts(300)).await?, 1);
    assert_eq!(store.delete_retired_signing_keys(ts(i64::MAX)).await?, 1);
    let left: Vec<String> = keys(&store).await?.into_iter().map(|k| k.0).collect();
    assert_eq!(left, ["a-es-2", "k-rs-2"]);
    Ok(())
}

pub(crate) async fn corrupt_oidc_rows_are_errors_not_panics<S>(
    store: S,
    sql: impl AsyncFn(&S, &str) -> TestResult,
) -> TestResult
where
    S: GrantStore + SigningKeyStore + UserRepository,
{
    users(&store).await?;
    store.insert_signing_key(&key("k1", SigningAlgorithm::Rs256, 1), ts(1)).await?;
    sql(&store, "UPDATE oidc_signing_keys SET algorithm = 'HS256'").await?;
    let err = store.signing_keys().await.err();
    assert!(matches!(&err, Some(StoreError::Other(m)) if m.starts_with("corrupt row in oidc_signing_keys")), "{err:?}");

    store.create_grant(&grant("g1", "user-1", "s1", 1_000_000), Some(&token("t1", "g1", 900_000)), None).await?;
    sql(&store, "UPDATE oidc_grants SET scopes = 'openid'").await?;
    let err = store.grant("g1").await.err();
    assert!(matches!(&err, Some(StoreError::Other(m)) if m.starts_with("corrupt row in oidc_grants")), "{err:?}");
    let err = store.find_refresh_token("t1", ts(1)).await.err();
    assert!(matches!(&err, Some(StoreError::Other(_))), "{err:?}");
    Ok(())
}

// --- migration -----------------------------------------------------------------

/// Rows written under the migrations before `oidc`: a user and a session of theirs.
pub(crate) const PRE_OIDC_ROWS: &str = "\
    INSERT INTO users (id, corp_id, union_id, userid, name, dept_ids, active, created_at, updated_at) \
        VALUES ('user-old', 'dingcorp', 'union-old', 'old1', 'Old', '[1]', TRUE, 10, 20); \
    INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ('s-old', 'user-old', 1, 1000000);";

/// After the `oidc` migration ran over a database holding [`PRE_OIDC_ROWS`]: the rows are
/// intact and the new tables work for them.
pub(crate) async fn pre_oidc_rows_survive_the_migration<S>(store: S) -> TestResult
where
    S: GrantStore + SigningKeyStore + SessionStore + UserRepository,
{
    let user = UserRepository::find(&store, "user-old").await?.ok_or("user-old is gone")?;
    assert_eq!((user.profile.name.as_str(), user.created_at, user.updated_at), ("Old", ts(10), ts(20)));
    assert_eq!(SessionStore::find(&store, "s-old", ts(5)).await?, Some(session("s-old", "user-old", 1_000_000)));

    let c = code("c1", "user-old", 10_000);
    store.insert_code(&c).await?;
    assert_eq!(store.redeem_code("c1", ts(1)).await?, CodeRedemption::Redeemed(c));
    store
        .create_grant(&grant("g1", "user-old", "s-old", 1_000_000), Some(&token("t1", "g1", 900_000)), Some("c1"))
        .await?;
    assert_eq!(store.revoke_grants_for_user("user-old", ts(2)).await?, 1);
    store.insert_signing_key(&key("k1", SigningAlgorithm::Es256, 1), ts(1)).await?;
    assert_eq!(store.signing_keys().await?.len(), 1);
    Ok(())
}

/// The contracts above on SQLite, each on a fresh temporary database file.
mod sqlite {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, SqliteConnection};
    use diesel_migrations::MigrationHarness;

    use super::TestResult;
    use crate::outbound::sqlite::tests::{TempDb, sql};
    use crate::outbound::sqlite::{MIGRATIONS, SqliteStore};

    /// One `#[tokio::test]` per contract, on a fresh database.
    macro_rules! on_sqlite {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() -> TestResult {
                let db = TempDb::new(concat!("oidc-", stringify!($name)));
                super::$name(db.open().await?).await
            }
        )*};
    }

    on_sqlite!(
        codes_are_redeemed_once_and_a_replay_names_the_grant,
        a_duplicate_code_is_a_conflict_and_an_unknown_user_an_error,
        of_8_concurrent_redemptions_exactly_one_redeems,
        a_grant_is_stored_with_its_first_token_in_one_transaction,
        refresh_tokens_rotate_and_a_reuse_revokes_the_grant,
        expired_tokens_and_inactive_grants_do_not_rotate,
        of_8_concurrent_rotations_one_rotates_and_the_rest_are_reuse,
        revocations_touch_only_unrevoked_grants,
        membership_checks_only_move_forward,
        purge_deletes_expired_codes_and_ended_grants_with_their_tokens,
        a_new_signing_key_retires_the_keys_of_its_algorithm_only,
    );

    #[tokio::test(flavor = "multi_thread")]
    async fn corrupt_oidc_rows_are_errors_not_panics() -> TestResult {
        let db = TempDb::new("oidc-corrupt");
        super::corrupt_oidc_rows_are_errors_not_panics(db.open().await?, sql).await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn pre_oidc_rows_survive_the_migration() -> TestResult {
        let db = TempDb::new("oidc-migration");
        // A database as the previous release left it: every migration but `oidc`, with rows.
        std::fs::create_dir_all(db.path.parent().ok_or("no directory")?)?;
        let mut conn = SqliteConnection::establish(&db.path.display().to_string())?;
        conn.batch_execute("PRAGMA foreign_keys = ON;")?;
        let migrations = diesel::migration::MigrationSource::<diesel::sqlite::Sqlite>::migrations(&MIGRATIONS)?;
        let (oidc, earlier): (Vec<_>, Vec<_>) =
            migrations.into_iter().partition(|m| m.name().to_string().ends_with("_oidc"));
        assert_eq!(oidc.len(), 1);
        // Creates the migrations table (a fresh database has none applied).
        assert!(conn.applied_migrations()?.is_empty());
        for migration in &earlier {
            conn.run_migration(migration.as_ref())?;
        }
        conn.batch_execute(super::PRE_OIDC_ROWS)?;
        drop(conn);

        let store: SqliteStore = db.open().await?;
        super::pre_oidc_rows_survive_the_migration(store).await
    }
}
