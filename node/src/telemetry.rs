//! Logging set-up. Log lines carry ids, counts and codes; never a BSN, name or contact.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber, writing to stderr. `RUST_LOG` overrides the configured filter.
pub fn init(settings: &LogSettings, rust_log: Option<String>) {
    let filter = rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .or_else(|| EnvFilter::try_new(&settings.filter).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// An error with its source chain on one line, for a log field. vix errors name tables, fields
/// and codes, never personal data.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // Many errors (tonic's Status, transport errors) repeat their source's text in their
        // own; a cause already said is left out, so a line says each thing once.
        let text = cause.to_string();
        if !chain.contains(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        source = cause.source();
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: String,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layer(text: &str, source: Option<Layer>) -> Layer {
        Layer {
            text: text.to_owned(),
            source: source.map(Box::new),
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let inner = layer("none of 2 addresses reachable", None);
        let middle = layer(
            "transport error: none of 2 addresses reachable",
            Some(inner),
        );
        let outer = layer("the hub", Some(middle));
        assert_eq!(
            error_chain(&outer),
            "the hub: transport error: none of 2 addresses reachable"
        );
        let plain = layer("a", Some(layer("b", Some(layer("c", None)))));
        assert_eq!(error_chain(&plain), "a: b: c");
    }
}
