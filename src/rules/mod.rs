//! The rule engine of docs/rules.md: rule files, selections and conditions, stateful detections, rule tests.

pub mod condition;
pub mod detect;
pub mod engine;
pub mod load;
pub mod schema;
pub mod selection;
