//! Done when: "A hostile archive (a layer with `../` or a symlink escape) is refused and nothing
//! is written outside the store."

use std::fs;

use skiff_e2e::*;

struct Marker(String);
impl Drop for Marker {
    fn drop(&mut self) {
        hostile::cleanup(&self.0);
    }
}

#[test]
fn hostile_archives_are_refused_by_image_import() {
    let s = Server::new(); // no daemon: `skiff image import --data-dir D` on its own
    let marker = Marker(random_hex(6));
    let all = hostile::build_all(&s.work_dir, &marker.0).unwrap();
    let mut problems = Vec::new();
    for h in &all {
        let o = s.import_image(&h.path);
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        eprintln!("{}: exit {} — {}", h.kind, o.status, out.trim());
        if o.status.success() {
            problems.push(format!("{}: import succeeded: {}", h.kind, out.trim()));
        } else if !out.contains(&h.entry) {
            problems.push(format!(
                "{}: the error does not name the entry ({:?}): {}",
                h.kind,
                h.entry,
                out.trim()
            ));
        }
        let traces = hostile::traces(&marker.0, &s.root_dir);
        if !traces.is_empty() {
            problems.push(format!("{}: wrote outside the store: {traces:?}", h.kind));
        }
    }
    assert!(
        problems.is_empty(),
        "hostile archives:\n  {}",
        problems.join("\n  ")
    );

    // The store still works after the refusals.
    let good = s.work_dir.join("good.tar");
    build_busybox_image(&good, "skiff-e2e-good:v1", false).unwrap();
    let o = s.import_image(&good);
    assert!(
        o.status.success(),
        "a good archive failed after the hostile ones: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn hostile_archives_dropped_into_images_folder_are_refused() {
    let mut s = Server::start_new();
    let marker = Marker(random_hex(6));
    let all = hostile::build_all(&s.work_dir, &marker.0).unwrap();
    let mark = s.log_mark();
    for h in &all {
        fs::copy(&h.path, s.images_dir.join(h.path.file_name().unwrap())).unwrap();
    }
    let mut unreported = Vec::new();
    for h in &all {
        let file = h.path.file_name().unwrap().to_string_lossy().to_string();
        if s.wait_log(mark, &file, &[], WAIT).is_none() {
            unreported.push(file);
        }
    }
    assert!(
        unreported.is_empty(),
        "the log does not name these refused archives: {unreported:?}\nlog since drop:\n{}",
        s.log_since(mark)
    );
    let traces = hostile::traces(&marker.0, &s.root_dir);
    assert!(traces.is_empty(), "wrote outside the store: {traces:?}");
    s.assert_running();

    // The daemon still imports and runs a good image.
    fs::copy(
        {
            let good = s.work_dir.join("good.tar");
            build_busybox_image(&good, "skiff-e2e-good:v1", false).unwrap();
            good
        },
        s.images_dir.join("good.tar"),
    )
    .unwrap();
    let port = free_port();
    s.write_manifest(
        "good.yaml",
        &httpd_deployment_yaml("good", "skiff-e2e-good:v1", port),
    );
    let (body, _) = s.expect_http(port, "/", WAIT);
    assert_eq!(body, "hello from skiff\n");
    // And a Deployment naming a refused image does not start.
    let p2 = free_port();
    let bad_image = all[0].image.clone();
    s.write_manifest("bad.yaml", &httpd_deployment_yaml("bad", &bad_image, p2));
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(port_closed(p2));
    assert!(hostile::traces(&marker.0, &s.root_dir).is_empty());
}
