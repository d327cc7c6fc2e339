//! The rules of Jobs and CronJobs (`batch/v1`): counts, modes, the generated selector, the
//! pod template's restart policy, the schedule and its time zone, and what may change.

use serde_json::Value;

use super::semantics::{one_of, pod_spec};
use super::{err, FieldError};
use crate::model::defaults;

/// A Job: its spec, with the generated selector of its uid accepted (`manualSelector` is not).
pub(super) fn job(obj: &Value, out: &mut Vec<FieldError>) {
    job_spec(
        &obj["spec"],
        "spec",
        Some(crate::model::meta::uid(obj)),
        out,
    );
}

/// A Job's spec at `path`; `uid` is the Job's (a CronJob's template has none, and no selector).
fn job_spec(spec: &Value, path: &str, uid: Option<&str>, out: &mut Vec<FieldError>) {
    for (field, min) in [
        ("parallelism", 0),
        ("completions", 0),
        ("backoffLimit", 0),
        ("ttlSecondsAfterFinished", 0),
        ("activeDeadlineSeconds", 1),
    ] {
        if spec[field].as_i64().is_some_and(|n| n < min) {
            out.push(err(
                format!("{path}.{field}"),
                format!("must be greater than or equal to {min}"),
            ));
        }
    }
    let mode = one_of(
        spec,
        path,
        "completionMode",
        &["NonIndexed", "Indexed"],
        "is not NonIndexed or Indexed",
        out,
    );
    if mode == Some("Indexed") {
        match spec["completions"].as_i64() {
            None => out.push(err(
                format!("{path}.completions"),
                "Required value: when completion mode is Indexed",
            )),
            Some(n) if n > 100_000 => out.push(err(
                format!("{path}.completions"),
                "must be less than or equal to 100000 when completion mode is Indexed",
            )),
            _ => {}
        }
    }
    if spec["manualSelector"] == true {
        out.push(err(
            format!("{path}.manualSelector"),
            "field is not supported by skiff (the selector is generated from the Job's uid)",
        ));
    }
    if !spec["selector"].is_null() {
        let generated = uid.filter(|u| !u.is_empty()).map(defaults::job_selector);
        if generated.as_ref() != Some(&spec["selector"]) {
            out.push(err(
                format!("{path}.selector"),
                "Invalid value: `selector` will be auto-generated (manualSelector is not supported by skiff)",
            ));
        }
    }
    let pod = format!("{path}.template.spec");
    let restart = &spec["template"]["spec"]["restartPolicy"];
    match restart.as_str() {
        Some("OnFailure" | "Never") => {}
        None => out.push(err(
            format!("{pod}.restartPolicy"),
            "Required value: valid values: \"OnFailure\", \"Never\"",
        )),
        Some(other) => out.push(err(
            format!("{pod}.restartPolicy"),
            format!("Unsupported value: {other:?}: supported values: \"OnFailure\", \"Never\""),
        )),
    }
    pod_spec(&spec["template"]["spec"], &pod, false, out);
}

/// A CronJob: its schedule and time zone, policies, limits and job template.
pub(super) fn cronjob(obj: &Value, out: &mut Vec<FieldError>) {
    let name = crate::model::meta::name(obj);
    // Its Jobs are named `<name>-<minutes since the epoch>`, at most 63 characters.
    if name.len() > 52 {
        out.push(err(
            "metadata.name",
            format!("{name:?} must be no more than 52 characters"),
        ));
    }
    let spec = &obj["spec"];
    match spec["schedule"].as_str() {
        None | Some("") => out.push(err("spec.schedule", "Required value")),
        Some(s) => {
            if let Err(e) = parse_schedule(s) {
                out.push(err("spec.schedule", e));
            }
        }
    }
    if let Some(tz) = spec["timeZone"].as_str() {
        if let Err(e) = time_zone(Some(tz)) {
            out.push(err("spec.timeZone", e));
        }
    }
    one_of(
        spec,
        "spec",
        "concurrencyPolicy",
        &["Allow", "Forbid", "Replace"],
        "is not Allow, Forbid or Replace",
        out,
    );
    for field in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        if spec[field].as_i64().is_some_and(|n| n < 0) {
            out.push(err(
                format!("spec.{field}"),
                "must be greater than or equal to 0",
            ));
        }
    }
    job_spec(
        &spec["jobTemplate"]["spec"],
        "spec.jobTemplate.spec",
        None,
        out,
    );
}

