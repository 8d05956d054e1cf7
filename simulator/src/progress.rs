//! The progress bar over simulated days. It draws on stderr, so stdout carries only the summary
//! (and can be piped), and it is hidden entirely when stdout is not a terminal or the run is
//! quiet: CI logs get no carriage-return noise and nothing of it lands in captured output.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const TEMPLATE: &str = "{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} days  {prefix}  {msg}";

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(total_days: u64, quiet: bool) -> Self {
        // indicatif's stderr target hides itself when stderr is not a terminal; stdout is
        // checked here because a redirected stdout means a log is being kept.
        let visible = !quiet && std::io::stdout().is_terminal();
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total_days), target);
        // A bad template is our bug, not the run's: fall back to the plain bar rather than fail.
        let style =
            ProgressStyle::with_template(TEMPLATE).unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        if !bar.is_hidden() {
            // Keeps the elapsed time moving through a long faulted day with no events.
            bar.enable_steady_tick(Duration::from_millis(250));
        }
        Self { bar }
    }

    /// One simulated day done.
    pub fn day(&self, day: &str, signals: u64) {
        self.bar.set_prefix(format!("{day}, {signals} signals"));
        self.bar.inc(1);
    }

    /// What the run is doing now, e.g. a fault being injected or the final wait for quiet.
    pub fn message(&self, text: impl Into<String>) {
        self.bar.set_message(text.into());
    }

    pub fn finish(&self) {
        self.bar.finish();
    }

    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_is_hidden_and_still_counts() {
        let progress = Progress::new(3, true);
        assert!(progress.is_hidden());
        progress.day("2026-03-01", 12);
        progress.message("hub-down");
        progress.day("2026-03-02", 30);
        assert_eq!(progress.bar.position(), 2);
        assert_eq!(progress.bar.prefix(), "2026-03-02, 30 signals");
        assert_eq!(progress.bar.message(), "hub-down");
        progress.finish();
        assert!(progress.bar.is_finished());
    }

    #[test]
    fn hidden_when_stdout_is_not_a_terminal() {
        // Under `cargo test` stdout is captured or piped, as in CI; if it happens to be a
        // terminal, the other branch applies and there is nothing to check.
        if !std::io::stdout().is_terminal() {
            assert!(Progress::new(3, false).is_hidden());
        }
    }
}
