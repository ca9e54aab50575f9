//! Runs fuzz inputs through a harness without libFuzzer, on a stable
//! toolchain: `cargo run --example replay -- TARGET FILE...` (from fuzz/).
//! Handy to step through a crash in a debugger.

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("usage: replay TARGET FILE...");
    let run: fn(&[u8]) = match target.as_str() {
        "firmware_apdu" => picohsm_fuzz::firmware::run,
        "module_card_data" => picohsm_fuzz::module::run,
        "wire_codecs" => picohsm_fuzz::wire::run,
        t => panic!("no target {t}"),
    };
    for f in args {
        let data = std::fs::read(&f).expect("read input");
        run(&data);
        println!("{f}: ok");
    }
}
