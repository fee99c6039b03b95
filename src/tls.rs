//! TLS: how the same server speaks `https://` and `wss://`.
//!
//! TLS wraps the TCP connection *before* any HTTP is spoken. The client and server agree on
//! keys in a handshake; from then on every byte, the `GET /price` request, the WebSocket
//! upgrade and each frame after it, travels encrypted (confidentiality) and
//! authenticated (integrity: a byte changed on the way fails the check). The server proves
//! its identity with a *certificate*: a public key plus the names it may answer for, signed
//! by someone the client trusts. `wss://` is nothing more than the WebSocket protocol inside
//! that tunnel, which is why one TLS listener serves the page, `/price` and `/ws` alike.
//!
//! This module turns the start-up flags into an [`Identity`] (a certificate chain and its
//! private key) and an [`Identity::server_config`] for rustls:
//!
//! * `--tls-cert FILE --tls-key FILE`: PEM files, e.g. from Let's Encrypt or `mkcert`
//!   ([`Identity::from_files`]);
//! * `--tls-self-signed`: a certificate made at start-up for `localhost`, `127.0.0.1` and
//!   `::1` ([`self_signed`]). No authority vouches for it, so a browser warns until you
//!   trust it; comparing its SHA-256 [fingerprint](Identity::fingerprint) with the one the
//!   server printed is how you know the warning is about *this* server.
//!
//! Every failure is one [`TlsError`] line naming the file and what to do, found at start-up
//! rather than at the first connection.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::config::Config;

/// How long a generated certificate stays valid: a classroom week or two, not years. It is
/// made again at every start anyway.
pub const SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

/// Names every generated certificate covers: what a learner types on the machine itself.
pub const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Why TLS could not be set up. Each message is one line: what was wrong, with which file,
/// and what is expected instead.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read (missing, a directory, no permission).
    // The OS reason is part of the one line, not a `source` (anyhow's `{:#}` would print it
    // twice).
    #[error("cannot read {flag} {path}: {reason}")]
    Read {
        /// `--tls-cert` or `--tls-key`.
        flag: &'static str,
        /// The file as given.
        path: PathBuf,
        /// What the operating system said.
        reason: std::io::Error,
    },
    /// The file was read but holds no usable PEM block of the expected kind.
    #[error("{what} holds no {expected} ({detail})")]
    Pem {
        /// The flag and file, or "the generated certificate".
        what: String,
        /// The PEM block that was expected.
        expected: &'static str,
        /// What the PEM reader found instead.
        detail: String,
    },
    /// The private key is valid but belongs to another certificate: a TLS client would reject
    /// every handshake, so the server refuses to start.
    #[error(
        "{key} does not belong to the certificate in {cert}: their public keys differ (was the key regenerated, or the files swapped?)"
    )]
    KeyMismatch {
        /// Where the certificate came from.
        cert: String,
        /// Where the key came from.
        key: String,
    },
    /// rustls refused the certificate or key for another reason (e.g. an unsupported key type).
    #[error(
        "cannot use the certificate {cert} with the key {key}: {reason} (supported keys: RSA of 2048 to 8192 bits, ECDSA P-256 or P-384, Ed25519)"
    )]
    Unusable {
        /// Where the certificate came from.
        cert: String,
        /// Where the key came from.
        key: String,
        /// rustls's reason.
        reason: rustls::Error,
    },
    /// Generating a self-signed certificate failed.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(rcgen::Error),
}

/// Where an [`Identity`] came from, so the binary can tell the learner what it serves.
#[derive(Debug)]
pub enum Origin {
    /// `--tls-cert` and `--tls-key`.
    Files {
        /// The certificate chain file.
        cert: PathBuf,
        /// The private key file.
        key: PathBuf,
    },
    /// `--tls-self-signed`: generated at start-up; the PEM text is kept so it can be written
    /// out for the learner to trust (see [`SelfSigned::write_to`]).
    SelfSigned(SelfSigned),
}

/// A freshly generated self-signed certificate and its private key, as PEM text.
#[derive(Clone)]
pub struct SelfSigned {
    /// The certificate (`-----BEGIN CERTIFICATE-----`): public, give it to clients to trust.
    pub cert_pem: String,
    /// The private key (`-----BEGIN PRIVATE KEY-----`): whoever has it can impersonate the
    /// server for these names, so it is written readable by its owner only.
    pub key_pem: String,
    /// The names the certificate covers (DNS names and IP addresses).
    pub names: Vec<String>,
}

/// A certificate chain and the private key that matches its first certificate: what a
/// server needs to prove who it is.
#[derive(Debug)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    origin: Origin,
}

