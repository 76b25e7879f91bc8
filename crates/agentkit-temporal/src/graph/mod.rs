//! agentkit workflow definitions on Temporal: [`GraphWorkflow`] runs the same definitions the
//! embedded engine runs, with Temporal as the durability engine.

mod activities;
mod nodes;
mod run;
mod types;
mod waits;
mod workflow;

pub use activities::GraphActivities;
pub use types::{
    ApprovalView, FinishGraph, GraphRunInput, GraphRunOutput, GraphStep, LoadInput, Loaded,
    NodeCall, NodeStep, OpenApproval, ReadApproval, SnapshotInput,
};
pub use workflow::GraphWorkflow;
