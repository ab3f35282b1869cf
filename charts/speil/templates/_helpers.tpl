{{/* Names, labels and the per-distribution containerd paths. */}}

{{- define "speil.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "speil.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "speil.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "speil.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "speil.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{- define "speil.selectorLabels" -}}
app.kubernetes.io/name: {{ include "speil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "speil.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "speil.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "speil.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
containerd's paths per distribution: sock, config, content, registry config path.
docs/install.md says where each fact comes from.
*/}}
{{- define "speil.presets" -}}
generic:
  sock: /run/containerd/containerd.sock
  config: /etc/containerd/config.toml
  content: /var/lib/containerd/io.containerd.content.v1.content
  registryConfig: /etc/containerd/certs.d
eks:
  sock: /run/containerd/containerd.sock
  config: /etc/containerd/config.toml
  content: /var/lib/containerd/io.containerd.content.v1.content
  registryConfig: /etc/containerd/certs.d
aks:
  sock: /run/containerd/containerd.sock
  config: /etc/containerd/config.toml
  content: /var/lib/containerd/io.containerd.content.v1.content
  registryConfig: /etc/containerd/certs.d
gke:
  sock: /run/containerd/containerd.sock
  config: /etc/containerd/config.toml
  content: /var/lib/containerd/io.containerd.content.v1.content
  registryConfig: /etc/containerd/certs.d
k3s:
  sock: /run/k3s/containerd/containerd.sock
  config: /var/lib/rancher/k3s/agent/etc/containerd/config.toml
  content: /var/lib/rancher/k3s/agent/containerd/io.containerd.content.v1.content
  registryConfig: /var/lib/rancher/k3s/agent/etc/containerd/certs.d
rke2:
  sock: /run/k3s/containerd/containerd.sock
  config: /var/lib/rancher/rke2/agent/etc/containerd/config.toml
  content: /var/lib/rancher/rke2/agent/containerd/io.containerd.content.v1.content
  registryConfig: /var/lib/rancher/rke2/agent/etc/containerd/certs.d
k0s:
  sock: /run/k0s/containerd.sock
  config: /etc/k0s/containerd.toml
  content: /var/lib/k0s/containerd/io.containerd.content.v1.content
  registryConfig: /etc/containerd/certs.d
talos:
  sock: /run/containerd/containerd.sock
  config: /etc/cri/containerd.toml
  content: /var/lib/containerd/io.containerd.content.v1.content
  registryConfig: /etc/cri/conf.d/hosts
bottlerocket:
  sock: /run/dockershim.sock
  config: /etc/containerd/config.toml
  content: /var/lib/containerd/io.containerd.content.v1.content
  registryConfig: /etc/containerd/certs.d
{{- end -}}

{{/* The containerd paths in effect: the preset, with any path set in values winning. */}}
{{- define "speil.paths" -}}
{{- $presets := include "speil.presets" . | fromYaml -}}
{{- $p := get $presets .Values.speil.distribution -}}
{{- if not $p -}}
{{- fail (printf "speil.distribution: unknown distribution %q" .Values.speil.distribution) -}}
{{- end -}}
sock: {{ default $p.sock .Values.speil.containerdSock }}
config: {{ default $p.config .Values.speil.containerdConfig }}
content: {{ default $p.content .Values.speil.containerdContentPath }}
registryConfig: {{ default $p.registryConfig .Values.speil.containerdRegistryConfigPath }}
{{- end -}}

{{/* Wildcard address the pod listens on, for the IP family. */}}
{{- define "speil.any" -}}
{{- if eq .Values.speil.ipFamily "ipv6" -}}[::]{{- else -}}0.0.0.0{{- end -}}
{{- end -}}

{{/* The node's own address in a URL: $(NODE_IP), bracketed for IPv6. */}}
{{- define "speil.nodeHost" -}}
{{- if eq .Values.speil.ipFamily "ipv6" -}}[$(NODE_IP)]{{- else -}}$(NODE_IP){{- end -}}
{{- end -}}

{{/* The port containerd reaches this node's Speil at. */}}
{{- define "speil.mirrorPort" -}}
{{- if eq .Values.service.registry.mode "nodePort" -}}{{ .Values.service.registry.nodePort }}{{- else -}}{{ .Values.service.registry.hostPort }}{{- end -}}
{{- end -}}

{{- define "speil.bootstrapName" -}}
{{- printf "%s-bootstrap" (include "speil.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "speil.bootstrapDomain" -}}
{{- printf "%s.%s.svc.%s" (include "speil.bootstrapName" .) (include "speil.namespace" .) .Values.clusterDomain -}}
{{- end -}}

{{/* Root for containerd's files, and nothing beyond: no capabilities, read-only root. */}}
{{- define "speil.containerSecurityContext" -}}
runAsUser: 0
runAsNonRoot: false
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The Speil node pods (not the cleanup hook's). */}}
{{- define "speil.nodeSelectorLabels" -}}
{{ include "speil.selectorLabels" . }}
app.kubernetes.io/component: node
{{- end -}}

{{/* The Secret holding `basic-auth` (user:password), or empty when the registry is open. */}}
{{- define "speil.basicAuthSecret" -}}
{{- $a := .Values.basicAuth -}}
{{- if $a.existingSecret -}}
{{- $a.existingSecret -}}
{{- else if or $a.username $a.password -}}
{{- if not (and $a.username $a.password) -}}
{{- fail "basicAuth.username and basicAuth.password: give both, or name a Secret in basicAuth.existingSecret" -}}
{{- end -}}
{{- printf "%s-basic-auth" (include "speil.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Where the basic-auth Secret is mounted, and its file. */}}
{{- define "speil.basicAuthDir" -}}/etc/speil/basic-auth{{- end -}}

{{/* The Secret holding `swarm.key` (the private network's key), or empty for an open network. */}}
{{- define "speil.p2pPskSecret" -}}
{{- $k := .Values.p2pPsk -}}
{{- if $k.existingSecret -}}
{{- $k.existingSecret -}}
{{- else if $k.key -}}
{{- printf "%s-p2p-psk" (include "speil.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Where the private network's Secret is mounted; its file is swarm.key. */}}
{{- define "speil.p2pPskDir" -}}/etc/speil/p2p-psk{{- end -}}
