//! Real public charts (tests/charts/, see PROVENANCE.md) rendered with their default values
//! and with non-trivial values files; every rendered object must be one skiff's manifests
//! folder accepts (parsed and validated by skiff-controller), and a few objects are checked
//! field by field.

use std::collections::BTreeMap;
use std::path::Path;

use skiff_helm::values::{merge_into, parse_values, Table};

const CHARTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/charts");

fn read_tree(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_dir() {
            read_tree(&p, &format!("{prefix}{name}/"), out);
        } else {
            out.insert(format!("{prefix}{name}"), std::fs::read(&p).unwrap());
        }
    }
}

/// A chart's files with its dependencies under charts/ (as `helm dependency build` leaves
/// them): (name in charts/, folder in tests/charts, its own dependencies).
fn assemble(
    folder: &str,
    deps: &[(&str, &str)],
    prefix: &str,
    out: &mut BTreeMap<String, Vec<u8>>,
) {
    read_tree(&Path::new(CHARTS).join(folder), prefix, out);
    for (name, dep_folder) in deps {
        let sub_deps: &[(&str, &str)] = match *dep_folder {
            "postgresql" | "mariadb" | "memcached" => &[("common", "bitnami-common")],
            _ => &[],
        };
        assemble(
            dep_folder,
            sub_deps,
            &format!("{prefix}charts/{name}/"),
            out,
        );
    }
}

struct Rendered {
    /// Every rendered object.
    objects: Vec<serde_json::Value>,
    /// The objects skiff's manifests folder accepts, as it would store them.
    docs: Vec<serde_json::Value>,
    /// Objects skiff's model refuses for a known reason (see MODEL_GAPS).
    refused: Vec<String>,
}

/// What skiff's model does not serve yet (not the renderer's doing): such objects are
/// reported, not failed on. Anything else skiff refuses fails the test.
const MODEL_GAPS: &[&str] = &[
    "unknown kind \"HorizontalPodAutoscaler\"",
    "unknown kind \"HTTPRoute\"",
    "trafficDistribution: field is not supported by skiff",
];

/// Whether every field error in skiff's refusal is a known model gap.
fn only_model_gaps(e: &str) -> bool {
    if MODEL_GAPS
        .iter()
        .any(|g| g.starts_with("unknown kind") && e.contains(g))
    {
        return true;
    }
    let fields = e.split_once("): ").map(|(_, f)| f).unwrap_or(e);
    fields
        .split("; ")
        .all(|f| MODEL_GAPS.iter().any(|g| f.contains(g)))
}

fn render(folder: &str, deps: &[(&str, &str)], values_file: Option<&str>) -> Rendered {
    try_render(folder, deps, values_file).unwrap_or_else(|e| panic!("{e}"))
}

