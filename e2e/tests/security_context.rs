//! Pod and container `securityContext` as far as skiff implements it: `runAsUser`,
//! `runAsGroup` and `supplementalGroups` at pod level (the container's own `runAsUser` wins),
//! `runAsNonRoot` refusing a process that would run as root with kubelet's message, and
//! `fsGroup` giving an emptyDir and a local-path claim to the pod's group, and what takes
//! privileges away: `capabilities.drop`, `allowPrivilegeEscalation: false`,
//! `readOnlyRootFilesystem`.

use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::wait_for;

const IMAGE: &str = "skiff-e2e-sc:v1";

/// The logs of `pod`'s `container` once they contain `until` (panics after a minute).
fn output_of(k: &Kubectl, pod: &str, container: &str, until: &str) -> String {
    wait_for(Duration::from_secs(60), || {
        let o = k.run(&["logs", pod, "-c", container]);
        (o.ok() && o.stdout.contains(until)).then_some(o.stdout)
    })
    .unwrap_or_else(|| panic!("{container}'s output"))
}

#[test]
fn run_as_user_group_supplemental_groups_and_non_root() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: ids}}
spec:
  restartPolicy: Never
  securityContext: {{runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000], runAsNonRoot: true}}
  containers:
  - name: pod-level
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"echo uid=$(id -u) gid=$(id -g) groups=$(id -G)\"]
  - name: own-user
    image: {IMAGE}
    imagePullPolicy: Never
    securityContext: {{runAsUser: 2000}}
    command: [\"sh\", \"-c\", \"echo uid=$(id -u) gid=$(id -g)\"]
"
        ),
        &[],
    );
    for (container, want) in [
        ("pod-level", "uid=1000 gid=3000 groups=3000 4000"),
        ("own-user", "uid=2000 gid=3000"),
    ] {
        let logs = wait_for(Duration::from_secs(60), || {
            let o = k.run(&["logs", "ids", "-c", container]);
            (o.ok() && o.stdout.contains("uid=")).then_some(o.stdout)
        })
        .unwrap_or_else(|| panic!("{container}'s output"));
        assert_eq!(logs.trim(), want, "{container}");
    }

    // runAsNonRoot on an image that runs as root: waiting, with kubelet's reason and message.
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: rooted}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    securityContext: {{runAsNonRoot: true}}
    command: [\"sh\", \"-c\", \"echo ran\"]
"
        ),
        &[],
    );
    let message = wait_for(Duration::from_secs(30), || {
        let p = k.get_json(&["pod", "rooted"])?;
        let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        (w["reason"] == "CreateContainerConfigError")
            .then(|| w["message"].as_str().unwrap_or_default().to_string())
    })
    .expect("CreateContainerConfigError");
    assert_eq!(
        message,
        "container has runAsNonRoot and image will run as root"
    );
}

#[test]
fn fs_group_gives_writable_volumes_to_the_pod() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 16Mi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: grouped}}
spec:
  restartPolicy: Never
  securityContext: {{runAsUser: 1000, runAsGroup: 1000, fsGroup: 2000}}
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"touch /scratch/f /data/f && echo groups=$(id -G) scratch=$(stat -c %g /scratch/f) data=$(stat -c %g /data/f)\"]
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
    - {{name: data, mountPath: /data}}
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: data, persistentVolumeClaim: {{claimName: data}}}}
"
        ),
        &[],
    );
    let logs = wait_for(Duration::from_secs(60), || {
        let o = k.run(&["logs", "grouped"]);
        (o.ok() && o.stdout.contains("groups=")).then_some(o.stdout)
    })
    .expect("the pod's output");
    assert_eq!(logs.trim(), "groups=1000 2000 scratch=2000 data=2000");
}

