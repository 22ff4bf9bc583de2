#![allow(dead_code)]
pub mod daemon;
pub mod dns;
pub mod faults;
pub mod postfix;
pub mod process;
pub mod world;
