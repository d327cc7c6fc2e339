//! Issue 11's done-when: the files of the real-manifest corpus (`e2e/testdata/real-manifests/`)
//! whose images can be built offline run — applied unchanged with kubectl. Their images are
//! Debian stand-ins built with mmdebstrap (`cached_debian_image_with_cmd`), named as the
//! manifests name them and running what the upstream images run; every other corpus image
//! comes from a registry this machine cannot reach (the list is in the corpus' REPORT.md).

use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::{cached_debian_image_with_cmd, http_get_at, wait_for, workspace_root};

fn corpus(file: &str) -> String {
    workspace_root()
        .join("e2e/testdata/real-manifests")
        .join(file)
        .to_string_lossy()
        .to_string()
}

#[test]
fn corpus_files_whose_images_build_offline_run_unchanged() {
    let s = server_with_images(&[]);
    let images: [(&str, &[&str], &[&str]); 2] = [
        (
            "redis:alpine",
            &["redis-server"],
            // The official image's default: no config file, protected mode off.
            &["redis-server", "--protected-mode", "no"],
        ),
        (
            "nginx:alpine",
            &["nginx-light"],
            &["nginx", "-g", "daemon off;"],
        ),
    ];
    for (reference, packages, cmd) in images {
        let archive = cached_debian_image_with_cmd(reference, packages, cmd)
            .unwrap_or_else(|e| panic!("building {reference}: {e:#}"));
        let o = s.import_image(&archive);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let k = Kubectl::admin(&s);
    let files = [
        // redis:alpine with an emptyDir at /data.
        "dockersamples__example-voting-app__k8s-specifications__redis-deployment.yaml",
        // redis:alpine with every capability dropped but three, a read-only root and a
        // nodeSelector on kubernetes.io/os.
        "argoproj__argocd-example-apps__sock-shop__base__session-db-dep.yaml",
        // nginx:alpine, three replicas.
        "techno-tim__launchpad__demos__flux-demo__clusters__home__default__nginx__deployment.yml",
    ];
    for f in files {
        let o = k.run(&["apply", "-f", &corpus(f)]);
        assert!(o.ok(), "{f}: {o}");
    }
    for d in ["redis", "session-db", "nginx-deployment"] {
        let o = k.run(&[
            "rollout",
            "status",
            &format!("deployment/{d}"),
            "--timeout=180s",
        ]);
        assert!(o.ok(), "deployment {d} did not become available: {o}");
    }
    for d in ["redis", "session-db"] {
        let o = k.run(&["exec", &format!("deploy/{d}"), "--", "redis-cli", "ping"]);
        assert_eq!(o.stdout.trim(), "PONG", "{d}: {o}");
    }
    let ips: Vec<String> = wait_for(Duration::from_secs(30), || {
        let pods = k.get_json(&["pods", "-l", "app=nginx"])?;
        let ips: Vec<String> = pods["items"]
            .as_array()?
            .iter()
            .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
            .collect();
        (ips.len() == 3).then_some(ips)
    })
    .expect("three nginx pods with addresses");
    for ip in ips {
        let r = http_get_at(format!("{ip}:80").parse().unwrap(), "/")
            .unwrap_or_else(|e| panic!("GET http://{ip}/: {e}"));
        assert_eq!(r.status, 200, "nginx at {ip}");
        assert!(
            r.body.contains("Welcome to nginx"),
            "nginx at {ip}: {}",
            r.body
        );
    }
}
