//! `skiff chart template`: a chart written the way chart authors write them (helpers,
//! include/nindent, required, toYaml, .Files, a subchart with an alias and a condition,
//! `global`), rendered from a directory and from a .tgz with `-f` and `--set`, compared to
//! what `helm template` prints; and the errors a user meets (a required value, a bad --set,
//! a template error) with their exit code and message. No daemon, no root needed.

use std::path::Path;
use std::process::Command;

use skiff_e2e::skiff_bin;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn demo_chart(root: &Path) {
    write(root, "Chart.yaml", "apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: \"4.5\"\ndependencies:\n  - name: cache\n    version: 0.1.0\n    alias: redis\n    condition: redis.enabled\n  - name: cache\n    version: 0.1.0\n    alias: memo\n    condition: memo.enabled\n");
    write(root, "values.yaml", "replicaCount: 1\nimage:\n  repository: nginx\n  tag: \"\"\nlabels: {}\nresources:\n  limits:\n    memory: 64Mi\nredis:\n  enabled: true\nmemo:\n  enabled: false\nglobal:\n  domain: example.com\n");
    write(root, "templates/_helpers.tpl", "{{- define \"demo.fullname\" -}}\n{{- printf \"%s-%s\" .Release.Name .Chart.Name | trunc 63 | trimSuffix \"-\" -}}\n{{- end -}}\n{{- define \"demo.labels\" -}}\napp.kubernetes.io/name: {{ .Chart.Name }}\napp.kubernetes.io/version: {{ .Chart.AppVersion | quote }}\n{{- with .Values.labels }}\n{{ toYaml . }}\n{{- end }}\n{{- end -}}\n");
    write(root, "templates/deployment.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ include \"demo.fullname\" . }}\n  namespace: {{ .Release.Namespace }}\n  labels:\n    {{- include \"demo.labels\" . | nindent 4 }}\nspec:\n  replicas: {{ .Values.replicaCount }}\n  template:\n    spec:\n      containers:\n        - name: web\n          image: \"{{ .Values.image.repository }}:{{ required \"image.tag is required\" .Values.image.tag }}\"\n          resources:\n            {{- toYaml .Values.resources | nindent 12 }}\n");
    write(root, "templates/configmap.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include \"demo.fullname\" . }}-files\ndata:\n  {{- (.Files.Glob \"files/*.conf\").AsConfig | nindent 2 }}\n  greeting: {{ .Files.Get \"files/greeting.txt\" | trim | quote }}\n  host: {{ printf \"web.%s\" .Values.global.domain }}\n");
    write(
        root,
        "templates/NOTES.txt",
        "Visit http://{{ .Values.global.domain }}\n",
    );
    write(root, "files/app.conf", "listen 80;\n");
    write(root, "files/greeting.txt", "hello\n");
    write(
        root,
        "charts/cache/Chart.yaml",
        "apiVersion: v2\nname: cache\nversion: 0.1.0\n",
    );
    write(root, "charts/cache/values.yaml", "port: 6379\n");
    write(root, "charts/cache/templates/service.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}\nspec:\n  ports:\n    - port: {{ .Values.port }}\n  # global from the parent: {{ .Values.global.domain }}\n");
}

/// What `helm template web DIR -n apps -f override.yaml --set image.tag=1.27,redis.port=6380`
/// prints for the chart above: manifests in Helm's kind order (ConfigMap, Service,
/// Deployment), each under `# Source:` and followed by an empty line, the whole trimmed
/// (as in Helm's pkg/cmd/testdata/output/template*.txt goldens), NOTES.txt and the disabled
/// `memo` alias left out.
const EXPECTED: &str = r#"---
# Source: demo/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-demo-files
data:
  app.conf: |
    listen 80;
  greeting: "hello"
  host: web.example.com

---
# Source: demo/charts/redis/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: web-redis
spec:
  ports:
    - port: 6380
  # global from the parent: example.com

---
# Source: demo/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-demo
  namespace: apps
  labels:
    app.kubernetes.io/name: demo
    app.kubernetes.io/version: "4.5"
    team: blue
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: web
          image: "nginx:1.27"
          resources:
            limits:
              memory: 64Mi
"#;

fn skiff(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(skiff_bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn chart_template_directory_and_tgz() {
    let tmp = tempfile::tempdir().unwrap();
    let chart = tmp.path().join("demo");
    demo_chart(&chart);
    let values = tmp.path().join("override.yaml");
    std::fs::write(&values, "replicaCount: 3\nlabels:\n  team: blue\n").unwrap();
    let run = |chart: &Path, sets: &[&str]| {
        let mut args = vec![
            "chart",
            "template",
            chart.to_str().unwrap(),
            "--name",
            "web",
        ];
        args.extend(["-n", "apps", "-f", values.to_str().unwrap()]);
        for s in sets {
            args.extend(["--set", s]);
        }
        skiff(&args)
    };
    let (code, out, err) = run(&chart, &["image.tag=1.27,redis.port=6380"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, EXPECTED);

    // The same chart packaged (`helm package` layout: demo/... inside a gzipped tar).
    let tgz = tmp.path().join("demo-1.2.3.tgz");
    let file = std::fs::File::create(&tgz).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut ar = tar::Builder::new(gz);
    ar.append_dir_all("demo", &chart).unwrap();
    ar.into_inner().unwrap().finish().unwrap();
    let (code, out, err) = run(&tgz, &["image.tag=1.27", "redis.port=6380"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, EXPECTED);

    // --set memo.enabled=true turns the second alias of the subchart on.
    let (code, out, _) = skiff(&[
        "chart",
        "template",
        chart.to_str().unwrap(),
        "--set",
        "image.tag=1",
        "--set",
        "memo.enabled=true",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("# Source: demo/charts/memo/templates/service.yaml\n"),
        "{out}"
    );
    assert!(out.contains("name: release-name-memo\n"), "{out}");
}

#[test]
fn chart_template_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let chart = tmp.path().join("demo");
    demo_chart(&chart);
    // A required value left empty: the template, line and column, and the chart's message.
    let (code, out, err) = skiff(&["chart", "template", chart.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("demo/templates/deployment.yaml")
            && err.contains(
                "execution error at (demo/templates/deployment.yaml:14:53): image.tag is required"
            ),
        "{err}"
    );
    // A --set without a value.
    let (code, _, err) = skiff(&[
        "chart",
        "template",
        chart.to_str().unwrap(),
        "--set",
        "image.tag",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--set \"image.tag\": key has no value"),
        "{err}"
    );
    // A function that does not exist: refused when parsing, with its position.
    write(&chart, "templates/bad.yaml", "x: {{ nosuchfunc 1 }}\n");
    let (code, _, err) = skiff(&[
        "chart",
        "template",
        chart.to_str().unwrap(),
        "--set",
        "image.tag=1",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("demo/templates/bad.yaml:1:7: function \"nosuchfunc\" not defined"),
        "{err}"
    );
    // Not a chart.
    let (code, _, err) = skiff(&["chart", "template", tmp.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("Chart.yaml file is missing"), "{err}");
}
