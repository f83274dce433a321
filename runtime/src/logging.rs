//! JSON logs on stdout, one object per line, filtered by a level or tracing directives.

use tracing_subscriber::EnvFilter;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter is neither a level nor valid directives.
    #[error(
        "invalid log level {filter:?}: use error, warn, info, debug or trace, or directives like ferrolb=debug,kube=info"
    )]
    ParseFilter {
        /// The filter as given.
        filter: String,
        /// What the parser objected to.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed.
    #[error("installing the log subscriber")]
    Install(#[source] tracing_subscriber::util::TryInitError),
}

/// Parses a log filter: a level (`info`) or tracing directives (`ferrolb=debug,kube=info`).
pub fn filter(filter: &str) -> Result<EnvFilter, LoggingError> {
    EnvFilter::builder()
        .parse(filter)
        .map_err(|source| LoggingError::ParseFilter {
            filter: filter.to_owned(),
            source,
        })
}

/// Installs the process's JSON logger. Call once, first thing in `main`.
pub fn init(level: &str) -> Result<(), LoggingError> {
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter(level)?)
        .with_writer(std::io::stdout)
        .finish()
        .try_init()
        .map_err(LoggingError::Install)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_parse() {
        for ok in ["info", "debug", "warn", "ferrolb=debug,kube=info", "trace"] {
            assert!(filter(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn a_bad_filter_says_what_is_accepted() {
        let err = filter("ferrolb=loud").unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("invalid log level \"ferrolb=loud\""),
            "{message}"
        );
        assert!(
            message.contains("error, warn, info, debug or trace"),
            "{message}"
        );
    }
}
