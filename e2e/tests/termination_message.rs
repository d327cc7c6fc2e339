//! `terminationMessagePath` / `terminationMessagePolicy`: what a container writes to its
//! termination message file (any user may) — or, with `FallbackToLogsOnError`, the end of its
//! log when it failed — is `state.terminated.message`, shown by `kubectl describe pod`.

use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::wait_for;

const IMAGE: &str = "skiff-e2e-termination:v1";

#[test]
fn messages_from_the_file_or_the_logs() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: msg}}
spec:
  restartPolicy: Never
  containers:
  - name: file
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"echo bye from app > /dev/termination-log; exit 2\"]
  - name: logs
    image: {IMAGE}
    imagePullPolicy: Never
    terminationMessagePolicy: FallbackToLogsOnError
    command: [\"sh\", \"-c\", \"echo starting; echo oops >&2; exit 1\"]
  - name: custom
    image: {IMAGE}
    imagePullPolicy: Never
    terminationMessagePath: /tmp/done
    securityContext: {{runAsUser: 1000}}
    command: [\"sh\", \"-c\", \"echo all done > /tmp/done\"]
  - name: quiet
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"echo only in the log; exit 1\"]
"
        ),
        &[],
    );
    let p = wait_for(Duration::from_secs(30), || {
        let p = k.get_json(&["pod", "msg"])?;
        (p["status"]["phase"] == "Failed").then_some(p)
    })
    .expect("the pod ends");
    let message = |name: &str| {
        p["status"]["containerStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["state"]["terminated"]["message"].clone())
            .unwrap()
    };
    assert_eq!(message("file"), "bye from app\n", "{}", p["status"]);
    assert_eq!(message("logs"), "starting\noops\n");
    assert_eq!(message("custom"), "all done\n");
    assert!(message("quiet").is_null(), "{}", message("quiet"));
    let d = k.ok(&["describe", "pod", "msg"]);
    assert!(d.contains("Message:") && d.contains("bye from app"), "{d}");
}
