// Validates rendered Kubernetes manifests offline, two ways:
//  1. Schema: every object against the Kubernetes 1.27 OpenAPI schema (kubernetes-models) or
//     its CRD schema (prometheus-operator). LeaderWorkerSet has no schema package: its pod
//     templates are validated as core/v1 PodTemplateSpec and its own spec fields are checked
//     here by hand (field names and enums from sigs.k8s.io/lws api/leaderworkerset/v1).
//  2. Consistency across objects, which no schema sees: selectors that select something, named
//     ports that exist, volumes and accounts that exist, grace period >= drain timeout, GPU
//     counts that match the rank layout, images that went through the kustomize transformer.
// Limitation: like kubeconform without -strict, unknown fields are not reported by the
// Kubernetes schemas (they allow additional properties); yamllint runs alongside.
//
// Usage: node validate.mjs RENDERED.yaml...   Exit status 1 if any check failed.
import { readFileSync } from "node:fs";
import yaml from "js-yaml";

const packageRoots = { "monitoring.coreos.com": "@kubernetes-models/prometheus-operator" };
let failures = 0;
let checks = 0;

function ok(what) {
  checks++;
  console.log(`ok   ${what}`);
}
function fail(what, why) {
  checks++;
  failures++;
  console.log(`FAIL ${what}: ${why}`);
}
function name(doc) {
  return `${doc.kind}/${doc.metadata?.name ?? "?"}`;
}

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const pkg = packageRoots[group] ?? "kubernetes-models";
  const path = group ? `${pkg}/${group}/${version}/${kind}` : `${pkg}/${version}/${kind}`;
  return (await import(path))[kind];
}

async function validateSchema(file, doc) {
  const what = `${file}: ${name(doc)} schema`;
  try {
    const Model = await modelFor(doc.apiVersion, doc.kind);
    new Model(doc).validate();
    ok(what);
  } catch (e) {
    fail(what, e.message.split("\n")[0]);
  }
}

// --- LeaderWorkerSet (leaderworkerset.x-k8s.io/v1) --------------------------------------
const lwsFields = {
  spec: ["replicas", "leaderWorkerTemplate", "rolloutStrategy", "startupPolicy", "networkConfig"],
  template: ["leaderTemplate", "workerTemplate", "size", "restartPolicy", "subGroupPolicy",
    "volumeClaimTemplates", "persistentVolumeClaimRetentionPolicy"],
  rollout: ["type", "rollingUpdateConfiguration"],
  rolling: ["partition", "maxUnavailable", "maxSurge"],
};
const lwsEnums = {
  startupPolicy: ["LeaderReady", "LeaderCreated"],
  restartPolicy: ["RecreateGroupOnPodRestart", "RecreateGroupAfterStart", "None", "Default"],
  rolloutType: ["RollingUpdate"],
};

function unknownKeys(obj, allowed) {
  return Object.keys(obj ?? {}).filter((k) => !allowed.includes(k));
}
function isInt(v, min) {
  return Number.isInteger(v) && v >= min;
}