#[test]
fn dropped_capabilities_no_new_privileges_and_a_read_only_root() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: locked}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    securityContext:
      capabilities: {{drop: [ALL]}}
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
    command: [\"sh\", \"-c\", \"grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; touch /x 2>/dev/null && echo root=writable || echo root=read-only; touch /scratch/x && echo scratch=writable\"]
    volumeMounts: [{{name: scratch, mountPath: /scratch}}]
  volumes: [{{name: scratch, emptyDir: {{}}}}]
"
        ),
        &[],
    );
    let logs = wait_for(Duration::from_secs(60), || {
        let o = k.run(&["logs", "locked"]);
        (o.ok() && o.stdout.contains("scratch=")).then_some(o.stdout)
    })
    .expect("the pod's output");
    let fields: Vec<&str> = logs.split_whitespace().collect();
    for want in [
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "NoNewPrivs:\t1",
        "root=read-only",
        "scratch=writable",
    ] {
        let (key, value) = want.split_once('\t').unwrap_or((want, ""));
        let ok = if value.is_empty() {
            fields.contains(&key)
        } else {
            fields.windows(2).any(|w| w[0] == key && w[1] == value)
        };
        assert!(ok, "missing {want:?} in:\n{logs}");
    }
}

/// What adds privileges, for the admin: `capabilities.add`, `privileged` (every capability,
/// the host's devices, writable /proc/sys), a namespaced sysctl applied in the pod,
/// `seccompProfile: RuntimeDefault` filtering; and CAP_NET_RAW is not a default.
#[test]
fn added_capabilities_privileged_sysctls_and_seccomp() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: powers}}
spec:
  restartPolicy: Never
  securityContext:
    sysctls: [{{name: net.ipv4.tcp_syncookies, value: '0'}}, {{name: net.ipv4.ip_unprivileged_port_start, value: '80'}}]
  containers:
  - name: default
    image: {IMAGE}
    imagePullPolicy: Never
    securityContext: {{seccompProfile: {{type: RuntimeDefault}}}}
    command: [\"sh\", \"-c\", \"grep -E '^(CapEff|Seccomp):' /proc/self/status; echo syncookies=$(cat /proc/sys/net/ipv4/tcp_syncookies) start=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start); ip link set lo mtu 1400 2>/dev/null && echo netadmin=yes || echo netadmin=no\"]
  - name: netadmin
    image: {IMAGE}
    imagePullPolicy: Never
    securityContext: {{capabilities: {{add: [NET_ADMIN]}}}}
    command: [\"sh\", \"-c\", \"sleep 1; ip link set lo mtu 1300 && echo netadmin=yes mtu=$(cat /sys/class/net/lo/mtu) || echo netadmin=no\"]
  - name: privileged
    image: {IMAGE}
    imagePullPolicy: Never
    securityContext: {{privileged: true}}
    command: [\"sh\", \"-c\", \"grep -E '^CapEff:' /proc/self/status; test -c /dev/kmsg && echo kmsg=yes || echo kmsg=no; echo 30 > /proc/sys/net/ipv4/tcp_fin_timeout && echo procsys=writable\"]
"
        ),
        &[],
    );
    let logs = |c: &str, until: &str| {
        wait_for(Duration::from_secs(60), || {
            let o = k.run(&["logs", "powers", "-c", c]);
            (o.ok() && o.stdout.contains(until)).then_some(o.stdout)
        })
        .unwrap_or_else(|| {
            let p = k.get_json(&["pod", "powers"]).unwrap_or_default();
            panic!(
                "{c}'s output; status: {:#}",
                p["status"]["containerStatuses"]
            )
        })
    };
    let d = logs("default", "netadmin=");
    // Default set without NET_RAW (bit 13): 0x00000000a80405fb minus nothing else.
    let eff = d
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .expect("CapEff");
    assert_eq!(eff & (1 << 13), 0, "CAP_NET_RAW is not a default: {d}");
    assert_ne!(eff & (1 << 0), 0, "CAP_CHOWN is: {d}");
    assert!(d.contains("Seccomp:\t2"), "RuntimeDefault filters: {d}");
    assert!(d.contains("syncookies=0 start=80"), "sysctls applied: {d}");
    assert!(d.contains("netadmin=no"), "{d}");
    let n = logs("netadmin", "netadmin=");
    assert!(n.contains("netadmin=yes mtu=1300"), "{n}");
    let p = logs("privileged", "kmsg=");
    let eff = p
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .expect("CapEff");
    assert_ne!(eff & (1 << 21), 0, "CAP_SYS_ADMIN when privileged: {p}");
    if std::path::Path::new("/dev/kmsg").exists() {
        assert!(p.contains("kmsg=yes"), "the host's devices: {p}");
    }
    assert!(p.contains("procsys=writable"), "{p}");
}