/// A certificate date a client would reject: worth a warning, not a refusal to start (the
/// learner may want to see exactly how a browser reacts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateProblem {
    /// `notAfter` is in the past.
    Expired {
        /// The day it expired (UTC), `YYYY-MM-DD`.
        on: String,
    },
    /// `notBefore` is in the future (or this machine's clock is behind).
    NotYetValid {
        /// The day it becomes valid (UTC), `YYYY-MM-DD`.
        from: String,
    },
}

impl std::fmt::Display for DateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DateProblem::Expired { on } => write!(
                f,
                "the certificate expired on {on}: clients will refuse it until it is renewed"
            ),
            DateProblem::NotYetValid { from } => write!(
                f,
                "the certificate is not valid before {from} (is this machine's clock right?): clients will refuse it"
            ),
        }
    }
}

/// Generates a self-signed certificate (ECDSA P-256) for [`SELF_SIGNED_NAMES`] plus `extra`
/// names (e.g. the `--host` a classroom connects to), valid from a day ago (clocks on a LAN
/// differ) for [`SELF_SIGNED_VALIDITY`].
///
/// Tests use this to make a certificate they can trust: its `cert_pem` is the root a client
/// needs.
pub fn self_signed(extra: &[&str]) -> Result<SelfSigned, TlsError> {
    let mut names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|s| s.to_string()).collect();
    for name in extra {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    let now = time::OffsetDateTime::now_utc();
    let validity = time::Duration::try_from(SELF_SIGNED_VALIDITY).unwrap_or(time::Duration::DAY);
    generate(names, now - time::Duration::DAY, now + validity)
}

/// Generates a self-signed certificate for `names` valid between the two dates. Public so
/// tests can make an expired one; use [`self_signed`] otherwise.
pub fn generate(
    names: Vec<String>,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> Result<SelfSigned, TlsError> {
    generate_inner(names, not_before, not_after).map_err(TlsError::Generate)
}

fn generate_inner(
    names: Vec<String>,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> Result<SelfSigned, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(names.clone())?;
    params.not_before = not_before;
    params.not_after = not_after;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tickerlab (self-signed)");
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(SelfSigned {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        names,
    })
}

impl std::fmt::Debug for SelfSigned {
    /// Like the rustls key types, never prints the private key (logs get shared).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSigned")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[secret key elided]")
            .field("names", &self.names)
            .finish()
    }
}

impl SelfSigned {
    /// Writes `cert.pem` and `key.pem` into `dir` (created if needed) and returns their
    /// paths. With them, the next run can keep the same certificate:
    /// `--tls-cert DIR/cert.pem --tls-key DIR/key.pem`.
    ///
    /// The temporary directory is shared with every user of the machine, so the directory
    /// is made private (Unix: `0700`), and one that already exists is used only if it is
    /// private too ([`check_private_dir`]): another user could have created it first and
    /// planted their own `cert.pem`, which `curl --cacert` would then trust. Old files are
    /// removed and created afresh rather than written through (a planted link could point
    /// at one of your files). The key is readable by its owner only.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
        check_private_dir(dir)?;
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        write_new(&cert, &self.cert_pem, 0o644)?;
        write_new(&key, &self.key_pem, 0o600)?;
        Ok((cert, key))
    }

    /// Where the binary writes a generated certificate for a server on `port`: a directory
    /// per port under the system's temporary directory, so two servers never overwrite each
    /// other's files and nothing lands in the project (where a key could get committed).
    pub fn default_dir(port: u16) -> PathBuf {
        std::env::temp_dir().join(format!("tickerlab-tls-{port}"))
    }
}

/// Refuses a directory that someone else could have written to: a symbolic link, a
/// directory owned by another user, or one that group or others may access (Unix mode bits
/// `0o077`). `DirBuilder::mode` applies only when *we* create the directory, so an existing
/// one must be checked: whoever controls it controls the certificate written there. The
/// error is one line naming the directory and what to do.
pub fn check_private_dir(dir: &Path) -> std::io::Result<()> {
    let refuse = |why: String| {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "refusing {}: {why}; remove it (or make it yours, mode 0700) and start again",
                dir.display()
            ),
        ))
    };
    let metadata = std::fs::symlink_metadata(dir)?;
    if metadata.file_type().is_symlink() {
        return refuse("it is a symbolic link, not a directory of our own".into());
    }
    if !metadata.is_dir() {
        return refuse("it is not a directory".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if metadata.uid() != me {
            return refuse(format!(
                "it belongs to user id {}, not to this user ({me})",
                metadata.uid()
            ));
        }
        let mode = metadata.mode() & 0o777;
        if mode & 0o077 != 0 {
            return refuse(format!(
                "its mode is {mode:04o}, so group or others may change what is in it"
            ));
        }
    }
    Ok(())
}

