//! The directory feed's names for [`DirectoryChange`]s: on the relay wire
//! (`GET /relay/v1/events`, README "Event feed") and in the `contact_events.event_type` column.
//!
//! They are the names DingTalk gives its contact events (docs/dingtalk-api.md §E.6) — the feed
//! carried DingTalk's events alone before providers were side by side — kept so stored feeds and
//! older locals read on. Every provider's adapter maps its own events to [`DirectoryChange`]; only
//! this module knows the names.

use application::ports::DirectoryChange;

const NAMES: [(&str, DirectoryChange); 7] = [
    ("user_add_org", DirectoryChange::MemberJoined),
    ("user_modify_org", DirectoryChange::MemberChanged),
    ("user_active_org", DirectoryChange::MemberActivated),
    ("user_leave_org", DirectoryChange::MemberLeft),
    ("org_dept_create", DirectoryChange::DepartmentCreated),
    ("org_dept_modify", DirectoryChange::DepartmentChanged),
    ("org_dept_remove", DirectoryChange::DepartmentRemoved),
];

/// The feed's name of `change` (an `Other` keeps its own).
pub fn name(change: &DirectoryChange) -> &str {
    match change {
        DirectoryChange::Other(name) => name,
        known => NAMES.iter().find(|(_, c)| c == known).map_or("", |(name, _)| name),
    }
}

/// The change a feed name stands for; an unknown name is `Other` (acknowledged, not applied).
pub fn parse(name: &str) -> DirectoryChange {
    NAMES.iter().find(|(n, _)| *n == name).map_or_else(|| DirectoryChange::Other(name.to_owned()), |(_, c)| c.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_has_one_name_and_unknown_names_are_kept() {
        for (name_of, change) in &NAMES {
            assert_eq!(name(change), *name_of);
            assert_eq!(&parse(name_of), change);
        }
        assert_eq!(parse("org_something_new"), DirectoryChange::Other("org_something_new".into()));
        assert_eq!(name(&DirectoryChange::Other("x".into())), "x");
    }
}