/// Container defaults as containerd's (issue 13 part 5): a container that says nothing about
/// seccomp runs under `RuntimeDefault` (`Unconfined` must be asked for); a capability the admin
/// added gives its syscalls back (SYS_ADMIN may mount, as in Docker's default profile); the
/// root filesystem is `nodev`, and `nosuid` as well under `allowPrivilegeEscalation: false`.
#[test]
fn containers_are_filtered_by_default_and_their_root_is_nodev() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let report = "grep -E '^(Seccomp|SigIgn):' /proc/self/status; echo root=$(grep -m1 ' / / ' /proc/self/mountinfo | cut -d' ' -f6); unshare -U true 2>/dev/null && echo userns=yes || echo userns=no";
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: defaults}}
spec:
  restartPolicy: Never
  containers:
  - name: plain
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"{report}; echo done\"]
  - name: sysadmin
    image: {IMAGE}
    imagePullPolicy: Never
    securityContext: {{capabilities: {{add: [SYS_ADMIN]}}}}
    command: [\"sh\", \"-c\", \"{report}; mkdir -p /m && mount -t tmpfs none /m && echo mount=yes || echo mount=no; echo done\"]
  - name: unconfined
    image: {IMAGE}
    imagePullPolicy: Never
    securityContext: {{seccompProfile: {{type: Unconfined}}}}
    command: [\"sh\", \"-c\", \"{report}; echo done\"]
  - name: nnp
    image: {IMAGE}
    imagePullPolicy: Never
    securityContext: {{allowPrivilegeEscalation: false}}
    command: [\"sh\", \"-c\", \"{report}; echo done\"]
"
        ),
        &[],
    );
    let logs = |c: &str| output_of(&k, "defaults", c, "done");
    let root_options = |out: &str| -> Vec<String> {
        out.lines()
            .find_map(|l| l.strip_prefix("root="))
            .map(|o| o.split(',').map(String::from).collect())
            .unwrap_or_default()
    };
    let plain = logs("plain");
    assert!(
        plain.contains("Seccomp:\t2"),
        "filtered by default: {plain}"
    );
    assert!(plain.contains("userns=no"), "{plain}");
    // SIGHUP, SIGINT and SIGPIPE not ignored (the shim's own dispositions do not leak in).
    let ignored = plain
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .expect("SigIgn");
    for signal in [1, 2, 13] {
        assert_eq!(
            ignored & (1 << (signal - 1)),
            0,
            "signal {signal} ignored: {plain}"
        );
    }
    let opts = root_options(&plain);
    assert!(opts.iter().any(|o| o == "nodev"), "{plain}");
    assert!(
        !opts.iter().any(|o| o == "nosuid"),
        "setuid works by default: {plain}"
    );
    let admin = logs("sysadmin");
    assert!(admin.contains("Seccomp:\t2"), "{admin}");
    assert!(
        admin.contains("mount=yes"),
        "SYS_ADMIN gives mount back: {admin}"
    );
    assert!(admin.contains("userns=yes"), "and unshare: {admin}");
    let unconfined = logs("unconfined");
    assert!(unconfined.contains("Seccomp:\t0"), "{unconfined}");
    let nnp = logs("nnp");
    let opts = root_options(&nnp);
    assert!(
        opts.iter().any(|o| o == "nosuid") && opts.iter().any(|o| o == "nodev"),
        "{nnp}"
    );
}

