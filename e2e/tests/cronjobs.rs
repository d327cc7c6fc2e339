//! CronJobs (issue 12, part 2) with the real kubectl and real containers: a `* * * * *`
//! CronJob runs within the minute; after the node was off over several schedule times it
//! runs ONCE, for the most recent (none once `startingDeadlineSeconds` has passed) — the
//! downtime made fast by setting `status.lastScheduleTime` in the store while the daemon is
//! stopped; `concurrencyPolicy: Forbid` never overlaps a running Job (the fast version holds
//! the CronJob busy with `kubectl create job --from=cronjob/…`; `SKIFF_E2E_SLOW=1` adds one
//! over real schedule times); `kubectl get cronjobs` prints kubectl's columns.

use std::time::Duration;

use serde_json::{json, Value};
use skiff_controller::model::store::{ObjectKey, Store};
use skiff_e2e::kubectl::{parse_tables, server_with_images, Kubectl};
use skiff_e2e::{wait_for, wait_until};

const IMAGE: &str = "skiff-e2e-cron:v1";

fn cronjob_yaml(name: &str, schedule: &str, extra_spec: &str, script: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}
spec:
  schedule: \"{schedule}\"
  timeZone: UTC
{extra_spec}  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: work
            image: {IMAGE}
            imagePullPolicy: Never
            command: [\"sh\", \"-c\", \"{script}\"]
"
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn rfc3339(secs: i64) -> String {
    // Days from the civil date algorithm (no date crate in the e2e tests).
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The Jobs a CronJob owns, by name.
fn jobs_of(k: &Kubectl, cronjob: &str) -> Vec<Value> {
    k.get_json(&["jobs"])
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|j| j["metadata"]["ownerReferences"][0]["name"] == cronjob)
        .collect()
}

fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

#[test]
fn after_downtime_over_several_schedule_times_one_catch_up_run() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    // Daily, at a time three minutes ago: the next regular run is a day away.
    let scheduled = (now() - 180).div_euclid(60) * 60;
    let (h, m) = (
        scheduled.rem_euclid(86400) / 3600,
        scheduled.rem_euclid(3600) / 60,
    );
    let schedule = format!("{m} {h} * * *");
    k.apply(
        &cronjob_yaml("nightly", &schedule, "", "echo nightly ran"),
        &[],
    );
    k.apply(
        &cronjob_yaml(
            "late",
            &schedule,
            "  startingDeadlineSeconds: 60\n",
            "echo late ran",
        ),
        &[],
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        jobs_of(&k, "nightly").is_empty(),
        "a run before any schedule time"
    );

    // The node is off; it last ran three days ago.
    s.stop();
    {
        let store = Store::open(&s.data_dir).expect("open the store");
        for cj in ["nightly", "late"] {
            let key = ObjectKey::new("CronJob", "default", cj);
            store
                .update_status(
                    &key,
                    json!({"lastScheduleTime": rfc3339(scheduled - 3 * 86400)}),
                )
                .expect("set lastScheduleTime");
        }
    }
    s.start();
    let expected = format!("nightly-{}", scheduled / 60);
    let job = wait_for(Duration::from_secs(30), || {
        jobs_of(&k, "nightly")
            .into_iter()
            .find(|j| name(j) == expected)
    });
    s.assert_running();
    assert!(
        job.is_some(),
        "no catch-up Job {expected}; jobs: {:?}",
        k.names(&["jobs"])
    );
    // More passes: still one run (three times were missed), none past the deadline.
    std::thread::sleep(Duration::from_secs(8));
    let names: Vec<String> = jobs_of(&k, "nightly")
        .iter()
        .map(|j| name(j).to_string())
        .collect();
    assert_eq!(names, std::slice::from_ref(&expected));
    assert!(
        jobs_of(&k, "late").is_empty(),
        "ran past startingDeadlineSeconds"
    );
    let o = k.run(&[
        "wait",
        "--for=condition=complete",
        &format!("job/{expected}"),
        "--timeout=60s",
    ]);
    assert!(o.ok(), "{o}\npods:\n{}", s.pods_summary());
    assert_eq!(
        k.ok(&["logs", &format!("job/{expected}")]).trim(),
        "nightly ran"
    );
    let cj = k.get_json(&["cronjob", "nightly"]).unwrap();
    assert_eq!(cj["status"]["lastScheduleTime"], rfc3339(scheduled));
    let ok = wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
        k.get_json(&["cronjob", "nightly"])
            .is_some_and(|c| c["status"]["lastSuccessfulTime"].is_string())
    });
    assert!(ok, "no lastSuccessfulTime");
    let out = k.ok(&["get", "cronjobs"]);
    let t = &parse_tables(&out)[0];
    assert_eq!(
        t.columns,
        [
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE"
        ],
        "{out}"
    );
    let row = t.row("nightly").unwrap();
    assert_eq!(
        (row["SCHEDULE"].as_str(), row["TIMEZONE"].as_str()),
        (schedule.as_str(), "UTC")
    );
    assert_eq!(
        (row["SUSPEND"].as_str(), row["ACTIVE"].as_str()),
        ("False", "0")
    );
    // Three to four minutes ago (the schedule time was 3 min before the test's start).
    let last = &row["LAST SCHEDULE"];
    assert!(last.starts_with("3m") || last.starts_with("4m"), "{out}");
    // late never ran: its last schedule is still the one before the downtime.
    assert_eq!(t.row("late").unwrap()["LAST SCHEDULE"], "3d", "{out}");

    // kubectl create job --from=cronjob/…: a Job of the template, now.
    k.ok(&["create", "job", "by-hand", "--from=cronjob/nightly"]);
    let o = k.run(&[
        "wait",
        "--for=condition=complete",
        "job/by-hand",
        "--timeout=60s",
    ]);
    assert!(o.ok(), "{o}");
    let j = k.get_json(&["job", "by-hand"]).unwrap();
    assert_eq!(
        j["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
}

#[test]
fn cronjobs_run_on_schedule_and_forbid_never_overlaps() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let created = now();
    k.apply(&cronjob_yaml("tick", "* * * * *", "", "echo tick"), &[]);
    k.apply(
        &cronjob_yaml(
            "slow",
            "* * * * *",
            "  concurrencyPolicy: Forbid\n",
            "sleep 70; echo slow done",
        ),
        &[],
    );
    // Busy before the first schedule time: a Job of slow's template, by hand.
    k.ok(&["create", "job", "slow-by-hand", "--from=cronjob/slow"]);

    // tick runs at the first minute after its creation.
    let first = wait_for(Duration::from_secs(75), || {
        jobs_of(&k, "tick").into_iter().next()
    });
    s.assert_running();
    let first = first.expect("tick ran within 75 s");
    let minute: i64 = name(&first).trim_start_matches("tick-").parse().unwrap();
    assert!(
        minute * 60 > created && minute * 60 <= now(),
        "{}",
        name(&first)
    );
    let o = k.run(&[
        "wait",
        "--for=condition=complete",
        &format!("job/{}", name(&first)),
        "--timeout=60s",
    ]);
    assert!(o.ok(), "{o}");
    assert_eq!(
        k.ok(&["logs", &format!("job/{}", name(&first))]).trim(),
        "tick"
    );

    // slow's schedule time came while its by-hand Job ran: Forbid started nothing.
    std::thread::sleep(Duration::from_secs(6));
    let slow: Vec<String> = jobs_of(&k, "slow")
        .iter()
        .map(|j| name(j).to_string())
        .collect();
    let by_hand = k.get_json(&["job", "slow-by-hand"]).unwrap();
    if by_hand["status"]["completionTime"].is_null() {
        assert_eq!(
            slow,
            ["slow-by-hand"],
            "Forbid started a Job beside a running one"
        );
        let events = k.get_json(&["events"]).unwrap();
        assert!(
            events["items"].as_array().unwrap().iter().any(|e| e["reason"] == "JobAlreadyActive"
                && e["involvedObject"]["name"] == "slow"),
            "no JobAlreadyActive event"
        );
    }
    // Once it is done, the missed time runs (as in Kubernetes), after it — never beside it.
    let caught_up = wait_for(Duration::from_secs(100), || {
        jobs_of(&k, "slow")
            .into_iter()
            .find(|j| name(j) != "slow-by-hand")
    });
    s.assert_running();
    let caught_up = caught_up.expect("slow ran once its by-hand Job was done");
    let by_hand = k.get_json(&["job", "slow-by-hand"]).unwrap();
    let done = by_hand["status"]["completionTime"]
        .as_str()
        .expect("by-hand finished first");
    let started = caught_up["metadata"]["creationTimestamp"].as_str().unwrap();
    assert!(
        started >= done,
        "overlap: {} created {started}, by-hand done {done}",
        name(&caught_up)
    );
}

/// The same over real schedule times: a Job slower than the schedule's period, never two at
/// once. (Several minutes: only with SKIFF_E2E_SLOW=1.)
#[test]
fn forbid_over_real_schedule_times_slow() {
    if std::env::var("SKIFF_E2E_SLOW").as_deref() != Ok("1") {
        eprintln!("skipped: set SKIFF_E2E_SLOW=1");
        return;
    }
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &cronjob_yaml(
            "slow",
            "* * * * *",
            "  concurrencyPolicy: Forbid\n",
            "sleep 90",
        ),
        &[],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let mut most = 0;
    while std::time::Instant::now() < deadline {
        s.assert_running();
        let active = jobs_of(&k, "slow")
            .iter()
            .filter(|j| j["status"]["completionTime"].is_null() && j["status"]["failed"].is_null())
            .count();
        most = most.max(active);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(most, 1, "Jobs overlapped (or none ran)");
    assert!(
        jobs_of(&k, "slow").len() >= 2,
        "the second run did not come after the first"
    );
}
