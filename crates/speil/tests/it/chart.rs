//! The Helm chart, run as rendered: Helm v4 (charts/speil/tests/render.py, helm-python-sdk)
//! renders it, and the DaemonSet's init and main containers run with exactly their rendered
//! command, args and env on three nodes at `127.A.B.n`, each with its own real containerd, and
//! dnsmasq answering the headless Service's name with the three node IPs. Only what the kubelet
//! and the pod network would supply is resolved here:
//! - `fieldRef` env (`status.hostIP`) becomes the node's address, then `$(VAR)` references expand;
//! - a path under a hostPath volume's mount becomes the node's own directory (its containerd's
//!   socket, config, content, host files; a temp dir for the data dir);
//! - the pod's wildcard listen address (`0.0.0.0`) becomes the node's address (its own network
//!   namespace), and the pod's resolv.conf becomes `SPEIL_DNS_BOOTSTRAP_NAMESERVER`;
//! - the cleanup Service's DNS name becomes the node's address (kube-proxy's part).
//!
//! A flag or variable renamed in the binary and not in the chart fails here: the rendered env no
//! longer configures the node, and nothing starts or connects.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use test_support::containerd::{Containerd, Version};
use test_support::dns::Dnsmasq;
use test_support::http::get;
use test_support::metrics::scrape;
use test_support::net::Block;
use test_support::process::{Guard, Node};

use crate::cluster::{speil, wait_provider, wait_state};
use crate::containerd::{NAME, cri_pull, import, tree};

const BOOTSTRAP_NAME: &str = "speil-bootstrap.speil.svc.cluster.test";

/// The Python of the virtualenv scripts/test.sh makes, or `None` (a panic under `CI=true`).
fn chart_python() -> Option<PathBuf> {
    let python = std::env::var_os("SPEIL_CHART_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
            Some(cache.join("speil-venv/bin/python"))
        })
        .filter(|p| p.is_file());
    if python.is_none() {
        let msg = "prerequisite missing: the chart tests' virtualenv (SPEIL_CHART_PYTHON); \
                   run ./scripts/test.sh, which creates it";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("\n!!!!! SKIPPED: {msg}\n");
    }
    python
}

fn render(python: &Path, values: &Value) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/speil/tests/render.py");
    let out = Command::new(python)
        .arg(script)
        .arg(values.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rendering the chart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn object<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

/// One node: its address, its containerd and the directories its hostPath volumes map to.
struct NodeHost {
    ip: std::net::IpAddr,
    containerd: Containerd,
    data: tempfile::TempDir,
    /// The preset's socket is not on this node: the runtime creates an empty directory at an
    /// absent hostPath without a type, and that is what the pod sees.
    socket_absent: bool,
}

impl NodeHost {
    /// The node directory a hostPath volume of the rendered pod maps to, by volume name.
    fn host_path(&self, volume: &str) -> PathBuf {
        match volume {
            "containerd-sock" if self.socket_absent => {
                let dir = self.data.path().join("absent-socket");
                std::fs::create_dir_all(&dir).unwrap();
                dir
            }
            "containerd-sock" => self.containerd.socket(),
            "containerd-config" => self.containerd.config_file().parent().unwrap().to_owned(),
            "containerd-content" => self.containerd.content_path(),
            "containerd-registry-config" => self.containerd.certs_dir(),
            "data" => self.data.path().to_owned(),
            other => panic!("the chart mounts a hostPath volume this test does not know: {other}"),
        }
    }

    /// The command of `container` in `pod`, with what the kubelet and the pod network supply.
    fn command(&self, pod: &Value, container: &Value, extra: &[(&str, String)]) -> Command {
        // mountPath -> this node's directory, for every hostPath volume mounted.
        let volumes: HashMap<&str, &str> = pod["volumes"]
            .as_array()
            .map(|v| v.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|v| v["hostPath"].is_object())
            .map(|v| {
                (
                    v["name"].as_str().unwrap(),
                    v["hostPath"]["path"].as_str().unwrap(),
                )
            })
            .collect();
        let mounts: Vec<(String, PathBuf)> = container["volumeMounts"]
            .as_array()
            .map(|m| m.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|m| volumes.contains_key(m["name"].as_str().unwrap()))
            .map(|m| {
                (
                    m["mountPath"].as_str().unwrap().to_owned(),
                    self.host_path(m["name"].as_str().unwrap()),
                )
            })
            .collect();
        let mut env: Vec<(String, String)> = Vec::new();
        for e in container["env"].as_array().unwrap() {
            let name = e["name"].as_str().unwrap().to_owned();
            let value = if let Some(v) = e["value"].as_str() {
                let mut v = v.to_owned();
                for (k, val) in &env {
                    v = v.replace(&format!("$({k})"), val);
                }
                v
            } else {
                match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                    Some("status.hostIP" | "status.podIP") => self.ip.to_string(),
                    other => panic!("env {name} from {other:?}: not something this test resolves"),
                }
            };
            env.push((name, value));
        }
        let env: Vec<(String, String)> = env
            .into_iter()
            .map(|(k, mut v)| {
                for (mount, host) in &mounts {
                    if v == *mount || v.starts_with(&format!("{mount}/")) {
                        v = format!("{}{}", host.display(), &v[mount.len()..]);
                    }
                }
                if v.starts_with("0.0.0.0:") {
                    v = v.replacen("0.0.0.0", &self.ip.to_string(), 1);
                }
                (k, v)
            })
            .collect();
        let program = container["command"][0].as_str().unwrap();
        assert_eq!(program, "/usr/local/bin/speil", "the image's binary");
        let mut cmd = Command::new(speil());
        cmd.args(
            container["command"].as_array().unwrap()[1..]
                .iter()
                .chain(container["args"].as_array().unwrap())
                .map(|a| a.as_str().unwrap()),
        )
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env)
        .envs(extra.iter().map(|(k, v)| (*k, v.clone())));
        cmd
    }
}

