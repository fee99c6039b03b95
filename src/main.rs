//! The `tickerlab` binary: parse the flags, set up logging, bind, print the URL, serve until
//! Ctrl-C or SIGTERM. Everything else lives in the library, where tests can reach it.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::Parser;
use tickerlab::Config;
use tracing_subscriber::EnvFilter;

#[actix_web::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tickerlab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let wanted = format!("{}:{}", config.host, config.port);
    let listener = TcpListener::bind(&wanted).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                " (another program, perhaps another tickerlab, uses this port: try --port 8081)"
            }
            std::io::ErrorKind::PermissionDenied => {
                " (ports below 1024 need privileges: try --port 8080)"
            }
            _ => "",
        };
        anyhow::anyhow!("cannot listen on {wanted}: {e}{hint}")
    })?;
    let app = tickerlab::serve(config.clone(), listener)?;
    let addr = app.local_addr();
    let shown = if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    println!("tickerlab listening on {}://{shown}", app.scheme());
    if let Some(identity) = app.tls() {
        print_tls(identity, addr.port());
    }
    let stopper = app.stopper();
    actix_web::rt::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: closing WebSockets with 1001, finishing requests");
        stopper.stop().await;
    });
    app.run().await?;
    Ok(())
}

/// Tells the learner what certificate is served and how to trust it: its SHA-256
/// fingerprint (to compare with the browser's certificate viewer) and, for a generated one,
/// where its PEM files are. A date problem is a warning: the server still starts.
fn print_tls(identity: &tickerlab::tls::Identity, port: u16) {
    use tickerlab::tls::{Origin, SelfSigned};
    println!(
        "TLS certificate SHA-256 fingerprint: {}",
        identity.fingerprint()
    );
    match identity.origin() {
        Origin::Files { cert, .. } => println!("TLS certificate from {}", cert.display()),
        Origin::SelfSigned(generated) => {
            let dir = SelfSigned::default_dir(port);
            match generated.write_to(&dir) {
                Ok((cert, key)) => {
                    println!(
                        "self-signed for {}; wrote {} and {}",
                        generated.names.join(", "),
                        cert.display(),
                        key.display()
                    );
                    println!(
                        "try: curl --cacert {} https://localhost:{port}/price",
                        cert.display()
                    );
                }
                Err(e) => eprintln!(
                    "tickerlab: warning: cannot write the certificate to {}: {e} (serving it anyway)",
                    dir.display()
                ),
            }
        }
    }
    let now = rustls::pki_types::UnixTime::now();
    if let Some(problem) = identity.date_problem(now) {
        eprintln!("tickerlab: warning: {problem}");
    }
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM (what `kill` and service managers send).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
