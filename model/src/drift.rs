//! Scheduled drift checks: an environment's `drift_check` setting, the server-wide default,
//! and the slots that make every scheduler agree on when a check is due.
//!
//! Which wins: an environment's `drift_check` (`enabled: false` turns checks off for it
//! whatever the server says; `every_minutes` left out takes the server's period, or
//! [`DEFAULT_EVERY_MINUTES`]); an environment without `drift_check` follows the server's
//! `--drift-check-every` (off unless given), with `repair` off.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The bounds of a period, in minutes: 5 minutes to a week.
pub const MIN_EVERY_MINUTES: u32 = 5;
pub const MAX_EVERY_MINUTES: u32 = 10_080;
/// The period of an environment that turns checks on without one while the server sets none.
pub const DEFAULT_EVERY_MINUTES: u32 = 360;
/// The platform fact holding the workers' `--drift-check-every` in minutes (`off`: none),
/// for the API's status.
pub const DRIFT_CHECK_EVERY_FACT: &str = "drift_check_every_minutes";
/// Who requests the scheduled checks and the repairs they lead to.
pub const SCHEDULER: &str = "schedule";

/// An environment's drift-check schedule: a refresh run every `every_minutes`, by the
/// workers; with `repair`, a check that finds drift queues a deploy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftCheckConfig {
    /// `false`: never checked on a schedule, even when the server has a default period.
    #[serde(default = "enabled")]
    #[schema(default = true)]
    pub enabled: bool,
    /// Minutes between checks, 5 to 10080 (a week). Left out: the server's
    /// `--drift-check-every`, or 360 (6 h) when the server sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false, minimum = 5, maximum = 10080)]
    pub every_minutes: Option<u32>,
    /// Queue a deploy (requested by `schedule`) when a scheduled check finds drift.
    #[serde(default)]
    pub repair: bool,
}

fn enabled() -> bool {
    true
}

impl DriftCheckConfig {
    /// The period's bounds; the message is for the field `every_minutes`.
    pub fn validate(&self) -> Result<(), String> {
        match self.every_minutes {
            Some(m) if !(MIN_EVERY_MINUTES..=MAX_EVERY_MINUTES).contains(&m) => Err(format!(
                "{m} minutes is out of range: checks run every {MIN_EVERY_MINUTES} to {MAX_EVERY_MINUTES} minutes (a week)"
            )),
            _ => Ok(()),
        }
    }
}

/// Where an environment's schedule comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleSource {
    /// The environment's `drift_check`.
    Environment,
    /// The server's `--drift-check-every`.
    Server,
}

/// The schedule an environment is checked on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriftSchedule {
    pub every_minutes: u32,
    pub repair: bool,
    pub source: ScheduleSource,
}

impl DriftSchedule {
    /// The schedule of a stored config (only its `drift_check` is read, so any config
    /// shape works) under the server's default period; `None`: not checked. A stored
    /// `drift_check` that does not parse counts as none.
    pub fn of(config: &Value, server_minutes: Option<u32>) -> Option<DriftSchedule> {
        match config.get("drift_check").filter(|v| !v.is_null()) {
            Some(v) => {
                let c: DriftCheckConfig = serde_json::from_value(v.clone()).ok()?;
                c.validate().ok()?;
                c.enabled.then(|| DriftSchedule {
                    every_minutes: c
                        .every_minutes
                        .or(server_minutes)
                        .unwrap_or(DEFAULT_EVERY_MINUTES),
                    repair: c.repair,
                    source: ScheduleSource::Environment,
                })
            }
            None => server_minutes.map(|every_minutes| DriftSchedule {
                every_minutes,
                repair: false,
                source: ScheduleSource::Server,
            }),
        }
    }

    pub fn period_ms(&self) -> i64 {
        i64::from(self.every_minutes) * 60_000
    }

    /// The start (Unix ms) of the slot `now` is in. Slots are `period` long and shifted per
    /// stack by a stable hash of its name, so environments on the same period do not all
    /// fall due at once; every scheduler computes the same slots.
    pub fn slot_start(&self, stack: &str, now_ms: i64) -> i64 {
        let period = self.period_ms();
        let offset = i64::try_from(fnv1a(stack) % period.unsigned_abs()).unwrap_or(0);
        (now_ms - offset).div_euclid(period) * period + offset
    }