/// Replaces `path` with a new file holding `text` (Unix permissions `mode`).
fn write_new(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    // `create_new` fails rather than follow a link that appeared in between.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    std::io::Write::write_all(&mut options.open(path)?, text.as_bytes())
}

/// The identity `config` asks for: `None` for plain HTTP, otherwise loaded from the files or
/// generated. Assumes `config` passed [`Config::validate`].
pub fn identity_for(config: &Config) -> Result<Option<Identity>, TlsError> {
    if config.tls_self_signed {
        // A specific --host (not 0.0.0.0, not a loopback) is where clients will connect.
        let host = config.host.as_str();
        let extra: Vec<&str> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.is_unspecified() || ip.is_loopback() => vec![],
            _ => vec![host],
        };
        return Identity::self_signed(self_signed(&extra)?).map(Some);
    }
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Identity::from_files(cert, key).map(Some),
        _ => Ok(None),
    }
}

impl Identity {
    /// Loads a PEM certificate chain (server certificate first, then any intermediates) and
    /// a PEM private key (PKCS#8, PKCS#1 or SEC1), and checks that they belong together.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let read = |flag, path: &Path| {
            std::fs::read(path).map_err(|reason| TlsError::Read {
                flag,
                path: path.to_owned(),
                reason,
            })
        };
        let cert_pem = read("--tls-cert", cert)?;
        let key_pem = read("--tls-key", key)?;
        let origin = Origin::Files {
            cert: cert.to_owned(),
            key: key.to_owned(),
        };
        Identity::parse(&cert_pem, &key_pem, origin)
    }

    /// Wraps a generated certificate, through the same parsing and checks as files get.
    pub fn self_signed(generated: SelfSigned) -> Result<Identity, TlsError> {
        let (cert_pem, key_pem) = (generated.cert_pem.clone(), generated.key_pem.clone());
        Identity::parse(
            cert_pem.as_bytes(),
            key_pem.as_bytes(),
            Origin::SelfSigned(generated),
        )
    }

    fn parse(cert_pem: &[u8], key_pem: &[u8], origin: Origin) -> Result<Identity, TlsError> {
        let (cert_name, key_name) = origin.names();
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string());
        let chain = match chain {
            Ok(chain) if !chain.is_empty() => chain,
            other => {
                return Err(TlsError::Pem {
                    what: cert_name,
                    expected: "PEM certificate",
                    detail: other
                        .err()
                        .unwrap_or_else(|| "no -----BEGIN CERTIFICATE----- block".into()),
                });
            }
        };
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem {
            what: key_name,
            expected: "PEM private key",
            detail: match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY block".into()
                }
                other => other.to_string(),
            },
        })?;
        let identity = Identity { chain, key, origin };
        // Building the rustls config once here checks the key parses and matches the
        // certificate, so a mismatch stops the start instead of failing every handshake.
        identity.server_config()?;
        Ok(identity)
    }

    /// A rustls server configuration presenting this identity, with the `ring` crypto
    /// provider (pure Rust and assembly: no cmake or clang needed to build it). actix-web
    /// adds the `http/1.1` ALPN protocol itself.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let (cert, key) = self.origin.names();
        rustls::ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_safe_default_protocol_versions()
            .and_then(|builder| {
                builder
                    .with_no_client_auth()
                    .with_single_cert(self.chain.clone(), self.key.clone_key())
            })
            .map_err(|reason| match reason {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    TlsError::KeyMismatch { cert, key }
                }
                reason => TlsError::Unusable { cert, key, reason },
            })
    }

    /// The server's own certificate (the first of the chain), DER-encoded: what a client
    /// that trusts exactly this server adds to its roots.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// SHA-256 of the server certificate, as uppercase hex pairs joined by `:`, the form
    /// browsers show under "certificate details". Equal fingerprints mean the same
    /// certificate, so a learner can check a browser warning against the server's output.
    pub fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.certificate());
        let mut out = String::with_capacity(95);
        for (i, byte) in digest.as_ref().iter().enumerate() {
            let sep = if i == 0 { "" } else { ":" };
            let _ = write!(out, "{sep}{byte:02X}");
        }
        out
    }

    /// Where this identity came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Whether a client would refuse the certificate's dates at `now`.
    ///
    /// It asks rustls's own verifier, as a client trusting this very certificate would. The
    /// verifier checks the dates before it looks for an issuer, so the answer is right for a
    /// certificate from an authority too; its other verdicts (unknown issuer, which name)
    /// are a client's business, not the server's.
    pub fn date_problem(&self, now: UnixTime) -> Option<DateProblem> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.certificate().clone()).ok()?;
        let parsed = rustls::server::ParsedCertificate::try_from(self.certificate()).ok()?;
        let result = rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            &self.chain[1..],
            now,
            provider::default_provider()
                .signature_verification_algorithms
                .all,
        );
        use rustls::CertificateError as E;
        match result {
            Err(rustls::Error::InvalidCertificate(E::ExpiredContext { not_after, .. })) => {
                Some(DateProblem::Expired { on: day(not_after) })
            }
            Err(rustls::Error::InvalidCertificate(E::NotValidYetContext {
                not_before, ..
            })) => Some(DateProblem::NotYetValid {
                from: day(not_before),
            }),
            _ => None,
        }
    }
}

