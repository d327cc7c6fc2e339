//! The HelmChart kind (issue 16) with the real binary, real containers and the real kubectl:
//! a chart built here as a `.tgz` (with `tar`) and given as `chartContent` in a HelmChart
//! dropped into the manifests folder is installed (its Deployment answers HTTP with the
//! value given, its hooks ran in weight order, a post-install hook Job completed, its release
//! Secret decodes as Helm's: base64 + gzip + JSON); changing `valuesContent` upgrades it (new
//! revision, the old one `superseded`, an object no longer rendered pruned); removing the file
//! uninstalls everything, release Secrets included. Through kubectl: a template that fails
//! names its template, line and message in the status and an Event and applies nothing, a
//! failing upgrade keeps the previous revision's objects and records a `failed` revision,
//! k3s's helm-Job fields are refused by name, and namespace tokens may not write HelmCharts.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;
use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::*;

const IMAGE: &str = "skiff-e2e-helm:v1";
const LONG: Duration = Duration::from_secs(120);

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A chart directory `<dir>/<name>` packed with `tar czf`, base64-encoded (`chartContent`).
fn packed(dir: &Path, name: &str) -> String {
    let tgz = dir.join(format!("{name}.tgz"));
    let o = Command::new("tar")
        .arg("czf")
        .arg(&tgz)
        .arg("-C")
        .arg(dir)
        .arg(name)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    B64.encode(std::fs::read(tgz).unwrap())
}

