//! One module per command (or group of commands that share their work),
//! each holding the functions `main` dispatches to.

pub mod connectors;
pub mod demo;
pub mod doctor;
pub mod egress_relay;
pub mod feedback;
pub mod init;
pub mod plugins;
pub mod report;
pub mod run;
pub mod schedule;
pub mod serve;
pub mod shell;
pub mod show;
pub mod skill_new;
pub mod skills;
pub mod tool;
pub mod trash;
pub mod undo;
