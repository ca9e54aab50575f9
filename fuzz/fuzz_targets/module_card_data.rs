//! cargo-fuzz target `module_card_data`: see `picohsm_fuzz::module` for the input format
//! and what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| picohsm_fuzz::module::run(data));