fn pod_of(ds: &Value) -> &Value {
    &ds["spec"]["template"]["spec"]
}

fn containers<'a>(pod: &'a Value, kind: &str) -> &'a [Value] {
    pod[kind].as_array().unwrap()
}

/// The chart rendered with the values of the three-node test: JSON logs, example.com mirrored,
/// the alert rules and the dashboard on.
fn render_for_three_nodes(python: &Path) -> Vec<Value> {
    let values = serde_json::json!({
        "clusterDomain": "cluster.test",
        // The node IP is the pod IP here, so the hostPort is the container port.
        "service": {"registry": {"hostPort": 5000}},
        "speil": {"logFormat": "json", "mirroredRegistries": ["https://example.com"]},
        "prometheusRule": {"enabled": true},
        "grafanaDashboard": {"enabled": true},
    });
    render(python, &values)
}

/// The DaemonSet's pod spec, its one init container and its one container.
fn speil_pod(docs: &[Value]) -> (&Value, &Value, &Value) {
    let ds = object(docs, "DaemonSet", "speil");
    let pod = pod_of(ds);
    let [init] = containers(pod, "initContainers") else {
        panic!("one init container")
    };
    let [main] = containers(pod, "containers") else {
        panic!("one container")
    };
    (pod, init, main)
}