/// A CronJob schedule as Kubernetes reads it: five fields (minute hour day-of-month month
/// day-of-week, names allowed) or a macro (`@yearly`, `@annually`, `@monthly`, `@weekly`,
/// `@daily`, `@midnight`, `@hourly`); no seconds, no `TZ=` prefix (that is `timeZone`).
pub fn parse_schedule(schedule: &str) -> Result<croner::Cron, String> {
    use croner::parser::{CronParser, Seconds, Year};
    let s = schedule.trim();
    if s.starts_with("TZ=") || s.starts_with("CRON_TZ=") {
        return Err(format!(
            "Invalid value: {schedule:?}: cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
        ));
    }
    if s.starts_with("@every") || s.eq_ignore_ascii_case("@reboot") {
        return Err(format!(
            "Invalid value: {schedule:?}: not supported by skiff (five cron fields or @yearly, @monthly, @weekly, @daily, @hourly)"
        ));
    }
    let s = if s.eq_ignore_ascii_case("@midnight") {
        "@daily"
    } else {
        s
    };
    if !s.starts_with('@') && s.split_whitespace().count() != 5 {
        return Err(format!(
            "Invalid value: {schedule:?}: expected exactly 5 fields (minute hour day-of-month month day-of-week), found {}",
            s.split_whitespace().count()
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(s)
        .map_err(|e| format!("Invalid value: {schedule:?}: {e}"))
}

/// The time zone a CronJob's schedule is read in: `timeZone` (an IANA name), or the node's.
pub fn time_zone(name: Option<&str>) -> Result<jiff::tz::TimeZone, String> {
    match name {
        None => Ok(jiff::tz::TimeZone::system()),
        Some(n) if n.starts_with(':') || n.contains("..") => {
            Err(format!("Invalid value: {n:?}: unknown time zone"))
        }
        Some(n) => jiff::tz::TimeZone::get(n)
            .map_err(|_| format!("Invalid value: {n:?}: unknown time zone {n}")),
    }
}

/// The fields of a Job's spec that may not change after creation (compared with defaults
/// filled, so that leaving a defaulted field out is no change).
const IMMUTABLE: &[&str] = &["selector", "template", "completionMode", "completions"];

/// A change of a Job: the selector, template, completion mode and count stay.
pub(super) fn update(old: &Value, new: &Value, out: &mut Vec<FieldError>) {
    if old["kind"] != "Job" {
        return;
    }
    let defaulted = |o: &Value| {
        let mut o = o.clone();
        defaults::apply(&mut o);
        o
    };
    let (old, new) = (defaulted(old), defaulted(new));
    for field in IMMUTABLE {
        if old["spec"][field] != new["spec"][field] {
            out.push(err(format!("spec.{field}"), "field is immutable"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate;
    use super::*;
    use serde_json::json;

    fn job() -> Value {
        json!({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"pi"},
          "spec":{"completions":3,"parallelism":2,"backoffLimit":1,
            "template":{"spec":{"restartPolicy":"Never",
              "containers":[{"name":"pi","image":"demo:1","command":["true"]}]}}}})
    }

    fn cronjob() -> Value {
        json!({"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"backup"},
          "spec":{"schedule":"*/5 * * * *","jobTemplate":{"spec":{
            "template":{"spec":{"restartPolicy":"OnFailure",
              "containers":[{"name":"b","image":"demo:1"}]}}}}}})
    }

    fn first(obj: &Value) -> String {
        validate(obj).unwrap_err()[0].to_string()
    }

    #[test]
    fn supported_jobs_and_cronjobs_pass() {
        validate(&job()).unwrap();
        validate(&cronjob()).unwrap();
        let mut j = job();
        j["spec"]["completionMode"] = json!("Indexed");
        j["spec"]["activeDeadlineSeconds"] = json!(60);
        j["spec"]["ttlSecondsAfterFinished"] = json!(0);
        j["spec"]["suspend"] = json!(true);
        validate(&j).unwrap();
        let mut c = cronjob();
        for s in [
            "@hourly",
            "@daily",
            "@midnight",
            "@weekly",
            "0 3 * * MON-FRI",
            "*/1 * * * *",
        ] {
            c["spec"]["schedule"] = json!(s);
            validate(&c).unwrap();
        }
        c["spec"]["timeZone"] = json!("Europe/Berlin");
        c["spec"]["concurrencyPolicy"] = json!("Forbid");
        c["spec"]["startingDeadlineSeconds"] = json!(200);
        validate(&c).unwrap();
    }

    #[test]
    fn a_jobs_pods_must_not_restart_always() {
        let mut j = job();
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        let e = first(&j);
        assert!(
            e.starts_with("spec.template.spec.restartPolicy: Unsupported value: \"Always\""),
            "{e}"
        );
        j["spec"]["template"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("restartPolicy");
        assert!(first(&j).contains("Required value"), "{}", first(&j));
    }

    #[test]
    fn wrong_values_are_named() {
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|j| j["spec"]["parallelism"] = json!(-1)),
                "spec.parallelism",
            ),
            (
                Box::new(|j| j["spec"]["completionMode"] = json!("Sorted")),
                "spec.completionMode",
            ),
            (
                Box::new(|j| {
                    j["spec"]["completionMode"] = json!("Indexed");
                    j["spec"].as_object_mut().unwrap().remove("completions");
                }),
                "spec.completions",
            ),
            (
                Box::new(|j| j["spec"]["manualSelector"] = json!(true)),
                "spec.manualSelector",
            ),
            (
                Box::new(|j| j["spec"]["selector"] = json!({"matchLabels":{"a":"b"}})),
                "spec.selector",
            ),
            (
                Box::new(|j| {
                    j["spec"]["podFailurePolicy"] = json!({"rules":[{"action":"Ignore",
                    "onPodConditions":[{"type":"DisruptionTarget"}]}]})
                }),
                "spec.podFailurePolicy",
            ),
            (
                Box::new(|j| j["spec"]["backoffLimitPerIndex"] = json!(1)),
                "spec.backoffLimitPerIndex",
            ),
        ];
        for (change, field) in cases {
            let mut j = job();
            change(&mut j);
            let e = first(&j);
            assert!(e.starts_with(field), "{field}: {e}");
        }
        // The generated selector of the Job's own uid is accepted (an object read back).
        let mut j = job();
        j["metadata"]["uid"] = json!("u-1");
        j["spec"]["selector"] = defaults::job_selector("u-1");
        validate(&j).unwrap();
    }

    #[test]
    fn schedules_and_zones_are_checked() {
        for (s, says) in [
            ("* * * *", "expected exactly 5 fields"),
            ("0 0 * * * *", "expected exactly 5 fields"),
            ("61 * * * *", "Invalid value"),
            ("TZ=UTC * * * * *", "use timeZone field instead"),
            ("@every 1h", "not supported by skiff"),
        ] {
            let mut c = cronjob();
            c["spec"]["schedule"] = json!(s);
            let e = first(&c);
            assert!(
                e.starts_with("spec.schedule") && e.contains(says),
                "{s}: {e}"
            );
        }
        let mut c = cronjob();
        c["spec"]["timeZone"] = json!("Mars/Olympus");
        assert!(first(&c).starts_with("spec.timeZone"), "{}", first(&c));
        let mut c = cronjob();
        c["spec"]["concurrencyPolicy"] = json!("Sometimes");
        assert!(first(&c).starts_with("spec.concurrencyPolicy"));
        let mut c = cronjob();
        c["metadata"]["name"] = json!("a".repeat(53));
        assert!(first(&c).starts_with("metadata.name"));
        let mut c = cronjob();
        c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        assert!(first(&c).starts_with("spec.jobTemplate.spec.template.spec.restartPolicy"));
    }

    #[test]
    fn a_jobs_template_and_counts_do_not_change() {
        let old = job();
        let mut new = job();
        new["spec"]["parallelism"] = json!(3);
        new["spec"]["suspend"] = json!(true);
        super::super::validate_update(&old, &new).unwrap();
        new["spec"]["completions"] = json!(5);
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("demo:2");
        let e = super::super::validate_update(&old, &new).unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.template", "spec.completions"]);
    }
}
