//! Log output set up once per process, in the shape whoever reads it wants: colours and
//! timestamps for a person at a terminal, bare lines for the journal (which adds its own
//! timestamps and unit name), JSON for log shippers.
//!
//! At a terminal, one-shot commands also draw live status lines (one per scan in flight)
//! below the log ([`status`]). Log lines go through the same lock: the status lines are
//! erased, the log line is written, and they are drawn again, so the two never share a row.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Timestamps and ANSI colours: a person at a terminal.
    Human,
    /// No timestamps, no colours: the journal stamps every line itself.
    Journal,
    /// Plain text with timestamps, no colours: redirected to a file or a pipe.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Errors in the logging options given on the command line.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("--log-format \"{0}\" is not known; use text or json")]
    UnknownFormat(String),
}

/// Picks the format from `--log-format` and the environment. `text` means "whatever suits
/// where stderr goes": the journal when systemd connected stderr to it (`JOURNAL_STREAM`),
/// a terminal when stderr is one, plain otherwise.
pub fn choose_format(
    requested: &str,
    journal_stream: bool,
    stderr_is_terminal: bool,
) -> Result<LogFormat, LoggingError> {
    match requested {
        "json" => Ok(LogFormat::Json),
        "text" | "" => Ok(if journal_stream {
            LogFormat::Journal
        } else if stderr_is_terminal {
            LogFormat::Human
        } else {
            LogFormat::Plain
        }),
        other => Err(LoggingError::UnknownFormat(other.to_string())),
    }
}

/// The filter for `--log-level`: a bare level is scansync's own, while dependencies stay at
/// `warn` (their `info` lines, like the scheduler's "Job creator created", mean nothing to
/// an operator). A full directive (`warn,hyper=debug`, `trace,scansync=debug`) is taken as
/// written.
pub fn filter_directives(level: &str) -> String {
    let level = level.trim();
    if level.contains('=') || level.contains(',') {
        return level.to_string();
    }
    match level.to_ascii_lowercase().as_str() {
        // Quieter than warn applies to everything, or errors from dependencies would show.
        "error" | "off" => level.to_string(),
        _ => format!("warn,scansync={level}"),
    }
}

/// Installs the global subscriber. `RUST_LOG` wins over `level` so one module can be
/// turned up without touching the unit file. Calling it twice is harmless (tests, demo).
pub fn init(level: &str, requested_format: &str) -> Result<(), LoggingError> {
    let format = choose_format(
        requested_format,
        std::env::var_os("JOURNAL_STREAM").is_some(),
        std::io::stderr().is_terminal(),
    )?;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(filter_directives(level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| StderrBelowStatus);
    // try_init: a second call (a test harness, the demo inside a test) keeps the first one.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Journal => builder.compact().without_time().with_ansi(false).try_init(),
        LogFormat::Plain => builder.with_ansi(false).try_init(),
        LogFormat::Human => builder.with_ansi(true).try_init(),
    };
    Ok(())
}

/// Whether live status lines suit this stderr: a terminal that can move its cursor (`TERM`
/// set and not `dumb`).
pub fn status_wanted(stderr_is_terminal: bool, term: Option<&str>) -> bool {
    stderr_is_terminal && !matches!(term.map(str::trim), None | Some("") | Some("dumb"))
}

/// Rows of status shown at most; more scans in flight are summed up in one more row.
const STATUS_ROWS: usize = 8;

/// The live status lines of a one-shot command at a terminal: one row per scan in flight,
/// drawn below the log and erased around every log line. Off (every call a no-op) until
/// [`StatusArea::enable`] finds a terminal it suits.
pub struct StatusArea {
    state: Mutex<StatusState>,
}

struct StatusState {
    enabled: bool,
    /// `(key, line)` in the order the keys first came.
    lines: Vec<(String, String)>,
    /// Rows on screen now, the cursor at the end of the last.
    drawn: usize,
}

static STATUS: StatusArea = StatusArea {
    state: Mutex::new(StatusState {
        enabled: false,
        lines: Vec::new(),
        drawn: 0,
    }),
};

/// The process's status area.
pub fn status() -> &'static StatusArea {
    &STATUS
}

impl StatusArea {
    fn lock(&self) -> std::sync::MutexGuard<'_, StatusState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Turns the status lines on when stderr is a terminal that suits them
    /// ([`status_wanted`]); returns whether it did.
    pub fn enable(&self) -> bool {
        let wanted = status_wanted(
            std::io::stderr().is_terminal(),
            std::env::var("TERM").ok().as_deref(),
        );
        self.lock().enabled = wanted;
        wanted
    }

