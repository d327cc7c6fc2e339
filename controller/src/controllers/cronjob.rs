//! The CronJob reconciler (`batch/v1`), as Kubernetes' CronJob controller v2 decides: at the
//! most recent schedule time not yet run (after `status.lastScheduleTime`, or the creation),
//! a Job from `jobTemplate` named `<cronjob>-<scheduled minutes since the epoch>` — so a node
//! that was off over several schedule times makes ONE catch-up run, the latest missed, and
//! none once `startingDeadlineSeconds` has passed. `concurrencyPolicy` Forbid skips while a
//! Job runs (and catches up once it is done, as Kubernetes does), Replace deletes the running
//! ones; `suspend` creates nothing; finished Jobs beyond the history limits are deleted,
//! oldest first. Status: `active`, `lastScheduleTime`, `lastSuccessfulTime`.
//!
//! Schedules are read in `spec.timeZone`, or the node's zone (Kubernetes uses the controller
//! manager's). The controllers' loop wakes at the earliest [`next_time`] of all CronJobs (as
//! Kubernetes' controller requeues each CronJob for its next schedule time), so a run is not
//! left waiting for the periodic resync.

use std::sync::Arc;

use serde_json::{json, Value};

use super::job::{finish_time, finished, has_condition};
use super::plan::{execute_all, Event, Write};
use crate::client::events::{Source, Type};
use crate::client::view::{View, WriteError};
use crate::model::meta;
use crate::model::store::ObjectKey;
use crate::model::validate::job::{parse_schedule, time_zone};

/// The annotation with a Job's scheduled time (RFC 3339, in the schedule's zone).
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// More missed times than this are reported (`TooManyMissedTimes`), as Kubernetes does.
const MANY_MISSED: usize = 100;

/// The most recent time of `cron` (read in `tz`) in `(earliest, now]`, with how many such
/// times there were (counted up to `MANY_MISSED + 1`); `None` if there was none.
pub fn most_recent(
    cron: &croner::Cron,
    tz: &jiff::tz::TimeZone,
    earliest: jiff::Timestamp,
    now: jiff::Timestamp,
) -> Option<(jiff::Timestamp, usize)> {
    let latest = cron
        .find_previous_occurrence(&now.to_zoned(tz.clone()), true)
        .ok()?
        .timestamp();
    if latest <= earliest {
        return None;
    }
    let mut count = 0;
    let mut t = earliest.to_zoned(tz.clone());
    while let Ok(next) = cron.find_next_occurrence(&t, false) {
        if next.timestamp() > now || count > MANY_MISSED {
            break;
        }
        count += 1;
        t = next;
    }
    Some((latest, count))
}

/// The next schedule time of a CronJob strictly after `now`; `None` if it is suspended,
/// being deleted, or its schedule or zone do not parse (validation refuses those).
pub fn next_time(cj: &Value, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    if meta::is_terminating(cj) || cj["spec"]["suspend"].as_bool() == Some(true) {
        return None;
    }
    let cron = parse_schedule(cj["spec"]["schedule"].as_str()?).ok()?;
    let tz = time_zone(cj["spec"]["timeZone"].as_str()).ok()?;
    cron.find_next_occurrence(&now.to_zoned(tz), false)
        .ok()
        .map(|t| t.timestamp())
}

/// The name of the Job for scheduled time `t`: `<cronjob>-<minutes since the epoch>`.
pub fn job_name(cronjob: &str, t: jiff::Timestamp) -> String {
    format!("{cronjob}-{}", t.as_second().div_euclid(60))
}

fn time(v: &Value) -> Option<jiff::Timestamp> {
    v.as_str().and_then(|t| t.parse().ok())
}