/// Renders a chart (values from `values/NAME`, or `FOLDER/FILE` for a file inside a chart)
/// and has skiff parse and validate every object; an error names the chart, the values,
/// the template and skiff's message.
fn try_render(
    folder: &str,
    deps: &[(&str, &str)],
    values_file: Option<&str>,
) -> Result<Rendered, String> {
    let mut files = BTreeMap::new();
    assemble(folder, deps, "", &mut files);
    let chart =
        skiff_helm::chart::from_files(files, folder).map_err(|e| format!("{folder}: {e}"))?;
    let mut values = Table::new();
    if let Some(f) = values_file {
        let path = if f.contains('/') {
            Path::new(CHARTS).join(f)
        } else {
            Path::new(CHARTS).join("values").join(f)
        };
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        merge_into(
            &mut values,
            &parse_values(&text, f).map_err(|e| e.to_string())?,
        );
    }
    let what = format!("{folder} with {}", values_file.unwrap_or("default values"));
    let start = std::time::Instant::now();
    let rendered = skiff_helm::render(&chart, values, &skiff_helm::RenderOptions::default())
        .map_err(|e| format!("{what}: {e}"))?;
    let took = start.elapsed();
    let (manifests, hooks) =
        skiff_helm::manifests(&rendered).map_err(|e| format!("{what}: {e}"))?;
    let mut docs = Vec::new();
    let mut refused = Vec::new();
    let mut objects = Vec::new();
    let mut size = 0;
    for m in manifests.iter().chain(hooks.iter()) {
        size += m.content.len();
        let parsed = skiff_controller::folder::parse_documents(&m.content)
            .map_err(|e| format!("{what}: {}: {e}\n{}", m.source, m.content))?;
        for d in parsed {
            objects.push(d.object.clone());
            match skiff_controller::folder::apply::prepare(&d, "chart") {
                Ok(obj) => docs.push(obj),
                Err(e) if only_model_gaps(&e.to_string()) => {
                    refused.push(format!("{}: {e}", m.source));
                }
                Err(e) => {
                    return Err(format!(
                        "{what}: {}: skiff refuses it: {e}\n{}",
                        m.source, m.content
                    ))
                }
            }
        }
    }
    println!(
        "{what}: {} objects, {size} bytes rendered in {took:?}: {}",
        docs.len(),
        docs.iter()
            .map(|d| format!(
                "{}/{}",
                d["kind"].as_str().unwrap_or(""),
                d["metadata"]["name"].as_str().unwrap_or("")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for r in &refused {
        println!("{what}: not served by skiff yet: {r}");
    }
    Ok(Rendered {
        objects,
        docs,
        refused,
    })
}

fn find<'a>(r: &'a Rendered, kind: &str, name: &str) -> &'a serde_json::Value {
    r.objects
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

const BITNAMI: &[(&str, &str)] = &[("common", "bitnami-common")];

#[test]
fn app_template_bjw_s() {
    let deps = &[("common", "bjw-s-common")];
    let r = render("app-template", deps, None);
    assert!(
        r.objects.is_empty(),
        "app-template's defaults declare no controller"
    );
    // (bjw-s-vaultwarden-example.yaml is left out: its ingress names a Service port by name
    // without a Service identifier, which reaches `hasKey $services nil`; Go refuses a nil
    // string argument too, so this file cannot be ground truth here.)
    for f in [
        "bjw-s-basic-values.yaml",
        "bjw-s-advanced-values.yaml",
        "bjw-s-cronjob-values.yaml",
    ] {
        let r = render("app-template", deps, Some(f));
        assert!(!r.objects.is_empty(), "{f}");
    }
    let r = render("app-template", deps, Some("bjw-s-basic-values.yaml"));
    let dep = find(&r, "Deployment", "release-name");
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/mendhak/http-https-echo:31"
    );
}

#[test]
fn bitnami_redis() {
    render("redis", BITNAMI, None);
    let r = render("redis", BITNAMI, Some("redis-standalone.yaml"));
    let sts = find(&r, "StatefulSet", "release-name-redis-master");
    let claims =
        &sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"];
    assert_eq!(claims, "2Gi");
    let containers = sts["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert!(
        containers.iter().any(|c| c["name"] == "metrics"),
        "metrics sidecar"
    );
    assert!(!r.objects.iter().any(|d| d["kind"] == "NetworkPolicy"));
    // Accepted by skiff as is: the Services, Secret, ConfigMaps; the StatefulSet only
    // stumbles on fields skiff's model does not have yet (MODEL_GAPS).
    assert!(r
        .docs
        .iter()
        .any(|d| d["kind"] == "Service" && d["metadata"]["name"] == "release-name-redis-master"));
    assert!(
        r.refused.iter().all(|x| x.contains("StatefulSet")),
        "{:?}",
        r.refused
    );
}

#[test]
fn bitnami_postgresql() {
    render("postgresql", BITNAMI, None);
    let r = render("postgresql", BITNAMI, Some("postgresql-app.yaml"));
    let secret = find(&r, "Secret", "release-name-postgresql");
    // "app-pass" base64-encoded, as Helm's b64enc writes it.
    assert_eq!(secret["data"]["password"], "YXBwLXBhc3M=");
    let init = find(&r, "ConfigMap", "release-name-postgresql-init-scripts");
    assert!(init["data"]["init.sql"]
        .as_str()
        .unwrap()
        .contains("CREATE TABLE"));
}

#[test]
fn bitnami_mariadb_memcached_valkey_grafana() {
    for (chart, values) in [
        ("mariadb", "mariadb-app.yaml"),
        ("memcached", "memcached-replicas.yaml"),
        ("valkey", "valkey-standalone.yaml"),
        ("grafana", "grafana-admin.yaml"),
    ] {
        render(chart, BITNAMI, None);
        render(chart, BITNAMI, Some(values));
    }
    let r = render("grafana", BITNAMI, Some("grafana-admin.yaml"));
    let ing = find(&r, "Ingress", "release-name-grafana");
    assert_eq!(ing["spec"]["rules"][0]["host"], "grafana.example.com");
}

#[test]
fn bitnami_gitea_with_postgresql_subchart() {
    let deps = &[("postgresql", "postgresql"), ("common", "bitnami-common")];
    render("gitea", deps, None);
    let r = render("gitea", deps, Some("gitea-ingress.yaml"));
    // The subchart's values come from the parent's `postgresql:` key, global from `global:`.
    let pg = find(&r, "StatefulSet", "release-name-postgresql");
    let claim = &pg["spec"]["volumeClaimTemplates"][0]["spec"];
    assert_eq!(claim["resources"]["requests"]["storage"], "3Gi");
    assert_eq!(claim["storageClassName"], "local");
    let ing = find(&r, "Ingress", "release-name-gitea");
    assert_eq!(ing["spec"]["tls"][0]["hosts"][0], "git.example.com");
}

/// The public charts added for issue 16 part 3 (PROVENANCE.md), each with its default values
/// and its own CI values (or, where a chart has none, a values file of skiff's that says
/// so). Every case is rendered and all failures are reported together.
/// (chart folder, its dependencies as in [`assemble`], values files).
type ChartCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

const MORE_CHARTS: &[ChartCase] = &[
    ("podinfo", &[], &["podinfo/values-prod.yaml"]),
    ("authelia", &[], &["authelia-ci-minimum.yaml"]),
    ("vaultwarden", &[], &["vaultwarden-ci-test-values.yaml"]),
    ("traefik", &[], &["traefik-home.yaml"]),
    (
        "prometheus-blackbox-exporter",
        &[],
        &[
            "blackbox-ci-ingress-values.yaml",
            "blackbox-ci-config-reloader-values.yaml",
        ],
    ),
    (
        "alertmanager",
        &[],
        &[
            "alertmanager-ci-config-reload-values.yaml",
            "alertmanager-ci-05-ingress-and-gateway-routes-values.yaml",
        ],
    ),
    (
        "kube-state-metrics",
        &[],
        &["kube-state-metrics-ci-02-custom-resource-state-only-values.yaml"],
    ),
    (
        "prometheus-pushgateway",
        &[],
        &[
            "pushgateway-ci-persistence-sts-values.yaml",
            "pushgateway-ci-basic-auth-values.yaml",
        ],
    ),
    (
        "promtail",
        &[],
        &[
            "promtail-ci-deployment-values.yaml",
            "promtail-ci-service-values.yaml",
        ],
    ),
    ("nginx", BITNAMI, &["nginx-site.yaml"]),
    ("mysql", BITNAMI, &["mysql-app.yaml"]),
    ("rabbitmq", BITNAMI, &["rabbitmq-app.yaml"]),
    ("mongodb", BITNAMI, &["mongodb-app.yaml"]),
    (
        "wordpress",
        &[
            ("mariadb", "mariadb"),
            ("memcached", "memcached"),
            ("common", "bitnami-common"),
        ],
        &["wordpress-site.yaml"],
    ),
];

#[test]
fn more_public_charts() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for (folder, deps, values) in MORE_CHARTS {
        for v in std::iter::once(None).chain(values.iter().map(|v| Some(*v))) {
            cases += 1;
            if let Err(e) = try_render(folder, deps, v) {
                failures.push(e);
            }
        }
    }
    println!(
        "{} of {cases} chart renderings accepted by skiff",
        cases - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// skiff's own charts (charts/ at the repository's root), rendered as the public ones.
const FIRST_PARTY: &str = "../../../charts";

#[test]
fn first_party_guestbook() {
    let chart = format!("{FIRST_PARTY}/guestbook");
    let r = render(&chart, &[], None);
    assert!(r.refused.is_empty(), "{:?}", r.refused);
    let ing = find(&r, "Ingress", "release-name-guestbook");
    assert_eq!(
        ing["spec"]["tls"][0]["secretName"],
        "release-name-guestbook-tls"
    );
    assert_eq!(ing["spec"]["rules"][0]["host"], "guestbook.example.com");
    let sts = find(&r, "StatefulSet", "release-name-guestbook-redis");
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "1Gi"
    );
    let web = find(&r, "Deployment", "release-name-guestbook-web");
    let env = web["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    assert!(env
        .iter()
        .any(|e| e["name"] == "REDIS_HOST" && e["value"] == "release-name-guestbook-redis"));
    assert!(
        !r.objects.iter().any(|o| o["kind"] == "Secret"),
        "no certificate is made unless asked"
    );

    // With a generated certificate: the Secret's tls.crt is signed by its ca.crt, for the
    // host (genCA + genSignedCert in the chart).
    let r = render(&chart, &[], Some("guestbook-generated-tls.yaml"));
    let secret = find(&r, "Secret", "home-tls");
    let b64 = |k: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(secret["data"][k].as_str().unwrap())
            .unwrap()
    };
    let (crt, ca) = (b64("tls.crt"), b64("ca.crt"));
    let crt = pem::parse(&crt).unwrap();
    let ca = pem::parse(&ca).unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(crt.contents()).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(ca.contents()).unwrap();
    assert!(ca.is_ca());
    leaf.verify_signature(Some(ca.public_key()))
        .expect("tls.crt signed by ca.crt");
    let san = leaf.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        format!("{:?}", san.general_names),
        "[DNSName(\"guestbook.home.test\")]"
    );
    assert!(String::from_utf8(b64("tls.key"))
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
}