async function validateLeaderWorkerSet(file, doc) {
  const what = `${file}: ${name(doc)}`;
  const problems = [];
  const spec = doc.spec ?? {};
  const tmpl = spec.leaderWorkerTemplate;
  for (const k of unknownKeys(spec, lwsFields.spec)) problems.push(`spec has unknown field ${k}`);
  if (spec.replicas !== undefined && !isInt(spec.replicas, 0)) problems.push("spec/replicas must be an integer >= 0");
  if (spec.startupPolicy !== undefined && !lwsEnums.startupPolicy.includes(spec.startupPolicy))
    problems.push(`spec/startupPolicy must be one of ${lwsEnums.startupPolicy.join(", ")}`);
  const ro = spec.rolloutStrategy;
  if (ro) {
    for (const k of unknownKeys(ro, lwsFields.rollout)) problems.push(`spec/rolloutStrategy has unknown field ${k}`);
    if (!lwsEnums.rolloutType.includes(ro.type)) problems.push("spec/rolloutStrategy/type must be RollingUpdate");
    for (const k of unknownKeys(ro.rollingUpdateConfiguration, lwsFields.rolling))
      problems.push(`spec/rolloutStrategy/rollingUpdateConfiguration has unknown field ${k}`);
  }
  if (!tmpl) problems.push("spec/leaderWorkerTemplate is required");
  else {
    for (const k of unknownKeys(tmpl, lwsFields.template)) problems.push(`spec/leaderWorkerTemplate has unknown field ${k}`);
    if (tmpl.size !== undefined && !isInt(tmpl.size, 1)) problems.push("spec/leaderWorkerTemplate/size must be an integer >= 1");
    if (tmpl.restartPolicy !== undefined && !lwsEnums.restartPolicy.includes(tmpl.restartPolicy))
      problems.push(`spec/leaderWorkerTemplate/restartPolicy must be one of ${lwsEnums.restartPolicy.join(", ")}`);
    if (!tmpl.workerTemplate) problems.push("spec/leaderWorkerTemplate/workerTemplate is required");
  }
  if (problems.length) fail(`${what} fields`, problems.join("; "));
  else ok(`${what} fields (hand-checked: no LWS schema package)`);

  const PodTemplateSpec = await modelFor("v1", "PodTemplateSpec");
  for (const key of ["leaderTemplate", "workerTemplate"]) {
    if (!tmpl?.[key]) continue;
    const w = `${what} ${key} as core/v1 PodTemplateSpec`;
    try {
      new PodTemplateSpec(tmpl[key]).validate();
      ok(w);
    } catch (e) {
      fail(w, e.message.split("\n")[0]);
    }
  }
}

// --- Cross-object consistency ------------------------------------------------------------
// Pod templates of every workload kind we render, with the size of a group for LWS.
function podTemplates(doc) {
  const s = doc.spec ?? {};
  switch (doc.kind) {
    case "Deployment":
    case "StatefulSet":
    case "DaemonSet":
    case "Job":
      return [{ tmpl: s.template, nodes: 1 }];
    case "LeaderWorkerSet": {
      const t = s.leaderWorkerTemplate ?? {};
      // Without a leaderTemplate the workerTemplate is the leader's too.
      return [
        t.leaderTemplate && { tmpl: t.leaderTemplate, nodes: t.size ?? 1, role: "leader" },
        t.workerTemplate && { tmpl: t.workerTemplate, nodes: t.size ?? 1, role: t.leaderTemplate ? "worker" : "leader+worker" },
      ].filter(Boolean);
    }
    default:
      return [];
  }
}

function selects(selector, labels) {
  if (!selector) return false;
  const match = selector.matchLabels ?? (selector.matchExpressions ? undefined : selector);
  if (selector.matchExpressions) return false; // not used by our manifests: flag it for review
  return Object.entries(match ?? {}).every(([k, v]) => labels?.[k] === v);
}

function parseDurationSeconds(text) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
  if (!m) return undefined;
  const scale = { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] ?? "s"];
  return Number(m[1]) * scale;
}

// Value of --flag_name=VALUE in a container's command/args; the last one when repeated, as
// Abseil takes it. Our binaries use Abseil flags, which only accept underscores, so a dashed
// spelling is reported as an error.
function flag(container, flagName) {
  const want = flagName.replaceAll("-", "_");
  let value;
  for (const a of [...(container.command ?? []), ...(container.args ?? [])]) {
    const m = /^--([\w-]+)=(.*)$/.exec(a);
    if (m && m[1].replaceAll("-", "_") === want) value = m[2];
  }
  return value;
}


// --- What a real GPU cluster needs (issue 19) ----------------------------------------------
const isWorker = (c) => (c.command ?? []).some((a) => a.endsWith("/magi-worker"));
const isServer = (c) => (c.command ?? []).some((a) => a.endsWith("/magi-server"));
function probePath(p) {
  return p?.httpGet ? `GET ${p.httpGet.path}` : p?.tcpSocket ? "tcpSocket" : p?.grpc ? "grpc" : p?.exec ? "exec" : "none";
}

