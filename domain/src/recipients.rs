//! Who a message goes to, and how that splits into batches (one send to the provider each).
//!
//! The bounds here are dingbridge's own, chosen so that every provider's adapter can send any
//! batch in one go; each adapter checks them against its API and cites its reference.

use std::collections::HashSet;

use crate::{DeptId, UserId, ValidationError};

/// At most 100 user ids per batch.
pub const MAX_USERS_PER_CALL: usize = 100;
/// At most 20 department ids per message (they all ride on its first batch).
pub const MAX_DEPTS: usize = 20;
/// At most 5000 user ids per message, so one message never exceeds on its own the tightest
/// per-minute recipient budget of a provider served (its adapter says which).
pub const MAX_USERS: usize = 5000;

/// The recipients of one message: user ids and/or department ids, or everyone
/// in the org. Duplicates are removed (first occurrence kept); never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipients {
    user_ids: Vec<UserId>,
    dept_ids: Vec<DeptId>,
    to_all: bool,
}

impl Recipients {
    /// Errors: `recipients` `required` when both lists are empty;
    /// `recipients.user_ids` `too_many` over 5000 distinct ids;
    /// `recipients.dept_ids` `too_many` over 20 distinct ids.
    pub fn new(user_ids: Vec<UserId>, dept_ids: Vec<DeptId>) -> Result<Self, ValidationError> {
        let user_ids = dedupe(user_ids);
        let dept_ids = dedupe(dept_ids);
        if user_ids.is_empty() && dept_ids.is_empty() {
            return Err(ValidationError::new(
                "recipients",
                "required",
                "recipients must name at least one user or department, or be everyone",
            ));
        }
        if user_ids.len() > MAX_USERS {
            return Err(ValidationError::new(
                "recipients.user_ids",
                "too_many",
                format!("recipients.user_ids has {} distinct ids; the limit is {MAX_USERS}", user_ids.len()),
            ));
        }
        if dept_ids.len() > MAX_DEPTS {
            return Err(ValidationError::new(
                "recipients.dept_ids",
                "too_many",
                format!("recipients.dept_ids has {} distinct ids; at most {MAX_DEPTS} are accepted", dept_ids.len()),
            ));
        }
        Ok(Self { user_ids, dept_ids, to_all: false })
    }

    /// Everyone in the org (`to_all_user`).
    pub fn everyone() -> Self {
        Self { user_ids: Vec::new(), dept_ids: Vec::new(), to_all: true }
    }

    /// Distinct user ids, in the order given.
    pub fn user_ids(&self) -> &[UserId] {
        &self.user_ids
    }

    /// Distinct department ids, in the order given.
    pub fn dept_ids(&self) -> &[DeptId] {
        &self.dept_ids
    }

    /// Whether the message goes to everyone.
    pub fn to_all(&self) -> bool {
        self.to_all
    }

    /// Splits into batches: user ids in chunks of at most 100; the department list (and
    /// "everyone") ride on the first batch only.
    /// 250 user ids → 3 batches of 100, 100 and 50.
    pub fn batches(&self) -> Vec<Batch> {
        if self.to_all {
            return vec![Batch { user_ids: Vec::new(), dept_ids: Vec::new(), to_all: true }];
        }
        let mut batches: Vec<Batch> = self
            .user_ids
            .chunks(MAX_USERS_PER_CALL)
            .map(|chunk| Batch { user_ids: chunk.to_vec(), dept_ids: Vec::new(), to_all: false })
            .collect();
        match batches.first_mut() {
            Some(first) => first.dept_ids = self.dept_ids.clone(),
            None => batches.push(Batch { user_ids: Vec::new(), dept_ids: self.dept_ids.clone(), to_all: false }),
        }
        batches
    }
}

/// The recipients of one send: at most 100 user ids, at most 20
/// department ids, or everyone. Only [`Recipients::batches`] makes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    user_ids: Vec<UserId>,
    dept_ids: Vec<DeptId>,
    to_all: bool,
}

