//! Jobs (issue 12, part 1) with the real kubectl and real containers: a Job of 3 completions,
//! 2 at a time, completes (`kubectl wait --for=condition=complete`), its pods' logs are
//! readable (`kubectl logs job/NAME`), `kubectl get jobs` prints kubectl's columns, deleting
//! it deletes its pods; an Indexed Job's pods each see their index; a Job whose pods keep
//! failing stops at its backoffLimit with the Failed condition.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use skiff_e2e::kubectl::{parse_tables, server_with_images, Kubectl};
use skiff_e2e::wait_until;

const IMAGE: &str = "skiff-e2e-jobs:v1";

fn job_yaml(name: &str, extra_spec: &str, restart: &str, script: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{extra_spec}  template:
    spec:
      restartPolicy: {restart}
      terminationGracePeriodSeconds: 1
      containers:
      - name: work
        image: {IMAGE}
        imagePullPolicy: Never
        command: [\"sh\", \"-c\", \"{script}\"]
"
    )
}

fn pods_of(k: &Kubectl, job: &str) -> Vec<Value> {
    k.get_json(&["pods", "-l", &format!("batch.kubernetes.io/job-name={job}")])
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn a_job_completes_its_completions_two_at_a_time_and_is_deleted_with_its_pods() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &job_yaml(
            "count",
            "  completions: 3\n  parallelism: 2\n",
            "Never",
            "echo done-by-$(hostname); sleep 2",
        ),
        &[],
    );
    // Never more than two at a time.
    let mut most_running = 0;
    let done = wait_until(Duration::from_secs(120), Duration::from_millis(200), || {
        let pods = pods_of(&k, "count");
        let running = pods
            .iter()
            .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
            .count();
        most_running = most_running.max(running);
        k.get_json(&["job", "count"])
            .is_some_and(|j| j["status"]["succeeded"] == 3)
    });
    s.assert_running();
    assert!(
        done,
        "3 completions within 120 s; pods:\n{}",
        s.pods_summary()
    );
    assert!(most_running <= 2, "{most_running} pods ran at once");
    let o = k.run(&[
        "wait",
        "--for=condition=complete",
        "job/count",
        "--timeout=30s",
    ]);
    assert!(o.ok(), "kubectl wait: {o}");
    let job = k.get_json(&["job", "count"]).unwrap();
    let st = &job["status"];
    assert!(
        st["startTime"].is_string() && st["completionTime"].is_string(),
        "{st}"
    );
    let types: Vec<&str> = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"], "{st}");
    // The generated selector and labels, as Kubernetes makes them.
    let uid = job["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );
    let pods = pods_of(&k, "count");
    assert_eq!(pods.len(), 3, "exactly three pods (no failures)");
    for p in &pods {
        assert_eq!(p["status"]["phase"], "Succeeded");
        assert_eq!(p["metadata"]["labels"]["controller-uid"], uid);
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
    }

    // Logs: of the job (kubectl picks a pod by the selector), and of each pod.
    let o = k.run(&["logs", "job/count"]);
    assert!(
        o.ok() && o.stdout.starts_with("done-by-count-"),
        "kubectl logs job/count: {o}"
    );
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap();
        let o = k.ok(&["logs", name]);
        assert_eq!(o.trim(), format!("done-by-{name}"));
    }

    // kubectl get jobs: kubectl 1.32's columns.
    let out = k.ok(&["get", "jobs"]);
    let t = &parse_tables(&out)[0];
    assert_eq!(
        t.columns,
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        "{out}"
    );
    let row = t.row("count").expect("a row for count");
    assert_eq!(row["STATUS"], "Complete");
    assert_eq!(row["COMPLETIONS"], "3/3");
    assert!(row["DURATION"].ends_with('s'), "{out}");
    let wide = k.ok(&["get", "jobs", "-o", "wide"]);
    assert!(
        wide.contains(&format!("batch.kubernetes.io/controller-uid={uid}")),
        "{wide}"
    );

    // Deleting the Job deletes its pods.
    k.ok(&["delete", "job", "count"]);
    let gone = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        pods_of(&k, "count").is_empty()
    });
    assert!(
        gone,
        "pods left after the Job's deletion:\n{}",
        s.pods_summary()
    );
}

#[test]
fn indexed_pods_see_their_index_and_failing_pods_stop_at_the_backoff_limit() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &job_yaml(
            "idx",
            "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n",
            "Never",
            "echo index=$JOB_COMPLETION_INDEX",
        ),
        &[],
    );
    k.apply(
        &job_yaml(
            "fails",
            "  backoffLimit: 1\n",
            "Never",
            "echo failing; exit 3",
        ),
        &[],
    );
    let o = k.run(&[
        "wait",
        "--for=condition=complete",
        "job/idx",
        "--timeout=120s",
    ]);
    s.assert_running();
    assert!(
        o.ok(),
        "kubectl wait job/idx: {o}\npods:\n{}",
        s.pods_summary()
    );
    let job = k.get_json(&["job", "idx"]).unwrap();
    assert_eq!(
        job["status"]["completedIndexes"], "0-2",
        "{}",
        job["status"]
    );
    let mut seen = BTreeSet::new();
    for p in pods_of(&k, "idx") {
        let name = p["metadata"]["name"].as_str().unwrap();
        let index = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(name.starts_with(&format!("idx-{index}-")), "{name}");
        let out = k.ok(&["logs", name]);
        assert_eq!(out.trim(), format!("index={index}"), "{name}");
        seen.insert(index);
    }
    assert_eq!(seen, BTreeSet::from(["0".into(), "1".into(), "2".into()]));

    // backoffLimit 1: the second failure (after a 10 s back-off) fails the Job.
    let o = k.run(&[
        "wait",
        "--for=condition=failed",
        "job/fails",
        "--timeout=90s",
    ]);
    s.assert_running();
    assert!(
        o.ok(),
        "kubectl wait --for=condition=failed: {o}\npods:\n{}",
        s.pods_summary()
    );
    let job = k.get_json(&["job", "fails"]).unwrap();
    assert_eq!(job["status"]["failed"], 2, "{}", job["status"]);
    let failed = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .cloned()
        .unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    let pods = pods_of(&k, "fails");
    assert_eq!(pods.len(), 2, "no pod after the limit");
    assert!(pods.iter().all(|p| p["status"]["phase"] == "Failed"));
    let t = &parse_tables(&k.ok(&["get", "job", "fails"]))[0];
    assert_eq!(t.row("fails").unwrap()["STATUS"], "Failed");
    assert_eq!(t.row("fails").unwrap()["COMPLETIONS"], "0/1");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        pods_of(&k, "fails").len(),
        2,
        "a pod was started after the Job failed"
    );

    // A pod template that restarts Always is refused, with Kubernetes' words.
    let o = k.run_stdin(
        &["apply", "-f", "-"],
        &job_yaml("always", "", "Always", "true"),
    );
    assert!(!o.ok(), "{o}");
    assert!(
        o.stderr.contains("spec.template.spec.restartPolicy")
            && o.stderr.contains("Unsupported value: \"Always\""),
        "{}",
        o.stderr
    );
}