    /// Whether a check is due at `now`, given the slot of the stack's last scheduled check:
    /// at most one per slot.
    pub fn due(&self, stack: &str, last_slot: Option<i64>, now_ms: i64) -> bool {
        last_slot.is_none_or(|last| last < self.slot_start(stack, now_ms))
    }

    /// When the next check falls due: now's slot if it has had none, else the next slot.
    pub fn next_due(&self, stack: &str, last_slot: Option<i64>, now_ms: i64) -> i64 {
        let start = self.slot_start(stack, now_ms);
        if self.due(stack, last_slot, now_ms) {
            start
        } else {
            start + self.period_ms()
        }
    }
}

/// Parses a period such as `6h`, `90m`, `1d` or `30` (minutes); `off` (or empty) is none.
/// The bounds are those of `every_minutes`.
pub fn parse_every(text: &str) -> Result<Option<u32>, String> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "m"),
    };
    let factor = match unit {
        "m" | "min" => 1,
        "h" => 60,
        "d" => 1440,
        _ => {
            return Err(format!(
                "{text:?}: use minutes, hours or days, e.g. 30m, 6h, 1d, or off"
            ));
        }
    };
    let minutes = number
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|m| (MIN_EVERY_MINUTES..=MAX_EVERY_MINUTES).contains(m))
        .ok_or_else(|| {
            format!("{text:?}: checks run every {MIN_EVERY_MINUTES} minutes to 7 days")
        })?;
    Ok(Some(minutes))
}

/// FNV-1a, 64 bits: stable across processes and releases (unlike std's hasher).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_environment_wins_over_the_server() {
        let on = |c: Value, s| DriftSchedule::of(&json!({ "drift_check": c }), s);
        assert_eq!(DriftSchedule::of(&json!({}), None), None);
        let server = DriftSchedule::of(&json!({}), Some(60)).unwrap();
        assert_eq!((server.every_minutes, server.repair), (60, false));
        assert_eq!(server.source, ScheduleSource::Server);
        assert_eq!(on(json!({"enabled": false}), Some(60)), None);
        assert_eq!(
            on(json!({"repair": true}), Some(60)).unwrap().every_minutes,
            60
        );
        assert_eq!(on(json!({}), None).unwrap().every_minutes, 360);
        let own = on(json!({"every_minutes": 15, "repair": true}), Some(60)).unwrap();
        assert_eq!((own.every_minutes, own.repair), (15, true));
        assert_eq!(on(json!({"every_minutes": 1}), Some(60)), None);
    }

    #[test]
    fn one_check_per_slot() {
        let s = DriftSchedule::of(&json!({"drift_check": {"every_minutes": 60}}), None).unwrap();
        let now = 1_800_000_000_000;
        let start = s.slot_start("acme-dev", now);
        assert!(start <= now && now < start + 3_600_000);
        assert_eq!(s.slot_start("acme-dev", start), start);
        assert_eq!(s.slot_start("acme-dev", start + 3_599_999), start);
        assert!(s.due("acme-dev", None, now));
        assert!(s.due("acme-dev", Some(start - 3_600_000), now));
        assert!(!s.due("acme-dev", Some(start), now));
        assert_eq!(s.next_due("acme-dev", Some(start), now), start + 3_600_000);
        // Another stack's slots are shifted.
        assert_ne!(s.slot_start("acme-prod", now), start);
    }

    #[test]
    fn periods_parse() {
        assert_eq!(parse_every("6h"), Ok(Some(360)));
        assert_eq!(parse_every("90m"), Ok(Some(90)));
        assert_eq!(parse_every("1d"), Ok(Some(1440)));
        assert_eq!(parse_every("30"), Ok(Some(30)));
        assert_eq!(parse_every("off"), Ok(None));
        assert!(parse_every("2m").is_err());
        assert!(parse_every("8d").is_err());
        assert!(parse_every("6 hours").is_err());
    }
}
