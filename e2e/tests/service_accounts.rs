//! ServiceAccounts and in-cluster API access: a pod whose image holds a real in-cluster client
//! (kubectl itself, a static binary, reading the mounted token through its in-cluster config)
//! lists pods in its own namespace when a Role and RoleBinding — written with a namespace
//! token — allow it, and is Forbidden in another namespace and without a binding; the token
//! volume's files; a missing ServiceAccount refused; deleting the pod invalidates its token.

use std::time::Duration;

use skiff_e2e::kubectl::{kubectl_bin, Kubectl};
use skiff_e2e::{wait_for, Server};

const IMAGE: &str = "skiff-e2e-incluster:v1";
const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The busybox test image with kubectl at /bin/kubectl.
fn server() -> Server {
    let mut s = Server::start_new();
    let archive = s.work_dir.join("incluster.tar");
    skiff_e2e::build_busybox_image_with(&archive, IMAGE, &[(&kubectl_bin(), "/bin/kubectl")])
        .expect("build the image");
    assert!(s.import_image(&archive).status.success());
    s.assert_running();
    assert!(skiff_e2e::wait_until(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || s.kubeconfig.is_file()
    ));
    s
}

fn pod(name: &str, sa: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: apps}}
spec:
  serviceAccountName: {sa}
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sleep\", \"3600\"]
"
    )
}

fn running(k: &Kubectl, name: &str) {
    let ok = wait_for(Duration::from_secs(60), || {
        let p = k.get_json(&["pod", name, "-n", "apps"])?;
        (p["status"]["phase"] == "Running").then_some(())
    });
    assert!(
        ok.is_some(),
        "{name} not Running: {}",
        k.run(&["describe", "pod", name, "-n", "apps"])
    );
}

/// kubectl inside `pod`, with its in-cluster config (no kubeconfig: the mounted token).
fn inside(k: &Kubectl, pod: &str, args: &str) -> skiff_e2e::kubectl::KOut {
    let script = format!("kubectl --cache-dir /tmp/kc {args}");
    k.run(&["exec", "-n", "apps", pod, "--", "sh", "-c", &script])
}

#[test]
fn an_in_cluster_kubectl_gets_exactly_what_its_role_binding_grants() {
    let s = server();
    let admin = Kubectl::admin(&s);
    admin.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n",
        &[],
    );
    // Every namespace gets its `default` ServiceAccount and the CA ConfigMap.
    let made = wait_for(Duration::from_secs(20), || {
        let sa = admin.run(&["get", "serviceaccount", "default", "-n", "other"]);
        let cm = admin.get_json(&["configmap", "kube-root-ca.crt", "-n", "other"])?;
        sa.ok().then_some(cm)
    })
    .expect("default ServiceAccount and kube-root-ca.crt in a new namespace");
    let ca = made["data"]["ca.crt"].as_str().unwrap().to_string();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");

    // The namespace token of `apps` writes the account, the Role and the binding.
    let kc = s.namespace_kubeconfig("apps");
    let ci = Kubectl::with_kubeconfig(&s, &kc);
    ci.apply(
        "apiVersion: v1
kind: ServiceAccount
metadata: {name: robot, namespace: apps}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: apps}
rules:
- apiGroups: [\"\"]
  resources: [pods]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: robot-reads-pods, namespace: apps}
subjects:
- kind: ServiceAccount
  name: robot
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: pod-reader
",
        &[],
    );
    // A namespace token writes no cluster-scoped binding.
    let o = ci.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: robot-admin}
