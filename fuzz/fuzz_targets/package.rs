//! Package reading: arbitrary bytes as a `.skill` zip; whatever is accepted is linted.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use skillcheck::source::read_package;
use skillcheck::source::ReadLimits;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let limits = ReadLimits {
        max_file_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
    };
    if let Ok(source) = read_package(data, Path::new("fuzz.skill"), &limits) {
        common::exercise(&source);
    }
});