#[test]
fn first_party_mosquitto() {
    let chart = format!("{FIRST_PARTY}/mosquitto");
    let r = render(&chart, &[], None);
    assert!(r.refused.is_empty(), "{:?}", r.refused);
    let cm = find(&r, "ConfigMap", "release-name-mosquitto");
    let conf = cm["data"]["mosquitto.conf"].as_str().unwrap();
    assert!(
        conf.contains("listener 1883\nallow_anonymous true\n"),
        "{conf}"
    );
    let sts = find(&r, "StatefulSet", "release-name-mosquitto");
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"],
        "eclipse-mosquitto:2.0.22"
    );
    // Anonymous access off without a password file is refused with the chart's message.
    let e = try_render(&chart, &[], Some("mosquitto-no-anonymous.yaml"))
        .err()
        .expect("refused");
    assert!(
        e.contains("allowAnonymous is false: set passwordFile"),
        "{e}"
    );
    let r = render(&chart, &[], Some("mosquitto-passwords.yaml"));
    let secret = find(&r, "Secret", "release-name-mosquitto");
    assert_eq!(secret["data"]["passwd"], "dXNlcjokNyQxMDEkaGFzaAo=");
    let conf = find(&r, "ConfigMap", "release-name-mosquitto")["data"]["mosquitto.conf"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        conf.contains("password_file /mosquitto/secret/passwd"),
        "{conf}"
    );
    assert!(conf.ends_with("max_keepalive 120\n"), "{conf:?}");
}

