//! The diesel schema of `migrations/sqlite` and `migrations/postgres`
//! (written by hand). It uses only types both SQLite and PostgreSQL have
//! (`Text`, `BigInt`, `Integer`, `Bool`, `Binary`: BLOB / BYTEA), so both
//! adapters share it.

diesel::table! {
    /// Local side: logins in progress.
    login_attempts (state_hash) {
        /// SHA-256 hex of the `state`.
        state_hash -> Text,
        /// Relative path to return to.
        return_to -> Text,
        /// Epoch ms.
        expires_at -> BigInt,
        /// The identity provider's key.
        provider -> Text,
    }
}

diesel::table! {
    /// Cloud side: logins a relay client started.
    login_intents (state_hash) {
        /// SHA-256 hex of the `state`.
        state_hash -> Text,
        /// The relay client.
        client_id -> Text,
        /// Where the browser goes after the callback.
        complete_url -> Text,
        /// JSON array of corp ids.
        corp_ids -> Text,
        /// Epoch ms.
        expires_at -> BigInt,
        /// The identity provider's key.
        provider -> Text,
        /// The PKCE code_verifier (RFC 7636), absent for intents stored before PKCE.
        code_verifier -> Nullable<Text>,
    }
}

diesel::table! {
    /// Cloud side: finished logins waiting for their relay client.
    login_results (state_hash) {
        /// SHA-256 hex of the `state`.
        state_hash -> Text,
        /// The relay client the result belongs to.
        client_id -> Text,
        /// JSON of `Result<MemberProfile, LoginFailure>`.
        outcome -> Text,
        /// Epoch ms.
        expires_at -> BigInt,
    }
}

diesel::table! {
    /// Local side: users keyed by `(corp_id, union_id)`.
    users (id) {
        /// Local id.
        id -> Text,
        /// Corp id.
        corp_id -> Text,
        /// Union id.
        union_id -> Text,
        /// DingTalk userid within the corp.
        userid -> Text,
        /// Open id.
        open_id -> Nullable<Text>,
        /// Display name.
        name -> Text,
        /// Avatar URL.
        avatar_url -> Nullable<Text>,
        /// Job title.
        title -> Nullable<Text>,
        /// Enterprise mailbox.
        org_email -> Nullable<Text>,
        /// Email.
        email -> Nullable<Text>,
        /// Mobile.
        mobile -> Nullable<Text>,
        /// JSON array of department ids.
        dept_ids -> Text,
        /// Active in the org.
        active -> Bool,
        /// Epoch ms.
        created_at -> BigInt,
        /// Epoch ms.
        updated_at -> BigInt,
        /// The identity provider's key (the corp belongs to one provider).
        provider -> Text,
    }
}

diesel::table! {
    /// Local side: browser sessions.
    sessions (token_hash) {
        /// SHA-256 hex of the session token.
        token_hash -> Text,
        /// `users.id`.
        user_id -> Text,
        /// Epoch ms.
        created_at -> BigInt,
        /// Epoch ms.
        expires_at -> BigInt,
    }
}

