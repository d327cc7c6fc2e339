use super::*;
use serde_json::json;

fn pod(ns: &str, name: &str, ip: &str, labels: Value, ports: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "i", "ports": ports}]},
        "status": {"phase": "Running", "podIP": ip},
    }))
    .unwrap()
}

fn policy(ns: &str, spec: Value) -> Value {
    json!({"metadata": {"namespace": ns, "name": "p"}, "spec": spec})
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn namespaces() -> Vec<Value> {
    vec![
        json!({"metadata": {"name": "a", "labels": {"team": "x"}}}),
        json!({"metadata": {"name": "b"}}),
    ]
}

fn pods() -> Vec<Pod> {
    vec![
        pod(
            "a",
            "web",
            "10.42.0.2",
            json!({"app": "web"}),
            json!([{"name": "http", "containerPort": 8080}]),
        ),
        pod(
            "a",
            "db",
            "10.42.0.3",
            json!({"app": "db"}),
            json!([{"name": "pg", "containerPort": 5432}]),
        ),
        pod(
            "b",
            "client",
            "10.42.0.4",
            json!({"app": "client"}),
            json!([]),
        ),
    ]
}

fn tcp(ranges: &[(u16, u16)]) -> Option<Vec<Ports>> {
    Some(vec![Ports {
        protocol: "tcp",
        ranges: Some(ranges.to_vec()),
    }])
}

#[test]
fn no_policy_isolates_nothing() {
    assert!(plan(&[], &namespaces(), &pods()).is_empty());
}

#[test]
fn deny_all_ingress_isolates_every_pod_of_the_namespace_with_nothing_allowed() {
    let p = plan(
        &[policy("a", json!({"podSelector": {}}))],
        &namespaces(),
        &pods(),
    );
    assert_eq!(
        p.ingress,
        vec![
            Isolated {
                ip: ip("10.42.0.2"),
                allow: vec![]
            },
            Isolated {
                ip: ip("10.42.0.3"),
                allow: vec![]
            },
        ]
    );
    assert!(p.egress.is_empty(), "no egress section: ingress only");
}

#[test]
fn pod_selector_peers_are_in_the_policy_namespace_and_named_ports_resolve_on_the_pod() {
    let pol = policy(
        "a",
        json!({
            "podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                         "ports": [{"port": "pg"}, {"port": "http"}]}],
        }),
    );
    let p = plan(&[pol], &namespaces(), &pods());
    assert_eq!(
        p.ingress,
        vec![Isolated {
            ip: ip("10.42.0.3"),
            // "http" is web's port, not db's: it matches nothing on db.
            allow: vec![Allow {
                peers: Some(vec![Peer::Pod(ip("10.42.0.2"))]),
                ports: tcp(&[(5432, 5432)]),
            }],
        }]
    );
}

#[test]
fn namespace_selector_selects_by_labels_and_metadata_name() {
    let by_label = policy(
        "a",
        json!({"podSelector": {"matchLabels": {"app": "web"}},
               "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}]}]}),
    );
    let p = plan(&[by_label], &namespaces(), &pods());
    assert_eq!(
        p.ingress[0].allow[0].peers,
        Some(vec![Peer::Pod(ip("10.42.0.2")), Peer::Pod(ip("10.42.0.3"))])
    );
    let by_name = policy(
        "a",
        json!({"podSelector": {"matchLabels": {"app": "web"}},
               "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                   {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["b"]}]},
                   "podSelector": {"matchLabels": {"app": "client"}}}],
                 "ports": [{"protocol": "TCP", "port": 8000, "endPort": 8100}]}]}),
    );
    let p = plan(&[by_name], &namespaces(), &pods());
    assert_eq!(
        p.ingress[0].allow,
        vec![Allow {
            peers: Some(vec![Peer::Pod(ip("10.42.0.4"))]),
            ports: tcp(&[(8000, 8100)]),
        }]
    );
}

#[test]
fn a_rule_whose_selector_matches_no_pod_allows_nothing() {
    let pol = policy(
        "a",
        json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "none"}}}]}]}),
    );
    let p = plan(&[pol], &namespaces(), &pods());
    assert!(p.ingress.iter().all(|i| i.allow.is_empty()));
}

#[test]
fn egress_with_ip_blocks_and_named_ports_of_destinations() {
    let pol = policy(
        "a",
        json!({
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}},
                        {"ipBlock": {"cidr": "fd00::/8"}}]},
                {"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": "pg"}]},
            ],
        }),
    );
    let p = plan(&[pol], &namespaces(), &pods());
    assert!(p.ingress.is_empty(), "policyTypes says Egress only");
    let mut want = vec![
        Allow {
            peers: Some(vec![Peer::Block {
                cidr: "192.168.0.0/16".parse().unwrap(),
                except: vec!["192.168.1.0/24".parse().unwrap()],
            }]),
            ports: None,
        },
        Allow {
            peers: Some(vec![Peer::Pod(ip("10.42.0.3"))]),
            ports: tcp(&[(5432, 5432)]),
        },
    ];
    want.sort();
    assert_eq!(
        p.egress,
        vec![Isolated {
            ip: ip("10.42.0.2"),
            allow: want
        }]
    );
}

#[test]
fn union_of_policies_and_allow_all_rules() {
    let deny = policy(
        "b",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    );
    let allow_dns = policy(
        "b",
        json!({"podSelector": {}, "egress": [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP"}]}]}),
    );
    let p = plan(&[deny, allow_dns], &namespaces(), &pods());
    assert_eq!(
        p.ingress,
        vec![Isolated {
            ip: ip("10.42.0.4"),
            allow: vec![]
        }]
    );
    assert_eq!(
        p.egress,
        vec![Isolated {
            ip: ip("10.42.0.4"),
            allow: vec![Allow {
                peers: None,
                ports: Some(vec![
                    Ports {
                        protocol: "tcp",
                        ranges: None
                    },
                    Ports {
                        protocol: "udp",
                        ranges: Some(vec![(53, 53)])
                    },
                ]),
            }],
        }]
    );
}

#[test]
fn host_network_and_finished_pods_are_not_members() {
    let mut host = pod("a", "h", "192.168.1.5", json!({}), json!([]));
    host.spec.as_mut().unwrap().host_network = Some(true);
    let mut done = pod("a", "d", "10.42.0.9", json!({}), json!([]));
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let p = plan(
        &[policy("a", json!({"podSelector": {}}))],
        &namespaces(),
        &[host, done],
    );
    assert!(p.is_empty());
}

#[test]
fn selector_operators() {
    let labels: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
    let m = |s: Value| selector_matches(&s, &labels);
    assert!(m(json!({})));
    assert!(m(
        json!({"matchExpressions": [{"key": "a", "operator": "Exists"}]})
    ));
    assert!(!m(
        json!({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]})
    ));
    assert!(m(
        json!({"matchExpressions": [{"key": "b", "operator": "NotIn", "values": ["x"]}]})
    ));
    assert!(!m(
        json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]})
    ));
    assert!(!m(json!({"matchLabels": {"a": "2"}})));
    assert!(!m(
        json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]})
    ));
}