/// A certificate a chart made with genCA/genSignedCert, as a TLS Secret: parsed, for `host`.
fn check_chart_made_cert(r: &Rendered, secret: &str, host: &str) {
    use base64::Engine as _;
    let s = find(r, "Secret", secret);
    assert_eq!(s["type"], "kubernetes.io/tls");
    let crt = base64::engine::general_purpose::STANDARD
        .decode(s["data"]["tls.crt"].as_str().unwrap())
        .unwrap();
    let crt = pem::parse(crt).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(crt.contents()).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    assert!(
        format!("{:?}", san.general_names).contains(&format!("DNSName(\"{host}\")")),
        "{secret}: {:?}",
        san.general_names
    );
}

#[test]
fn more_public_charts_fields() {
    let r = render("traefik", &[], Some("traefik-home.yaml"));
    let dep = find(&r, "Deployment", "release-name-traefik");
    assert_eq!(dep["spec"]["replicas"], 2);
    let args = dep["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("--entryPoints.mqtt.address=:1883/tcp"),
        "{args}"
    );
    assert!(
        args.contains("--serversTransport.insecureSkipVerify=true"),
        "{args}"
    );

    let r = render("vaultwarden", &[], Some("vaultwarden-ci-test-values.yaml"));
    let ing = find(&r, "Ingress", "release-name-vaultwarden");
    assert_eq!(ing["spec"]["rules"][0]["host"], "vaultwarden.contoso.com");

    let r = render("podinfo", &[], Some("podinfo/values-prod.yaml"));
    assert!(r.docs.iter().any(
        |d| d["kind"] == "Deployment" && d["metadata"]["name"] == "release-name-podinfo-redis"
    ));

    // Certificates made inside real charts by Sprig's functions.
    let r = render("rabbitmq", BITNAMI, Some("rabbitmq-app.yaml"));
    check_chart_made_cert(&r, "rabbitmq.example.com-tls", "rabbitmq.example.com");
    let r = render("nginx", BITNAMI, Some("nginx-site.yaml"));
    check_chart_made_cert(&r, "www.example.com-tls", "www.example.com");

    let r = render("mysql", BITNAMI, Some("mysql-app.yaml"));
    let init = find(&r, "ConfigMap", "release-name-mysql-init-scripts");
    assert!(init["data"]["schema.sql"]
        .as_str()
        .unwrap()
        .contains("CREATE TABLE notes"));
    assert!(r.refused.is_empty(), "{:?}", r.refused);
}