    pub fn is_enabled(&self) -> bool {
        self.lock().enabled
    }

    /// Shows `line` in the row of its scan: the text before the first `": "` names the row
    /// (`"shop-sast: page 3, 300 findings"`), so each scan in flight keeps one row.
    pub fn set(&self, line: &str) {
        let mut state = self.lock();
        if !state.enabled {
            return;
        }
        let key = line.split_once(": ").map_or(line, |(k, _)| k);
        match state.lines.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = line.to_string(),
            None => state.lines.push((key.to_string(), line.to_string())),
        }
        redraw(&mut state, &mut std::io::stderr().lock(), terminal_width());
    }

    /// Removes the row of `key` (a scan whose run ended).
    pub fn remove(&self, key: &str) {
        let mut state = self.lock();
        if !state.enabled {
            return;
        }
        state.lines.retain(|(k, _)| k != key);
        redraw(&mut state, &mut std::io::stderr().lock(), terminal_width());
    }

    /// Erases every row and turns the area off: call before printing the command's report.
    pub fn finish(&self) {
        let mut state = self.lock();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(erase(state.drawn).as_bytes());
        let _ = err.flush();
        state.drawn = 0;
        state.lines.clear();
        state.enabled = false;
    }

    /// Writes `bytes` (whole lines) to `out` with the status rows erased first and drawn
    /// again after.
    fn write_through(
        &self,
        out: &mut impl Write,
        bytes: &[u8],
        width: usize,
    ) -> std::io::Result<()> {
        let mut state = self.lock();
        if state.drawn == 0 && state.lines.is_empty() {
            return out.write_all(bytes);
        }
        out.write_all(erase(state.drawn).as_bytes())?;
        state.drawn = 0;
        out.write_all(bytes)?;
        redraw(&mut state, out, width);
        Ok(())
    }
}

/// Erases the status rows and draws the current ones, in one write.
fn redraw(state: &mut StatusState, out: &mut impl Write, width: usize) {
    let (text, rows) = draw(&state.lines, width);
    let _ = out.write_all(format!("{}{text}", erase(state.drawn)).as_bytes());
    let _ = out.flush();
    state.drawn = rows;
}

/// The escape sequence that clears `drawn` status rows, the cursor at the end of the last,
/// and leaves it at the start of the first.
fn erase(drawn: usize) -> String {
    if drawn == 0 {
        return String::new();
    }
    let mut s = String::from("\r\x1b[2K");
    for _ in 1..drawn {
        s.push_str("\x1b[1A\r\x1b[2K");
    }
    s
}

/// The status rows as text (no newline after the last) and how many rows it takes: each
/// line cut to the terminal's width so none wraps, at most [`STATUS_ROWS`] of them.
fn draw(lines: &[(String, String)], width: usize) -> (String, usize) {
    let mut rows: Vec<String> = lines
        .iter()
        .take(STATUS_ROWS)
        .map(|(_, line)| crate::display::fit(&crate::display::clean(line), width.saturating_sub(1)))
        .collect();
    if lines.len() > STATUS_ROWS {
        rows.push(format!("… and {} more", lines.len() - STATUS_ROWS));
    }
    (rows.join("\n"), rows.len())
}

fn terminal_width() -> usize {
    terminal_size::terminal_size_of(std::io::stderr())
        .map(|(w, _)| w.0 as usize)
        .filter(|&w| w > 0)
        .unwrap_or(80)
}

/// stderr for the log, below the status rows ([`StatusArea::write_through`]).
struct StderrBelowStatus;

impl Write for StderrBelowStatus {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        status().write_through(&mut std::io::stderr().lock(), buf, terminal_width())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Lets one log line through per period and counts the ones held back, so that a flood
/// (refused connections, refused webhooks) costs a line every few seconds, not the journal.
#[derive(Debug)]
pub struct RateLimited {
    every: std::time::Duration,
    last: Option<std::time::Instant>,
    held: u64,
}

impl RateLimited {
    pub const fn new(every: std::time::Duration) -> RateLimited {
        RateLimited {
            every,
            last: None,
            held: 0,
        }
    }