/// A web app as chart authors write it: a Deployment serving `.Values.message` on
/// `.Values.port`, its Service, a ConfigMap only while `.Values.extra`, two pre-install hooks
/// whose weights reverse their file order, a post-install hook Job, NOTES.txt.
fn web_chart(dir: &Path) -> String {
    let root = dir.join("web");
    write(
        &root,
        "Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.3.0\nappVersion: \"1.0\"\n",
    );
    write(
        &root,
        "values.yaml",
        "port: 8080\nmessage: default\nextra: true\n",
    );
    write(
        &root,
        "templates/_helpers.tpl",
        "{{- define \"web.fullname\" -}}\n{{ .Release.Name }}-{{ .Chart.Name }}\n{{- end -}}\n",
    );
    write(
        &root,
        "templates/deployment.yaml",
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{{{ include \"web.fullname\" . }}}}
spec:
  replicas: 1
  strategy:
    type: Recreate
  selector:
    matchLabels:
      app: {{{{ include \"web.fullname\" . }}}}
  template:
    metadata:
      labels:
        app: {{{{ include \"web.fullname\" . }}}}
    spec:
      hostNetwork: true
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {IMAGE}
        imagePullPolicy: Never
        command: [\"sh\", \"-c\", \"mkdir -p /tmp/w && echo {{{{ .Values.message }}}} > /tmp/w/index.html && exec httpd -f -p {{{{ .Values.port }}}} -h /tmp/w\"]
"
        ),
    );
    write(&root, "templates/service.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ include \"web.fullname\" . }}\nspec:\n  selector:\n    app: {{ include \"web.fullname\" . }}\n  ports:\n  - port: 80\n    targetPort: {{ .Values.port }}\n");
    write(&root, "templates/extra.yaml", "{{- if .Values.extra }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-extra\ndata:\n  revision: {{ .Release.Revision | quote }}\n{{- end }}\n");
    // hook-a comes first in the file, but its weight puts it after hook-b.
    write(&root, "templates/hooks.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-hook-a\n  annotations:\n    helm.sh/hook: pre-install,pre-upgrade\n    helm.sh/hook-weight: \"5\"\ndata:\n  revision: {{ .Release.Revision | quote }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-hook-b\n  annotations:\n    helm.sh/hook: pre-install,pre-upgrade\n    helm.sh/hook-weight: \"-5\"\ndata:\n  revision: {{ .Release.Revision | quote }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-bye\n  annotations:\n    helm.sh/hook: pre-delete\ndata:\n  revision: {{ .Release.Revision | quote }}\n");
    write(
        &root,
        "templates/post-job.yaml",
        &hook_job("post", "post-install", "", "echo installed"),
    );
    write(
        &root,
        "templates/NOTES.txt",
        "{{ .Release.Name }} answers on port {{ .Values.port }}.\n",
    );
    packed(dir, "web")
}

/// A hook Job `<release>-<suffix>` on `event` (more annotations in `extra`) running `script`.
fn hook_job(suffix: &str, event: &str, extra: &str, script: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: {{{{ .Release.Name }}}}-{suffix}
  annotations:
    helm.sh/hook: {event}
{extra}spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: {suffix}
        image: {IMAGE}
        imagePullPolicy: Never
        command: [\"sh\", \"-c\", \"{script}\"]
"
    )
}

fn helmchart_yaml(name: &str, content: &str, values: &str) -> String {
    let values: String = values.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: helm.cattle.io/v1
kind: HelmChart
metadata:
  name: {name}
  namespace: default
spec:
  targetNamespace: apps
  createNamespace: true
  chartContent: {content}
  valuesContent: |-
{values}"
    )
}

/// The release record of a release Secret, decoded as a Helm client does: the Secret's
/// base64, Helm's base64, gzip, JSON.
fn decode_release(secret: &Value) -> Value {
    let outer = B64
        .decode(secret["data"]["release"].as_str().expect("data.release"))
        .unwrap();
    let gz = B64.decode(outer).unwrap();
    let mut json = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut json)
        .unwrap();
    serde_json::from_str(&json).unwrap()
}

fn release_secret(k: &Kubectl, name: &str, version: i64) -> Option<Value> {
    k.get_json(&[
        "secret",
        "-n",
        "apps",
        &format!("sh.helm.release.v1.{name}.v{version}"),
    ])
}

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn events_of(k: &Kubectl, name: &str) -> String {
    k.run(&[
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        &format!("involvedObject.name={name}"),
        "-o",
        "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message",
    ])
    .stdout
}

#[test]
fn a_helmchart_in_the_folder_installs_upgrades_and_uninstalls() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let port = free_port();
    let content = web_chart(&s.work_dir);
    s.write_manifest(
        "web-chart.yaml",
        &helmchart_yaml("web", &content, &format!("port: {port}\nmessage: first")),
    );
    let (body, _) = s.expect_http(port, "/", LONG);
    assert_eq!(body, "first\n");

    // Installed: kubectl shows it, the release record is Helm's, the hooks ran in order.
    let ok = wait_until(LONG, POLL, || {
        k.run(&["get", "helmchart", "web", "-n", "default"])
            .stdout
            .contains("Installed")
    });
    let table = k.run(&["get", "helmchart", "web", "-n", "default"]);
    assert!(ok, "{} {}\n{}", table.stdout, table.stderr, s.log_tail(40));
    assert!(
        table.stdout.contains("(chartContent)") && table.stdout.contains("0.3.0"),
        "{}",
        table.stdout
    );
    let v1 = release_secret(&k, "web", 1).expect("revision 1's Secret");
    assert_eq!(v1["type"], "helm.sh/release.v1");
    assert_eq!(v1["metadata"]["labels"]["owner"], "helm");
    assert_eq!(v1["metadata"]["labels"]["status"], "deployed");
    let r1 = decode_release(&v1);
    assert_eq!(r1["name"], "web");
    assert_eq!(r1["namespace"], "apps");
    assert_eq!(r1["version"], 1);
    assert_eq!(r1["info"]["status"], "deployed");
    assert_eq!(
        r1["info"]["notes"],
        format!("web answers on port {port}.\n")
    );
    assert_eq!(r1["chart"]["metadata"]["name"], "web");
    assert_eq!(r1["chart"]["metadata"]["version"], "0.3.0");
    assert_eq!(r1["config"]["message"], "first");
    let manifest = r1["manifest"].as_str().unwrap();
    assert!(
        manifest.contains(
            "# Source: web/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment"
        ),
        "{manifest}"
    );
    assert_eq!(r1["hooks"].as_array().unwrap().len(), 4, "{}", r1["hooks"]);
    assert!(
        k.get_json(&["configmap", "-n", "apps", "web-bye"])
            .is_none(),
        "a pre-delete hook waits for the uninstall"
    );
    let hook_a = k
        .get_json(&["configmap", "-n", "apps", "web-hook-a"])
        .expect("hook a");
    let hook_b = k
        .get_json(&["configmap", "-n", "apps", "web-hook-b"])
        .expect("hook b");
    assert!(rv(&hook_b) < rv(&hook_a), "weight -5 runs before weight 5");
    let post = k
        .get_json(&["job", "-n", "apps", "web-post"])
        .expect("the post-install Job");
    assert!(
        post["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Complete" && c["status"] == "True"),
        "the release was recorded after its post-install Job completed: {}",
        post["status"]
    );
    assert!(k.get_json(&["service", "-n", "apps", "web-web"]).is_some());
    assert!(k
        .get_json(&["configmap", "-n", "apps", "web-extra"])
        .is_some());
    let events = events_of(&k, "web");
    assert!(
        events.contains("Installed") && events.contains(&format!("web answers on port {port}.")),
        "{events}"
    );

    // Upgrade: a new value, and one object no longer rendered.
    s.write_manifest(
        "web-chart.yaml",
        &helmchart_yaml(
            "web",
            &content,
            &format!("port: {port}\nmessage: second\nextra: false"),
        ),
    );
    s.expect("revision 2 is deployed", LONG, |_| {
        release_secret(&k, "web", 2)
            .is_some_and(|v| v["metadata"]["labels"]["status"] == "deployed")
    });
    let answered = wait_until(LONG, POLL, || {
        http_get(port, "/").is_ok_and(|r| r.body == "second\n")
    });
    assert!(answered, "the upgraded pod answers with the new value");
    let v1 = release_secret(&k, "web", 1).unwrap();
    assert_eq!(v1["metadata"]["labels"]["status"], "superseded");
    assert_eq!(decode_release(&v1)["info"]["status"], "superseded");
    let r2 = decode_release(&release_secret(&k, "web", 2).unwrap());
    assert_eq!(r2["config"]["extra"], false);
    assert!(!r2["manifest"].as_str().unwrap().contains("web-extra"));
    assert!(
        k.get_json(&["configmap", "-n", "apps", "web-extra"])
            .is_none(),
        "pruned"
    );
    let hook_a = k
        .get_json(&["configmap", "-n", "apps", "web-hook-a"])
        .unwrap();
    assert_eq!(
        hook_a["data"]["revision"], "2",
        "pre-upgrade hooks ran again"
    );
    let hc = k.get_json(&["helmchart", "web", "-n", "default"]).unwrap();
    assert_eq!(hc["status"]["revision"], 2);
    assert!(events_of(&k, "web").contains("Upgraded"));

    // A restart makes no new revision (the same input).
    s.restart();
    let (body, _) = s.expect_http(port, "/", LONG);
    assert_eq!(body, "second\n");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        release_secret(&k, "web", 3).is_none(),
        "no revision 3 after a restart"
    );

    // Uninstall: the file goes, and so does everything of the release; its pre-delete hook ran.
    s.remove_manifest("web-chart.yaml");
    s.expect("the HelmChart is gone", LONG, |_| {
        k.get_json(&["helmchart", "web", "-n", "default"]).is_none()
    });
    assert!(k
        .get_json(&["deployment", "-n", "apps", "web-web"])
        .is_none());
    assert!(k.get_json(&["service", "-n", "apps", "web-web"]).is_none());
    let secrets = k
        .get_json(&["secrets", "-n", "apps", "-l", "owner=helm"])
        .unwrap();
    assert_eq!(secrets["items"].as_array().unwrap().len(), 0, "{secrets}");
    let bye = k
        .get_json(&["configmap", "-n", "apps", "web-bye"])
        .expect("the pre-delete hook");
    assert_eq!(bye["data"]["revision"], "2");
    s.expect("the app stops answering", LONG, |_| port_closed(port));
}

/// The `Failed` condition of the HelmChart `name` in `ns` once it is True.
fn failed_condition(k: &Kubectl, name: &str, ns: &str) -> Option<Value> {
    wait_for(LONG, || {
        let hc = k.get_json(&["helmchart", name, "-n", ns])?;
        hc["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Failed" && c["status"] == "True")
            .cloned()
    })
}

fn failing_chart(dir: &Path) -> String {
    let root = dir.join("strict");
    write(
        &root,
        "Chart.yaml",
        "apiVersion: v2\nname: strict\nversion: 1.0.0\n",
    );
    write(&root, "values.yaml", "tag: \"\"\n");
    write(&root, "templates/a-config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\ndata:\n  tag: {{ .Values.tag | quote }}\n  namespaceUid: {{ (lookup \"v1\" \"Namespace\" \"\" .Release.Namespace).metadata.uid | quote }}\n  missing: {{ lookup \"v1\" \"Secret\" .Release.Namespace \"nope\" | len | quote }}\n");
    write(&root, "templates/b-tagged.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-tagged\ndata:\n  tag: {{ required \"tag is required\" .Values.tag | quote }}\n");
    packed(dir, "strict")
}

#[test]
fn failures_name_the_template_and_apply_nothing() {
    let s = server_with_images(&[]);
    let k = Kubectl::admin(&s);
    k.ok(&["create", "namespace", "apps"]);
    let content = failing_chart(&s.work_dir);
    let chart = |values: &str| {
        helmchart_yaml("strict", &content, values).replace("  createNamespace: true\n", "")
    };

    // A first install whose template fails: the status and an Event name it; nothing exists.
    k.apply(&chart("tag: \"\""), &[]);
    let failed = failed_condition(&k, "strict", "default").expect("the Failed condition");
    let message = failed["message"].as_str().unwrap();
    assert_eq!(failed["reason"], "RenderFailed");
    assert!(
        message.contains("strict/templates/b-tagged.yaml:6:")
            && message.contains("tag is required"),
        "{message}"
    );
    assert!(events_of(&k, "strict").contains("strict/templates/b-tagged.yaml:6:"));
    let describe = k.run(&["describe", "helmchart", "strict", "-n", "default"]);
    assert!(
        describe.ok() && describe.stdout.contains("tag is required"),
        "{}",
        describe.stdout
    );
    assert!(
        k.get_json(&["configmap", "-n", "apps", "strict-config"])
            .is_none(),
        "nothing applied"
    );
    let v1 = release_secret(&k, "strict", 1).expect("the failed revision is recorded");
    assert_eq!(v1["metadata"]["labels"]["status"], "failed");

    // A good value installs (revision 2); a bad one again keeps its objects (revision 3 failed).
    k.apply(&chart("tag: \"1.0\""), &[]);
    let ok = wait_until(LONG, POLL, || {
        release_secret(&k, "strict", 2)
            .is_some_and(|v| v["metadata"]["labels"]["status"] == "deployed")
    });
    assert!(ok, "{}", s.log_tail(30));
    let cm = k
        .get_json(&["configmap", "-n", "apps", "strict-tagged"])
        .unwrap();
    assert_eq!(cm["data"]["tag"], "1.0");
    // lookup reads the cluster: the namespace's uid, an empty map for a missing Secret.
    let config = k
        .get_json(&["configmap", "-n", "apps", "strict-config"])
        .unwrap();
    let ns = k.get_json(&["namespace", "apps"]).unwrap();
    assert_eq!(config["data"]["namespaceUid"], ns["metadata"]["uid"]);
    assert_eq!(config["data"]["missing"], "0");
    k.apply(&chart("tag: \"\""), &[]);
    let ok = wait_until(LONG, POLL, || {
        release_secret(&k, "strict", 3)
            .is_some_and(|v| v["metadata"]["labels"]["status"] == "failed")
    });
    assert!(ok, "{}", s.log_tail(30));
    assert_eq!(
        release_secret(&k, "strict", 2).unwrap()["metadata"]["labels"]["status"],
        "deployed"
    );
    let cm = k
        .get_json(&["configmap", "-n", "apps", "strict-config"])
        .unwrap();
    assert_eq!(
        cm["data"]["tag"], "1.0",
        "the previous revision's objects stay"
    );
    let hc = k
        .get_json(&["helmchart", "strict", "-n", "default"])
        .unwrap();
    assert_eq!(hc["status"]["revision"], 2, "{}", hc["status"]);
    assert!(events_of(&k, "strict").contains("Rendered strict 1.0.0 for revision 2"));

    // A HelmChartConfig of the same name overlays the HelmChart's values (revision 4).
    k.apply("apiVersion: helm.cattle.io/v1\nkind: HelmChartConfig\nmetadata:\n  name: strict\n  namespace: default\nspec:\n  valuesContent: |-\n    tag: \"2.0\"\n", &[]);
    let ok = wait_until(LONG, POLL, || {
        release_secret(&k, "strict", 4)
            .is_some_and(|v| v["metadata"]["labels"]["status"] == "deployed")
    });
    assert!(ok, "{}", s.log_tail(30));
    let cm = k
        .get_json(&["configmap", "-n", "apps", "strict-tagged"])
        .unwrap();
    assert_eq!(cm["data"]["tag"], "2.0");
    assert_eq!(
        release_secret(&k, "strict", 2).unwrap()["metadata"]["labels"]["status"],
        "superseded"
    );

    // Another namespace's HelmChart of the same name and target may not take the release over,
    // and deleting it leaves the release alone.
    k.ok(&["create", "namespace", "other"]);
    k.apply(
        &chart("tag: \"3.0\"").replace("namespace: default", "namespace: other"),
        &[],
    );
    let taken = failed_condition(&k, "strict", "other")
        .expect("the Failed condition of the second HelmChart");
    assert_eq!(taken["reason"], "ReleaseTaken", "{taken}");
    assert!(
        taken["message"]
            .as_str()
            .unwrap()
            .contains("belongs to the HelmChart default/strict"),
        "{taken}"
    );
    k.ok(&[
        "delete",
        "helmchart",
        "strict",
        "-n",
        "other",
        "--wait=true",
        "--timeout=60s",
    ]);
    assert_eq!(
        release_secret(&k, "strict", 4).unwrap()["metadata"]["labels"]["status"],
        "deployed"
    );
    assert_eq!(
        k.get_json(&["configmap", "-n", "apps", "strict-tagged"])
            .unwrap()["data"]["tag"],
        "2.0"
    );

    // History: ten revisions kept (Helm's default), the oldest trimmed first.
    for i in 5..=12 {
        k.apply(&chart(&format!("tag: \"1.0\"\nround: {i}")), &[]);
        let ok = wait_until(LONG, POLL, || {
            release_secret(&k, "strict", i)
                .is_some_and(|v| v["metadata"]["labels"]["status"] == "deployed")
        });
        assert!(ok, "revision {i}: {}", s.log_tail(30));
    }
    let kept = k
        .get_json(&["secrets", "-n", "apps", "-l", "owner=helm,name=strict"])
        .unwrap();
    let mut versions: Vec<String> = kept["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["metadata"]["labels"]["version"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    versions.sort_by_key(|v| v.parse::<i64>().unwrap());
    assert_eq!(
        versions,
        ["3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]
    );

    // kubectl explain reads the kind's schema.
    let explain = k.run(&["explain", "helmchart.spec.chartContent"]);
    assert!(
        explain.ok() && explain.stdout.contains("base64"),
        "{explain}"
    );

    // k3s's helm-Job fields are refused by name; namespace tokens may not write HelmCharts.
    let with_job = chart("tag: x").replace(
        "spec:\n",
        "spec:\n  jobImage: rancher/klipper-helm:v0.9.3\n",
    );
    let o = k.run_stdin(&["apply", "-f", "-"], &with_job);
    assert!(!o.ok(), "{}", o.stdout);
    assert!(
        o.stderr.contains("spec.jobImage") && o.stderr.contains("no helm Job"),
        "{}",
        o.stderr
    );
    let tenant = Kubectl::with_kubeconfig(&s, &s.namespace_kubeconfig("apps"));
    let mine = chart("tag: x")
        .replace("namespace: default", "namespace: apps")
        .replace("name: strict", "name: mine");
    let o = tenant.run_stdin(&["apply", "-f", "-"], &mine);
    assert!(
        !o.ok()
            && o.stderr
                .contains("HelmCharts and HelmChartConfigs are the admin's"),
        "{}",
        o.stderr
    );

    // kubectl delete uninstalls (the finalizer holds the object until it is done).
    k.ok(&[
        "delete",
        "helmchart",
        "strict",
        "-n",
        "default",
        "--wait=true",
        "--timeout=60s",
    ]);
    assert!(k
        .get_json(&["configmap", "-n", "apps", "strict-config"])
        .is_none());
    let secrets = k
        .get_json(&["secrets", "-n", "apps", "-l", "owner=helm"])
        .unwrap();
    assert_eq!(secrets["items"].as_array().unwrap().len(), 0, "{secrets}");
}

#[test]
fn a_failing_pre_install_hook_fails_the_install_and_applies_nothing() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let root = s.work_dir.join("hooked");
    write(
        &root,
        "Chart.yaml",
        "apiVersion: v2\nname: hooked\nversion: 0.1.0\n",
    );
    write(&root, "templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-app\ndata:\n  a: b\n");
    write(
        &root,
        "templates/check.yaml",
        &hook_job(
            "check",
            "pre-install",
            "    helm.sh/hook-delete-policy: hook-succeeded\n",
            "exit 3",
        ),
    );
    let content = packed(&s.work_dir, "hooked");
    k.apply(&helmchart_yaml("hooked", &content, "{}"), &[]);
    let failed = failed_condition(&k, "hooked", "default").expect("the Failed condition");
    assert_eq!(failed["reason"], "HookFailed", "{failed}");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("pre-install hook Job apps/hooked-check")
            && message.contains("the Job failed"),
        "{message}"
    );
    assert!(
        k.get_json(&["configmap", "-n", "apps", "hooked-app"])
            .is_none(),
        "nothing applied"
    );
    // hook-succeeded only: the failed Job stays for its logs.
    assert!(k.get_json(&["job", "-n", "apps", "hooked-check"]).is_some());
    let v1 = release_secret(&k, "hooked", 1).expect("the failed revision");
    assert_eq!(v1["metadata"]["labels"]["status"], "failed");
    assert!(decode_release(&v1)["info"]["description"]
        .as_str()
        .unwrap()
        .starts_with("Install failed: "));
}

/// An upgrade whose post-upgrade hook fails after its objects were applied is rolled back as
/// `helm upgrade --atomic` does: the deployed revision's objects are applied again (the
/// object the failed revision added is pruned, the changed one restored), the failed
/// revision is recorded `failed`, a new revision `Rollback to 1` is `deployed`, and the
/// HelmChart's `Failed` condition says so — also after a restart (no new attempt).
#[test]
fn an_upgrade_failing_after_its_apply_is_rolled_back() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let root = s.work_dir.join("atomic");
    write(
        &root,
        "Chart.yaml",
        "apiVersion: v2\nname: atomic\nversion: 0.1.0\n",
    );
    write(&root, "values.yaml", "message: one\nbreak: false\n");
    write(&root, "templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-app\ndata:\n  message: {{ .Values.message | quote }}\n{{- if .Values.break }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-new\ndata:\n  a: b\n{{- end }}\n");
    write(
        &root,
        "templates/check.yaml",
        &hook_job(
            "check",
            "post-upgrade",
            "",
            "test {{ .Values.break }} = false",
        ),
    );
    let content = packed(&s.work_dir, "atomic");
    let message = |k: &Kubectl| {
        k.get_json(&["configmap", "-n", "apps", "atomic-app"])
            .map(|c| c["data"]["message"].clone())
    };
    s.write_manifest("atomic.yaml", &helmchart_yaml("atomic", &content, "{}"));
    assert!(
        wait_until(LONG, POLL, || message(&k) == Some("one".into())),
        "installed"
    );
    // The upgrade applies (message two, one more ConfigMap), then its hook fails.
    s.write_manifest(
        "atomic.yaml",
        &helmchart_yaml("atomic", &content, "message: two\nbreak: true"),
    );
    let failed = failed_condition(&k, "atomic", "default").expect("the Failed condition");
    let text = failed["message"].as_str().unwrap().to_string();
    assert!(
        text.contains("post-upgrade hook Job apps/atomic-check")
            && text.contains("rolled back to revision 1 (as revision 3)"),
        "{text}"
    );
    assert_eq!(
        message(&k),
        Some("one".into()),
        "the deployed objects again"
    );
    assert!(
        k.get_json(&["configmap", "-n", "apps", "atomic-new"])
            .is_none(),
        "what only the failed revision rendered is pruned"
    );
    let status =
        |v: i64| release_secret(&k, "atomic", v).map(|s| s["metadata"]["labels"]["status"].clone());
    assert_eq!(status(1), Some("superseded".into()));
    assert_eq!(status(2), Some("failed".into()));
    assert_eq!(status(3), Some("deployed".into()));
    let v3 = decode_release(&release_secret(&k, "atomic", 3).unwrap());
    assert_eq!(v3["info"]["description"], "Rollback to 1");
    assert_eq!(v3["version"], 3);
    assert!(v3["manifest"]
        .as_str()
        .unwrap()
        .contains("message: \"one\""));
    // No new attempt after a restart, and the condition stays.
    s.restart();
    std::thread::sleep(Duration::from_secs(3));
    assert!(release_secret(&k, "atomic", 4).is_none());
    assert!(failed_condition(&k, "atomic", "default").is_some());
}
