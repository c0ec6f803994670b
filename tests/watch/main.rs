//! Watching (docs/design.md, "Events"): the event stream of `watch`.

#[path = "../common/mod.rs"]
mod common;

mod churn;
mod limits;
mod watch;
