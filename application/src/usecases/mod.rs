//! Use cases, by the role that runs them.

pub mod cloud;
pub mod contact_events;
pub mod feed;
pub mod in_process;
pub mod local;
mod members;
pub mod oidc;

#[cfg(test)]
mod cloud_tests;
#[cfg(test)]
mod directory_tests;
#[cfg(test)]
mod dispatch_tests;
#[cfg(test)]
mod feed_tests;
#[cfg(test)]
mod in_process_tests;
#[cfg(test)]
mod local_tests;
#[cfg(test)]
mod reconcile_tests;
#[cfg(test)]
mod test_support;
