#![allow(dead_code)]
pub mod daemon;
pub mod faults;
pub mod postfix;
pub mod process;
pub mod world;
