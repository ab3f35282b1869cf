"""The Speil chart, rendered and linted by Helm v4 itself (helm-python-sdk), offline.

Run by scripts/test.sh; SPEIL_BIN names the speil binary whose flags the chart must match.
"""

import copy
import json
import os
import re
import socket
import subprocess
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

CHART = Path(__file__).resolve().parents[1]
REPO = CHART.parents[1]
RELEASE, NAMESPACE = "speil", "speil"
DISTRIBUTIONS = ["generic", "k3s", "rke2", "k0s", "talos", "eks", "bottlerocket", "gke", "aks"]
# The newest Kubernetes version kubernetes-validate knows, strict schemas.
KUBE_VERSION = kubernetes_validate.utils.latest_version()

EVERYTHING_ON = {
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
    "networkPolicy": {"enabled": True, "nodeCIDRs": ["10.0.0.0/16", "fd00::/64"]},
    "cleanup": {"enabled": True},
    "speil": {
        "mirroredRegistries": ["https://docker.io", "https://ghcr.io"],
        "additionalMirrorTargets": ["https://mirror.example"],
        "registryFilters": [":latest$"],
        "prependExisting": True,
    },
    "image": {"digest": "sha256:" + "a" * 64},
}

MATRIX = {
    "defaults": {},
    **{f"distribution-{d}": {"speil": {"distribution": d}} for d in DISTRIBUTIONS},
    "everything-on": EVERYTHING_ON,
    "persistence-off": {"persistence": {"enabled": False}},
    "cleanup-off": {"cleanup": {"enabled": False}},
    "nodeport": {"service": {"registry": {"mode": "nodePort"}}},
    "ipv6": {"speil": {"ipFamily": "ipv6"}},
    "ipv6-nodeport-everything": {
        **EVERYTHING_ON,
        "speil": {**EVERYTHING_ON["speil"], "ipFamily": "ipv6"},
        "service": {"registry": {"mode": "nodePort"}},
    },
    "basic-auth-created": {"basicAuth": {"username": "puller", "password": "s3cret:x"}},
    "basic-auth-existing": {"basicAuth": {"existingSecret": "cluster-pull-credentials"}},
    "p2p-psk-created": {"p2pPsk": {"key": "AB" * 32}},
    "p2p-psk-existing": {"p2pPsk": {"existingSecret": "cluster-swarm-key"}},
    "paths-overridden": {
        "speil": {
            "distribution": "k3s",
            "containerdSock": "/run/x/containerd.sock",
            "containerdConfig": "/etc/x/config.toml",
            "containerdContentPath": "/var/lib/x/content",
            "containerdRegistryConfigPath": "/etc/x/certs.d",
        }
    },
}


def render(values):
    chart = helm.Chart.load(str(CHART))
    out = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    docs = []
    for text in out.values():
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def workload_containers(docs):
    """(subcommand, container) for every container the chart runs."""
    for d in docs:
        if d["kind"] in ("DaemonSet", "Job"):
            spec = d["spec"]["template"]["spec"]
            for c in spec.get("initContainers", []) + spec["containers"]:
                assert c["command"] == ["/usr/local/bin/speil"], c["name"]
                yield c["args"][0], c


def test_lint_is_clean():
    report = helm.lint(str(CHART), strict=True)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_renders_and_validates(case):
    docs = render(MATRIX[case])
    kinds = {d["kind"] for d in docs}
    assert {"DaemonSet", "Service"} <= kinds
    for d in docs:
        if d["apiVersion"].startswith("monitoring.coreos.com/"):
            check_monitoring(d)
        else:
            kubernetes_validate.validate(d, KUBE_VERSION, strict=True)


def check_monitoring(d):
    """The fields prometheus-operator requires (no CRD schema is available offline)."""
    assert d["metadata"]["name"] and d["metadata"]["namespace"]
    if d["kind"] == "ServiceMonitor":
        assert d["spec"]["selector"]["matchLabels"]
        for e in d["spec"]["endpoints"]:
            assert e["port"] and e["path"].startswith("/")
    elif d["kind"] == "PrometheusRule":
        for g in d["spec"]["groups"]:
            assert g["name"] and g["rules"]
            for r in g["rules"]:
                assert r["alert"] and r["expr"]
                assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", r["alert"])
                if "for" in r:
                    assert re.fullmatch(r"\d+[smhd]", r["for"])
    else:
        raise AssertionError(d["kind"])


