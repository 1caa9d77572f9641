//! The progress bar `sync` and `reconcile` draw on a terminal, fed by the engine's [`Progress`] values. The
//! engine only reports; drawing (and whether to draw at all) is the command's business.

use crate::sync::engine::{Progress, ProgressFn};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the bar redraws on its own (so the elapsed time moves while a slow page is awaited).
const TICK: Duration = Duration::from_millis(200);

/// The bar's layout: windows done of planned, events and rate, elapsed and remaining time.
const TEMPLATE: &str =
    "{spinner} [{bar:30}] {pos}/{len} windows  {msg}  {elapsed_precise} (eta {eta})";

/// A receiver of progress that draws a bar on stderr when `draw` is set, and otherwise does nothing.
pub fn reporter(draw: bool) -> ProgressFn {
    if !draw {
        return Arc::new(|_| {});
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(TEMPLATE)
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    let received = AtomicU64::new(0);
    let started = Instant::now();
    Arc::new(move |event| match event {
        Progress::Started { windows } => {
            bar.set_length(windows as u64);
            bar.enable_steady_tick(TICK);
        }
        Progress::Page { items } => {
            let total = received.fetch_add(items as u64, Ordering::Relaxed) + items as u64;
            let rate = total as f64 / started.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!("{total} events ({rate:.0}/s)"));
        }
        Progress::WindowDone => bar.inc(1),
        Progress::Finished => bar.finish_and_clear(),
    })
}
