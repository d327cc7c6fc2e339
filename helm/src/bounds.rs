//! What one render may cost, so that a hostile chart (or values fed to `tpl`) cannot take
//! the daemon's memory or time: charts come from repositories skiff does not control, and
//! HelmCharts may come from namespace tokens.
//!
//! - **Text**: the rendered output of a whole render is at most [`MAX_OUTPUT_BYTES`]; any
//!   one string a template, `include` or `tpl` produces, or a string function (`repeat`,
//!   `indent`, `rand*`…) makes, at most [`MAX_TEXT_BYTES`] — checked while it is written,
//!   so the memory is never taken; and all the text every execution writes, `include`
//!   results counted again where they are used, at most [`MAX_PRODUCED_BYTES`] (an
//!   `include` that includes itself twice per level doubles at each level).
//! - **Nesting**: `include`/`tpl`/`template` calls nested at most [`MAX_NESTING`] deep in all
//!   (Helm's own bound of 1000 per template name stays; Go's exec depth of 100000 is not
//!   reachable on a Rust stack); each execution's `range` iterations at most
//!   [`MAX_RANGE_ITERATIONS`].
//! - **Sequences**: `until`, `untilStep`, `seq` produce at most [`MAX_SEQUENCE`] items.
//! - **Time**: a render stops after [`MAX_RENDER_TIME`], checked at each `include`/`tpl` and
//!   each time another 64 KiB of text has been written.
//!
//! A refusal names the bound and the template it was hit in.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The whole rendered output of one chart.
pub const MAX_OUTPUT_BYTES: usize = 32 << 20;
/// Any one string a template or a function produces.
pub const MAX_TEXT_BYTES: usize = 32 << 20;
/// All text written by every execution of one render (`include` results counted again).
pub const MAX_PRODUCED_BYTES: u64 = 256 << 20;
/// `include`/`tpl`/`template` nested, in all.
pub const MAX_NESTING: usize = 100;
/// `range` iterations of one execution (a template, an `include`, a `tpl`).
pub const MAX_RANGE_ITERATIONS: u64 = 1_000_000;
/// Items `until`/`untilStep`/`seq` may produce.
pub const MAX_SEQUENCE: usize = 100_000;
/// Wall-clock time of one render.
pub const MAX_RENDER_TIME: Duration = Duration::from_secs(60);

/// The budget of one render, shared by its executions.
#[derive(Debug)]
pub(crate) struct Budget {
    started: Instant,
    produced: AtomicU64,
    pub(crate) nesting: AtomicUsize,
    /// The first bound hit: the message the render fails with.
    exceeded: Mutex<Option<String>>,
}

impl Budget {
    pub(crate) fn new() -> Budget {
        Budget {
            started: Instant::now(),
            produced: AtomicU64::new(0),
            nesting: AtomicUsize::new(0),
            exceeded: Mutex::new(None),
        }
    }

    /// Records that a bound was hit (the first one wins) and returns the message.
    pub(crate) fn exceed(&self, message: String) -> String {
        if let Ok(mut e) = self.exceeded.lock() {
            if e.is_none() {
                *e = Some(message.clone());
            }
        }
        message
    }

    /// The bound hit, if any.
    pub(crate) fn exceeded(&self) -> Option<String> {
        self.exceeded.lock().ok().and_then(|e| e.clone())
    }

    /// Whether the render's time is up: the message if it is.
    pub(crate) fn check_time(&self, template: &str) -> Result<(), String> {
        if self.started.elapsed() > MAX_RENDER_TIME {
            return Err(self.exceed(format!(
                "the render took longer than {} s (skiff's bound on one render), in {template}",
                MAX_RENDER_TIME.as_secs()
            )));
        }
        Ok(())
    }

    /// Counts `n` bytes written, against the render's total; the clock is read each time
    /// another 64 KiB has been written (writes are many and small).
    fn produce(&self, n: usize, template: &str) -> Result<(), String> {
        let before = self.produced.fetch_add(n as u64, Ordering::Relaxed);
        let total = before + n as u64;
        if total > MAX_PRODUCED_BYTES {
            return Err(self.exceed(format!(
                "the templates produced more than {} MiB of text in all (skiff's bound on one render; an include that includes itself?), in {template}",
                MAX_PRODUCED_BYTES >> 20
            )));
        }
        if before >> 16 != total >> 16 {
            self.check_time(template)?;
        }
        Ok(())
    }
}

/// A `fmt::Write` target that refuses to grow past `limit` bytes and counts what it is given
/// against the render's budget; a refusal is recorded in the budget (gotmpl only sees
/// `fmt::Error`).
pub(crate) struct BoundedWriter<'a> {
    pub(crate) text: String,
    limit: usize,
    /// What the limit is, for the message ("the rendered output of the chart").
    what: &'static str,
    template: &'a str,
    budget: &'a Budget,
}

impl<'a> BoundedWriter<'a> {
    pub(crate) fn new(
        budget: &'a Budget,
        template: &'a str,
        limit: usize,
        what: &'static str,
    ) -> Self {
        BoundedWriter {
            text: String::new(),
            limit,
            what,
            template,
            budget,
        }
    }
}

impl std::fmt::Write for BoundedWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.text.len() + s.len() > self.limit {
            self.budget.exceed(format!(
                "{} would exceed {} MiB (skiff's bound on rendered text), in {}",
                self.what,
                self.limit >> 20,
                self.template
            ));
            return Err(std::fmt::Error);
        }
        if self.budget.produce(s.len(), self.template).is_err() {
            return Err(std::fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}

/// Refuses a string of `len` bytes that function `name` is about to make.
pub(crate) fn check_text(name: &str, len: u128) -> Result<usize, String> {
    if len > MAX_TEXT_BYTES as u128 {
        return Err(format!(
            "error calling {name}: the result would be {len} bytes, more than skiff's bound of {} MiB on one string",
            MAX_TEXT_BYTES >> 20
        ));
    }
    Ok(len as usize)
}

/// Refuses a sequence of `count` items that function `name` is about to make.
pub(crate) fn check_sequence(name: &str, count: u128) -> Result<(), String> {
    if count > MAX_SEQUENCE as u128 {
        return Err(format!(
            "error calling {name}: it would produce {count} items, more than skiff's bound of {MAX_SEQUENCE}"
        ));
    }
    Ok(())
}