impl Batch {
    /// Rebuilds a stored batch, checking the per-batch limits again.
    pub fn new(user_ids: Vec<UserId>, dept_ids: Vec<DeptId>, to_all: bool) -> Result<Self, ValidationError> {
        if user_ids.len() > MAX_USERS_PER_CALL {
            return Err(ValidationError::new("batch.user_ids", "too_many", "a batch has at most 100 user ids"));
        }
        if dept_ids.len() > MAX_DEPTS {
            return Err(ValidationError::new("batch.dept_ids", "too_many", "a batch has at most 20 department ids"));
        }
        if !to_all && user_ids.is_empty() && dept_ids.is_empty() {
            return Err(ValidationError::new("batch", "required", "a batch needs at least one recipient"));
        }
        Ok(Self { user_ids, dept_ids, to_all })
    }

    /// User ids of this batch (≤100).
    pub fn user_ids(&self) -> &[UserId] {
        &self.user_ids
    }

    /// Department ids of this batch (≤20).
    pub fn dept_ids(&self) -> &[DeptId] {
        &self.dept_ids
    }

    /// Everyone in the org.
    pub fn to_all(&self) -> bool {
        self.to_all
    }
}

fn dedupe<T: Clone + Eq + std::hash::Hash>(items: Vec<T>) -> Vec<T> {
    let mut seen = HashSet::with_capacity(items.len());
    items.into_iter().filter(|item| seen.insert(item.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(n: usize) -> Vec<UserId> {
        (0..n).filter_map(|i| UserId::parse(&format!("user{i:04}")).ok()).collect()
    }

    fn depts(n: i64) -> Vec<DeptId> {
        (1..=n).filter_map(|i| DeptId::new(i).ok()).collect()
    }

    #[test]
    fn splits_250_users_into_100_100_50() -> Result<(), ValidationError> {
        let sizes: Vec<usize> =
            Recipients::new(users(250), vec![])?.batches().iter().map(|b| b.user_ids().len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        Ok(())
    }

    #[test]
    fn exactly_100_is_one_batch_and_101_is_two() -> Result<(), ValidationError> {
        assert_eq!(Recipients::new(users(100), vec![])?.batches().len(), 1);
        assert_eq!(Recipients::new(users(101), vec![])?.batches().len(), 2);
        Ok(())
    }

    #[test]
    fn duplicates_are_removed_in_order() -> Result<(), ValidationError> {
        let mut list = users(3);
        list.extend(users(2));
        let recipients = Recipients::new(list, [depts(2), depts(2)].concat())?;
        assert_eq!(recipients.user_ids(), users(3).as_slice());
        assert_eq!(recipients.dept_ids().len(), 2);
        Ok(())
    }

    #[test]
    fn empty_is_refused() {
        assert_eq!(Recipients::new(vec![], vec![]).err().map(|e| e.field), Some("recipients".into()));
    }

    #[test]
    fn dept_limit_is_20() {
        assert!(Recipients::new(vec![], depts(20)).is_ok());
        assert_eq!(
            Recipients::new(vec![], depts(21)).err().map(|e| (e.field, e.code)),
            Some(("recipients.dept_ids".into(), "too_many"))
        );
    }

    #[test]
    fn user_limit_is_5000() {
        assert!(Recipients::new(users(5000), vec![]).is_ok());
        assert_eq!(Recipients::new(users(5001), vec![]).err().map(|e| e.code), Some("too_many"));
    }

    #[test]
    fn depts_ride_on_the_first_batch_only() -> Result<(), ValidationError> {
        let batches = Recipients::new(users(150), depts(3))?.batches();
        assert_eq!(batches[0].dept_ids().len(), 3);
        assert!(batches[1].dept_ids().is_empty());
        let only_depts = Recipients::new(vec![], depts(2))?.batches();
        assert_eq!(only_depts.len(), 1);
        assert!(only_depts[0].user_ids().is_empty());
        Ok(())
    }

    #[test]
    fn everyone_is_one_call() {
        let batches = Recipients::everyone().batches();
        assert_eq!(batches.len(), 1);
        assert!(batches[0].to_all());
    }

    #[test]
    fn stored_batches_are_rechecked() {
        assert!(Batch::new(users(101), vec![], false).is_err());
        assert!(Batch::new(vec![], vec![], false).is_err());
        assert!(Batch::new(vec![], vec![], true).is_ok());
    }
}