impl Origin {
    /// How errors name the certificate and the key.
    fn names(&self) -> (String, String) {
        match self {
            Origin::Files { cert, key } => (
                format!("--tls-cert {}", cert.display()),
                format!("--tls-key {}", key.display()),
            ),
            Origin::SelfSigned(_) => (
                "the generated certificate".into(),
                "the generated key".into(),
            ),
        }
    }
}

/// A Unix time as its UTC day, `YYYY-MM-DD`.
fn day(t: UnixTime) -> String {
    let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| format!("{secs} s after 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_32_colon_separated_hex_pairs_and_stable() {
        let identity = Identity::self_signed(self_signed(&[]).unwrap()).unwrap();
        let fp = identity.fingerprint();
        assert_eq!(fp.split(':').count(), 32, "{fp}");
        assert!(fp.split(':').all(|pair| {
            pair.len() == 2
                && pair
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        }));
        assert_eq!(fp, identity.fingerprint());
    }

    #[test]
    fn two_generated_certificates_differ() {
        let a = Identity::self_signed(self_signed(&[]).unwrap()).unwrap();
        let b = Identity::self_signed(self_signed(&[]).unwrap()).unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn written_files_load_back_and_are_replaced_not_appended() {
        let dir = std::env::temp_dir().join(format!("tickerlab-tls-unit-{}", std::process::id()));
        let first = self_signed(&[]).unwrap();
        first.write_to(&dir).unwrap();
        let second = self_signed(&[]).unwrap();
        let (cert, key) = second.write_to(&dir).unwrap();
        let loaded = Identity::from_files(&cert, &key).unwrap();
        let expected = Identity::self_signed(second).unwrap();
        assert_eq!(loaded.fingerprint(), expected.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is private: {mode:o}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn extra_names_are_added_once() {
        let generated = self_signed(&["192.168.1.20", "localhost"]).unwrap();
        assert_eq!(
            generated.names,
            ["localhost", "127.0.0.1", "::1", "192.168.1.20"]
        );
    }

    #[test]
    fn a_fresh_certificate_has_no_date_problem_and_an_old_one_has() {
        let fresh = Identity::self_signed(self_signed(&[]).unwrap()).unwrap();
        assert_eq!(fresh.date_problem(UnixTime::now()), None);

        let old = generate(
            vec!["localhost".into()],
            rcgen::date_time_ymd(2000, 1, 1),
            rcgen::date_time_ymd(2001, 2, 3),
        )
        .unwrap();
        let old = Identity::self_signed(old).unwrap();
        assert_eq!(
            old.date_problem(UnixTime::now()),
            Some(DateProblem::Expired {
                on: "2001-02-03".into()
            })
        );
        let early = UnixTime::since_unix_epoch(Duration::from_secs(0));
        assert_eq!(
            old.date_problem(early),
            Some(DateProblem::NotYetValid {
                from: "2000-01-01".into()
            })
        );
    }

    #[test]
    fn a_key_from_another_certificate_is_refused_by_name() {
        let a = self_signed(&[]).unwrap();
        let b = self_signed(&[]).unwrap();
        let mixed = SelfSigned {
            key_pem: b.key_pem,
            ..a
        };
        let err = Identity::self_signed(mixed).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("does not belong"), "{err}");
    }

    #[test]
    fn a_key_block_rustls_cannot_parse_is_refused_with_the_supported_kinds() {
        let a = self_signed(&[]).unwrap();
        let garbage = SelfSigned {
            key_pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
            ..a
        };
        let err = Identity::self_signed(garbage).unwrap_err();
        assert!(matches!(err, TlsError::Unusable { .. }), "{err}");
        assert!(err.to_string().contains("supported keys: RSA"), "{err}");
    }

    #[test]
    fn text_that_is_not_pem_is_refused_with_what_was_expected() {
        let a = self_signed(&[]).unwrap();
        let no_cert = SelfSigned {
            cert_pem: "hello".into(),
            ..a.clone()
        };
        let err = Identity::self_signed(no_cert).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let no_key = SelfSigned {
            key_pem: a.cert_pem.clone(),
            ..a
        };
        let err = Identity::self_signed(no_key).unwrap_err().to_string();
        assert!(err.contains("no PEM private key"), "{err}");
    }
}
