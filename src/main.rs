//! The `tickerlab` binary: parse the flags, set up logging, bind, print the URL, serve until
//! Ctrl-C or SIGTERM. Everything else lives in the library, where tests can reach it.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::Parser;
use tickerlab::Config;
use tracing::field::{Field, Visit};
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Leaves out the one line actix-http's dispatcher logs, at ERROR, for every WebSocket whose
/// session ends: a response body that ends with an error is how the server closes the
/// connection at the end of a session (see `http::ws::closing`), and the error says so
/// ("WebSocket session over"). Every other line of the dispatcher's, errors included, is
/// kept.
struct NotASessionEnd;

impl<S> Filter<S> for NotASessionEnd {
    fn enabled(&self, _: &tracing::Metadata<'_>, _: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &tracing::Event<'_>, _: &Context<'_, S>) -> bool {
        if event.metadata().target() != "actix_http::h1::dispatcher" {
            return true;
        }
        struct SessionOver(bool);
        impl Visit for SessionOver {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 |= format!("{value:?}").contains("WebSocket session over");
                }
            }
        }
        let mut visitor = SessionOver(false);
        event.record(&mut visitor);
        !visitor.0
    }
}

#[actix_web::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    // Logs go to stderr, so stdout carries only what a person or a script needs: the URL.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter.and(NotASessionEnd)),
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
    let signal = shutdown_signal();
    let addr = app.local_addr();
    let shown = if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    let mut report = format!("tickerlab listening on {}://{shown}\n", app.scheme());
    if let (Some(lab), Some(rtt_ms)) = (app.lab_addr(), config.lab_rtt_ms) {
        // The same app and feed through the relay: open both URLs in two tabs to compare.
        let jitter = match config.lab_jitter_ms {
            0 => String::new(),
            ms => format!(", up to {ms} ms jitter each way"),
        };
        report.push_str(&format!(
            "simulated network ({rtt_ms} ms round trip{jitter}) on {}://{}:{}\n",
            app.scheme(),
            shown
                .rsplit_once(':')
                .map_or(shown.as_str(), |(host, _)| host),
            lab.port()
        ));
    }
    if let Some(identity) = app.tls() {
        report.push_str(&tls_report(identity, addr.port())?);
    }
    // Last, after the lines scripts read by position. The key is the class view's only lock:
    // printed here, on the instructor's terminal, and never logged.
    report.push_str(&format!(
        "class view (for the instructor's projector): {}://{shown}/class?key={}\n",
        app.scheme(),
        app.class_key()
    ));
    // One write, errors ignored: a reader that stops early (`tickerlab | head -1`) must not
    // take the server down with a broken-pipe panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), report.as_bytes());
    let stopper = app.stopper();
    actix_web::rt::spawn(async move {
        signal.await;
        tracing::info!("shutting down: closing WebSockets with 1001, finishing requests");
        stopper.stop().await;
    });
    app.run().await?;
    Ok(())
}

/// Tells the learner what certificate is served and how to trust it: its SHA-256
/// fingerprint (to compare with the browser's certificate viewer) and, for a generated one,
/// where its PEM files are. Returns the lines for stdout; date problems go to stderr as
/// warnings, since the server still starts; a certificate directory that is not private is
/// an error (see `tls::check_private_dir`).
fn tls_report(identity: &tickerlab::tls::Identity, port: u16) -> anyhow::Result<String> {
    use tickerlab::tls::{Origin, SelfSigned};
    let mut report = format!(
        "TLS certificate SHA-256 fingerprint: {}\n",
        identity.fingerprint()
    );
    match identity.origin() {
        Origin::Files { cert, .. } => {
            report.push_str(&format!("TLS certificate from {}\n", cert.display()));
        }
        Origin::SelfSigned(generated) => {
            let dir = SelfSigned::default_dir(port);
            match generated.write_to(&dir) {
                Ok((cert, key)) => report.push_str(&format!(
                    "self-signed for {}; wrote {} and {}\ntry: curl --cacert {} https://localhost:{port}/price\n",
                    generated.names.join(", "),
                    cert.display(),
                    key.display(),
                    cert.display(),
                )),
                // Refused, not a warning: a directory someone else controls may already
                // hold *their* cert.pem, and the line above would tell the learner to trust it.
                Err(e) => anyhow::bail!("cannot write the certificate to {}: {e}", dir.display()),
            }
        }
    }
    if let Some(problem) = identity.date_problem(rustls::pki_types::UnixTime::now()) {
        eprintln!("tickerlab: warning: {problem}");
    }
    Ok(report)
}

/// Registers the handlers for Ctrl-C (SIGINT) and, on Unix, SIGTERM (what `kill` and service
/// managers send) *now*, and returns a future that resolves on the first of them. Registering
/// before the URL is printed means a signal sent the moment the server is announced is
/// already a graceful shutdown, not the default "terminate at once".
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let streams = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        );
        async move {
            match streams {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