/// A Job from the CronJob's template for scheduled time `t` (in `tz`), owned by the CronJob.
fn new_job(cj: &Value, t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> Value {
    let template = &cj["spec"]["jobTemplate"];
    let mut annotations = template["metadata"]["annotations"].clone();
    let scheduled = t
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    annotations[SCHEDULED_TIMESTAMP] = json!(scheduled);
    let mut metadata = json!({
        "name": job_name(meta::name(cj), t),
        "namespace": meta::namespace(cj),
        "annotations": annotations,
        "ownerReferences": [{
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": meta::name(cj),
            "uid": meta::uid(cj),
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    if template["metadata"]["labels"].is_object() {
        metadata["labels"] = template["metadata"]["labels"].clone();
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
        "spec": template["spec"]})
}

/// One pass over a CronJob, from the Jobs it owns (as cached) and the time: finished Jobs
/// beyond the history limits deleted, then (Replace) the running ones deleted and the Job of
/// the most recent missed schedule time created, each with its Event, then the status.
pub fn plan(cj: &Value, jobs: &[Arc<Value>], now: jiff::Timestamp) -> Vec<Write> {
    if meta::is_terminating(cj) {
        return Vec::new();
    }
    let spec = &cj["spec"];
    let event = |kind, reason, message| {
        Write::Event(Event {
            about: cj.clone(),
            kind,
            reason,
            message,
            source: Source::CronJobController,
        })
    };
    let mut writes = Vec::new();
    let mut status = cj["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    let mut jobs: Vec<&Arc<Value>> = jobs.iter().filter(|j| !meta::is_terminating(j)).collect();
    jobs.sort_by_key(|j| {
        (
            j["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            meta::name(j).to_string(),
        )
    });
    let active: Vec<&Arc<Value>> = jobs.iter().copied().filter(|j| !finished(j)).collect();

    // The last success, from the finished Jobs.
    let last_success = jobs
        .iter()
        .filter(|j| has_condition(j, "Complete"))
        .filter_map(|j| finish_time(j))
        .chain(time(&status["lastSuccessfulTime"]))
        .max();
    if let Some(t) = last_success {
        status["lastSuccessfulTime"] = json!(t.to_string());
    }

    // History: the oldest finished Jobs beyond the limits go.
    for (condition, limit, default) in [
        ("Complete", "successfulJobsHistoryLimit", 3),
        ("Failed", "failedJobsHistoryLimit", 1),
    ] {
        let done: Vec<&&Arc<Value>> = jobs
            .iter()
            .filter(|j| has_condition(j, condition))
            .collect();
        let keep = spec[limit].as_i64().unwrap_or(default).max(0) as usize;
        for j in done.iter().take(done.len().saturating_sub(keep)) {
            writes.push(Write::Delete(ObjectKey::of(j)));
            writes.push(event(
                Type::Normal,
                "SuccessfulDelete",
                format!("Deleted job {}", meta::name(j)),
            ));
        }
    }

    let mut still_active = active.clone();
    let scheduled = (|| {
        if spec["suspend"] == true {
            return None;
        }
        let cron = parse_schedule(spec["schedule"].as_str()?).ok()?;
        let tz = time_zone(spec["timeZone"].as_str()).ok()?;
        let mut earliest = time(&status["lastScheduleTime"])
            .or_else(|| time(&cj["metadata"]["creationTimestamp"]))?;
        if let Some(deadline) = spec["startingDeadlineSeconds"].as_i64() {
            let window = now.as_second() - deadline;
            if window > earliest.as_second() {
                earliest = jiff::Timestamp::from_second(window).ok()?;
            }
        }
        let (t, missed) = most_recent(&cron, &tz, earliest, now)?;
        Some((t, missed, tz))
    })();
    if let Some((t, missed, tz)) = scheduled {
        let name = job_name(meta::name(cj), t);
        let exists = jobs.iter().any(|j| meta::name(j) == name);
        let policy = spec["concurrencyPolicy"].as_str().unwrap_or("Allow");
        if missed > MANY_MISSED {
            writes.push(event(
                Type::Warning,
                "TooManyMissedTimes",
                format!("too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"),
            ));
        }
        if exists {
            status["lastScheduleTime"] = json!(t.to_string());
        } else if policy == "Forbid" && !active.is_empty() {
            // Not started, and not recorded: it runs once the running Job is done (if still
            // within the starting deadline), as in Kubernetes.
            writes.push(event(
                Type::Normal,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
        } else {
            if policy == "Replace" {
                for j in &active {
                    writes.push(Write::Delete(ObjectKey::of(j)));
                    writes.push(event(
                        Type::Normal,
                        "SuccessfulDelete",
                        format!("Deleted job {}", meta::name(j)),
                    ));
                }
                still_active.clear();
            }
            writes.push(Write::Create(new_job(cj, t, &tz)));
            writes.push(event(
                Type::Normal,
                "SuccessfulCreate",
                format!("Created job {name}"),
            ));
            status["lastScheduleTime"] = json!(t.to_string());
        }
    }
    let refs: Vec<Value> = still_active
        .iter()
        .map(|j| {
            json!({"apiVersion": "batch/v1", "kind": "Job", "name": meta::name(j),
                "namespace": meta::namespace(j), "uid": meta::uid(j)})
        })
        .collect();
    if refs.is_empty() {
        if let Some(m) = status.as_object_mut() {
            m.remove("active");
        }
    } else {
        status["active"] = json!(refs);
    }
    writes.push(Write::UpdateStatus(ObjectKey::of(cj), status));
    writes
}

/// Reconciles one CronJob: performs its plan, in order.
pub async fn reconcile(view: &View, cj: &Value) -> Result<(), WriteError> {
    let jobs: Vec<Arc<Value>> = view
        .list("Job", Some(meta::namespace(cj)))
        .into_iter()
        .filter(|j| meta::controller_uid(j) == Some(meta::uid(cj)))
        .collect();
    execute_all(view, plan(cj, &jobs, jiff::Timestamp::now())).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::plan::describe;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn cronjob(schedule: &str) -> Value {
        let mut c = json!({"apiVersion": "batch/v1", "kind": "CronJob",
          "metadata": {"name": "backup", "namespace": "default", "uid": "cj-uid",
            "creationTimestamp": "2026-01-01T10:00:30Z"},
          "spec": {"schedule": schedule, "timeZone": "UTC",
            "jobTemplate": {"metadata": {"labels": {"app": "backup"}},
              "spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "b", "image": "demo:1"}]}}}}}});
        crate::model::defaults::apply(&mut c);
        c
    }

    #[test]
    fn the_next_time_is_strictly_after_now_and_none_when_suspended() {
        let mut cj = cronjob("*/15 * * * *");
        assert_eq!(
            next_time(&cj, ts("2026-01-01T10:07:12Z")),
            Some(ts("2026-01-01T10:15:00Z"))
        );
        assert_eq!(
            next_time(&cj, ts("2026-01-01T10:15:00Z")),
            Some(ts("2026-01-01T10:30:00Z"))
        );
        cj["spec"]["timeZone"] = json!("Europe/Berlin");
        cj["spec"]["schedule"] = json!("0 3 * * *");
        assert_eq!(
            next_time(&cj, ts("2026-01-01T10:00:00Z")),
            Some(ts("2026-01-02T02:00:00Z"))
        );
        cj["spec"]["suspend"] = json!(true);
        assert_eq!(next_time(&cj, ts("2026-01-01T10:00:00Z")), None);
    }

    fn job(name: &str, created: &str, condition: Option<&str>) -> Arc<Value> {
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job",
          "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"),
            "creationTimestamp": created,
            "ownerReferences": [{"kind": "CronJob", "name": "backup", "uid": "cj-uid", "controller": true}]},
          "status": {}});
        if let Some(c) = condition {
            j["status"]["conditions"] = json!([{"type": c, "status": "True",
                "lastTransitionTime": created}]);
            if c == "Complete" {
                j["status"]["completionTime"] = json!(created);
            }
        }
        Arc::new(j)
    }

    fn status(writes: &[Write]) -> &Value {
        match writes.last() {
            Some(Write::UpdateStatus(_, s)) => s,
            other => panic!("no status last: {other:?}"),
        }
    }

    #[test]
    fn missed_times_give_the_most_recent_and_their_count() {
        let cron = parse_schedule("*/15 * * * *").unwrap();
        let tz = jiff::tz::TimeZone::UTC;
        assert_eq!(
            most_recent(
                &cron,
                &tz,
                ts("2026-01-01T10:00:00Z"),
                ts("2026-01-01T11:07:12Z")
            ),
            Some((ts("2026-01-01T11:00:00Z"), 4))
        );
        // The earliest time itself is not missed (it ran); nothing in between: none.
        assert_eq!(
            most_recent(
                &cron,
                &tz,
                ts("2026-01-01T11:00:00Z"),
                ts("2026-01-01T11:14:59Z")
            ),
            None
        );
        // A schedule time exactly now is due.
        assert_eq!(
            most_recent(
                &cron,
                &tz,
                ts("2026-01-01T11:00:00Z"),
                ts("2026-01-01T11:15:00Z")
            ),
            Some((ts("2026-01-01T11:15:00Z"), 1))
        );
        // Read in the schedule's zone: 03:00 in Berlin is 02:00 UTC in winter.
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let daily = parse_schedule("0 3 * * *").unwrap();
        assert_eq!(
            most_recent(
                &daily,
                &berlin,
                ts("2026-01-01T00:00:00Z"),
                ts("2026-01-02T00:00:00Z")
            ),
            Some((ts("2026-01-01T02:00:00Z"), 1))
        );
        // Very many: counted past the limit, not all.
        let every = parse_schedule("* * * * *").unwrap();
        let (_, n) = most_recent(
            &every,
            &tz,
            ts("2025-01-01T00:00:00Z"),
            ts("2026-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(n, MANY_MISSED + 1);
    }

    #[test]
    fn after_downtime_one_catch_up_run_the_latest_missed() {
        let mut c = cronjob("*/5 * * * *");
        c["status"] = json!({"lastScheduleTime": "2026-01-01T10:05:00Z"});
        // Down from 10:06 to 10:31: five schedule times missed, one run.
        let writes = plan(&c, &[], ts("2026-01-01T10:31:20Z"));
        let name = job_name("backup", ts("2026-01-01T10:30:00Z"));
        assert_eq!(
            name,
            format!("backup-{}", ts("2026-01-01T10:30:00Z").as_second() / 60)
        );
        assert_eq!(
            describe(&writes),
            [
                format!("create Job default/{name}"),
                format!("event SuccessfulCreate: Created job {name}"),
                "status CronJob default/backup".to_string(),
            ]
        );
        let Write::Create(j) = &writes[0] else {
            unreachable!()
        };
        assert_eq!(j["metadata"]["ownerReferences"][0]["uid"], "cj-uid");
        assert_eq!(j["metadata"]["labels"]["app"], "backup");
        assert_eq!(
            j["metadata"]["annotations"][SCHEDULED_TIMESTAMP],
            "2026-01-01T10:30:00+00:00"
        );
        assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");
        assert_eq!(status(&writes)["lastScheduleTime"], "2026-01-01T10:30:00Z");
        // The next pass, the Job cached: nothing new.
        let mut c2 = c.clone();
        c2["status"] = status(&writes).clone();
        let writes = plan(
            &c2,
            &[job(&name, "2026-01-01T10:31:21Z", None)],
            ts("2026-01-01T10:31:30Z"),
        );
        assert_eq!(describe(&writes), ["status CronJob default/backup"]);
        assert_eq!(status(&writes)["active"][0]["name"], name.as_str());
    }

    #[test]
    fn no_run_once_the_starting_deadline_passed() {
        let mut c = cronjob("0 3 * * *");
        c["status"] = json!({"lastScheduleTime": "2026-01-01T03:00:00Z"});
        c["spec"]["startingDeadlineSeconds"] = json!(3600);
        // Missed 03:00 on the 2nd; it is 05:00: more than an hour late.
        let writes = plan(&c, &[], ts("2026-01-02T05:00:00Z"));
        assert_eq!(describe(&writes), ["status CronJob default/backup"]);
        // Within the hour: it runs.
        let writes = plan(&c, &[], ts("2026-01-02T03:59:00Z"));
        assert!(
            describe(&writes)[0].starts_with("create Job"),
            "{:?}",
            describe(&writes)
        );
    }

    #[test]
    fn the_first_run_is_the_first_time_after_creation() {
        let c = cronjob("* * * * *");
        assert_eq!(
            describe(&plan(&c, &[], ts("2026-01-01T10:00:59Z"))),
            ["status CronJob default/backup"]
        );
        let writes = plan(&c, &[], ts("2026-01-01T10:01:02Z"));
        assert_eq!(status(&writes)["lastScheduleTime"], "2026-01-01T10:01:00Z");
    }

    #[test]
    fn forbid_skips_while_one_runs_replace_replaces_it() {
        let mut c = cronjob("* * * * *");
        c["status"] = json!({"lastScheduleTime": "2026-01-01T10:01:00Z"});
        c["spec"]["concurrencyPolicy"] = json!("Forbid");
        let running = [job("backup-1", "2026-01-01T10:01:01Z", None)];
        let writes = plan(&c, &running, ts("2026-01-01T10:02:01Z"));
        assert_eq!(
            describe(&writes),
            [
                "event JobAlreadyActive: Not starting job because prior execution is running and concurrency policy is Forbid",
                "status CronJob default/backup",
            ]
        );
        assert_eq!(status(&writes)["lastScheduleTime"], "2026-01-01T10:01:00Z");
        c["spec"]["concurrencyPolicy"] = json!("Replace");
        let writes = plan(&c, &running, ts("2026-01-01T10:02:01Z"));
        let d = describe(&writes);
        assert_eq!(d[0], "delete Job default/backup-1");
        assert!(d[2].starts_with("create Job default/backup-"), "{d:?}");
        assert!(status(&writes).get("active").is_none());
        // Allow: one more beside it.
        c["spec"]["concurrencyPolicy"] = json!("Allow");
        let writes = plan(&c, &running, ts("2026-01-01T10:02:01Z"));
        assert!(describe(&writes)[0].starts_with("create Job"));
    }

    #[test]
    fn suspended_cronjobs_start_nothing() {
        let mut c = cronjob("* * * * *");
        c["spec"]["suspend"] = json!(true);
        assert_eq!(
            describe(&plan(&c, &[], ts("2026-01-01T11:00:00Z"))),
            ["status CronJob default/backup"]
        );
    }

    #[test]
    fn history_beyond_the_limits_goes_oldest_first_and_the_last_success_is_kept() {
        let mut c = cronjob("0 0 1 1 *");
        c["status"] = json!({"lastScheduleTime": "2026-01-01T00:00:00Z"});
        c["spec"]["successfulJobsHistoryLimit"] = json!(1);
        c["spec"]["failedJobsHistoryLimit"] = json!(1);
        let jobs = [
            job("ok-2", "2026-01-01T09:02:00Z", Some("Complete")),
            job("ok-1", "2026-01-01T09:01:00Z", Some("Complete")),
            job("bad-1", "2026-01-01T09:03:00Z", Some("Failed")),
            job("bad-2", "2026-01-01T09:04:00Z", Some("Failed")),
        ];
        let writes = plan(&c, &jobs, ts("2026-01-01T10:00:00Z"));
        assert_eq!(
            describe(&writes),
            [
                "delete Job default/ok-1",
                "event SuccessfulDelete: Deleted job ok-1",
                "delete Job default/bad-1",
                "event SuccessfulDelete: Deleted job bad-1",
                "status CronJob default/backup",
            ]
        );
        assert_eq!(
            status(&writes)["lastSuccessfulTime"],
            "2026-01-01T09:02:00Z"
        );
    }
}
