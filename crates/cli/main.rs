//! The `cairn` command: a thin front end over the engine crates. Parses
//! arguments, gets the password, runs one command, and maps every failure to
//! a one-line message and an exit code (errors.rs).

mod cli;
mod commands;
mod errors;
mod output;
mod password;
mod progress;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            if errors::is_broken_pipe(&e) {
                // `cairn dump ... | head`: the reader went away; not an error worth a message.
                std::process::exit(errors::EXIT_BROKEN_PIPE);
            }
            eprintln!("{}", errors::message(&e));
            errors::exit_code(&e)
        }
    };
    std::process::exit(code);
}
