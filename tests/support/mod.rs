#![allow(dead_code)]
pub mod daemon;
pub mod process;
