//! `env[].valueFrom` (ConfigMap and Secret keys, pod fields) and `envFrom` reach the container,
//! and a missing ConfigMap keeps the container waiting with kubelet's message until it exists.

use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::wait_for;

const IMAGE: &str = "skiff-e2e-env:v1";

#[test]
fn env_from_config_maps_secrets_and_fields() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{COLOR: blue, size: large}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: s3cret}}
---
apiVersion: v1
kind: Pod
metadata:
  name: envy
  labels: {{tier: web}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"echo COLOR=$COLOR; echo CFG_size=$CFG_size; echo SIZE=$SIZE; echo PASSWORD=$PASSWORD; echo NAME=$NAME; echo NS=$NS; echo TIER=$TIER; echo IP=$IP; echo GREETING=$GREETING\"]
    envFrom:
    - configMapRef: {{name: settings}}
    - configMapRef: {{name: settings}}
      prefix: CFG_
    env:
    - {{name: SIZE, valueFrom: {{configMapKeyRef: {{name: settings, key: size}}}}}}
    - {{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}}}
    - {{name: NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: NS, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
    - {{name: TIER, valueFrom: {{fieldRef: {{fieldPath: \"metadata.labels['tier']\"}}}}}}
    - {{name: IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
    - {{name: GREETING, value: \"$(NAME) is $(COLOR)\"}}
"
        ),
        &[],
    );
    let logs = wait_for(Duration::from_secs(60), || {
        let o = k.run(&["logs", "envy"]);
        (o.ok() && o.stdout.contains("GREETING=")).then_some(o.stdout)
    })
    .expect("the pod's output");
    for want in [
        "COLOR=blue",
        "CFG_size=large",
        "SIZE=large",
        "PASSWORD=s3cret",
        "NAME=envy",
        "NS=default",
        "TIER=web",
        "GREETING=envy is blue",
    ] {
        assert!(
            logs.lines().any(|l| l == want),
            "missing {want:?} in:\n{logs}"
        );
    }
    let ip = logs
        .lines()
        .find_map(|l| l.strip_prefix("IP="))
        .unwrap_or_default();
    assert!(
        ip.starts_with(&format!("10.244.{}.", s.net_index)),
        "IP={ip}"
    );

    // A missing ConfigMap: waiting with kubelet's reason and message, then it starts.
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: waits}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"echo LATE=$LATE\"]
    env:
    - {{name: LATE, valueFrom: {{configMapKeyRef: {{name: later, key: v}}}}}}
"
        ),
        &[],
    );
    let waiting = wait_for(Duration::from_secs(30), || {
        let p = k.get_json(&["pod", "waits"])?;
        let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        (w["reason"] == "CreateContainerConfigError")
            .then(|| w["message"].as_str().unwrap_or_default().to_string())
    })
    .expect("CreateContainerConfigError");
    assert!(
        waiting.contains("configmap \"later\" not found"),
        "{waiting}"
    );
    k.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\ndata: {v: arrived}\n",
        &[],
    );
    let late = wait_for(Duration::from_secs(30), || {
        let o = k.run(&["logs", "waits"]);
        (o.ok() && o.stdout.contains("LATE=")).then_some(o.stdout)
    })
    .expect("the pod ran once its ConfigMap existed");
    assert!(late.contains("LATE=arrived"), "{late}");
}

/// Kubelet's service links: the Services of the pod's namespace (that existed when it started)
/// as `<NAME>_SERVICE_HOST`… variables, unless `enableServiceLinks: false`; the `kubernetes`
/// Service's always.
#[test]
fn service_links_unless_disabled() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        "apiVersion: v1
kind: Service
metadata: {name: my-db}
spec:
  selector: {app: db}
  ports:
  - {name: pg, port: 5432, targetPort: 5432}
",
        &[],
    );
    let ip = wait_for(Duration::from_secs(30), || {
        let v = k.get_json(&["svc", "my-db"])?;
        v["spec"]["clusterIP"].as_str().map(String::from)
    })
    .expect("a cluster IP");
    let pod = |name: &str, links: bool| {
        format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  enableServiceLinks: {links}
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"echo HOST=$MY_DB_SERVICE_HOST PORT=$MY_DB_SERVICE_PORT PG=$MY_DB_SERVICE_PORT_PG ADDR=$MY_DB_PORT_5432_TCP_ADDR URL=$MY_DB_PORT K8S=$KUBERNETES_SERVICE_PORT\"]
"
        )
    };
    k.apply(&pod("linked", true), &[]);
    k.apply(&pod("unlinked", false), &[]);
    let out = |name: &str| {
        wait_for(Duration::from_secs(60), || {
            let o = k.run(&["logs", name]);
            (o.ok() && o.stdout.contains("HOST=")).then(|| o.stdout.trim().to_string())
        })
        .expect("the pod's output")
    };
    assert_eq!(
        out("linked"),
        format!("HOST={ip} PORT=5432 PG=5432 ADDR={ip} URL=tcp://{ip}:5432 K8S=443")
    );
    assert_eq!(out("unlinked"), "HOST= PORT= PG= ADDR= URL= K8S=443");
}
