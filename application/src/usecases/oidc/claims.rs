//! Which claims a person's tokens and `userinfo` carry, by scope (docs/oidc.md "Claims").

use domain::User;
use serde_json::{Map, Value, json};

/// What `sub` is (config `oidc.subject`). Either way it is stable and never reused: local user
/// ids are UUIDs that are never reassigned, and a provider's union id names one person for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectClaim {
    /// The local user id (default): one `sub` per person per corp.
    UserId,
    /// The provider's union id (the same person in every tenant of the same developer account).
    UnionId,
}

impl SubjectClaim {
    /// The `sub` of `user`.
    pub fn of(self, user: &User) -> String {
        match self {
            Self::UserId => user.id.clone(),
            Self::UnionId => user.profile.union_id.as_str().to_owned(),
        }
    }
}

/// The claims about `user` released under `scopes` (OIDC Core §5.4), as a JSON object:
///
/// | scope | claims |
/// |---|---|
/// | `openid` | `sub` |
/// | `profile` | `name`, `preferred_username` (the `userid`), `picture`, `updated_at` (seconds), `idp` (the provider key), `<provider>_corp_id`, `<provider>_union_id`, `<provider>_userid` (a member of provider `x` gets `x_corp_id`, `x_union_id`, `x_userid`) |
/// | `email` | `email` (the org's `org_email` only, never the person's own), `email_verified: true` — both absent without an `org_email` |
/// | `phone` | `phone_number`, `phone_number_verified: false` (the org's record when it gave one) |
/// | `groups` | `groups`: the department ids as strings |
pub fn claims_for(user: &User, scopes: &[String], subject: SubjectClaim) -> Map<String, Value> {
    let has = |scope: &str| scopes.iter().any(|s| s == scope);
    let profile = &user.profile;
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::String(subject.of(user)));
    if has("profile") {
        claims.insert("name".into(), json!(profile.name));
        claims.insert("preferred_username".into(), json!(profile.userid.as_str()));
        if let Some(picture) = &profile.avatar_url {
            claims.insert("picture".into(), json!(picture));
        }
        claims.insert("updated_at".into(), json!(user.updated_at.as_millis() / 1000));
        // Named by provider, so a relying party never mistakes one provider's ids for another's.
        let provider = profile.provider.as_str();
        claims.insert("idp".into(), json!(provider));
        claims.insert(format!("{provider}_corp_id"), json!(profile.corp_id.as_str()));
        claims.insert(format!("{provider}_union_id"), json!(profile.union_id.as_str()));
        claims.insert(format!("{provider}_userid"), json!(profile.userid.as_str()));
    }
    if has("email")
        && let Some(email) = &profile.org_email
    {
        claims.insert("email".into(), json!(email));
        claims.insert("email_verified".into(), json!(true));
    }
    if has("phone")
        && let Some(mobile) = &profile.mobile
    {
        claims.insert("phone_number".into(), json!(mobile));
        claims.insert("phone_number_verified".into(), json!(false));
    }
    if has("groups") {
        let groups: Vec<String> = profile.dept_ids.iter().map(|d| d.to_string()).collect();
        claims.insert("groups".into(), json!(groups));
    }
    claims
}
