//! The `convert` subcommand's I/O: read files or stdin, write YAML to stdout and findings to
//! stderr. Exit status 0 when the objects were written (warnings included), 1 when an error
//! kept them back, 2 when the input could not be read.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::{Options, Severity, convert, input};

/// Converts MetalLB configuration into ferrolb.io objects.
///
/// Reads metallb.io/v1beta1 and v1beta2 IPAddressPool, L2Advertisement, BGPAdvertisement,
/// BGPPeer and Community objects, and the Secrets BGPPeers use. Writes ferrolb's objects to
/// stdout as YAML, and to stderr what could not be carried over, and why. Writes nothing to
/// stdout (exit status 1) when an object cannot be converted.
///
///   kubectl get -n metallb-system -o yaml ipaddresspools,l2advertisements,\
///     bgpadvertisements,bgppeers,communities,secrets \
///     | ferrolb-controller convert > ferrolb-config.yaml
#[derive(Debug, Clone, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ConvertArgs {
    /// MetalLB manifests: YAML or JSON, several documents per file, kubectl's List objects
    /// too. None, or "-": standard input.
    pub files: Vec<PathBuf>,

    /// The namespace ferrolb is installed in. BGP password Secrets are written there: the
    /// speaker reads Secrets from no other namespace (and only those listed in the Helm value
    /// bgp.passwordSecrets).
    #[arg(long, default_value = "ferrolb-system")]
    pub secret_namespace: String,

    /// The namespace MetalLB runs in, assumed for manifests that name none (MetalLB reads its
    /// configuration and password Secrets from that namespace only).
    #[arg(long, default_value = "metallb-system")]
    pub metallb_namespace: String,
}

/// Why the input or output failed.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("reading {path}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading standard input")]
    ReadStdin(#[source] std::io::Error),
    #[error("writing the converted objects")]
    Write(#[source] std::io::Error),
}

/// What became of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The objects were written.
    Written,
    /// Errors were reported; nothing was written.
    Refused,
}

/// Runs `convert` with the process's stdio and turns the result into an exit status.
pub fn main(args: &ConvertArgs) -> ExitCode {
    let stdin = std::io::stdin();
    let mut stderr = std::io::stderr();
    match run(args, stdin.lock(), std::io::stdout().lock(), &mut stderr) {
        Ok(Outcome::Written) => ExitCode::SUCCESS,
        Ok(Outcome::Refused) => ExitCode::from(1),
        Err(e) => {
            let mut message = format!("convert: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            let _ = writeln!(stderr, "{message}");
            ExitCode::from(2)
        }
    }
}

/// Reads, converts and writes. Findings and the summary go to `stderr` (failing to write them
/// is not an error: the objects are what matters).
pub fn run(
    args: &ConvertArgs,
    mut stdin: impl Read,
    mut stdout: impl Write,
    mut stderr: impl Write,
) -> Result<Outcome, ConvertError> {
    let options = Options {
        secret_namespace: args.secret_namespace.clone(),
        metallb_namespace: args.metallb_namespace.clone(),
    };
    let mut documents = Vec::new();
    let mut findings = Vec::new();
    let stdin_only = [PathBuf::from("-")];
    let files = if args.files.is_empty() {
        &stdin_only[..]
    } else {
        &args.files[..]
    };
    for path in files {
        let (source, text) = if path.as_os_str() == "-" {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(ConvertError::ReadStdin)?;
            ("<stdin>".to_owned(), text)
        } else {
            let source = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| ConvertError::ReadFile {
                path: source.clone(),
                source: e,
            })?;
            (source, text)
        };
        let (docs, read_findings) = input::read(&source, &text);
        documents.extend(docs);
        findings.extend(read_findings);
    }

    let mut conversion = convert(&documents, &options);
    findings.append(&mut conversion.findings);
    conversion.findings = findings;
    for finding in &conversion.findings {
        let _ = writeln!(stderr, "{finding}");
    }

    let count = |severity| {
        conversion
            .findings
            .iter()
            .filter(|f| f.severity() == severity)
            .count()
    };
    let (errors, warnings, notes) = (
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Note),
    );
    if errors > 0 {
        let _ = writeln!(
            stderr,
            "convert: {errors} error(s), {warnings} warning(s): nothing written"
        );
        return Ok(Outcome::Refused);
    }

    stdout
        .write_all(conversion.to_yaml().as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(ConvertError::Write)?;

    // Kinds in the order they are written.
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for c in &conversion.objects {
        match kinds.iter_mut().find(|(k, _)| *k == c.object.kind()) {
            Some((_, n)) => *n += 1,
            None => kinds.push((c.object.kind(), 1)),
        }
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let _ = writeln!(
        stderr,
        "convert: wrote {} object(s) ({}); {warnings} warning(s), {notes} note(s)",
        conversion.objects.len(),
        kinds.join(", ")
    );
    let secrets = conversion.password_secrets();
    if !secrets.is_empty() {
        let _ = writeln!(
            stderr,
            "convert: ferrolb's speaker reads only the password Secrets its Helm value \
             bgp.passwordSecrets lists, in namespace {}: set it to [{}]",
            options.secret_namespace,
            secrets
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(Outcome::Written)
}
