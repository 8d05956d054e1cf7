//! Every SQL statement the nodes of this test process run (at TRACE), captured from sqlx's own statement
//! log (`sqlx::query` events), so a test can check the query plan of each.
//!
//! sqlx runs SQLite statements on worker threads, so the capture is the process's global
//! subscriber; `TEST_LOG=1` adds the usual log output beside it.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

fn captured() -> &'static Mutex<BTreeSet<String>> {
    static STATEMENTS: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    STATEMENTS.get_or_init(Mutex::default)
}

/// The statements run so far in this process, whitespace collapsed, each once.
pub fn seen() -> BTreeSet<String> {
    captured().lock().expect("statement set").clone()
}

/// Whether `statement` is one of the PostgreSQL hub's: numbered parameters (SQLite's are `?`),
/// or a table, function or statement only PostgreSQL (the hub, sqlx's migrator) uses.
pub fn is_postgres(statement: &str) -> bool {
    statement.contains("$1")
        || [
            "audit_head",
            "region_heads",
            "pg_",
            "current_database()",
            "SET TRANSACTION",
        ]
        .iter()
        .any(|name| statement.contains(name))
}

/// Installs the process's subscriber: the capture, and a log for people when `TEST_LOG` is set.
pub(crate) fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let log = std::env::var_os("TEST_LOG").is_some().then(|| {
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(tracing_subscriber::EnvFilter::new("info"))
        });
        // The nodes log their statements at TRACE: the writer's as `vix::sql`, the readers'
        // through sqlx. Tests' own connections (which read the databases to check them) log
        // at sqlx's default, DEBUG, and are left out.
        let capture = Capture.with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
            matches!(metadata.target(), "sqlx::query" | "vix::sql")
                && *metadata.level() == tracing::Level::TRACE
        }));
        let _ = tracing_subscriber::registry()
            .with(capture)
            .with(log)
            .try_init();
    });
}

struct Capture;

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _context: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        // sqlx logs a short summary, and the whole statement in `db.statement` when the
        // summary is not all of it.
        let statement = if fields.statement.trim().is_empty() {
            fields.summary
        } else {
            fields.statement
        };
        let statement = statement.split_whitespace().collect::<Vec<_>>().join(" ");
        if !statement.is_empty()
            && let Ok(mut set) = captured().lock()
        {
            set.insert(statement);
        }
    }
}

#[derive(Default)]
struct Fields {
    summary: String,
    statement: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => value.clone_into(&mut self.summary),
            "db.statement" | "statement" => value.clone_into(&mut self.statement),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "summary" => self.summary = format!("{value:?}").trim_matches('"').to_owned(),
            "db.statement" | "statement" => {
                self.statement = format!("{value:?}").trim_matches('"').replace("\\n", "\n");
            }
            _ => {}
        }
    }
}
