//! cargo-fuzz target `wire_codecs`: see `picohsm_fuzz::wire` for the input format
//! and what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| picohsm_fuzz::wire::run(data));
