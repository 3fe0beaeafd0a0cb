//! The `quire` binary: parse the command line, then hand over to the library.

use clap::Parser;
use quire::config::{Cli, Command, Config};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            quire::telemetry::init_logging(args.common.log_format);
            match Config::from_serve(&args) {
                Ok(config) => quire::run_serve(config).await,
                Err(e) => {
                    eprintln!("quire: configuration error: {e}");
                    std::process::exit(2);
                }
            }
        }
        Command::Dev(args) => {
            quire::telemetry::init_logging(args.common.log_format);
            quire::dev::run(args).await
        }
    };
    if let Err(e) = result {
        eprintln!("quire: {e:#}");
        std::process::exit(1);
    }
}
