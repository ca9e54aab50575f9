//! `picohsm-tool`: administration of Pico HSM / SmartCard-HSM tokens over
//! PC/SC, with Public Key Authentication (PKA) from set-up to a test login.
//!
//! Every command speaks the wire protocol of the project's reference
//! (`reference/protocol.md`) through the module's card driver
//! (`picohsm_pkcs11::card`); the PKA login is the module's own
//! (`picohsm_pkcs11::pka::round`), so what `pka login` shows is what an
//! application's C_Login does.

mod device;
mod fail;
mod init;
mod keygen;
mod list;
mod out;
mod p11export;
mod pin;
mod pka;
mod pka_login;

use clap::Parser;

// At the crate root, so the commands' `crate::cli::…` paths resolve.
use cli::{Cli, Command, PinCommand, PkaCommand};
use out::Out;
use picohsm_tool::cli;

fn main() {
    let cli = Cli::parse();
    let mut out = Out::new(cli.json);
    let result = match &cli.command {
        Command::List => list::run(&cli, &mut out),
        Command::Init(a) => init::run(&cli, a, &mut out),
        Command::Keygen(a) => keygen::run(&cli, a, &mut out),
        Command::Pka(p) => match p {
            PkaCommand::Export(a) => pka::export(&cli, a, &mut out),
            PkaCommand::Register(a) => pka::register(&cli, a, &mut out),
            PkaCommand::Status => pka::status(&cli, &mut out),
            PkaCommand::Login(a) => pka_login::run(&cli, a, &mut out),
        },
        Command::Pin(p) => match p {
            PinCommand::Change(a) => pin::change(&cli, a, &mut out),
            PinCommand::Unblock(a) => pin::unblock(&cli, a, &mut out),
        },
    };
    let code = match result {
        Ok(value) => {
            out.finish(value);
            fail::OK
        }
        Err(f) => {
            out.fail(&f);
            f.code
        }
    };
    std::process::exit(code);
}