def test_strict_validation_is_strict():
    """A misspelt field must fail validation, so the test above proves something."""
    ds = find(render({}), "DaemonSet", RELEASE)
    bad = copy.deepcopy(ds)
    bad["spec"]["template"]["spec"]["hostNetworkk"] = True
    with pytest.raises(Exception):
        kubernetes_validate.validate(bad, KUBE_VERSION, strict=True)


def test_monitoring_objects_render_only_when_enabled():
    kinds = {d["kind"] for d in render({})}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "NetworkPolicy", "ConfigMap"}
    kinds = {d["kind"] for d in render(EVERYTHING_ON)}
    assert {"ServiceMonitor", "PrometheusRule", "NetworkPolicy", "ConfigMap"} <= kinds


def test_daemonset_shape():
    docs = render({})
    ds = find(docs, "DaemonSet", RELEASE)
    pod = ds["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "system-node-critical"
    assert {"operator": "Exists"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    main = pod["containers"][0]
    init = pod["initContainers"][0]
    assert (init["args"], main["args"]) == (["configure"], ["run"])
    for c in (init, main):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
        assert not sc["privileged"] and sc["capabilities"]["drop"] == ["ALL"]
    mounts = {m["name"]: m for m in main["volumeMounts"]}
    assert mounts["containerd-content"]["readOnly"] is True
    assert mounts["containerd-config"]["readOnly"] is True
    assert mounts["data"]["mountPath"] == env_of(main)["SPEIL_DATA_DIR"]
    for probe, path in (("startupProbe", "/livez"), ("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
        assert main[probe]["httpGet"] == {"path": path, "port": "registry"}
    ports = {p["name"]: p for p in main["ports"]}
    assert ports["registry"]["hostPort"] == 30020
    assert env_of(init)["SPEIL_MIRROR_TARGETS"] == "http://$(NODE_IP):30020"
    assert init["env"][0] == {"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}
    env = env_of(main)
    assert env["SPEIL_BOOTSTRAP_KIND"] == "dns"
    assert env["SPEIL_DNS_BOOTSTRAP_DOMAIN"] == f"{RELEASE}-bootstrap.{NAMESPACE}.svc.cluster.local"
    assert main["resources"]["limits"]["memory"] and main["resources"]["requests"]["memory"]
    headless = find(docs, "Service", f"{RELEASE}-bootstrap")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert headless["spec"]["selector"] == ds["spec"]["selector"]["matchLabels"]


def test_persistence_off_has_no_data_dir():
    main = find(render({"persistence": {"enabled": False}}), "DaemonSet", RELEASE)["spec"]["template"]["spec"]["containers"][0]
    assert "SPEIL_DATA_DIR" not in env_of(main)
    assert "data" not in {m["name"] for m in main["volumeMounts"]}


def test_nodeport_mode():
    docs = render({"service": {"registry": {"mode": "nodePort"}}})
    pod = find(docs, "DaemonSet", RELEASE)["spec"]["template"]["spec"]
    assert all("hostPort" not in p for p in pod["containers"][0]["ports"])
    assert env_of(pod["initContainers"][0])["SPEIL_MIRROR_TARGETS"] == "http://$(NODE_IP):30021"
    svc = find(docs, "Service", f"{RELEASE}-registry")
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["internalTrafficPolicy"] == "Local"
    assert svc["spec"]["externalTrafficPolicy"] == "Local"
    assert svc["spec"]["ports"][0]["nodePort"] == 30021


def test_ipv6():
    docs = render({"speil": {"ipFamily": "ipv6"}})
    pod = find(docs, "DaemonSet", RELEASE)["spec"]["template"]["spec"]
    assert env_of(pod["initContainers"][0])["SPEIL_MIRROR_TARGETS"] == "http://[$(NODE_IP)]:30020"
    env = env_of(pod["containers"][0])
    assert env["SPEIL_REGISTRY_ADDR"] == "[::]:5000"
    assert env["SPEIL_ROUTER_ADDR"] == "[::]:5001"
    assert find(docs, "Service", f"{RELEASE}-bootstrap")["spec"]["ipFamilies"] == ["IPv6"]


PRESET_SOCKETS = {
    "generic": "/run/containerd/containerd.sock",
    "k3s": "/run/k3s/containerd/containerd.sock",
    "rke2": "/run/k3s/containerd/containerd.sock",
    "k0s": "/run/k0s/containerd.sock",
    "talos": "/run/containerd/containerd.sock",
}


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_presets_set_all_four_paths_consistently(distribution):
    docs = render({"speil": {"distribution": distribution}})
    pod = find(docs, "DaemonSet", RELEASE)["spec"]["template"]["spec"]
    env = env_of(pod["containers"][0])
    vols = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
    assert vols["containerd-sock"] == env["SPEIL_CONTAINERD_SOCK"]
    assert vols["containerd-config"] == os.path.dirname(env["SPEIL_CONTAINERD_CONFIG"])
    assert vols["containerd-content"] == env["SPEIL_CONTAINERD_CONTENT_PATH"]
    assert vols["containerd-registry-config"] == env["SPEIL_CONTAINERD_REGISTRY_CONFIG_PATH"]
    assert env_of(pod["initContainers"][0])["SPEIL_CONTAINERD_REGISTRY_CONFIG_PATH"] == vols["containerd-registry-config"]
    cleanup = find(docs, "DaemonSet", f"{RELEASE}-cleanup")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(cleanup)["SPEIL_CONTAINERD_REGISTRY_CONFIG_PATH"] == vols["containerd-registry-config"]
    if distribution in PRESET_SOCKETS:
        assert env["SPEIL_CONTAINERD_SOCK"] == PRESET_SOCKETS[distribution]
    # docs/install.md states every preset's paths.
    install = (REPO / "docs" / "install.md").read_text()
    row = next((l for l in install.splitlines() if l.startswith(f"| `{distribution}` |")), None)
    assert row is not None, f"docs/install.md has no preset row for {distribution}"
    paths = [env[k] for k in ("SPEIL_CONTAINERD_SOCK", "SPEIL_CONTAINERD_CONFIG",
                              "SPEIL_CONTAINERD_CONTENT_PATH", "SPEIL_CONTAINERD_REGISTRY_CONFIG_PATH")]
    for path in paths:
        assert f"`{path}`" in row, (distribution, path)



def test_paths_override_preset():
    pod = find(render(MATRIX["paths-overridden"]), "DaemonSet", RELEASE)["spec"]["template"]["spec"]
    env = env_of(pod["containers"][0])
    assert env["SPEIL_CONTAINERD_SOCK"] == "/run/x/containerd.sock"
    assert env["SPEIL_CONTAINERD_REGISTRY_CONFIG_PATH"] == "/etc/x/certs.d"


BAD_VALUES = [
    ({"service": {"registry": {"port": "5000"}}}, "/service/registry/port"),
    ({"service": {"registry": {"hostPort": 70000}}}, "/service/registry/hostPort"),
    ({"service": {"registry": {"mode": "hostNetwork"}}}, "/service/registry/mode"),
    ({"speil": {"logLevel": "verbose"}}, "/speil/logLevel"),
    ({"speil": {"logFormat": "xml"}}, "/speil/logFormat"),
    ({"speil": {"distribution": "minikube"}}, "/speil/distribution"),
    ({"speil": {"resolveTags": "yes"}}, "/speil/resolveTags"),
    ({"speil": {"mirrorResolveTimeout": "20"}}, "/speil/mirrorResolveTimeout"),
    ({"speil": {"mirrorResolveRetries": 0}}, "/speil/mirrorResolveRetries"),
    ({"speil": {"mirroredRegistries": "docker.io"}}, "/speil/mirroredRegistries"),
    ({"speil": {"mirroredRegistries": ["docker.io"]}}, "/speil/mirroredRegistries/0"),
    ({"speil": {"containerdSock": "run/containerd.sock"}}, "/speil/containerdSock"),
    ({"speil": {"ipFamily": "dual"}}, "/speil/ipFamily"),
    ({"speil": {"mirorredRegistries": []}}, "mirorredRegistries"),
    ({"persistence": {"enabled": "true"}}, "/persistence/enabled"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"networkPolicy": {"nodeCIDRs": ["10.0.0.0"]}}, "/networkPolicy/nodeCIDRs/0"),
    ({"basicAuth": {"username": "a:b", "password": "p"}}, "/basicAuth/username"),
    ({"basicAuth": {"existingSecret": "Not_A_Name"}}, "/basicAuth/existingSecret"),
    ({"p2pPsk": {"key": "ab" * 31}}, "/p2pPsk/key"),
    ({"p2pPsk": {"key": "zz" * 32}}, "/p2pPsk/key"),
    ({"p2pPsk": {"existingSecret": "Not_A_Name"}}, "/p2pPsk/existingSecret"),
    ({"speil": {"peerCIDRs": ["nodes"]}}, "/speil/peerCIDRs/0"),
    ({"speil": {"p2pMaxConnections": 0}}, "/speil/p2pMaxConnections"),
    ({"speil": {"p2pMaxLookups": "many"}}, "/speil/p2pMaxLookups"),
    ({"speil": {"registryMaxRequests": 0}}, "/speil/registryMaxRequests"),
    ({"speil": {"registryHeaderTimeout": "10"}}, "/speil/registryHeaderTimeout"),
]


@pytest.mark.parametrize("values,named", BAD_VALUES, ids=[n for _, n in BAD_VALUES])
def test_schema_rejects_with_the_value_named(values, named):
    with pytest.raises(helm.HelmValuesError) as err:
        render(values)
    assert named in str(err.value)


@pytest.mark.parametrize("case", ["basic-auth-created", "basic-auth-existing"])
def test_basic_auth_reaches_configure_and_run_from_one_secret(case):
    docs = render(MATRIX[case])
    pod = find(docs, "DaemonSet", RELEASE)["spec"]["template"]["spec"]
    secret = next(v for v in pod["volumes"] if v["name"] == "basic-auth")["secret"]
    for c in pod["initContainers"] + pod["containers"]:
        assert env_of(c)["SPEIL_BASIC_AUTH_FILE"] == "/etc/speil/basic-auth/basic-auth", c["name"]
        mount = next(m for m in c["volumeMounts"] if m["name"] == "basic-auth")
        assert mount == {"name": "basic-auth", "mountPath": "/etc/speil/basic-auth", "readOnly": True}
    secrets = [d for d in docs if d["kind"] == "Secret"]
    if case == "basic-auth-existing":
        assert secret["secretName"] == "cluster-pull-credentials"
        assert secrets == []
    else:
        assert secret["secretName"] == f"{RELEASE}-basic-auth"
        assert [s["stringData"] for s in secrets] == [{"basic-auth": "puller:s3cret:x"}]


def test_without_basic_auth_nothing_is_mounted():
    pod = find(render({}), "DaemonSet", RELEASE)["spec"]["template"]["spec"]
    assert all(v["name"] != "basic-auth" for v in pod["volumes"])
    for c in pod["initContainers"] + pod["containers"]:
        assert "SPEIL_BASIC_AUTH_FILE" not in env_of(c)


@pytest.mark.parametrize("case", ["p2p-psk-created", "p2p-psk-existing"])
def test_p2p_psk_reaches_run_only_from_its_secret(case):
    docs = render(MATRIX[case])
    pod = find(docs, "DaemonSet", RELEASE)["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "p2p-psk")["secret"]
    assert volume["defaultMode"] == 0o400
    (run,) = [c for c in pod["containers"] if c["args"][0] == "run"]
    assert env_of(run)["SPEIL_P2P_PSK_FILE"] == "/etc/speil/p2p-psk/swarm.key"
    mount = next(m for m in run["volumeMounts"] if m["name"] == "p2p-psk")
    assert mount == {"name": "p2p-psk", "mountPath": "/etc/speil/p2p-psk", "readOnly": True}
    for c in pod["initContainers"]:
        assert "SPEIL_P2P_PSK_FILE" not in env_of(c), c["name"]
        assert all(m["name"] != "p2p-psk" for m in c["volumeMounts"]), c["name"]
    secrets = [d for d in docs if d["kind"] == "Secret"]
    if case == "p2p-psk-existing":
        assert volume["secretName"] == "cluster-swarm-key"
        assert secrets == []
    else:
        assert volume["secretName"] == f"{RELEASE}-p2p-psk"
        key_file = "/key/swarm/psk/1.0.0/\n/base16/\n" + "ab" * 32 + "\n"
        assert [s["stringData"] for s in secrets] == [{"swarm.key": key_file}]


def test_p2p_psk_file_the_chart_writes_is_one_speil_reads(tmp_path):
    """The created Secret's swarm.key, given to the binary, is accepted: `speil run` goes on
    past the key and stops at the next check (a registry port in use); a malformed one is
    refused naming the flag, never showing the content."""
    secret = next(d for d in render(MATRIX["p2p-psk-created"]) if d["kind"] == "Secret")
    good = tmp_path / "swarm.key"
    good.write_text(secret["stringData"]["swarm.key"])
    bad = tmp_path / "bad.key"
    bad.write_text("/key/swarm/psk/1.0.0/\n/base16/\nnot-hex-secret\n")
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        common = [speil_bin(), "run", "--oci-dir", str(layout), "--registry-addr", f"127.0.0.1:{port}",
                  "--metrics-addr", "127.0.0.1:0", "--router-addr", "127.0.0.1:0", "--p2p-psk-file"]
        accepted = subprocess.run([*common, str(good)], capture_output=True, text=True, timeout=30)
        refused = subprocess.run([*common, str(bad)], capture_output=True, text=True, timeout=30)
    assert accepted.returncode == 2 and "--registry-addr" in accepted.stderr, accepted.stderr
    assert "--p2p-psk-file" not in accepted.stderr, accepted.stderr
    assert refused.returncode == 2 and f"--p2p-psk-file {bad}" in refused.stderr, refused.stderr
    assert "not-hex-secret" not in refused.stderr, refused.stderr


def test_without_p2p_psk_nothing_is_mounted():
    pod = find(render({}), "DaemonSet", RELEASE)["spec"]["template"]["spec"]
    assert all(v["name"] != "p2p-psk" for v in pod["volumes"])
    for c in pod["initContainers"] + pod["containers"]:
        assert "SPEIL_P2P_PSK_FILE" not in env_of(c)


def test_basic_auth_needs_both_user_and_password():
    with pytest.raises(helm.HelmError) as err:
        render({"basicAuth": {"username": "puller"}})
    assert "basicAuth.password" in str(err.value)


def test_network_policy_needs_node_cidrs():
    with pytest.raises(helm.HelmError) as err:
        render({"networkPolicy": {"enabled": True}})
    assert "networkPolicy.nodeCIDRs" in str(err.value)


def leaf_keys(values, prefix=""):
    for k, v in values.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and key not in OPAQUE_VALUES:
            yield from leaf_keys(v, key + ".")
        else:
            yield key


# Values passed through whole to Kubernetes objects; documented as one value.
OPAQUE_VALUES = {"resources", "updateStrategy", "nodeSelector", "networkPolicy.metricsNamespaceSelector", "affinity"}


def test_peer_cidrs_and_bounds_reach_run():
    docs = render({"speil": {"peerCIDRs": ["10.0.0.0/16", "fd00::/64"], "p2pMaxDialsPerLookup": 0}})
    pod = find(docs, "DaemonSet", RELEASE)["spec"]["template"]["spec"]
    env = env_of(next(c for c in pod["containers"] if c["name"] == "speil"))
    assert env["SPEIL_PEER_CIDRS"] == "10.0.0.0/16,fd00::/64"
    assert env["SPEIL_P2P_MAX_DIALS_PER_LOOKUP"] == "0"
    assert env["SPEIL_P2P_MAX_CONNECTIONS"] == "512"
    assert env["SPEIL_REGISTRY_MAX_REQUESTS"] == "256"
    assert env["SPEIL_REGISTRY_IDLE_TIMEOUT"] == "120s"
    assert "SPEIL_PEER_CIDRS" not in env_of(
        next(c for c in find(render({}), "DaemonSet", RELEASE)["spec"]["template"]["spec"]["containers"])
    )


def test_readme_documents_every_value():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))
    keys = set(leaf_keys(values))
    assert keys - documented == set(), "values missing from charts/speil/README.md"
    assert documented - keys == set(), "README.md documents values that do not exist"


def test_schema_covers_every_value():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for key in leaf_keys(values):
        node = schema
        for part in key.split("."):
            node = node["properties"][part]


METRIC = re.compile(r"\b((?:speil|libp2p)_[a-z0-9_]+)")


def documented_metrics():
    text = (REPO / "docs" / "metrics.md").read_text()
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", text, re.M))


def used_metrics():
    docs = render(EVERYTHING_ON)
    rules = json.dumps(find(docs, "PrometheusRule", RELEASE)["spec"])
    dashboard = find(docs, "ConfigMap", f"{RELEASE}-dashboard")["data"]["speil.json"]
    json.loads(dashboard)
    names = set(METRIC.findall(rules)) | set(METRIC.findall(dashboard))
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}


def test_dashboard_and_rules_use_documented_metrics():
    used = used_metrics()
    assert len(used) >= 10
    assert used - documented_metrics() == set()


def test_dashboard_covers_what_the_issue_asks():
    used = used_metrics()
    for name in [
        "speil_bootstrap_state",
        "speil_p2p_connected_peers",
        "speil_p2p_self_dials_total",
        "libp2p_identify_identify_total",
        "speil_mirror_requests_total",
        "speil_mirror_bytes_total",
        "speil_http_request_duration_seconds",
    ]:
        assert name in used


# --- the chart against the binary -------------------------------------------------------------

def speil_bin():
    path = os.environ.get("SPEIL_BIN", str(REPO / "target" / "debug" / "speil"))
    if not Path(path).is_file():
        pytest.fail(f"no speil binary at {path}: build it (cargo build -p speil) or set SPEIL_BIN")
    return path


def help_of(subcommand):
    text = subprocess.run([speil_bin(), subcommand, "--help"], check=True, capture_output=True, text=True).stdout
    flags = set(re.findall(r"(?:^|\s)(--[a-z][a-z0-9-]*)", text))
    env = set(re.findall(r"\[env: (SPEIL_[A-Z0-9_]+)=", text))
    return flags, env


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_every_flag_and_variable_the_chart_sets_is_the_binarys(case):
    seen = set()
    for subcommand, container in workload_containers(render(MATRIX[case])):
        seen.add(subcommand)
        flags, env = help_of(subcommand)
        assert env, f"speil {subcommand} --help lists no variables"
        for arg in container["args"][1:]:
            if arg.startswith("--"):
                assert arg.split("=")[0] in flags, f"speil {subcommand} has no {arg}"
        for name in env_of(container):
            if name.startswith("SPEIL_"):
                assert name in env, f"speil {subcommand} reads no {name}"
    assert {"configure", "run"} <= seen


def resolve(value, node_ip):
    return value.replace("$(NODE_IP)", node_ip)


def run_container(container, overrides, tmp_path):
    env = {k: v for k, v in env_of(container).items() if v is not None}
    env = {k: resolve(v, "127.0.0.1") for k, v in env.items()}
    env.update(overrides)
    return subprocess.run(
        [speil_bin(), *container["args"]], env={"PATH": os.environ["PATH"], **env},
        capture_output=True, text=True, timeout=60,
    )


def test_configure_then_cleanup_as_rendered_restores_host_files(tmp_path):
    """The init container and the post-delete hook, run with exactly their rendered env."""
    docs = render(EVERYTHING_ON)
    init = find(docs, "DaemonSet", RELEASE)["spec"]["template"]["spec"]["initContainers"][0]
    cleanup = find(docs, "DaemonSet", f"{RELEASE}-cleanup")["spec"]["template"]["spec"]["containers"][0]
    certs = tmp_path / "certs.d"
    (certs / "docker.io").mkdir(parents=True)
    original = b'server = "https://registry-1.docker.io"\n\n[host."https://mirror.local"]\n  capabilities = ["pull"]\n'
    (certs / "docker.io" / "hosts.toml").write_bytes(original)
    override = {"SPEIL_CONTAINERD_REGISTRY_CONFIG_PATH": str(certs)}

    done = run_container(init, override, tmp_path)
    assert done.returncode == 0, done.stderr
    written = (certs / "docker.io" / "hosts.toml").read_text()
    assert "http://127.0.0.1:30020" in written
    assert "https://mirror.example" in written
    assert (certs / "ghcr.io" / "hosts.toml").exists()

    cleanup_env = {k: v for k, v in env_of(cleanup).items() if k != "SPEIL_ADDR"}
    done = subprocess.run(
        [speil_bin(), *cleanup["args"]],
        env={"PATH": os.environ["PATH"], **cleanup_env, **override},
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (certs / "docker.io" / "hosts.toml").read_bytes() == original
    assert not (certs / "ghcr.io").exists()