diesel::table! {
    /// Local side: messages.
    messages (id) {
        /// Local message id.
        id -> Text,
        /// Corp id.
        corp_id -> Text,
        /// DingTalk's `msg` JSON.
        body -> Text,
        /// JSON array of userids.
        user_ids -> Text,
        /// JSON array of department ids.
        dept_ids -> Text,
        /// Sent to everyone.
        to_all -> Bool,
        /// `MessageState::as_str`.
        state -> Text,
        /// JSON array of task ids.
        delivery_ids -> Text,
        /// Why the message failed.
        error -> Nullable<Text>,
        /// Epoch ms.
        created_at -> BigInt,
        /// Epoch ms.
        updated_at -> BigInt,
        /// The caller's Idempotency-Key (unique).
        idempotency_key -> Nullable<Text>,
        /// Relay attempts so far.
        attempts -> Integer,
        /// Epoch ms: when the dispatcher may try (again).
        next_attempt_at -> BigInt,
        /// Epoch ms.
        relayed_at -> Nullable<BigInt>,
        /// Epoch ms.
        sent_at -> Nullable<BigInt>,
        /// Epoch ms.
        finished_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Cloud side: relayed messages keyed by `(client_id, key)`.
    relay_messages (client_id, key) {
        /// The relay client.
        client_id -> Text,
        /// The client's idempotency key.
        key -> Text,
        /// Corp id.
        corp_id -> Text,
        /// DingTalk's `msg` JSON.
        body -> Text,
        /// `MessageState::as_str`.
        state -> Text,
        /// Epoch ms.
        created_at -> BigInt,
        /// Epoch ms.
        updated_at -> BigInt,
        /// Background reconciliation rounds so far (`delivery.reconcile = "budget"`).
        reconcile_rounds -> BigInt,
        /// Delivery attempts of the background sender that ended waiting.
        attempts -> BigInt,
        /// `WaitReason::as_str` while the message waits after an attempt.
        waiting -> Nullable<Text>,
        /// What happened, for people.
        waiting_detail -> Nullable<Text>,
        /// Epoch ms of the next attempt; NULL = due at once.
        retry_at -> Nullable<BigInt>,
        /// The token of the background sender's claim, while one holds the message.
        claim -> Nullable<Text>,
        /// Epoch ms the claim ends (others may claim the message after it).
        claimed_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Cloud side: one row per `asyncsend_v2` call of a relayed message.
    relay_batches (client_id, key, idx) {
        /// The relay client.
        client_id -> Text,
        /// The client's idempotency key.
        key -> Text,
        /// 0-based batch index.
        idx -> Integer,
        /// JSON array of userids.
        user_ids -> Text,
        /// JSON array of department ids.
        dept_ids -> Text,
        /// `to_all_user`.
        to_all -> Bool,
        /// DingTalk task id once sent.
        delivery_id -> Nullable<Text>,
        /// DingTalk's refusal.
        error -> Nullable<Text>,
        /// JSON `[{"userid", "reason"}]`: recipients the cloud skipped (docs/dingtalk-api.md §D.6).
        skipped -> Text,
        /// Epoch ms the batch's provider call was started under a claim; NULL when none is
        /// outstanding.
        started_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Local side: a member bound to an account of the enterprise system.
    bindings (user_id) {
        /// `users.id`.
        user_id -> Text,
        /// The enterprise system's account id.
        external_id -> Text,
        /// The enterprise system's tenant; `''` when there is none.
        tenant_id -> Text,
        /// Epoch ms.
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Cloud side: the latest `suite_ticket` of each suite.
    suite_tickets (suite_key) {
        /// The suite's key.
        suite_key -> Text,
        /// The ticket.
        ticket -> Text,
        /// Epoch ms.
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Cloud side: corp authorizations of a third-party suite.
    corp_authorizations (suite_key, corp_id) {
        /// The suite's key.
        suite_key -> Text,
        /// The authorizing corp.
        corp_id -> Text,
        /// The suite's agent id in the corp.
        agent_id -> Nullable<BigInt>,
        /// The permanent code (a secret).
        permanent_code -> Nullable<Text>,
        /// `false` once the corp removed the authorization.
        active -> Bool,
        /// Epoch ms.
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Cloud side: callback nonces seen, for replay protection.
    callback_nonces (owner, nonce) {
        /// AppKey, corp id or SuiteKey.
        owner -> Text,
        /// The callback's nonce.
        nonce -> Text,
        /// Epoch ms: remembered until then.
        keep_until -> BigInt,
    }
}

diesel::table! {
    /// Cloud side: the contact-event feed; `seq` is the feed cursor.
    contact_events (seq) {
        /// Auto-increment position in the feed (`FeedEntry::cursor`).
        seq -> BigInt,
        /// The corp.
        corp_id -> Text,
        /// DingTalk's event id (or a payload digest); unique per corp.
        event_id -> Text,
        /// DingTalk's `EventType`.
        event_type -> Text,
        /// JSON array of userids.
        userids -> Text,
        /// JSON array of department ids.
        dept_ids -> Text,
        /// Epoch ms.
        received_at -> BigInt,
    }
}

diesel::table! {
    /// Local side: how far each followed feed has been applied (`FeedCursorStore`).
    feed_cursors (name) {
        /// The feed's name (`contact_events`).
        name -> Text,
        /// The cursor of the last applied event.
        cursor -> BigInt,
        /// Epoch ms.
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Local side: OIDC authorization codes, redeemable once.
    oidc_codes (code_hash) {
        /// SHA-256 hex of the code.
        code_hash -> Text,
        /// The client it was issued to.
        client_id -> Text,
        /// `users.id`.
        user_id -> Text,
        /// SHA-256 hex of the dingbridge session.
        session_hash -> Text,
        /// The request's `redirect_uri`.
        redirect_uri -> Text,
        /// JSON array of scopes.
        scopes -> Text,
        /// The request's `nonce`.
        nonce -> Nullable<Text>,
        /// PKCE S256 `code_challenge`.
        code_challenge -> Nullable<Text>,
        /// Epoch ms.
        auth_time -> BigInt,
        /// Epoch ms.
        created_at -> BigInt,
        /// Epoch ms.
        expires_at -> BigInt,
        /// Epoch ms: when it was redeemed.
        used_at -> Nullable<BigInt>,
        /// `oidc_grants.id` of the grant it produced.
        grant_id -> Nullable<Text>,
    }
}

diesel::table! {
    /// Local side: OIDC grants (one client's authorization for one user).
    oidc_grants (id) {
        /// Grant id (UUID v7).
        id -> Text,
        /// The client.
        client_id -> Text,
        /// `users.id`.
        user_id -> Text,
        /// SHA-256 hex of the dingbridge session.
        session_hash -> Text,
        /// JSON array of scopes.
        scopes -> Text,
        /// Epoch ms.
        auth_time -> BigInt,
        /// Epoch ms.
        created_at -> BigInt,
        /// Epoch ms.
        expires_at -> BigInt,
        /// Epoch ms.
        membership_checked_at -> BigInt,
        /// Epoch ms.
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Local side: refresh tokens of OIDC grants (a used one is kept for reuse detection).
    oidc_refresh_tokens (token_hash) {
        /// SHA-256 hex of the token.
        token_hash -> Text,
        /// `oidc_grants.id`.
        grant_id -> Text,
        /// Epoch ms.
        created_at -> BigInt,
        /// Epoch ms.
        expires_at -> BigInt,
        /// Epoch ms: when it was rotated.
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Local side: OIDC signing keys.
    oidc_signing_keys (kid) {
        /// Key id.
        kid -> Text,
        /// JOSE algorithm name (`SigningAlgorithm::as_str`).
        algorithm -> Text,
        /// PKCS#8 DER of the private key (a secret).
        private_pkcs8 -> Binary,
        /// JWK JSON object of the public key.
        public_jwk -> Text,
        /// Epoch ms.
        created_at -> BigInt,
        /// Epoch ms.
        retired_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Cloud side: metered DingTalk calls per corp per month (`QuotaStore`).
    quota_usage (tenant, month) {
        /// The corp the calls count against.
        tenant -> Text,
        /// `YYYY-MM`, China Standard Time.
        month -> Text,
        /// Metered calls made in the month.
        metered_calls -> BigInt,
        /// DingTalk answered 90020 and no operator resumed.
        exhausted -> Bool,
        /// Epoch ms.
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Cloud side: messages each person received per corp and day (`RecipientLedgerStore`).
    recipient_days (tenant, day, userid) {
        /// The corp.
        tenant -> Text,
        /// `YYYY-MM-DD`, China Standard Time.
        day -> Text,
        /// DingTalk userid.
        userid -> Text,
        /// Messages received that day.
        received -> BigInt,
    }
}

diesel::table! {
    /// Cloud side: which contents each person received per corp and day (`RecipientLedgerStore`).
    recipient_contents (tenant, day, userid, content) {
        /// The corp.
        tenant -> Text,
        /// `YYYY-MM-DD`, China Standard Time.
        day -> Text,
        /// DingTalk userid.
        userid -> Text,
        /// SHA-256 of the canonical body, hex.
        content -> Text,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(bindings -> users (user_id));
diesel::joinable!(oidc_refresh_tokens -> oidc_grants (grant_id));
diesel::allow_tables_to_appear_in_same_query!(
    login_attempts,
    login_intents,
    login_results,
    users,
    sessions,
    messages,
    relay_messages,
    relay_batches,
    bindings,
    suite_tickets,
    corp_authorizations,
    callback_nonces,
    contact_events,
    oidc_codes,
    oidc_grants,
    oidc_refresh_tokens,
    oidc_signing_keys,
    quota_usage,
    recipient_days,
    recipient_contents,
);
