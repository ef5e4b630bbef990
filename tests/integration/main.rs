//! Integration tests: the real `cairn` binary (and, for the property tests,
//! the engine crates) against real repositories on the local file system.
//!
//! Every test gets a fresh temporary folder; `Env` clears `CAIRN_*` variables
//! so nothing from the developer's shell leaks in.

mod util;

mod badinput;
mod browser;
mod cli;
mod cold;
mod corruption;
mod crash;
mod databases;
mod dedup;
mod delta;
mod errors;
mod flags;
mod fusemount;
mod inspect;
mod jobs;
mod keys;
mod lifecycle;
mod monitoring;
mod mounts;
mod privacy;
mod realworld;
mod receivers;
mod remote;
mod roundtrip;
mod scale;
mod serve;
mod servers;
mod tamper;
