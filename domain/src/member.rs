//! People: who signed in (the provider's current-user claims), what the org says about them
//! (its directory's user record), and the user record the local side keeps.

use serde::{Deserialize, Serialize};

use crate::{CorpId, DeptId, OpenId, ProviderKey, Timestamp, UnionId, UserId};

/// The signed-in person as the provider's current-user call describes them. `email` and `mobile` are claims the person supplied, not
/// verified facts: never link or merge accounts by them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `unionId`: with the corp id, the key of a person.
    pub union_id: UnionId,
    /// `openId`, when returned.
    pub open_id: Option<OpenId>,
    /// The org (tenant) the person signed in with, when the provider says.
    pub corp_id: Option<CorpId>,
    /// `nick`.
    pub nick: String,
    /// `avatarUrl`.
    pub avatar_url: Option<String>,
    /// `email` (a personal mailbox the person set; claim).
    pub email: Option<String>,
    /// `mobile` (masked for ISV apps; claim).
    pub mobile: Option<String>,
}

/// An org member as the provider's directory describes them: the org's word.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDetails {
    /// `userid`.
    pub userid: UserId,
    /// `unionid`.
    pub union_id: UnionId,
    /// `name`.
    pub name: String,
    /// `avatar` (absent for the default avatar).
    pub avatar_url: Option<String>,
    /// `title`.
    pub title: Option<String>,
    /// `org_email` (only when the org enabled enterprise mail).
    pub org_email: Option<String>,
    /// `email` as the org recorded it (needs the email permission).
    pub email: Option<String>,
    /// `mobile` (needs the mobile permission).
    pub mobile: Option<String>,
    /// `dept_id_list`.
    pub dept_ids: Vec<DeptId>,
    /// `active`: whether the member has activated their account and may use it.
    pub active: bool,
}

/// Everything dingbridge keeps about one member of one corp (tenant): the org's
/// details, plus the sign-in claims. Keyed by `(provider, corp_id, union_id)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberProfile {
    /// The identity provider of the corp (tenant).
    pub provider: ProviderKey,
    /// The corp the person is a member of.
    pub corp_id: CorpId,
    /// `unionId`.
    pub union_id: UnionId,
    /// `userid` inside the corp (resolved from the union id by the provider).
    pub userid: UserId,
    /// `openId` from the sign-in, if any.
    pub open_id: Option<OpenId>,
    /// Display name (the org's `name`).
    pub name: String,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// Enterprise mailbox (the org's word).
    pub org_email: Option<String>,
    /// Email: the org's record when present, otherwise the person's claim.
    pub email: Option<String>,
    /// Mobile: the org's record when present, otherwise the person's claim.
    pub mobile: Option<String>,
    /// Departments.
    pub dept_ids: Vec<DeptId>,
    /// Whether the member is active in the org.
    pub active: bool,
}

impl MemberProfile {
    /// Builds a profile from the org's details of a member of `corp_id`, with the
    /// sign-in `identity` when there is one (it adds `openId` and fills claims
    /// the org did not give).
    pub fn from_details(
        provider: ProviderKey,
        corp_id: CorpId,
        details: MemberDetails,
        identity: Option<&Identity>,
    ) -> Self {
        Self {
            provider,
            corp_id,
            union_id: details.union_id,
            userid: details.userid,
            open_id: identity.and_then(|i| i.open_id.clone()),
            name: details.name,
            avatar_url: details.avatar_url.or_else(|| identity.and_then(|i| i.avatar_url.clone())),
            title: details.title,
            org_email: details.org_email,
            email: details.email.or_else(|| identity.and_then(|i| i.email.clone())),
            mobile: details.mobile.or_else(|| identity.and_then(|i| i.mobile.clone())),
            dept_ids: details.dept_ids,
            active: details.active,
        }
    }
}

/// A user as the local side stores it: a member profile with a local id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Local id (a UUID string), stable across profile refreshes.
    pub id: String,
    /// The member's profile.
    pub profile: MemberProfile,
    /// When dingbridge first stored this user.
    pub created_at: Timestamp,
    /// When the profile was last written.
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details() -> Result<MemberDetails, crate::ValidationError> {
        Ok(MemberDetails {
            userid: UserId::parse("manager4220")?,
            union_id: UnionId::parse("z21HjQliSzpw0Y")?,
            name: "张三".into(),
            avatar_url: None,
            title: Some("Manager".into()),
            org_email: Some("zs@corp.example".into()),
            email: None,
            mobile: Some("15000009144".into()),
            dept_ids: vec![DeptId::new(1)?],
            active: true,
        })
    }

    #[test]
    fn profile_prefers_the_orgs_word_and_falls_back_to_claims() -> Result<(), crate::ValidationError> {
        let identity = Identity {
            union_id: UnionId::parse("z21HjQliSzpw0Y")?,
            open_id: Some(OpenId::parse("open-1")?),
            corp_id: None,
            nick: "zs".into(),
            avatar_url: Some("https://a.example/x.png".into()),
            email: Some("claimed@example.com".into()),
            mobile: Some("111".into()),
        };
        let profile = MemberProfile::from_details(
            ProviderKey::parse("p")?,
            CorpId::parse("dingcorp")?,
            details()?,
            Some(&identity),
        );
        assert_eq!(profile.name, "张三");
        assert_eq!(profile.mobile.as_deref(), Some("15000009144"));
        assert_eq!(profile.email.as_deref(), Some("claimed@example.com"));
        assert_eq!(profile.avatar_url.as_deref(), Some("https://a.example/x.png"));
        assert_eq!(profile.open_id.as_ref().map(OpenId::as_str), Some("open-1"));
        Ok(())
    }

    #[test]
    fn profile_without_identity_has_no_open_id() -> Result<(), crate::ValidationError> {
        let profile =
            MemberProfile::from_details(ProviderKey::parse("p")?, CorpId::parse("dingcorp")?, details()?, None);
        assert_eq!(profile.open_id, None);
        assert_eq!(profile.email, None);
        Ok(())
    }
}