/// `seccompProfile: Localhost`: a Docker-format profile under `<data-dir>/seccomp/` that
/// denies mkdir with EPERM — mkdir fails in the container while other syscalls work, and a
/// container without it makes directories. A missing profile: the container is not created
/// (CreateContainerError, with an event). A path leaving the folder is refused at validation.
#[test]
fn a_localhost_seccomp_profile_denies_mkdir() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let profiles = s.data_dir.join("seccomp").join("profiles");
    std::fs::create_dir_all(&profiles).expect("the profiles folder");
    std::fs::write(
        profiles.join("deny-mkdir.json"),
        r#"{
  "defaultAction": "SCMP_ACT_ALLOW",
  "archMap": [
    {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
  ],
  "syscalls": [
    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "comment": "no new directories"}
  ]
}"#,
    )
    .expect("the profile");
    let cmd = "mkdir /tmp/d 2>&1 && echo mkdir=ok || echo mkdir=denied; touch /tmp/f && echo touch=ok; grep '^Seccomp:' /proc/self/status";
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: filtered}}
spec:
  restartPolicy: Never
  securityContext:
    seccompProfile: {{type: Localhost, localhostProfile: profiles/deny-mkdir.json}}
  containers:
  - name: denied
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"{cmd}\"]
  - name: unconfined
    image: {IMAGE}
    imagePullPolicy: Never
    securityContext: {{seccompProfile: {{type: Unconfined}}}}
    command: [\"sh\", \"-c\", \"{cmd}\"]
---
apiVersion: v1
kind: Pod
metadata: {{name: noprofile}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    securityContext: {{seccompProfile: {{type: Localhost, localhostProfile: missing.json}}}}
    command: [\"sh\", \"-c\", \"echo ran\"]
"
        ),
        &[],
    );
    let logs = |c: &str| output_of(&k, "filtered", c, "Seccomp:");
    let denied = logs("denied");
    assert!(denied.contains("Operation not permitted"), "{denied}");
    assert!(denied.contains("mkdir=denied"), "{denied}");
    assert!(denied.contains("touch=ok"), "{denied}");
    assert!(denied.contains("Seccomp:\t2"), "{denied}");
    let open = logs("unconfined");
    assert!(
        open.contains("mkdir=ok") && open.contains("touch=ok"),
        "{open}"
    );
    assert!(open.contains("Seccomp:\t0"), "{open}");

    // The missing profile: not created, with the reason in its status and an event.
    let waiting = wait_for(Duration::from_secs(30), || {
        let p = k.get_json(&["pod", "noprofile"])?;
        let w = p["status"]["containerStatuses"][0]["state"]["waiting"].clone();
        (w["reason"] == "CreateContainerError").then_some(w)
    })
    .expect("CreateContainerError");
    let message = waiting["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("failed to load seccomp profile") && message.contains("missing.json"),
        "{message}"
    );
    let events = k.get_json(&["events"]).expect("events");
    let failed = events["items"].as_array().into_iter().flatten().any(|e| {
        e["involvedObject"]["name"] == "noprofile"
            && e["reason"] == "Failed"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("CreateContainerError") && m.contains("missing.json"))
    });
    assert!(failed, "a Failed event: {events:#}");
    // The profile appears: the container starts.
    std::fs::copy(
        profiles.join("deny-mkdir.json"),
        s.data_dir.join("seccomp/missing.json"),
    )
    .expect("copy");
    wait_for(Duration::from_secs(60), || {
        let o = k.run(&["logs", "noprofile"]);
        (o.ok() && o.stdout.contains("ran")).then_some(())
    })
    .expect("started once the profile exists");

    // Paths outside the folder are refused, naming the field.
    for bad in ["/etc/passwd", "../state.db"] {
        let o = k.run_stdin(
            &["apply", "-f", "-"],
            &format!(
                "apiVersion: v1
kind: Pod
metadata: {{name: escape}}
spec:
  containers:
  - name: main
    image: {IMAGE}
    securityContext: {{seccompProfile: {{type: Localhost, localhostProfile: '{bad}'}}}}
"
            ),
        );
        assert!(!o.ok(), "{bad}: {}", o.stdout);
        assert!(
            o.stderr
                .contains("spec.containers[0].securityContext.seccompProfile.localhostProfile"),
            "{bad}: {}",
            o.stderr
        );
    }
}