/// The main container names the bootstrap domain and leaves the nameserver to the pod's
/// resolv.conf.
fn assert_dns_left_to_the_pod(main: &Value) {
    let main_env: Vec<&str> = main["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(main_env.contains(&"SPEIL_DNS_BOOTSTRAP_DOMAIN"));
    assert!(!main_env.contains(&"SPEIL_DNS_BOOTSTRAP_NAMESERVER"));
}

/// One node host per address, each with its own containerd 1.6; `None` if containerd is missing.
fn start_node_hosts(ips: &[std::net::IpAddr]) -> Option<Vec<NodeHost>> {
    let mut hosts = Vec::new();
    for ip in ips {
        hosts.push(NodeHost {
            ip: *ip,
            containerd: Containerd::start(Version::V1_6, false)?,
            data: tempfile::tempdir().unwrap(),
            socket_absent: false,
        });
    }
    Some(hosts)
}

/// Node 2's host files hold an operator's own mirror for example.com before the install.
fn write_an_operators_own_mirror(host: &NodeHost) {
    let own = "server = \"https://example.com\"\n\n[host.\"https://mirror.internal\"]\n  capabilities = [\"pull\"]\n";
    let dir = host.containerd.certs_dir().join("example.com");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hosts.toml"), own).unwrap();
}

/// Every node's host-file tree, in node order.
fn host_files(hosts: &[NodeHost]) -> Vec<Vec<(String, Vec<u8>)>> {
    hosts
        .iter()
        .map(|h| tree(&h.containerd.certs_dir()))
        .collect()
}

/// On every node, the init container runs to success, then the main container starts with the
/// resolver the pod's resolv.conf would give it; all three connect.
async fn install(
    hosts: &[NodeHost],
    pod: &Value,
    init: &Value,
    main: &Value,
    resolver: &[(&str, String)],
) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for h in hosts {
        let out = h.command(pod, init, &[]).output().unwrap();
        assert!(
            out.status.success(),
            "init container on {}: {}",
            h.ip,
            String::from_utf8_lossy(&out.stderr)
        );
        nodes.push(Node::start_command(h.command(pod, main, resolver)));
    }
    for n in &nodes {
        wait_state(n, "connected", Duration::from_secs(30)).await;
    }
    nodes
}

/// The probes answer on every node, at the paths and ports rendered.
async fn assert_probes_answer(main: &Value, hosts: &[NodeHost]) {
    let ports: HashMap<&str, u64> = main["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let http = &main[probe]["httpGet"];
        let port = ports[http["port"].as_str().unwrap()];
        for h in hosts {
            let url = format!("http://{}:{port}{}", h.ip, http["path"].as_str().unwrap());
            assert_eq!(get(&url).await.status.as_u16(), 200, "{probe} {url}");
        }
    }
}