subjects: [{kind: ServiceAccount, name: robot, namespace: apps}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
",
    );
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("forbidden"), "{o}");

    // The API's own Service is the admin's, even for a token of `default`.
    let tenant = Kubectl::with_kubeconfig(&s, &s.namespace_kubeconfig("default"));
    let o = tenant.run(&["delete", "endpointslice", "kubernetes"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("are the admin's"), "{o}");
    assert_eq!(tenant.run(&["get", "service", "kubernetes"]).code, 0);

    // A pod naming a ServiceAccount that does not exist is refused, in Kubernetes' words.
    let o = admin.run_stdin(&["apply", "-f", "-"], &pod("ghostly", "ghost"));
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr.contains(
            "pods \"ghostly\" is forbidden: error looking up service account apps/ghost: serviceaccount \"ghost\" not found"
        ),
        "{o}"
    );

    admin.apply(&pod("client", "robot"), &[]);
    admin.apply(&pod("lonely", "default"), &[]);
    running(&admin, "client");
    running(&admin, "lonely");

    // The admission's volume, as kubectl shows it.
    let p = admin.get_json(&["pod", "client", "-n", "apps"]).unwrap();
    assert_eq!(p["spec"]["serviceAccountName"], "robot");
    assert_eq!(p["spec"]["serviceAccount"], "robot");
    let volume = p["spec"]["volumes"][0]["name"].as_str().unwrap();
    assert!(volume.starts_with("kube-api-access-"), "{p}");
    assert_eq!(
        p["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
        MOUNT
    );

    // The files.
    let cat = |f: &str| {
        admin.run(&[
            "exec",
            "-n",
            "apps",
            "client",
            "--",
            "cat",
            &format!("{MOUNT}/{f}"),
        ])
    };
    let o = cat("namespace");
    assert_eq!((o.code, o.stdout.as_str()), (0, "apps"), "{o}");
    let o = cat("ca.crt");
    assert_eq!(o.stdout, ca, "{o}");
    let token = cat("token").stdout;
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    // The Service and the variables in-cluster clients read.
    let svc = admin
        .get_json(&["service", "kubernetes", "-n", "default"])
        .unwrap();
    let ip = svc["spec"]["clusterIP"].as_str().unwrap();
    assert!(ip.starts_with("10.245.") && ip.ends_with(".1"), "{svc}");
    let o = admin.run(&[
        "exec",
        "-n",
        "apps",
        "client",
        "--",
        "sh",
        "-c",
        "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT $KUBERNETES_PORT_443_TCP",
    ]);
    assert_eq!(o.stdout.trim(), format!("{ip}:443 tcp://{ip}:443"), "{o}");

    // In-cluster kubectl: its namespace's pods, nothing elsewhere, nothing it was not granted.
    let o = inside(&admin, "client", "get pods -o name");
    assert_eq!(o.code, 0, "{o}");
    assert!(
        o.stdout.contains("pod/client") && o.stdout.contains("pod/lonely"),
        "{o}"
    );
    let o = inside(&admin, "client", "get pods -n other");
    assert_ne!(o.code, 0, "{o}");
    assert!(
        o.stderr.contains("pods is forbidden: User \"system:serviceaccount:apps:robot\" cannot list resource \"pods\" in API group \"\" in the namespace \"other\""),
        "{o}"
    );
    let o = inside(&admin, "client", "delete pod lonely");
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stderr.contains("forbidden"), "{o}");
    let o = inside(&admin, "client", "get secrets");
    assert!(o.code != 0 && o.stderr.contains("forbidden"), "{o}");
    // The default account has no rights unless bound.
    let o = inside(&admin, "lonely", "get pods");
    assert_ne!(o.code, 0, "{o}");
    assert!(
        o.stderr
            .contains("User \"system:serviceaccount:apps:default\" cannot list resource \"pods\""),
        "{o}"
    );

    // The token from outside the pod, then after the pod is gone: 401.
    let port = s.api_port.to_string();
    let server = format!("https://127.0.0.1:{port}");
    let as_token = |args: &[&str]| {
        let mut all = vec![
            "--server",
            &server,
            "--token",
            token.as_str(),
            "--insecure-skip-tls-verify",
        ];
        all.extend_from_slice(args);
        Kubectl::with_kubeconfig(&s, std::path::Path::new("/dev/null")).run(&all)
    };
    let o = as_token(&["get", "pods", "-n", "apps", "-o", "name"]);
    assert_eq!(o.code, 0, "{o}");
    admin.ok(&["delete", "pod", "client", "-n", "apps", "--wait=true"]);
    let gone = wait_for(Duration::from_secs(20), || {
        let o = as_token(&["get", "pods", "-n", "apps"]);
        (o.code != 0).then_some(o)
    })
    .expect("the token of a deleted pod stops working");
    assert!(
        gone.stderr.contains("You must be logged in to the server"),
        "{gone}"
    );
}
