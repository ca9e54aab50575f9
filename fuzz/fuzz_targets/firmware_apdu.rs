//! cargo-fuzz target `firmware_apdu`: see `picohsm_fuzz::firmware` for the input format
//! and what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| picohsm_fuzz::firmware::run(data));