/// Every metric the dashboard and the alert rules name is exported by `node`. A labelled family
/// is exported from its first series on: the peer failure counter only after a peer failed,
/// which a healthy cluster never sees.
async fn assert_named_metrics_exported(docs: &[Value], node: &Node) {
    let rules = object(docs, "PrometheusRule", "speil")["spec"].to_string();
    let dashboard = object(docs, "ConfigMap", "speil-dashboard")["data"]["speil.json"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut named = metric_names(&rules);
    named.extend(metric_names(&dashboard));
    named.sort();
    named.dedup();
    assert!(named.len() >= 10, "{named:?}");
    const AFTER_AN_EVENT_ONLY: &[&str] = &["speil_mirror_peer_failures_total"];
    let families: Vec<String> = named
        .iter()
        .filter(|n| !AFTER_AN_EVENT_ONLY.contains(&n.as_str()))
        .map(|n| {
            n.trim_end_matches("_bucket")
                .trim_end_matches("_total")
                .to_owned()
        })
        .collect();
    test_support::eventually(
        Duration::from_secs(20),
        "every metric the dashboard and rules name exported",
        || async {
            let text = scrape(node.metrics).await;
            let missing: Vec<&String> = families
                .iter()
                .filter(|f| !text.contains(&format!("# TYPE {f} ")))
                .collect();
            missing.is_empty().then_some(())
        },
    )
    .await;
}

/// The post-delete hook on every node: the cleanup DaemonSet's container starts on each, and the
/// cleanup-wait Job's container, pointed at the node's own cleanup (kube-proxy's part), runs to
/// success. The cleanup containers, still running.
fn run_the_post_delete_hook(docs: &[Value], hosts: &[NodeHost]) -> Vec<Guard> {
    let cleanup_ds = object(docs, "DaemonSet", "speil-cleanup");
    let [cleanup] = containers(pod_of(cleanup_ds), "containers") else {
        panic!("one cleanup container")
    };
    let job = object(docs, "Job", "speil-cleanup-wait");
    let [wait] = containers(&job["spec"]["template"]["spec"], "containers") else {
        panic!("one cleanup-wait container")
    };
    let mut cleaners = Vec::new();
    for h in hosts {
        cleaners.push(Guard::spawn(&mut h.command(pod_of(cleanup_ds), cleanup, &[])).unwrap());
    }
    for h in hosts {
        let mut cmd = h.command(&job["spec"]["template"]["spec"], wait, &[]);
        let endpoint = wait["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "SPEIL_PROBE_ENDPOINT")
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .replace("speil-cleanup.speil.svc.cluster.test", &h.ip.to_string());
        cmd.env("SPEIL_PROBE_ENDPOINT", endpoint);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "cleanup-wait for {}: {}",
            h.ip,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    cleaners
}

/// Every node's host files are byte for byte what they were before the install.
fn assert_host_files_restored(hosts: &[NodeHost], before: &[Vec<(String, Vec<u8>)>]) {
    for (h, was) in hosts.iter().zip(before) {
        assert_eq!(
            &tree(&h.containerd.certs_dir()),
            was,
            "host files of {}",
            h.ip
        );
    }
}

#[tokio::test]
async fn the_chart_runs_as_rendered_on_three_nodes() {
    let Some(python) = chart_python() else {
        return;
    };
    let docs = render_for_three_nodes(&python);
    let (pod, init, main) = speil_pod(&docs);
    assert_dns_left_to_the_pod(main);

    let block = Block::random();
    let ips: Vec<std::net::IpAddr> = (1..=3).map(|n| block.ip(n)).collect();
    let Some(dns) = Dnsmasq::start(block.addr(53, 53), BOOTSTRAP_NAME, &ips) else {
        return;
    };
    let Some(hosts) = start_node_hosts(&ips) else {
        return;
    };
    write_an_operators_own_mirror(&hosts[1]);
    let before = host_files(&hosts);

    let _img = import(&hosts[0].containerd, 7);
    let resolver = [("SPEIL_DNS_BOOTSTRAP_NAMESERVER", dns.addr().to_string())];
    let nodes = install(&hosts, pod, init, main, &resolver).await;
    // The identity is kept in the data dir's hostPath.
    assert!(hosts[0].data.path().join("identity.key").is_file());
    assert_probes_answer(main, &hosts).await;

    // The CRI pull kubelet makes on node 3, of an image only node 1 holds; example.com itself
    // is unreachable from here.
    wait_provider(&nodes[2], NAME, &nodes[0]).await;
    cri_pull(&hosts[2].containerd.socket(), NAME)
        .await
        .expect("CRI PullImage on node 3 through the chart's Speil");

    // Node 3 advertises what it pulled once its store has synced, hence the wait inside.
    assert_named_metrics_exported(&docs, &nodes[2]).await;

    // Uninstall: the DaemonSet's pods go, then the post-delete hook runs on every node.
    drop(nodes);
    let cleaners = run_the_post_delete_hook(&docs, &hosts);
    assert_host_files_restored(&hosts, &before);
    drop(cleaners);
}

/// A preset whose socket is not on the node (k0s's, on a node with containerd's default socket):
/// the pod starts and `speil status` names the socket.
#[tokio::test]
async fn a_preset_whose_socket_is_absent_is_reported() {
    let Some(python) = chart_python() else {
        return;
    };
    let values = serde_json::json!({"speil": {"distribution": "k0s", "logFormat": "json"}});
    let docs = render(&python, &values);
    let pod = pod_of(object(&docs, "DaemonSet", "speil"));
    let [main] = containers(pod, "containers") else {
        panic!("one container")
    };
    let Some(containerd) = Containerd::start(Version::V1_6, false) else {
        return;
    };
    let host = NodeHost {
        ip: Block::random().ip(1),
        containerd,
        data: tempfile::tempdir().unwrap(),
        socket_absent: true,
    };
    let node = Node::start_command(host.command(pod, main, &[]));
    let socket = host.data.path().join("absent-socket");
    let run = crate::status::status(&["--addr", &crate::status::addr_of(&node)]);
    let stdout = run.stdout;
    assert_ne!(run.code, 0, "{stdout}");
    assert!(
        stdout.contains(&format!(
            "containerd does not answer at {}",
            socket.display()
        )),
        "{stdout}"
    );
}

fn metric_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let starts = (rest.starts_with("speil_") || rest.starts_with("libp2p_"))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if starts {
            let len = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            out.push(rest[..len].to_owned());
            i += len;
        } else {
            i += 1;
        }
    }
    out.sort();
    out.dedup();
    out
}