function checkServing(file, docs, pods) {
  const pvcs = new Map(docs.filter((d) => d.kind === "PersistentVolumeClaim").map((d) => [d.metadata.name, d]));
  const workerImages = new Set();
  const served = new Map();  // model name -> workload names serving it
  for (const { owner, tmpl, role } of pods) {
    const spec = tmpl.spec ?? {};
    for (const c of spec.containers ?? []) {
      const cw = `${file}: ${name(owner)}${role ? ` ${role}` : ""} container ${c.name}`;
      if (isWorker(c)) {
        if (flag(c, "device") === "cuda") workerImages.add(c.image);
        // Probes: /healthz for liveness, /readyz gating startup and readiness, on --http_listen.
        const w = `${cw} has startup, readiness and liveness probes on --http_listen`;
        const listen = flag(c, "http_listen");
        const port = listen && Number(listen.split(":").pop());
        const portName = (c.ports ?? []).find((p) => p.containerPort === port)?.name;
        const onListen = (p) => !p?.httpGet || p.httpGet.port === port || (portName !== undefined && p.httpGet.port === portName);
        const problems = [];
        if (!listen) problems.push("probes need --http_listen (magi-worker serves /healthz and /readyz only there)");
        else if (portName === undefined) problems.push(`--http_listen port ${port} is not a container port`);
        for (const k of ["startupProbe", "readinessProbe", "livenessProbe"]) if (!c[k]) problems.push(`has no ${k}`);
        if (c.livenessProbe && probePath(c.livenessProbe) !== "GET /healthz") problems.push(`livenessProbe must be GET /healthz, not ${probePath(c.livenessProbe)}`);
        const lwsLeaderReady = owner.kind === "LeaderWorkerSet" && owner.spec?.startupPolicy === "LeaderReady";
        for (const k of ["startupProbe", "readinessProbe"]) {
          if (!c[k]) continue;
          if (role === "leader" && lwsLeaderReady) {
            // Workers are created after the leader is Ready; rank 0 loads only after they joined.
            if (probePath(c[k]) === "GET /readyz") problems.push(`${k} GET /readyz on the leader with startupPolicy LeaderReady would deadlock the group (the workers start only after the leader is Ready)`);
          } else if (role === "leader+worker" && lwsLeaderReady) {
            problems.push("startupPolicy LeaderReady needs a leaderTemplate whose probes do not wait for /readyz");
          } else if (probePath(c[k]) !== "GET /readyz") problems.push(`${k} must be GET /readyz, not ${probePath(c[k])}`);
        }
        for (const k of ["startupProbe", "readinessProbe", "livenessProbe"]) {
          if (c[k] && listen && !onListen(c[k])) problems.push(`${k} port ${c[k].httpGet.port} is not the --http_listen port ${port}`);
        }
        problems.length ? fail(w, problems.join("; ")) : ok(w);
        // Model identity: the server's catalog key and the name clients send.
        if (flag(c, "runner") === "model") {
          const wm = `${cw} passes --model_name and --model_dir`;
          const model = flag(c, "model_name");
          const dir = flag(c, "model_dir");
          if (!model) fail(wm, "--model_name not set: the group would register under its folder's config or basename, which a 24B and a 4.5B group may share");
          else if (!/^[A-Za-z0-9._-]{1,64}$/.test(model)) fail(wm, `--model_name=${model} is not 1-64 of [A-Za-z0-9._-]`);
          else if (!dir) fail(wm, "--model_dir not set");
          else if (!(c.volumeMounts ?? []).some((m) => dir.startsWith(m.mountPath.replace(/\/?$/, "/")))) fail(wm, `--model_dir=${dir} is not under a mounted volume`);
          else {
            ok(`${wm} (${model})`);
            if (!served.has(model)) served.set(model, new Set());
            served.get(model).add(owner.metadata.name);
          }
        }
        // The model volume is shared by every pod of every group, on any node.
        for (const m of c.volumeMounts ?? []) {
          const vol = (spec.volumes ?? []).find((v) => v.name === m.name);
          const claim = vol?.persistentVolumeClaim?.claimName;
          if (!claim || !pvcs.has(claim)) continue;
          const wr = `${cw} model claim ${claim} is ReadWriteMany`;
          const modes = pvcs.get(claim).spec?.accessModes ?? [];
          modes.includes("ReadWriteMany") ? ok(wr) : fail(wr, `accessModes ${JSON.stringify(modes)}: worker pods on several nodes mount it and the model-fetch Job writes it, so it must be ReadWriteMany`);
        }
      }
      if (isServer(c)) {
        const w = `${cw} gets no GPU (NVIDIA_VISIBLE_DEVICES=void, no GPU resources, no CUDA/NCCL env)`;
        const env = new Map((c.env ?? []).map((e) => [e.name, e.value]));
        const problems = [];
        if (env.get("NVIDIA_VISIBLE_DEVICES") !== "void") problems.push(`NVIDIA_VISIBLE_DEVICES is ${env.get("NVIDIA_VISIBLE_DEVICES") ?? "unset"}, not void (an image's =all hands it every GPU of the node)`);
        for (const k of env.keys()) if (/^(CUDA_|NCCL_)/.test(k)) problems.push(`env ${k} is GPU configuration`);
        for (const k of Object.keys({ ...c.resources?.requests, ...c.resources?.limits })) if (k.startsWith("nvidia.com/")) problems.push(`requests ${k}`);
        problems.length ? fail(w, problems.join("; ")) : ok(w);
      }
    }
  }
  for (const { owner, tmpl } of pods) {
    for (const c of tmpl.spec?.containers ?? []) {
      if (!isServer(c) || !workerImages.size) continue;
      const w = `${file}: ${name(owner)} container ${c.name} runs from an image without CUDA`;
      workerImages.has(c.image) ? fail(w, `${c.image} is the CUDA workers' image; map magi-serve-server to the CPU image`) : ok(`${w} (${c.image})`);
    }
  }
  // The server's --default_model (what a request naming no model gets) must be served.
  for (const { owner, tmpl } of pods) {
    for (const c of tmpl.spec?.containers ?? []) {
      if (!isServer(c) || !served.size) continue;
      const w = `${file}: ${name(owner)} container ${c.name} --default_model is served by a worker group`;
      const dm = flag(c, "default_model") ?? "tiny";
      served.has(dm) ? ok(`${w} (${dm})`) : fail(w, `--default_model ${dm} is not among the served models ${[...served.keys()].join(", ")}: requests naming no model would get NOT_FOUND`);
    }
  }
  for (const lws of docs.filter((d) => d.kind === "LeaderWorkerSet")) {
    const w = `${file}: ${name(lws)} startupPolicy is LeaderReady`;
    lws.spec?.startupPolicy === "LeaderReady" ? ok(w) : fail(w, `startupPolicy ${lws.spec?.startupPolicy ?? "unset (LeaderCreated)"}: workers would start before the leader pulled its image and listens`);
  }
  return served;
}

