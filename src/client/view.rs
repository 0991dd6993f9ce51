//! What the client draws: aligned tables, and a run followed as it happens, either as one
//! line per event or, on a terminal, as finished steps above one live progress bar.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::time::Duration;

use byoc_model::api::PlanAction;
use byoc_model::{RunEvent, RunStatus};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use serde_json::Value;

use super::Output;

/// Prints rows as columns, each as wide as its widest cell (the last one left ragged).
pub fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == row.len() {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

/// A table's header row.
pub fn header(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// A label and its value: a row of a two-column table.
pub fn row(label: impl Into<String>, value: impl Display) -> Vec<String> {
    vec![label.into(), value.to_string()]
}

/// An optional value, empty when absent.
pub fn opt<T: Display>(value: &Option<T>) -> String {
    value.as_ref().map(T::to_string).unwrap_or_default()
}

/// A free-form JSON value: strings as they are, anything else as JSON.
pub fn json_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The engine's account of a step (`RunEvent::data`), as far as a view needs it.
#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum EngineEvent {
    StepStarted {
        resource: String,
        action: PlanAction,
        attempt: u32,
    },
    StepAdopted {
        resource: String,
        physical_id: String,
    },
    StepRetrying {
        resource: String,
        error: String,
        delay_ms: u64,
    },
    StepSucceeded {
        resource: String,
        action: PlanAction,
        duration_ms: u64,
    },
    StepFailed {
        resource: String,
        error: String,
    },
    #[serde(other)]
    Other,
}

impl EngineEvent {
    /// The step an event is about; `None` for a note about the run (worker, verdict).
    fn of(event: &RunEvent) -> Option<EngineEvent> {
        let data = event.data.as_ref()?;
        Some(EngineEvent::deserialize(data).unwrap_or(EngineEvent::Other))
    }
}

/// How a run being followed is shown.
pub enum Follow {
    /// One line per event: the event's message, or with `--output json` the event itself.
    Lines(Output),
    Live(Live),
}

impl Follow {
    pub fn event(&mut self, event: &RunEvent) {
        match self {
            Follow::Lines(Output::Json) => {
                println!(
                    "{}",
                    serde_json::to_string(event).expect("events serialize")
                )
            }
            Follow::Lines(Output::Table) => {
                let resource = event
                    .resource
                    .as_ref()
                    .map(|r| format!("{r}: "))
                    .unwrap_or_default();
                println!(
                    "{:>4} {:<5} {resource}{}",
                    event.seq, event.level, event.message
                );
            }
            Follow::Live(live) => live.event(event),
        }
    }

    /// The plan is known: `steps` steps change something (`None`: the run has no plan).
    pub fn planned(&mut self, steps: Option<u64>) {
        if let (Follow::Live(live), Some(steps)) = (self, steps) {
            live.planned(steps);
        }
    }

    pub fn finish(&mut self, status: Option<RunStatus>) {
        if let Follow::Live(live) = self {
            live.finish(status);
        }
    }
}

/// A run on a terminal: one progress bar at the bottom, redrawn in place (its message names
/// the steps in flight), with a line printed above it as each step finishes.
pub struct Live {
    bar: ProgressBar,
    /// Resource -> what it is doing.
    in_flight: BTreeMap<String, String>,
    /// Steps that failed (the bar's position counts every finished step).
    failed: u64,
}

impl Live {
    /// Until the plan is known the bar has no length, and shows no count.
    pub fn new() -> Live {
        let live = Live {
            bar: ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout()),
            in_flight: BTreeMap::new(),
            failed: 0,
        };
        live.restyle(true);
        live.bar.set_message("starting");
        live.bar.enable_steady_tick(Duration::from_millis(100));
        live
    }

    /// While running: a spinner, and the message cut to the terminal's width so that the bar
    /// stays one line. Finished: the message in full.
    fn restyle(&self, running: bool) {
        let count = match self.bar.length() {
            Some(_) => "[{bar:24.cyan/blue}] {pos}/{len} steps  ",
            None => "", // no plan (yet): nothing to count against
        };
        let template = if running {
            format!("{{spinner:.green}} {count}{{elapsed}}  {{wide_msg}}")
        } else {
            format!("{count}{{elapsed}}  {{msg}}")
        };
        let style = ProgressStyle::with_template(&template).expect("a valid template");
        self.bar.set_style(style.progress_chars("=> "));
    }

    pub fn planned(&mut self, steps: u64) {
        self.bar.set_length(steps);
        self.restyle(true);
        self.show_in_flight();
    }

    fn event(&mut self, event: &RunEvent) {
        let Some(step) = EngineEvent::of(event) else {
            self.bar.println(format!("· {}", event.message));
            return;
        };
        match step {
            EngineEvent::StepStarted {
                resource,
                action,
                attempt,
            } => {
                let doing = match attempt {
                    1 => action_name(action).to_string(),
                    n => format!("{} (attempt {n})", action_name(action)),
                };
                self.in_flight.insert(resource, doing);
            }
            EngineEvent::StepRetrying {
                resource,
                error,
                delay_ms,
            } => {
                self.bar
                    .println(format!("↻ {resource}: retrying in {delay_ms} ms: {error}"));
                self.in_flight.insert(resource, "waiting to retry".into());
            }
            EngineEvent::StepAdopted {
                resource,
                physical_id,
            } => self
                .bar
                .println(format!("↺ {resource}: adopted {physical_id}")),
            EngineEvent::StepSucceeded {
                resource,
                action,
                duration_ms,
            } => {
                self.step_done(
                    &resource,
                    format!(
                        "✓ {resource}: {} in {:.1}s",
                        action_name(action),
                        duration_ms as f64 / 1000.0
                    ),
                );
            }
            EngineEvent::StepFailed { resource, error } => {
                self.failed += 1;
                self.step_done(&resource, format!("✗ {resource}: {error}"));
            }
            EngineEvent::Other => {}
        }
        self.show_in_flight();
    }

    fn step_done(&mut self, resource: &str, line: String) {
        self.in_flight.remove(resource);
        self.bar.println(line);
        self.bar.inc(1);
    }

    fn show_in_flight(&self) {
        let doing: Vec<String> = self
            .in_flight
            .iter()
            .map(|(resource, doing)| format!("{resource} ({doing})"))
            .collect();
        self.bar.set_message(doing.join(", "));
    }

    /// Leaves the bar as the run's last line, its message the outcome.
    fn finish(&mut self, status: Option<RunStatus>) {
        let status = status.map_or("ended".to_string(), |s| s.to_string());
        self.restyle(false);
        let said = match self.bar.position() {
            0 => status,
            _ => format!("{status} ({} failed)", self.failed),
        };
        self.bar.finish_with_message(said);
    }
}

/// A plan action as the API spells it.
pub fn action_name(action: PlanAction) -> &'static str {
    match action {
        PlanAction::Create => "create",
        PlanAction::Update => "update",
        PlanAction::Replace => "replace",
        PlanAction::Delete => "delete",
        PlanAction::NoOp => "no-op",
    }
}