    /// One more event at `now`: `Some(n)` when its line may be written, `n` being how many
    /// were held back since the last line written; `None` when it is held back.
    pub fn hit_at(&mut self, now: std::time::Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.every => {
                self.held += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }

    pub fn hit(&mut self) -> Option<u64> {
        self.hit_at(std::time::Instant::now())
    }
}

/// The tail a rate-limited line carries when others were held back before it.
pub fn held_back(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more like it not logged since the last)")
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_rate_limited_line_passes_once_per_period_and_counts_the_held_back() {
        let start = std::time::Instant::now();
        let at = |ms: u64| start + std::time::Duration::from_millis(ms);
        let mut limit = RateLimited::new(std::time::Duration::from_secs(10));
        assert_eq!(limit.hit_at(at(0)), Some(0));
        for ms in 1..=500 {
            assert_eq!(limit.hit_at(at(ms)), None);
        }
        assert_eq!(limit.hit_at(at(9_999)), None);
        assert_eq!(limit.hit_at(at(10_000)), Some(501));
        assert_eq!(limit.hit_at(at(25_000)), Some(0));
        assert_eq!(held_back(0), "");
        assert_eq!(held_back(3), " (3 more like it not logged since the last)");
    }

    use super::*;

    fn area(lines: &[&str], drawn: usize) -> StatusArea {
        StatusArea {
            state: Mutex::new(StatusState {
                enabled: true,
                lines: lines
                    .iter()
                    .map(|l| (l.split(": ").next().unwrap().to_string(), l.to_string()))
                    .collect(),
                drawn,
            }),
        }
    }

    #[test]
    fn status_lines_are_off_for_a_pipe_a_dumb_terminal_or_no_term() {
        assert!(status_wanted(true, Some("xterm-256color")));
        assert!(!status_wanted(false, Some("xterm-256color")));
        assert!(!status_wanted(true, Some("dumb")));
        assert!(!status_wanted(true, None));
        assert!(!status_wanted(true, Some("")));
    }

    #[test]
    fn a_log_line_is_written_between_erasing_and_redrawing_the_status_rows() {
        let a = area(
            &["ct-shop: page 2, 200 findings", "salt-api: scanning 40%"],
            2,
        );
        let mut out = Vec::new();
        a.write_through(&mut out, b"WARN retrying\n", 80).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "\r\x1b[2K\x1b[1A\r\x1b[2KWARN retrying\n\
             ct-shop: page 2, 200 findings\nsalt-api: scanning 40%"
        );
        // Erased before the log line, the log line whole on its own row, both scans after.
        assert_eq!(a.lock().drawn, 2);
    }

    #[test]
    fn without_status_rows_a_log_line_passes_untouched() {
        let a = area(&[], 0);
        let mut out = Vec::new();
        a.write_through(&mut out, b"INFO hello\n", 80).unwrap();
        assert_eq!(out, b"INFO hello\n");
    }

    #[test]
    fn status_rows_are_cut_to_the_width_and_capped() {
        let many: Vec<(String, String)> = (0..12)
            .map(|i| (format!("s{i}"), format!("s{i}: {}", "x".repeat(100))))
            .collect();
        let (text, rows) = draw(&many, 40);
        assert_eq!(rows, STATUS_ROWS + 1);
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), rows);
        assert!(lines[..STATUS_ROWS]
            .iter()
            .all(|l| unicode_width::UnicodeWidthStr::width(*l) == 39));
        assert_eq!(lines[STATUS_ROWS], "… and 4 more");
    }

    #[test]
    fn erasing_moves_up_one_row_less_than_it_clears() {
        assert_eq!(erase(0), "");
        assert_eq!(erase(1), "\r\x1b[2K");
        assert_eq!(erase(3), "\r\x1b[2K\x1b[1A\r\x1b[2K\x1b[1A\r\x1b[2K");
    }

    #[test]
    fn journal_stream_wins_over_a_terminal_for_text() {
        assert_eq!(
            choose_format("text", true, true).unwrap(),
            LogFormat::Journal
        );
    }

    #[test]
    fn text_on_a_terminal_is_human() {
        assert_eq!(
            choose_format("text", false, true).unwrap(),
            LogFormat::Human
        );
    }

    #[test]
    fn text_into_a_pipe_is_plain() {
        assert_eq!(
            choose_format("text", false, false).unwrap(),
            LogFormat::Plain
        );
    }

    #[test]
    fn a_bare_level_is_scansyncs_and_dependencies_stay_at_warn() {
        assert_eq!(filter_directives("info"), "warn,scansync=info");
        assert_eq!(filter_directives("debug"), "warn,scansync=debug");
        assert_eq!(filter_directives("error"), "error");
        assert_eq!(filter_directives("warn,hyper=debug"), "warn,hyper=debug");
    }

    #[test]
    fn json_is_json_everywhere() {
        assert_eq!(choose_format("json", true, true).unwrap(), LogFormat::Json);
    }

    #[test]
    fn unknown_format_is_an_error_naming_the_choices() {
        let e = choose_format("xml", false, false).unwrap_err().to_string();
        assert!(e.contains("xml") && e.contains("json"), "{e}");
    }
}