// --- KEDA ScaledObject (keda.sh/v1alpha1): no schema package; fields from KEDA's
// apis/keda/v1alpha1/scaledobject_types.go, checked by hand like LeaderWorkerSet ------------
const kedaFields = {
  spec: ["scaleTargetRef", "pollingInterval", "initialCooldownPeriod", "cooldownPeriod", "idleReplicaCount",
    "minReplicaCount", "maxReplicaCount", "advanced", "triggers", "fallback"],
  target: ["apiVersion", "kind", "name", "envSourceContainerName"],
  trigger: ["type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"],
};
function checkScaledObjects(file, docs, served) {
  for (const so of docs.filter((d) => d.kind === "ScaledObject")) {
    const w = `${file}: ${name(so)}`;
    const problems = [];
    const spec = so.spec ?? {};
    if (so.apiVersion !== "keda.sh/v1alpha1") problems.push(`apiVersion ${so.apiVersion}, not keda.sh/v1alpha1`);
    for (const k of unknownKeys(spec, kedaFields.spec)) problems.push(`spec has unknown field ${k}`);
    for (const k of unknownKeys(spec.scaleTargetRef, kedaFields.target)) problems.push(`spec/scaleTargetRef has unknown field ${k}`);
    for (const k of ["minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod"])
      if (spec[k] !== undefined && !isInt(spec[k], 0)) problems.push(`spec/${k} must be an integer >= 0`);
    if ((spec.minReplicaCount ?? 0) > (spec.maxReplicaCount ?? 100)) problems.push("minReplicaCount > maxReplicaCount");
    const ref = spec.scaleTargetRef ?? {};
    const target = docs.find((d) => d.kind === (ref.kind ?? "Deployment") && d.metadata?.name === ref.name);
    if (!target) problems.push(`scaleTargetRef ${ref.kind ?? "Deployment"}/${ref.name} is not in the manifests`);
    else if (ref.apiVersion && ref.apiVersion !== target.apiVersion) problems.push(`scaleTargetRef apiVersion ${ref.apiVersion} != the target's ${target.apiVersion}`);
    if (!(spec.triggers ?? []).length) problems.push("spec/triggers is empty");
    for (const [i, t] of (spec.triggers ?? []).entries()) {
      for (const k of unknownKeys(t, kedaFields.trigger)) problems.push(`triggers[${i}] has unknown field ${k}`);
      if (t.type !== "prometheus") continue;
      const md = t.metadata ?? {};
      for (const k of ["serverAddress", "query", "threshold"]) if (typeof md[k] !== "string" || !md[k]) problems.push(`triggers[${i}].metadata.${k} must be a non-empty string`);
      if (md.threshold !== undefined && !(Number(md.threshold) > 0)) problems.push(`triggers[${i}].metadata.threshold ${md.threshold} is not a positive number`);
      // Per model: the query must select the model the target's groups serve.
      const m = /model="([^"]*)"/.exec(md.query ?? "");
      const targetModels = [...served.entries()].filter(([, owners]) => target && owners.has(target.metadata.name)).map(([k]) => k);
      if (!m) problems.push(`triggers[${i}] query has no model="..." selector: it would scale on every model's queue`);
      else if (target && !targetModels.includes(m[1])) problems.push(`triggers[${i}] query selects model ${m[1]} but ${ref.kind}/${ref.name} serves ${targetModels.join(", ") || "no model"}`);
    }
    problems.length ? fail(`${w} fields`, problems.join("; ")) : ok(`${w} fields (hand-checked: no KEDA schema package)`);
  }
}

function checkConsistency(file, docs) {
  const pods = docs.flatMap((d) => podTemplates(d).map((p) => ({ owner: d, ...p })));
  const byKind = (k) => docs.filter((d) => d.kind === k);
  const pvcs = new Set(byKind("PersistentVolumeClaim").map((d) => d.metadata.name));
  const accounts = new Set(byKind("ServiceAccount").map((d) => d.metadata.name));
  const priorityClasses = new Set(byKind("PriorityClass").map((d) => d.metadata.name));
  const services = byKind("Service");
  const tokenSecrets = new Set();

  for (const d of docs) {
    if (["Deployment", "StatefulSet"].includes(d.kind)) {
      const w = `${file}: ${name(d)} selector matches its pod template labels`;
      selects(d.spec.selector, d.spec.template?.metadata?.labels) ? ok(w) : fail(w, "it does not");
    }
    if (d.kind === "StatefulSet") {
      const w = `${file}: ${name(d)} serviceName is a headless Service`;
      const svc = services.find((s) => s.metadata.name === d.spec.serviceName);
      svc && svc.spec.clusterIP === "None" ? ok(w) : fail(w, `no headless Service named ${d.spec.serviceName}`);
    }
  }

  for (const { owner, tmpl, nodes } of pods) {
    const spec = tmpl.spec ?? {};
    const where = `${file}: ${name(owner)}`;
    const volumes = new Set((spec.volumes ?? []).map((v) => v.name));
    for (const v of spec.volumes ?? []) {
      if (v.persistentVolumeClaim) {
        const w = `${where} volume ${v.name} claims an existing PVC`;
        pvcs.has(v.persistentVolumeClaim.claimName) ? ok(w) : fail(w, `no PersistentVolumeClaim ${v.persistentVolumeClaim.claimName}`);
      }
    }
    if (spec.priorityClassName) {
      const w = `${where} priorityClassName is a PriorityClass in the manifests (or a system one)`;
      priorityClasses.has(spec.priorityClassName) || spec.priorityClassName.startsWith("system-") ? ok(w) : fail(w, `no PriorityClass ${spec.priorityClassName}: the API server refuses the pods`);
    }
    if (spec.serviceAccountName) {
      const w = `${where} serviceAccountName exists`;
      accounts.has(spec.serviceAccountName) ? ok(w) : fail(w, `no ServiceAccount ${spec.serviceAccountName}`);
    }
    for (const c of spec.initContainers ?? []) {
      const w = `${where} init container ${c.name} image was set by kustomize (registry/name:tag)`;
      /[/].*:[^/]+$/.test(c.image ?? "") ? ok(w) : fail(w, `image "${c.image}" still the placeholder: add the kind to the overlay's images configuration`);
      for (const m of c.volumeMounts ?? []) {
        const w2 = `${where} init container ${c.name} mount ${m.mountPath} has a volume`;
        volumes.has(m.name) ? ok(w2) : fail(w2, `no volume ${m.name}`);
      }
    }
    for (const c of spec.containers ?? []) {
      const cw = `${where} container ${c.name}`;
      const portNames = new Set((c.ports ?? []).map((p) => p.name));
      const portNumbers = new Set((c.ports ?? []).map((p) => p.containerPort));
      {
        const w = `${cw} image was set by kustomize (registry/name:tag)`;
        /[/].*:[^/]+$/.test(c.image ?? "") ? ok(w) : fail(w, `image "${c.image}" still the placeholder: add the kind to the overlay's images configuration`);
      }
      for (const m of c.volumeMounts ?? []) {
        const w = `${cw} mount ${m.mountPath} has a volume`;
        volumes.has(m.name) ? ok(w) : fail(w, `no volume ${m.name}`);
      }
      for (const probeName of ["startupProbe", "readinessProbe", "livenessProbe"]) {
        const p = c[probeName];
        if (!p) continue;
        const port = p.httpGet?.port ?? p.tcpSocket?.port ?? p.grpc?.port;
        if (port === undefined) continue;
        const w = `${cw} ${probeName} port ${port} is a container port`;
        (typeof port === "string" ? portNames.has(port) : portNumbers.has(port)) ? ok(w) : fail(w, "no such container port");
      }
      // TLS on the client port: the kubelet's gRPC probe speaks plaintext and would fail.
      if (flag(c, "tls_cert") !== undefined) {
        const w = `${cw} with --tls_cert probes over --http_listen, not gRPC`;
        const grpcProbes = ["startupProbe", "readinessProbe", "livenessProbe"].filter((k) => c[k]?.grpc);
        grpcProbes.length ? fail(w, `${grpcProbes.join(", ")} use the kubelet's gRPC probe, which speaks plaintext to a TLS port`) : ok(w);
      }
      // magi-server: --drain-timeout-seconds=N (a plain number of seconds).
      const drain = flag(c, "drain_timeout_seconds");
      if (drain !== undefined) {
        const w = `${cw} terminationGracePeriodSeconds >= --drain_timeout_seconds`;
        const seconds = parseDurationSeconds(drain);
        const grace = spec.terminationGracePeriodSeconds ?? 30;
        if (seconds === undefined) fail(w, `cannot parse --drain_timeout_seconds=${drain}`);
        else grace >= seconds ? ok(`${w} (${grace} >= ${seconds})`) : fail(w, `${grace} < ${seconds}: the kubelet would kill the drain`);
      }
      const device = flag(c, "device");
      const nproc = Number(flag(c, "nproc_per_node") ?? "1");
      if (device === "cuda") {
        // A whole GPU (nvidia.com/gpu) or a MIG slice (nvidia.com/mig-<profile>), one per rank.
        const gpuKeys = [...new Set(Object.keys({ ...c.resources?.requests, ...c.resources?.limits })
          .filter((k) => k === "nvidia.com/gpu" || k.startsWith("nvidia.com/mig-")))];
        const key = gpuKeys.length === 1 ? gpuKeys[0] : "nvidia.com/gpu";
        const req = c.resources?.requests?.[key];
        const lim = c.resources?.limits?.[key];
        const w = `${cw} GPU request == limit == --nproc_per_node`;
        if (gpuKeys.length > 1) fail(w, `several GPU resources ${gpuKeys.join(", ")}: one kind per container`);
        else String(req) === String(lim) && Number(lim) === nproc ? ok(`${w} (${nproc} ${key})`) : fail(w, `requests ${req}, limits ${lim}, --nproc_per_node ${nproc}`);
        const shm = (c.volumeMounts ?? []).find((m) => m.mountPath === "/dev/shm");
        const shmVol = (spec.volumes ?? []).find((v) => v.name === shm?.name);
        const w2 = `${cw} has a memory-backed /dev/shm for NCCL`;
        shmVol?.emptyDir?.medium === "Memory" ? ok(w2) : fail(w2, "missing");
      } else if (device === "cpu") {
        const w = `${cw} (cpu) requests no GPU and uses gloo`;
        const gpu = Object.keys({ ...c.resources?.requests, ...c.resources?.limits }).find((k) => k.startsWith("nvidia.com/"));
        !gpu && flag(c, "backend") === "gloo" ? ok(w) : fail(w, `nvidia.com/gpu=${gpu}, --backend=${flag(c, "backend")}`);
      }
      if (device !== undefined) {
        const tp = Number(flag(c, "tp") ?? "1");
        const cp = Number(flag(c, "cp") ?? "1");
        const w = `${cw} --tp x --cp == ranks in the group`;
        const ranks = nproc * nodes;
        tp * cp === ranks ? ok(`${w} (${tp} x ${cp} = ${nproc} x ${nodes})`) : fail(w, `${tp} x ${cp} != ${nproc} ranks per pod x ${nodes} pods`);
        const server = flag(c, "server");
        const [host, port] = (server ?? "").split(":");
        const w2 = `${cw} --server names a Service`;
        const svc = services.find((s) => s.metadata.name === host);
        svc ? ok(`${w2} (${host})`) : fail(w2, `no Service ${host}`);
        const w3 = `${cw} --server port is a port of that Service`;
        if (svc) (svc.spec.ports ?? []).some((p) => String(p.port) === port) ? ok(`${w3} (${port})`) : fail(w3, `Service ${host} has no port ${port}`);
      }
      // Worker authentication: the server and every worker group read the worker token from
      // a mounted Secret, and all of them from the same one.
      if (device !== undefined || drain !== undefined) {
        const tokenFile = flag(c, "worker_token_file");
        const w = `${cw} --worker_token_file is in a mounted Secret volume`;
        const mount = tokenFile && (c.volumeMounts ?? []).find((m) => tokenFile.startsWith(m.mountPath.replace(/\/?$/, "/")));
        const secret = mount && (spec.volumes ?? []).find((v) => v.name === mount.name)?.secret?.secretName;
        if (!tokenFile) fail(w, "not set: the server would generate a token no worker pod can read");
        else if (!secret) fail(w, `${tokenFile} is not in a mounted Secret volume`);
        else {
          ok(`${w} (${secret})`);
          tokenSecrets.add(secret);
        }
      }
    }
  }

  for (const s of services) {
    const w = `${file}: ${name(s)} selects a pod template and its target ports exist`;
    const matched = pods.filter((p) => selects(s.spec.selector, p.tmpl.metadata?.labels));
    if (!matched.length) {
      fail(w, "selector matches no pod template");
      continue;
    }
    const missing = (s.spec.ports ?? []).filter((p) => typeof p.targetPort === "string" &&
      !matched.some((m) => (m.tmpl.spec.containers ?? []).some((c) => (c.ports ?? []).some((cp) => cp.name === p.targetPort))));
    missing.length ? fail(w, `target ports ${missing.map((p) => p.targetPort).join(", ")} not on any selected container`) : ok(w);
  }
  for (const { owner, tmpl } of pods) {
    for (const c of tmpl.spec?.containers ?? []) {
      const dashed = (c.args ?? []).filter((a) => /^--[a-z0-9]+-[\w-]*=/.test(a));
      const w = `${file}: ${name(owner)} container ${c.name} flags use underscores (Abseil rejects --dashed-names)`;
      dashed.length ? fail(w, dashed.join(" ")) : ok(w);
    }
  }
  {
    const w = `${file}: the server and the worker groups use one worker token Secret`;
    tokenSecrets.size <= 1 ? ok(w) : fail(w, `several: ${[...tokenSecrets].join(", ")}`);
  }
  for (const np of byKind("NetworkPolicy")) {
    const w = `${file}: ${name(np)} selects a pod template and its named ports exist there`;
    const matched = pods.filter((p) => selects(np.spec.podSelector, p.tmpl.metadata?.labels));
    const names = new Set(matched.flatMap((m) => (m.tmpl.spec.containers ?? []).flatMap((c) => (c.ports ?? []).map((p) => p.name))));
    const missing = (np.spec.ingress ?? []).flatMap((r) => r.ports ?? []).filter((p) => typeof p.port === "string" && !names.has(p.port));
    !matched.length ? fail(w, "podSelector matches no pod template") : missing.length ? fail(w, `no container port ${missing.map((p) => p.port).join(", ")}`) : ok(w);
    for (const r of np.spec.ingress ?? []) {
      for (const peer of r.from ?? []) {
        if (!peer.podSelector) continue;
        const w2 = `${file}: ${name(np)} ingress peer selects a pod template`;
        pods.some((p) => selects(peer.podSelector, p.tmpl.metadata?.labels)) ? ok(w2) : fail(w2, "podSelector matches no pod template");
      }
    }
  }
  for (const pdb of byKind("PodDisruptionBudget")) {
    const w = `${file}: ${name(pdb)} selects a pod template`;
    pods.some((p) => selects(pdb.spec.selector, p.tmpl.metadata?.labels)) ? ok(w) : fail(w, "selector matches no pod template");
  }
  const served = checkServing(file, docs, pods);
  checkScaledObjects(file, docs, served);
  for (const pm of byKind("PodMonitor")) {
    const w = `${file}: ${name(pm)} selects a pod template with its endpoint ports`;
    const matched = pods.filter((p) => selects(pm.spec.selector, p.tmpl.metadata?.labels));
    const names = new Set(matched.flatMap((m) => (m.tmpl.spec.containers ?? []).flatMap((c) => (c.ports ?? []).map((p) => p.name))));
    const missing = (pm.spec.podMetricsEndpoints ?? []).filter((e) => !names.has(e.port));
    !matched.length ? fail(w, "selector matches no pod template") : missing.length ? fail(w, `no container port ${missing.map((e) => e.port).join(", ")}`) : ok(w);
  }
  for (const sm of byKind("ServiceMonitor")) {
    const w = `${file}: ${name(sm)} selects a Service with its endpoint ports`;
    const svc = services.filter((s) => selects(sm.spec.selector, s.metadata.labels));
    const ports = new Set(svc.flatMap((s) => (s.spec.ports ?? []).map((p) => p.name)));
    const missing = (sm.spec.endpoints ?? []).filter((e) => !ports.has(e.port));
    !svc.length ? fail(w, "selector matches no Service") : missing.length ? fail(w, `no port ${missing.map((e) => e.port).join(", ")}`) : ok(w);
  }
}

for (const file of process.argv.slice(2)) {
  const docs = yaml.loadAll(readFileSync(file, "utf8")).filter(Boolean);
  for (const doc of docs) {
    if (!doc.apiVersion || !doc.kind) {
      fail(`${file}: object`, "missing apiVersion or kind");
      continue;
    }
    if (doc.apiVersion === "leaderworkerset.x-k8s.io/v1" && doc.kind === "LeaderWorkerSet") await validateLeaderWorkerSet(file, doc);
    else if (doc.kind === "ScaledObject") continue;  // hand-checked in checkScaledObjects
    else await validateSchema(file, doc);
  }
  checkConsistency(file, docs);
}
console.log(`validate: ${checks - failures} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
